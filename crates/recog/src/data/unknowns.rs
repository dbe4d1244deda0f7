//! Non-digit images from independent generators, to measure whether an open-set digit
//! recognizer rejects what it was never shown a relative of.
//!
//! Each [`Generator`] has a fitting part and an evaluation part that share nothing (other
//! fonts, other seeds, other splits), and the generators share no code path that draws the
//! image: fonts through `ab_glyph`, vector strokes through a pen model, photographs of
//! clothes, and pieces of handwritten digits.
//!
//! | generator | fitting part | evaluation part |
//! |---|---|---|
//! | `glyphs` | letters from DejaVu + `fonts-sjfonts` | letters from `fonts-dkg-handwriting`, `fonts-breip`, `fonts-femkeklaver`, `fonts-rufscript` |
//! | `strokes` | letters as pen strokes: random pen width, pressure, slant, rotation, elastic distortion (one seed) | the same model, another seed |
//! | `fonts` | non-digit-like letters from `fonts-bwht` | from `fonts-humor-sans`, `fonts-leckerli-one` |
//! | `kana` | Japanese kana from `fonts-klee` | from `fonts-yusei-magic` |
//! | `fashion` | Fashion-MNIST's training split | its test split |
//! | `fragments` | half digits, two overlapping digits, scribbles and ink blobs, from MNIST's training digits | the same from its test digits, another seed |
//!
//! ```
//! use recog::data::unknowns::{stroke_letters, Generator};
//! let set = stroke_letters(8, 3)?;
//! assert_eq!((set.len(), set.height, set.width), (8, 28, 28));
//! assert_eq!("kana".parse::<Generator>()?, Generator::Kana);
//! # Ok::<(), recog::Error>(())
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::mnistify::mnistify;
use super::{glyphs, Dataset, KnownSet, Source, Split};
use crate::{Error, Home, Progress, Result};

/// The generators of unknown images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generator {
    /// recog's font renderer, handwriting fonts (today's evaluation letters).
    Glyphs,
    /// Letters drawn as vector strokes with a random pen.
    Strokes,
    /// Letters from display and handwriting fonts never used by `glyphs`.
    Fonts,
    /// Japanese kana from handwriting-style fonts.
    Kana,
    /// Fashion-MNIST.
    #[serde(rename = "fashion-mnist")]
    Fashion,
    /// Half digits, overlapping digits, scribbles and blobs.
    Fragments,
}

/// Which part of a generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Material that fitting may use.
    Fit,
    /// Material kept for evaluation.
    Eval,
}

impl Generator {
    /// Every generator.
    pub const ALL: [Generator; 6] = [
        Generator::Glyphs,
        Generator::Strokes,
        Generator::Fonts,
        Generator::Kana,
        Generator::Fashion,
        Generator::Fragments,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Generator::Glyphs => "glyphs",
            Generator::Strokes => "strokes",
            Generator::Fonts => "fonts",
            Generator::Kana => "kana",
            Generator::Fashion => "fashion-mnist",
            Generator::Fragments => "fragments",
        }
    }
}

impl std::fmt::Display for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Generator {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Generator::ALL
            .into_iter()
            .find(|g| g.name() == s.trim() || (s.trim() == "fashion" && *g == Generator::Fashion))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown generator {s:?}: use {}",
                    Generator::ALL.map(Generator::name).join(", ")
                ))
            })
    }
}

/// Letters a writer can make look like a digit (O/0, I/l/1, S/5, Z/2, B/8, b/6, g/q/9, T/7,
/// ...): left out of the new letter generators, so that rejecting them is a fair demand.
pub const DIGIT_LIKE: &str = "BbDGgIiJjlOoQqSsTZz";

/// The letters the `strokes` and `fonts` generators draw: [`glyphs::LETTERS`] without
/// [`DIGIT_LIKE`].
pub fn plain_letters() -> Vec<char> {
    glyphs::LETTERS
        .chars()
        .filter(|c| !DIGIT_LIKE.contains(*c))
        .collect()
}

/// Hiragana and katakana, without the few that are a digit or a bar in some hands (ロ, ニ,
/// エ, ー, へ, く, し, つ, レ, フ, ラ, ノ, ク, ワ, ろ, る, ち, ら, り, ソ, ン, ハ, ト, こ, い).
pub fn kana() -> Vec<char> {
    const LEFT_OUT: &str = "ロニエーへくしつレフラノクワろるちらりソンハトこい";
    ('\u{3042}'..='\u{3093}')
        .chain('\u{30A2}'..='\u{30F3}')
        .filter(|c| {
            // Small kana (ぁ, ァ, ...) sit on odd code points in these ranges.
            !"ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ".contains(*c) && !LEFT_OUT.contains(*c)
        })
        .collect()
}

/// Font files of the `fonts` generator (Debian `fonts-bwht` for fitting;
/// `fonts-humor-sans`, `fonts-leckerli-one` for evaluation).
pub fn font_files(part: Part) -> &'static [&'static str] {
    match part {
        Part::Fit => &[
            "/usr/share/fonts/opentype/bwht/BecauseWeBuild-Regular.otf",
            "/usr/share/fonts/opentype/bwht/BecauseWeConnect-Regular.otf",
            "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
            "/usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf",
            "/usr/share/fonts/opentype/bwht/BecauseWeMentor-Regular.otf",
            "/usr/share/fonts/opentype/bwht/BecauseWeOrganize-Regular.otf",
        ],
        Part::Eval => &[
            "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
            "/usr/share/fonts/truetype/leckerli-one/LeckerliOne-Regular.ttf",
        ],
    }
}

/// Font files of the `kana` generator (Debian `fonts-klee` for fitting,
/// `fonts-yusei-magic` for evaluation).
pub fn kana_font_files(part: Part) -> &'static [&'static str] {
    match part {
        Part::Fit => &[
            "/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf",
            "/usr/share/fonts/truetype/klee/KleeOne-SemiBold.ttf",
        ],
        Part::Eval => &["/usr/share/fonts/truetype/yusei-magic/YuseiMagic-Regular.ttf"],
    }
}

/// `n` images of one generator's part, seeded, with a description of what they are.
pub fn generate(
    g: Generator,
    part: Part,
    n: usize,
    seed: u64,
    home: &Home,
    progress: &dyn Progress,
) -> Result<(Dataset, String)> {
    let part_seed = seed
        ^ if part == Part::Fit {
            0x05ee_df17
        } else {
            0xe7a1
        };
    let names = |fonts: &[(String, Vec<u8>)]| {
        fonts
            .iter()
            .map(|f| f.0.rsplit('/').next().unwrap_or(&f.0).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (set, what) = match g {
        Generator::Glyphs => {
            let fonts = match part {
                Part::Fit => {
                    let mut f = glyphs::builtin_fonts();
                    f.extend(glyphs::read_fonts(glyphs::FIT_FONT_FILES)?);
                    f
                }
                Part::Eval => glyphs::read_fonts(glyphs::EVAL_FONT_FILES)?,
            };
            let what = format!("letters from {}", names(&fonts));
            (glyphs::render_letters(&fonts, n, part_seed)?, what)
        }
        Generator::Strokes => (
            stroke_letters(n, part_seed)?,
            "letters drawn as pen strokes".to_string(),
        ),
        Generator::Fonts => {
            let fonts = glyphs::read_fonts(font_files(part))?;
            let what = format!("letters from {}", names(&fonts));
            (
                glyphs::render_chars(&fonts, &plain_letters(), n, part_seed)?,
                what,
            )
        }
        Generator::Kana => {
            let fonts = glyphs::read_fonts(kana_font_files(part))?;
            let what = format!("kana from {}", names(&fonts));
            (glyphs::render_chars(&fonts, &kana(), n, part_seed)?, what)
        }
        Generator::Fashion => {
            let split = if part == Part::Fit {
                Split::Train
            } else {
                Split::Test
            };
            let d = super::load(
                &Source::Known(KnownSet::FashionMnist),
                split,
                home,
                progress,
            )?;
            let what = format!("Fashion-MNIST {split:?} split");
            (d.take(n), what)
        }
        Generator::Fragments => {
            let split = if part == Part::Fit {
                Split::Train
            } else {
                Split::Test
            };
            let digits = super::load(&Source::Known(KnownSet::Mnist), split, home, progress)?;
            let what = format!("pieces of MNIST {split:?} digits, scribbles, blobs");
            (fragments(&digits, n, part_seed)?, what)
        }
    };
    let part_name = if part == Part::Fit { "fit" } else { "eval" };
    Ok((set, format!("{g} ({part_name}): {n} {what}")))
}

/// A stroke: points in a unit box (x right, y down; descenders go below 1).
type Stroke = Vec<(f32, f32)>;

/// An arc from `a0` to `a1` degrees (0 = right, 90 = up), centre `(cx, cy)`.
fn arc(cx: f32, cy: f32, rx: f32, ry: f32, a0: f32, a1: f32) -> Stroke {
    let steps = ((a1 - a0).abs() / 10.0).ceil().max(2.0) as usize;
    (0..=steps)
        .map(|i| {
            let t = (a0 + (a1 - a0) * i as f32 / steps as f32).to_radians();
            (cx + rx * t.cos(), cy - ry * t.sin())
        })
        .collect()
}

fn line(p: &[(f32, f32)]) -> Stroke {
    p.to_vec()
}

/// The pen skeleton of a letter of [`plain_letters`].
fn skeleton(c: char) -> Vec<Stroke> {
    let circle = |cx, cy, r| arc(cx, cy, r, r, 0.0, 360.0);
    match c {
        'A' => vec![
            line(&[(0.0, 1.0), (0.5, 0.0), (1.0, 1.0)]),
            line(&[(0.22, 0.6), (0.78, 0.6)]),
        ],
        'C' => vec![arc(0.55, 0.5, 0.45, 0.5, 45.0, 315.0)],
        'E' => vec![
            line(&[(0.9, 0.0), (0.1, 0.0), (0.1, 1.0), (0.9, 1.0)]),
            line(&[(0.1, 0.5), (0.7, 0.5)]),
        ],
        'F' => vec![
            line(&[(0.9, 0.0), (0.1, 0.0), (0.1, 1.0)]),
            line(&[(0.1, 0.5), (0.7, 0.5)]),
        ],
        'H' => vec![
            line(&[(0.1, 0.0), (0.1, 1.0)]),
            line(&[(0.9, 0.0), (0.9, 1.0)]),
            line(&[(0.1, 0.5), (0.9, 0.5)]),
        ],
        'K' => vec![
            line(&[(0.1, 0.0), (0.1, 1.0)]),
            line(&[(0.9, 0.0), (0.1, 0.6)]),
            line(&[(0.35, 0.42), (0.9, 1.0)]),
        ],
        'L' => vec![line(&[(0.1, 0.0), (0.1, 1.0), (0.85, 1.0)])],
        'M' => vec![line(&[
            (0.05, 1.0),
            (0.15, 0.0),
            (0.5, 0.7),
            (0.85, 0.0),
            (0.95, 1.0),
        ])],
        'N' => vec![line(&[(0.1, 1.0), (0.1, 0.0), (0.9, 1.0), (0.9, 0.0)])],
        'P' | 'R' => {
            let mut bowl = vec![(0.1, 1.0), (0.1, 0.0)];
            bowl.extend(arc(0.55, 0.25, 0.35, 0.25, 90.0, -90.0));
            bowl.push((0.1, 0.5));
            let mut s = vec![bowl];
            if c == 'R' {
                s.push(line(&[(0.45, 0.5), (0.9, 1.0)]));
            }
            s
        }
        'U' => {
            let mut u = vec![(0.1, 0.0)];
            u.extend(arc(0.5, 0.6, 0.4, 0.4, 180.0, 360.0));
            u.push((0.9, 0.0));
            vec![u]
        }
        'V' => vec![line(&[(0.0, 0.0), (0.5, 1.0), (1.0, 0.0)])],
        'W' => vec![line(&[
            (0.0, 0.0),
            (0.25, 1.0),
            (0.5, 0.35),
            (0.75, 1.0),
            (1.0, 0.0),
        ])],
        'X' => vec![
            line(&[(0.05, 0.0), (0.95, 1.0)]),
            line(&[(0.95, 0.0), (0.05, 1.0)]),
        ],
        'Y' => vec![
            line(&[(0.0, 0.0), (0.5, 0.5), (1.0, 0.0)]),
            line(&[(0.5, 0.5), (0.5, 1.0)]),
        ],
        'a' => vec![circle(0.45, 0.72, 0.28), line(&[(0.75, 0.45), (0.75, 1.0)])],
        'c' => vec![arc(0.5, 0.72, 0.35, 0.28, 45.0, 315.0)],
        'd' => vec![circle(0.42, 0.72, 0.28), line(&[(0.72, 0.0), (0.72, 1.0)])],
        'e' => {
            let mut e = vec![(0.18, 0.72)];
            e.extend(arc(0.5, 0.72, 0.32, 0.28, 0.0, 320.0));
            vec![e]
        }
        'f' => {
            let mut f = arc(0.75, 0.2, 0.2, 0.2, 30.0, 180.0);
            f.push((0.55, 1.0));
            vec![f, line(&[(0.3, 0.45), (0.8, 0.45)])]
        }
        'h' | 'n' => {
            let top = if c == 'h' { 0.0 } else { 0.45 };
            let mut hump = vec![(0.15, 0.65)];
            hump.extend(arc(0.45, 0.65, 0.3, 0.2, 180.0, 0.0));
            hump.push((0.75, 1.0));
            vec![line(&[(0.15, top), (0.15, 1.0)]), hump]
        }
        'k' => vec![
            line(&[(0.15, 0.0), (0.15, 1.0)]),
            line(&[(0.75, 0.45), (0.15, 0.75)]),
            line(&[(0.35, 0.65), (0.8, 1.0)]),
        ],
        'm' => {
            let hump = |x0: f32| {
                let mut h = vec![(x0, 0.65)];
                h.extend(arc(x0 + 0.2, 0.65, 0.2, 0.2, 180.0, 0.0));
                h.push((x0 + 0.4, 1.0));
                h
            };
            vec![line(&[(0.05, 0.45), (0.05, 1.0)]), hump(0.05), hump(0.45)]
        }
        'p' => vec![
            line(&[(0.15, 0.45), (0.15, 1.35)]),
            circle(0.45, 0.72, 0.28),
        ],
        'r' => vec![
            line(&[(0.15, 0.45), (0.15, 1.0)]),
            arc(0.45, 0.68, 0.3, 0.22, 180.0, 60.0),
        ],
        't' => vec![
            line(&[(0.45, 0.05), (0.45, 0.88), (0.55, 1.0), (0.75, 0.95)]),
            line(&[(0.2, 0.4), (0.75, 0.4)]),
        ],
        'u' => {
            let mut u = vec![(0.15, 0.45)];
            u.extend(arc(0.45, 0.72, 0.3, 0.28, 180.0, 360.0));
            vec![u, line(&[(0.75, 0.45), (0.75, 1.0)])]
        }
        'v' => vec![line(&[(0.1, 0.45), (0.5, 1.0), (0.9, 0.45)])],
        'w' => vec![line(&[
            (0.05, 0.45),
            (0.28, 1.0),
            (0.5, 0.6),
            (0.72, 1.0),
            (0.95, 0.45),
        ])],
        'x' => vec![
            line(&[(0.1, 0.45), (0.9, 1.0)]),
            line(&[(0.9, 0.45), (0.1, 1.0)]),
        ],
        'y' => vec![
            line(&[(0.1, 0.45), (0.5, 1.0)]),
            line(&[(0.9, 0.45), (0.3, 1.35)]),
        ],
        _ => Vec::new(),
    }
}

/// A pen: ink is stamped as discs along each stroke, onto a `size x size` canvas.
struct Pen {
    canvas: Vec<f32>,
    size: usize,
}

impl Pen {
    fn new(size: usize) -> Self {
        Self {
            canvas: vec![0.0; size * size],
            size,
        }
    }

    /// An anti-aliased disc of radius `r` at `(x, y)`, blended by maximum.
    fn dab(&mut self, x: f32, y: f32, r: f32, ink: f32) {
        let s = self.size as i64;
        let (x0, x1) = ((x - r - 1.0).floor() as i64, (x + r + 1.0).ceil() as i64);
        let (y0, y1) = ((y - r - 1.0).floor() as i64, (y + r + 1.0).ceil() as i64);
        for py in y0.max(0)..=y1.min(s - 1) {
            for px in x0.max(0)..=x1.min(s - 1) {
                let d = ((px as f32 - x).powi(2) + (py as f32 - y).powi(2)).sqrt();
                let v = (r + 0.5 - d).clamp(0.0, 1.0) * ink;
                let c = &mut self.canvas[(py * s + px) as usize];
                *c = c.max(v);
            }
        }
    }

    /// A polyline with a width that follows a pressure curve along it.
    fn stroke(&mut self, pts: &[(f32, f32)], width: f32, rng: &mut ChaCha8Rng) {
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        let ink = rng.random_range(0.75f32..1.0);
        let total: f32 = pts
            .windows(2)
            .map(|w| ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt())
            .sum::<f32>()
            .max(1e-3);
        let mut run = 0.0;
        for w in pts.windows(2) {
            let len = ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt();
            let steps = (len / 0.5).ceil().max(1.0) as usize;
            for i in 0..=steps {
                let t = i as f32 / steps as f32;
                let (x, y) = (
                    w[0].0 + (w[1].0 - w[0].0) * t,
                    w[0].1 + (w[1].1 - w[0].1) * t,
                );
                let along = (run + len * t) / total;
                let pressure = 0.65 + 0.35 * (std::f32::consts::PI * along + phase).sin().abs();
                self.dab(x, y, 0.5 * width * pressure, ink);
            }
            run += len;
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.canvas
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8)
            .collect()
    }
}

/// A smooth random displacement: the sum of a few low-frequency waves in each direction.
struct Elastic {
    waves: Vec<(f32, f32, f32, f32, bool)>,
}

impl Elastic {
    fn new(rng: &mut ChaCha8Rng, amplitude: f32) -> Self {
        let waves = (0..4)
            .map(|i| {
                (
                    rng.random_range(-amplitude..amplitude),
                    rng.random_range(0.5f32..2.0) * std::f32::consts::TAU,
                    rng.random_range(0.5f32..2.0) * std::f32::consts::TAU,
                    rng.random_range(0.0..std::f32::consts::TAU),
                    i % 2 == 0,
                )
            })
            .collect();
        Self { waves }
    }

    fn apply(&self, (x, y): (f32, f32)) -> (f32, f32) {
        let (mut dx, mut dy) = (0.0, 0.0);
        for &(a, fx, fy, ph, horizontal) in &self.waves {
            let v = a * (fx * x + fy * y + ph).sin();
            if horizontal {
                dx += v;
            } else {
                dy += v;
            }
        }
        (x + dx, y + dy)
    }
}

/// `n` letters of [`plain_letters`] drawn as pen strokes: each image has its own pen width
/// (thin to heavy), pressure curve, slant, rotation, aspect, elastic distortion and a small
/// misplacement of each stroke, as a hand would make them. Normalised like MNIST; labels
/// index [`plain_letters`].
pub fn stroke_letters(n: usize, seed: u64) -> Result<Dataset> {
    let letters = plain_letters();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let size = 64usize;
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    while labels.len() < n {
        let li = rng.random_range(0..letters.len());
        let strokes = skeleton(letters[li]);
        let angle = rng.random_range(-20f32..20.0).to_radians();
        let shear = rng.random_range(-0.45f32..0.45);
        let (sx, sy) = (
            rng.random_range(0.7f32..1.2),
            rng.random_range(0.85f32..1.15),
        );
        let amplitude = rng.random_range(0.005f32..0.07);
        let elastic = Elastic::new(&mut rng, amplitude);
        let width = rng.random_range(1.6f32..5.5);
        let mut pen = Pen::new(size);
        for s in &strokes {
            let (ox, oy) = (
                rng.random_range(-0.04f32..0.04),
                rng.random_range(-0.04f32..0.04),
            );
            let pts: Vec<(f32, f32)> = s
                .iter()
                .map(|&(x, y)| {
                    let (x, y) = elastic.apply((x + ox, y + oy));
                    let (x, y) = ((x - 0.5) * sx, (y - 0.6) * sy);
                    let x = x - shear * y;
                    let (x, y) = (
                        angle.cos() * x - angle.sin() * y,
                        angle.sin() * x + angle.cos() * y,
                    );
                    (32.0 + 36.0 * x, 32.0 + 36.0 * y)
                })
                .collect();
            pen.stroke(&pts, width, &mut rng);
        }
        if let Some(img) = mnistify(&pen.bytes(), size, size, Some(false)) {
            pixels.extend(img);
            labels.push(li as u32);
        }
    }
    let classes = letters.iter().map(|c| c.to_string()).collect();
    Dataset::new(pixels, labels, 28, 28, classes)
}

/// What a forms reader meets besides digits, made from `digits` (28x28, MNIST-style): the
/// upper, lower, left or right 35-55% of a digit (unless it normalises to one thin stroke,
/// which is a "1"); two digits overlapping at an offset;
/// scribbles (random curves with a pen); ink blobs (filled random polygons). A quarter each;
/// each is normalised like MNIST again.
pub fn fragments(digits: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if digits.is_empty() || (digits.height, digits.width) != (28, 28) {
        return Err(Error::InvalidArgument(
            "fragments need 28x28 digit images".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    let mut attempts = 0;
    while labels.len() < n && attempts < n * 20 {
        attempts += 1;
        let kind = rng.random_range(0..4u32);
        let img: Vec<u8> = match kind {
            0 => {
                let d = digits.image(rng.random_range(0..digits.len()));
                let keep = rng.random_range(0.35f32..0.55);
                let side = rng.random_range(0..4);
                // The digit's ink box, so the cut is a fraction of the digit, not the frame.
                let Some((x0, y0, x1, y1)) = ink_box(d) else {
                    continue;
                };
                let (w, h) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
                let inside = |x: usize, y: usize| match side {
                    0 => (y as f32) < y0 as f32 + keep * h,
                    1 => (y as f32) > y1 as f32 - keep * h,
                    2 => (x as f32) < x0 as f32 + keep * w,
                    _ => (x as f32) > x1 as f32 - keep * w,
                };
                (0..784)
                    .map(|i| if inside(i % 28, i / 28) { d[i] } else { 0 })
                    .collect()
            }
            1 => {
                let a = digits.image(rng.random_range(0..digits.len()));
                let b = digits.image(rng.random_range(0..digits.len()));
                let (dx, dy) = (rng.random_range(5i32..12), rng.random_range(-4i32..5));
                let mut canvas = vec![0u8; 48 * 40];
                for y in 0..28i32 {
                    for x in 0..28i32 {
                        let (ax, ay) = (x + 2, y + 6);
                        let c = &mut canvas[(ay * 48 + ax) as usize];
                        *c = (*c).max(a[(y * 28 + x) as usize]);
                        let (bx, by) = (x + 2 + dx, y + 6 + dy);
                        if (0..48).contains(&bx) && (0..40).contains(&by) {
                            let c = &mut canvas[(by * 48 + bx) as usize];
                            *c = (*c).max(b[(y * 28 + x) as usize]);
                        }
                    }
                }
                match mnistify(&canvas, 48, 40, Some(false)) {
                    Some(v) => v,
                    None => continue,
                }
            }
            2 => {
                let mut pen = Pen::new(64);
                let width = rng.random_range(1.6f32..5.0);
                for _ in 0..rng.random_range(1..3) {
                    let k = rng.random_range(3..7);
                    let ctrl: Vec<(f32, f32)> = (0..k)
                        .map(|_| (rng.random_range(8f32..56.0), rng.random_range(8f32..56.0)))
                        .collect();
                    pen.stroke(&catmull_rom(&ctrl), width, &mut rng);
                }
                pen.bytes()
            }
            _ => {
                let mut pen = Pen::new(64);
                for _ in 0..rng.random_range(1..4) {
                    let (cx, cy) = (rng.random_range(16f32..48.0), rng.random_range(16f32..48.0));
                    let r = rng.random_range(4f32..14.0);
                    let k = rng.random_range(5..10);
                    let poly: Vec<(f32, f32)> = (0..k)
                        .map(|i| {
                            let t = i as f32 / k as f32 * std::f32::consts::TAU;
                            let rr = r * rng.random_range(0.6f32..1.3);
                            (cx + rr * t.cos(), cy + rr * t.sin())
                        })
                        .collect();
                    fill_polygon(&mut pen, &poly);
                }
                pen.bytes()
            }
        };
        let (w, h) = match kind {
            0 | 1 => (28, 28),
            _ => (64, 64),
        };
        if let Some(v) = mnistify(&img, w, h, Some(false)) {
            // A piece that normalises to one thin stroke is a "1" (the half of a 1, 4, 7 or
            // 9): digit-like, left out as I and l are.
            if kind == 0 && is_thin_stroke(&v) {
                continue;
            }
            pixels.extend(v);
            labels.push(kind);
        }
    }
    let classes = ["half digit", "two digits", "scribble", "blob"]
        .map(String::from)
        .to_vec();
    Dataset::new(pixels, labels, 28, 28, classes)
}

/// Digits made into non-digits by a transformation that no digit survives: a quarter turn
/// (not of a 0), a half turn (2, 3, 4, 5 and 7 only: a 6 turns into a 9, and 0, 1 and 8 into
/// themselves), a mirror image (not of 0, 1 or 8), a jigsaw (the four quadrants of the
/// digit's ink box swapped at random; not of a 1) and a smear (a 0, 6, 8 or 9 whose ink is
/// spread by a pen 7 to 11 pixels wide until its loops fill: a solid silhouette, kept only
/// when no hole is left, since a bold 0 is still a 0). A fifth each, normalised like MNIST
/// again; each image's label is its kind.
///
/// Outlier exposure synthesised from the known classes themselves, after the idea of OpenMix
/// (Zhang et al., CVPR 2023) and of self-supervised OOD detection with geometric
/// transformations (Hendrycks et al., NeurIPS 2019): it needs no outside data, and it teaches
/// the embedding that digit strokes in a non-digit arrangement are not a digit. It is a
/// training source only (`transformed`), not one of the [`Generator`]s, so it is never a
/// held-out row: its evaluation would be the same transformations again.
pub fn transformed_digits(digits: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if digits.is_empty() || (digits.height, digits.width) != (28, 28) {
        return Err(Error::InvalidArgument(
            "transformed digits need 28x28 digit images".into(),
        ));
    }
    let classes: Vec<usize> = digits
        .labels
        .iter()
        .map(|&l| {
            digits
                .classes
                .get(l as usize)
                .map_or(usize::MAX, |c| c.parse().unwrap_or(usize::MAX))
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    let mut attempts = 0;
    while labels.len() < n && attempts < n * 20 {
        attempts += 1;
        let kind = rng.random_range(0..5u32);
        let i = rng.random_range(0..digits.len());
        let digit = classes[i];
        let allowed = match kind {
            0 => digit != 0,
            1 => matches!(digit, 2 | 3 | 4 | 5 | 7),
            2 => !matches!(digit, 0 | 1 | 8),
            3 => digit != 1,
            _ => matches!(digit, 0 | 6 | 8 | 9),
        };
        if !allowed {
            continue;
        }
        let d = digits.image(i);
        let at = |x: usize, y: usize| d[y * 28 + x];
        // Each output pixel (x, y) read from the source pixel `from(x, y)`.
        let remap = |from: &dyn Fn(usize, usize) -> (usize, usize)| -> Vec<u8> {
            (0..784)
                .map(|k| {
                    let (sx, sy) = from(k % 28, k / 28);
                    at(sx, sy)
                })
                .collect()
        };
        let img: Vec<u8> = match kind {
            0 if rng.random_bool(0.5) => remap(&|x, y| (y, 27 - x)),
            0 => remap(&|x, y| (27 - y, x)),
            1 => remap(&|x, y| (27 - x, 27 - y)),
            2 if rng.random_bool(0.25) => remap(&|x, y| (x, 27 - y)),
            2 => remap(&|x, y| (27 - x, y)),
            4 => {
                // A disc-shaped pen of radius r at every inked pixel.
                let r = rng.random_range(3i32..6);
                // A margin so that the pen is not cut by the frame.
                const S: i32 = 40;
                let mut out = vec![0u8; (S * S) as usize];
                for y in 0..28i32 {
                    for x in 0..28i32 {
                        let v = at(x as usize, y as usize);
                        if v < 60 {
                            continue;
                        }
                        for dy in -r..=r {
                            for dx in -r..=r {
                                let (px, py) = (x + dx + 6, y + dy + 6);
                                if dx * dx + dy * dy <= r * r
                                    && (0..S).contains(&px)
                                    && (0..S).contains(&py)
                                {
                                    let o = &mut out[(py * S + px) as usize];
                                    *o = (*o).max(v);
                                }
                            }
                        }
                    }
                }
                if has_hole(&out, S as usize) {
                    continue;
                }
                match mnistify(&out, S as usize, S as usize, Some(false)) {
                    Some(v) => v,
                    None => continue,
                }
            }
            _ => {
                let Some((x0, y0, x1, y1)) = ink_box(d) else {
                    continue;
                };
                if x1 < x0 + 3 || y1 < y0 + 3 {
                    continue;
                }
                // Quadrants of the ink box, each moved to another quadrant's place
                // (a random derangement of the four).
                let (mx, my) = ((x0 + x1).div_ceil(2), (y0 + y1).div_ceil(2));
                let perm: [usize; 4] = match rng.random_range(0..4) {
                    0 => [1, 0, 3, 2],
                    1 => [2, 3, 0, 1],
                    2 => [3, 2, 1, 0],
                    _ => [1, 3, 0, 2],
                };
                let (w, h) = (x1 + 1 - x0, y1 + 1 - y0);
                let (qw, qh) = (w.div_ceil(2), h.div_ceil(2));
                let mut canvas = vec![0u8; 4 * qw * qh];
                for y in y0..=y1 {
                    for x in x0..=x1 {
                        let q = usize::from(x >= mx) + 2 * usize::from(y >= my);
                        let (ox, oy) = (
                            if x >= mx { x - mx } else { x - x0 },
                            if y >= my { y - my } else { y - y0 },
                        );
                        let t = perm[q];
                        let (cx, cy) = ((t % 2) * qw + ox, (t / 2) * qh + oy);
                        if cx < 2 * qw && cy < 2 * qh {
                            canvas[cy * 2 * qw + cx] = at(x, y);
                        }
                    }
                }
                match mnistify(&canvas, 2 * qw, 2 * qh, Some(false)) {
                    Some(v) => v,
                    None => continue,
                }
            }
        };
        if let Some(v) = mnistify(&img, 28, 28, Some(false)) {
            pixels.extend(v);
            labels.push(kind);
        }
    }
    let classes = ["quarter turn", "half turn", "mirror", "jigsaw", "smear"]
        .map(String::from)
        .to_vec();
    Dataset::new(pixels, labels, 28, 28, classes)
}

/// The box `(x0, y0, x1, y1)` (inclusive) of a 28x28 image's pixels above 40, if any.
fn ink_box(img: &[u8]) -> Option<(usize, usize, usize, usize)> {
    let (mut x0, mut y0, mut x1, mut y1) = (28, 28, 0, 0);
    for y in 0..28 {
        for x in 0..28 {
            if img[y * 28 + x] > 40 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    (x1 >= x0).then_some((x0, y0, x1, y1))
}

/// Whether a square image (`side` x `side`) has background that the frame's background
/// cannot reach (4-connected): a loop of ink around it.
fn has_hole(img: &[u8], side: usize) -> bool {
    let bg = |i: usize| img[i] < 60;
    let mut seen = vec![false; side * side];
    let mut stack: Vec<usize> = (0..side * side)
        .filter(|&i| {
            let (x, y) = (i % side, i / side);
            (x == 0 || y == 0 || x + 1 == side || y + 1 == side) && bg(i)
        })
        .collect();
    for &i in &stack {
        seen[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % side, i / side);
        let mut push = |j: usize| {
            if !seen[j] && bg(j) {
                seen[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            push(i - 1);
        }
        if x + 1 < side {
            push(i + 1);
        }
        if y > 0 {
            push(i - side);
        }
        if y + 1 < side {
            push(i + side);
        }
    }
    (0..side * side).any(|i| bg(i) && !seen[i])
}

/// Whether a 28x28 image's ink is one thin upright stroke: an ink box under 0.45 as wide as
/// it is tall.
fn is_thin_stroke(img: &[u8]) -> bool {
    let (mut x0, mut x1, mut y0, mut y1) = (28usize, 0usize, 28usize, 0usize);
    for (i, &p) in img.iter().enumerate() {
        if p > 60 {
            let (x, y) = (i % 28, i / 28);
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
    }
    x1 >= x0 && (x1 - x0 + 1) as f32 <= 0.45 * (y1.saturating_sub(y0) + 1) as f32
}

/// A smooth curve through control points.
fn catmull_rom(p: &[(f32, f32)]) -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    for i in 0..p.len().saturating_sub(1) {
        let p0 = p[i.saturating_sub(1)];
        let (p1, p2) = (p[i], p[i + 1]);
        let p3 = p[(i + 2).min(p.len() - 1)];
        for s in 0..10 {
            let t = s as f32 / 10.0;
            let (t2, t3) = (t * t, t * t * t);
            let f = |a: f32, b: f32, c: f32, d: f32| {
                0.5 * (2.0 * b
                    + (c - a) * t
                    + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2
                    + (3.0 * b - a - 3.0 * c + d) * t3)
            };
            out.push((f(p0.0, p1.0, p2.0, p3.0), f(p0.1, p1.1, p2.1, p3.1)));
        }
    }
    out.extend(p.last());
    out
}

/// Fills a polygon (even-odd rule) with full ink.
fn fill_polygon(pen: &mut Pen, poly: &[(f32, f32)]) {
    let s = pen.size;
    for y in 0..s {
        let yc = y as f32 + 0.5;
        let mut xs: Vec<f32> = Vec::new();
        for i in 0..poly.len() {
            let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
            if (a.1 <= yc) != (b.1 <= yc) {
                xs.push(a.0 + (yc - a.1) / (b.1 - a.1) * (b.0 - a.0));
            }
        }
        xs.sort_by(f32::total_cmp);
        for pair in xs.chunks(2) {
            if let [x0, x1] = pair {
                for x in (x0.max(0.0) as usize)..(x1.min(s as f32) as usize) {
                    pen.canvas[y * s + x] = 1.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plain_letter_has_a_skeleton() {
        for c in plain_letters() {
            assert!(!skeleton(c).is_empty(), "{c}");
        }
        assert!(plain_letters().iter().all(|c| !DIGIT_LIKE.contains(*c)));
    }

    #[test]
    fn stroke_letters_are_seeded_and_inked() {
        let a = stroke_letters(30, 9).unwrap();
        assert_eq!(a.pixels, stroke_letters(30, 9).unwrap().pixels);
        assert_ne!(a.pixels, stroke_letters(30, 10).unwrap().pixels);
        for i in 0..a.len() {
            assert!(
                a.image(i).iter().filter(|&&p| p > 100).count() > 20,
                "image {i}"
            );
        }
    }

    #[test]
    fn fragments_cover_their_four_kinds() {
        // A fake "digit": a thick ring, enough for halves and overlaps.
        let ring: Vec<u8> = (0..784)
            .map(|i| {
                let (x, y) = ((i % 28) as f32 - 14.0, (i / 28) as f32 - 14.0);
                let r = (x * x + y * y).sqrt();
                if (5.0..9.0).contains(&r) {
                    255
                } else {
                    0
                }
            })
            .collect();
        let digits = Dataset::new(ring.repeat(3), vec![0; 3], 28, 28, vec!["0".into()]).unwrap();
        let f = fragments(&digits, 80, 1).unwrap();
        assert_eq!(f.len(), 80);
        for k in 0..4 {
            assert!(f.labels.contains(&k), "kind {k} missing");
        }
    }

    #[test]
    fn transformed_digits_cover_their_five_kinds_and_spare_the_symmetric_ones() {
        // An asymmetric fake "7" (a bar on top, a stroke down the right) and a "0" ring.
        let seven: Vec<u8> = (0..784)
            .map(|i| {
                let (x, y) = (i % 28, i / 28);
                if (6..9).contains(&y) && (6..22).contains(&x)
                    || (19..22).contains(&x) && (6..24).contains(&y)
                {
                    255
                } else {
                    0
                }
            })
            .collect();
        let ring: Vec<u8> = (0..784)
            .map(|i| {
                let (x, y) = ((i % 28) as f32 - 14.0, (i / 28) as f32 - 14.0);
                if (5.0..9.0).contains(&(x * x + y * y).sqrt()) {
                    255
                } else {
                    0
                }
            })
            .collect();
        assert!(has_hole(&ring, 28) && !has_hole(&seven, 28));
        let pixels = [seven.clone(), ring].concat();
        let classes = (0..10).map(|c| c.to_string()).collect();
        let digits = Dataset::new(pixels, vec![7, 0], 28, 28, classes).unwrap();
        let t = transformed_digits(&digits, 200, 1).unwrap();
        assert_eq!(t.len(), 200);
        for k in 0..5 {
            assert!(t.labels.contains(&k), "kind {k} missing");
        }
        // A 0 is only ever cut into a jigsaw or smeared: turned or mirrored, it stays a 0.
        let zeros = Dataset::new(
            digits.image(1).to_vec(),
            vec![0],
            28,
            28,
            digits.classes.clone(),
        )
        .unwrap();
        let z = transformed_digits(&zeros, 20, 2).unwrap();
        assert!(z.labels.iter().all(|&k| k >= 3), "{:?}", z.labels);
        let seven_n = mnistify(&seven, 28, 28, Some(false)).unwrap();
        for i in 0..t.len() {
            assert_ne!(t.image(i), &seven_n[..], "image {i} is the digit unchanged");
        }
        assert_eq!(
            t.pixels,
            transformed_digits(&digits, 200, 1).unwrap().pixels
        );
    }

    #[test]
    fn kana_leave_out_the_digit_like_ones() {
        let k = kana();
        assert!(k.len() > 60, "{}", k.len());
        assert!(!k.contains(&'ロ') && !k.contains(&'フ') && k.contains(&'あ'));
    }
}
