//! Enrol a folder of people (`<person>/<photo>`) into a gallery, then name every face of a
//! photo, or answer "unknown".
//!
//! ```text
//! cargo run --release -p recog --example gallery -- PEOPLE_DIR PHOTO [GALLERY.sqlite]
//! ```
//!
//! With two LFW people enrolled from their first photo each, probing with another photo:
//!
//! ```text
//! $ ls people/*
//! people/Colin_Powell: Colin_Powell_0001.jpg
//! people/Tony_Blair: Tony_Blair_0001.jpg
//! $ gallery people/ Tony_Blair/Tony_Blair_0002.jpg
//! enrolled Colin_Powell: 1 photo(s)
//! enrolled Tony_Blair: 1 photo(s)
//! face at (77, 92)-(178, 193): Tony_Blair (distance 0.799, nearest Tony_Blair)
//! $ gallery people/ Serena_Williams/Serena_Williams_0001.jpg
//! enrolled Colin_Powell: 0 photo(s); 1 already enrolled, skipped
//! enrolled Tony_Blair: 0 photo(s); 1 already enrolled, skipped
//! face at (69, 91)-(175, 198): unknown (distance 1.331, nearest Colin_Powell)
//! ```

use std::path::PathBuf;

fn main() -> Result<(), recog::Error> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (people, photo, db) = match &args[..] {
        [p, q] => (
            p,
            q,
            std::env::temp_dir().join("recog-example-gallery.sqlite"),
        ),
        [p, q, d] => (p, q, d.clone()),
        _ => {
            eprintln!("usage: gallery PEOPLE_DIR PHOTO [GALLERY.sqlite]");
            std::process::exit(2);
        }
    };
    let faces = recog::Faces::load()?;
    let mut gallery = faces.open_gallery(&db)?;
    for (name, photos) in recog::gallery::enroll::folder_people(people)? {
        let r = faces.enroll(&mut gallery, &name, &photos)?;
        println!("enrolled {name}: {} photo(s){}", r.enrolled, r.tail());
    }
    for face in faces.identify(&gallery, photo)? {
        let [x0, y0, x1, y1] = face.bbox;
        println!(
            "face at ({x0:.0}, {y0:.0})-({x1:.0}, {y1:.0}): {} (distance {:.3}, nearest {})",
            face.answer.name.as_deref().unwrap_or("unknown"),
            face.answer.distance,
            face.answer.nearest.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
