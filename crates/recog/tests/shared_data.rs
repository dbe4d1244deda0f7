//! Loader checks against reference figures of the real data sets, computed independently with
//! Python's gzip + struct (counts, first labels, pixel sum of the first image, label
//! histogram). They run when `RECOG_HOME` holds the data (CI sets `RECOG_HOME=../shared`) and
//! say so when they skip.

mod common;

use recog::data::{self, KnownSet, Source, Split};
use recog::{Home, NoProgress};

struct Reference {
    set: KnownSet,
    split: Split,
    n: usize,
    first_labels: [u32; 5],
    first_pixel_sum: u64,
    histogram: [usize; 10],
}

const REFS: &[Reference] = &[
    Reference {
        set: KnownSet::Mnist,
        split: Split::Train,
        n: 60000,
        first_labels: [5, 0, 4, 1, 9],
        first_pixel_sum: 27525,
        histogram: [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    },
    Reference {
        set: KnownSet::Mnist,
        split: Split::Test,
        n: 10000,
        first_labels: [7, 2, 1, 0, 4],
        first_pixel_sum: 18454,
        histogram: [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    },
    Reference {
        set: KnownSet::FashionMnist,
        split: Split::Train,
        n: 60000,
        first_labels: [9, 0, 0, 3, 0],
        first_pixel_sum: 76247,
        histogram: [6000; 10],
    },
    Reference {
        set: KnownSet::FashionMnist,
        split: Split::Test,
        n: 10000,
        first_labels: [9, 2, 1, 1, 6],
        first_pixel_sum: 33456,
        histogram: [1000; 10],
    },
];

#[test]
fn real_idx_sets_match_reference_figures() {
    let home = Home::from_env();
    let mut checked = 0;
    for r in REFS {
        if !home
            .data_dir(r.set.dir_name())
            .join("train-images-idx3-ubyte.gz")
            .exists()
        {
            common::skip(&format!("{:?} in {}", r.set, home.root.display()));
            continue;
        }
        let d = data::load(&Source::Known(r.set), r.split, &home, &NoProgress).unwrap();
        assert_eq!(d.len(), r.n);
        assert_eq!((d.height, d.width), (28, 28));
        assert_eq!(&d.labels[..5], &r.first_labels);
        assert_eq!(
            d.image(0).iter().map(|&p| p as u64).sum::<u64>(),
            r.first_pixel_sum
        );
        let hist: Vec<usize> = d.by_class().iter().map(|v| v.len()).collect();
        assert_eq!(hist, r.histogram.to_vec());
        assert_eq!(d.classes.len(), 10);
        checked += 1;
    }
    if std::env::var_os("RECOG_HOME")
        .is_some_and(|h| std::path::Path::new(&h).join("data/mnist").exists())
    {
        assert_eq!(
            checked,
            REFS.len(),
            "RECOG_HOME holds the data but not every set was checked"
        );
    }
}

/// Decoding by content (with EXIF orientation) gives LFW's photos exactly the pixels that the
/// extension-based decoder gave when the LFW figures in README were measured, so those
/// figures hold for the new decoding path: every 25th LFW image, pixel for pixel.
#[test]
fn lfw_photos_decode_to_the_pixels_the_lfw_figures_were_measured_on() {
    let home = Home::from_env();
    let dir = home.data_dir("lfw").join("images");
    let Ok(people) = recog::data::folder::people(&dir) else {
        common::skip(&dir.display().to_string());
        return;
    };
    let files: Vec<_> = people.iter().flat_map(|p| p.1.iter()).step_by(25).collect();
    assert!(files.len() > 500, "{}", files.len());
    for f in files {
        let old = image::open(f).unwrap().to_rgb8();
        let new = recog::data::image_file::load_rgb(f).unwrap();
        assert!(old == new, "{}", f.display());
    }
}
