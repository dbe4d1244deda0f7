//! Handwriting-style letters rendered from fonts, with random rotation, slant and stroke
//! width, normalised like MNIST: an "unknown" class for open-set digit recognition that needs
//! no download (EMNIST is not always at hand).
//!
//! ```
//! use recog::data::glyphs::{builtin_fonts, render_letters};
//! let letters = render_letters(&builtin_fonts(), 10, 1).unwrap();
//! assert_eq!((letters.len(), letters.height, letters.width), (10, 28, 28));
//! ```

use ab_glyph::{Font, FontVec, PxScale};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{mnistify::mnistify, Dataset};
use crate::error::{Error, Result};

/// The letters drawn: both cases of the Latin alphabet.
pub const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fonts recog may use when *fitting* (the DejaVu faces compiled into the binary).
pub fn builtin_fonts() -> Vec<(String, Vec<u8>)> {
    vec![
        ("DejaVu Sans".into(), dejavu::sans::regular().to_vec()),
        ("DejaVu Sans Bold".into(), dejavu::sans::bold().to_vec()),
        (
            "DejaVu Sans Oblique".into(),
            dejavu::sans::oblique().to_vec(),
        ),
        (
            "DejaVu Sans Condensed".into(),
            dejavu::sans_condensed::regular().to_vec(),
        ),
    ]
}

/// Debian handwriting fonts, split so that evaluation letters never come from a font seen in
/// fitting. Paths of the Debian packages `fonts-sjfonts` (fit) and `fonts-dkg-handwriting`,
/// `fonts-breip`, `fonts-femkeklaver`, `fonts-rufscript` (evaluation).
pub const FIT_FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/sjfonts/Delphine.ttf",
    "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf",
];

/// See [`FIT_FONT_FILES`].
pub const EVAL_FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "/usr/share/fonts/truetype/fifthhorseman/dkgBd.ttf",
    "/usr/share/fonts/truetype/fifthhorseman/dkgIt.ttf",
    "/usr/share/fonts/truetype/breip/Breip.ttf",
    "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
];

/// The Debian package that ships a font file of recog's generators, found by its folder.
pub fn font_package(path: &str) -> Option<&'static str> {
    const PACKAGES: &[(&str, &str)] = &[
        ("/sjfonts/", "fonts-sjfonts"),
        ("/fifthhorseman/", "fonts-dkg-handwriting"),
        ("/breip/", "fonts-breip"),
        ("/femkeklaver/", "fonts-femkeklaver"),
        ("/rufscript/", "fonts-rufscript"),
        ("/bwht/", "fonts-bwht"),
        ("/humor-sans/", "fonts-humor-sans"),
        ("/leckerli-one/", "fonts-leckerli-one"),
        ("/klee/", "fonts-klee"),
        ("/yusei-magic/", "fonts-yusei-magic"),
    ];
    PACKAGES
        .iter()
        .find(|(dir, _)| path.contains(dir))
        .map(|&(_, package)| package)
}

/// Reads font files; an unreadable one is an error naming it and the package that ships it.
pub fn read_fonts(paths: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    paths
        .iter()
        .map(|p| {
            std::fs::read(p).map(|b| (p.to_string(), b)).map_err(|e| {
                let fix = match font_package(p) {
                    Some(package) => format!(
                        "it ships in the Debian package {package}: `apt-get install {package}`"
                    ),
                    None => "install the font it names".to_string(),
                };
                Error::io(p, std::io::Error::new(e.kind(), format!("{e}; {fix}")))
            })
        })
        .collect()
}

/// Renders `n` random letters from `fonts`, seeded. Class names are the letters; labels index
/// [`LETTERS`].
pub fn render_letters(fonts: &[(String, Vec<u8>)], n: usize, seed: u64) -> Result<Dataset> {
    render_chars(fonts, &LETTERS.chars().collect::<Vec<_>>(), n, seed)
}

/// Renders `n` random characters of `chars` from `fonts` (a font that lacks a character is
/// skipped for it), seeded. Class names are the characters; labels index `chars`.
pub fn render_chars(
    fonts: &[(String, Vec<u8>)],
    chars: &[char],
    n: usize,
    seed: u64,
) -> Result<Dataset> {
    let parsed: Vec<FontVec> = fonts
        .iter()
        .map(|(name, b)| {
            FontVec::try_from_vec(b.clone())
                .map_err(|e| Error::InvalidArgument(format!("font {name}: {e}")))
        })
        .collect::<Result<_>>()?;
    if parsed.is_empty() || chars.is_empty() {
        return Err(Error::InvalidArgument(
            "no fonts or no characters to render from".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    let mut attempts = 0;
    while labels.len() < n && attempts < n * 10 {
        attempts += 1;
        let li = rng.random_range(0..chars.len());
        let font = &parsed[rng.random_range(0..parsed.len())];
        if let Some(img) = render_one(font, chars[li], &mut rng) {
            pixels.extend(img);
            labels.push(li as u32);
        }
    }
    Dataset::new(
        pixels,
        labels,
        28,
        28,
        chars.iter().map(|c| c.to_string()).collect(),
    )
}

fn render_one(font: &FontVec, ch: char, rng: &mut ChaCha8Rng) -> Option<Vec<u8>> {
    let gid = font.glyph_id(ch);
    if gid.0 == 0 {
        return None; // the font lacks this letter
    }
    let glyph = gid.with_scale_and_position(PxScale::from(64.0), ab_glyph::point(0.0, 0.0));
    let og = font.outline_glyph(glyph)?;
    let b = og.px_bounds();
    let (gw, gh) = (
        b.width().ceil() as usize + 1,
        b.height().ceil() as usize + 1,
    );
    let mut g = vec![0f32; gw * gh];
    og.draw(|x, y, c| {
        let (x, y) = (x as usize, y as usize);
        if x < gw && y < gh {
            g[y * gw + x] = c;
        }
    });
    // Random rotation (+-15 deg) and slant (shear +-0.3) onto a 128x128 canvas.
    let s = 128usize;
    let ang = rng.random_range(-15f32..15.0).to_radians();
    let shear = rng.random_range(-0.3f32..0.3);
    let (ca, sa) = (ang.cos(), ang.sin());
    let (cx, cy) = (gw as f32 / 2.0, gh as f32 / 2.0);
    let mut canvas = vec![0f32; s * s];
    for y in 0..s {
        for x in 0..s {
            // inverse map: canvas -> glyph
            let (u, v) = (x as f32 - 64.0, y as f32 - 64.0);
            let (u, v) = (ca * u + sa * v, -sa * u + ca * v);
            let u = u - shear * v;
            let (gx, gy) = (u + cx, v + cy);
            if gx >= 0.0 && gy >= 0.0 && (gx as usize) + 1 < gw && (gy as usize) + 1 < gh {
                let (ix, iy) = (gx as usize, gy as usize);
                let (fx, fy) = (gx - ix as f32, gy - iy as f32);
                let p = |xx: usize, yy: usize| g[yy * gw + xx];
                canvas[y * s + x] = p(ix, iy) * (1.0 - fx) * (1.0 - fy)
                    + p(ix + 1, iy) * fx * (1.0 - fy)
                    + p(ix, iy + 1) * (1.0 - fx) * fy
                    + p(ix + 1, iy + 1) * fx * fy;
            }
        }
    }
    // Stroke width: dilate 0-3 times with a 3x3 max filter (pen from thin to thick).
    for _ in 0..rng.random_range(0..4) {
        let src = canvas.clone();
        for y in 1..s - 1 {
            for x in 1..s - 1 {
                let mut m = 0f32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        m = m.max(src[(y + dy - 1) * s + x + dx - 1]);
                    }
                }
                canvas[y * s + x] = m;
            }
        }
    }
    let bytes: Vec<u8> = canvas
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8)
        .collect();
    mnistify(&bytes, s, s, Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_seeded_letters() {
        let fonts = builtin_fonts();
        let a = render_letters(&fonts[..1], 20, 5).unwrap();
        let b = render_letters(&fonts[..1], 20, 5).unwrap();
        assert_eq!(a.len(), 20);
        assert_eq!(a.pixels, b.pixels);
        assert_eq!(a.classes.len(), 52);
        // every image has ink
        for i in 0..a.len() {
            assert!(a.image(i).iter().any(|&p| p > 100));
        }
    }

    #[test]
    fn every_generator_font_has_its_package_and_a_missing_one_names_it() {
        use crate::data::unknowns::{font_files, kana_font_files, Part};
        for part in [Part::Fit, Part::Eval] {
            let files = [
                FIT_FONT_FILES,
                EVAL_FONT_FILES,
                font_files(part),
                kana_font_files(part),
            ];
            for f in files.concat() {
                assert!(font_package(f).is_some(), "{f}");
            }
        }
        let e = read_fonts(&["/nonexistent/klee/KleeOne-Regular.ttf"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("KleeOne-Regular.ttf") && e.contains("apt-get install fonts-klee"),
            "{e}"
        );
    }
}
