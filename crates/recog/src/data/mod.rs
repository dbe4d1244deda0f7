//! Data sets: IDX files, labelled image folders, samplers.
//!
//! ```
//! use recog::data::Dataset;
//! let d = Dataset::new(vec![0u8; 2 * 4], vec![0, 1], 2, 2, vec!["a".into(), "b".into()]).unwrap();
//! assert_eq!(d.len(), 2);
//! assert_eq!(d.by_class(), vec![vec![0], vec![1]]);
//! // Sizes that disagree are an error, not a panic.
//! assert!(Dataset::new(vec![0u8; 3], vec![0], 2, 2, vec!["a".into()]).is_err());
//! ```

pub mod folder;
pub mod glyphs;
pub mod idx;
pub mod image_file;
pub mod mnistify;
pub mod npy;
pub mod sampler;
pub mod unknowns;

use std::path::Path;

use crate::error::{Error, Result};
use crate::home::{self, Home};
use crate::progress::Progress;

/// A labelled set of equally sized grayscale images, whatever its source.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixels, image after image, row-major, 0 = background.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl Dataset {
    /// Builds a data set, checking that the sizes agree.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        height: usize,
        width: usize,
        classes: Vec<String>,
    ) -> Result<Self> {
        if pixels.len() != labels.len() * height * width {
            return Err(Error::Shape {
                name: "dataset pixels".into(),
                expected: vec![labels.len(), height, width],
                got: vec![pixels.len()],
            });
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes.len()) {
            return Err(Error::InvalidArgument(format!(
                "label {bad} has no class name ({} classes)",
                classes.len()
            )));
        }
        Ok(Self {
            pixels,
            labels,
            height,
            width,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.height * self.width;
        &self.pixels[i * s..(i + 1) * s]
    }

    /// Images `idx` scaled to [0, 1], flattened as `[idx.len(), height * width]`.
    pub fn batch_f32(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.height * self.width);
        for &i in idx {
            out.extend(self.image(i).iter().map(|&p| p as f32 / 255.0));
        }
        out
    }

    /// The first `n` images (or all), keeping class names.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let s = self.height * self.width;
        Dataset {
            pixels: self.pixels[..n * s].to_vec(),
            labels: self.labels[..n].to_vec(),
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
        }
    }

    /// Indices of the images of each class.
    pub fn by_class(&self) -> Vec<Vec<usize>> {
        let mut v = vec![Vec::new(); self.classes.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            v[l as usize].push(i);
        }
        v
    }
}

/// The IDX data sets recog knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownSet {
    /// MNIST handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
}

/// A split of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training split (60,000 images for MNIST).
    Train,
    /// The test split (10,000 images for MNIST).
    Test,
}

impl KnownSet {
    /// The folder name under `data/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            KnownSet::Mnist => "mnist",
            KnownSet::FashionMnist => "fashion-mnist",
        }
    }

    /// Class names.
    pub fn classes(self) -> Vec<String> {
        match self {
            KnownSet::Mnist => (0..10).map(|d| d.to_string()).collect(),
            KnownSet::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// Download description (file names, mirrors, payload hashes).
    pub fn spec(self) -> home::DatasetSpec {
        home::builtin_spec(self)
    }
}

/// Where a training or evaluation set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A named IDX set inside recog's home (downloaded when missing).
    Known(KnownSet),
    /// A folder holding `train-images-idx3-ubyte[.gz]` and friends.
    IdxDir(std::path::PathBuf, idx::PixelOrder),
    /// A folder with one sub-folder of images per class; the split is ignored.
    ImageFolder(std::path::PathBuf),
}

impl Source {
    /// The source a `--data` value names: `mnist`, `fashion-mnist`, a folder of IDX files
    /// (`transposed` for EMNIST's storage), or a folder of class sub-folders.
    pub fn detect(spec: &str, transposed: bool) -> Result<Self> {
        Ok(match spec {
            "mnist" => Source::Known(KnownSet::Mnist),
            "fashion-mnist" => Source::Known(KnownSet::FashionMnist),
            p => {
                let path = std::path::PathBuf::from(p);
                if !path.is_dir() {
                    return Err(Error::InvalidArgument(format!(
                        "--data {p}: not `mnist`, `fashion-mnist` or an existing folder"
                    )));
                }
                let has_idx = std::fs::read_dir(&path)
                    .map_err(|e| Error::io(&path, e))?
                    .filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().contains("-idx"));
                if has_idx {
                    let order = if transposed {
                        idx::PixelOrder::Transposed
                    } else {
                        idx::PixelOrder::RowMajor
                    };
                    Source::IdxDir(path, order)
                } else {
                    Source::ImageFolder(path)
                }
            }
        })
    }
}

/// Loads (train, test). Image folders have no split: both are the folder.
pub fn load_train_test(
    source: &Source,
    home: &Home,
    progress: &dyn Progress,
) -> Result<(Dataset, Dataset)> {
    let train = load(source, Split::Train, home, progress)?;
    let test = match source {
        Source::ImageFolder(_) => train.clone(),
        _ => load(source, Split::Test, home, progress)?,
    };
    Ok((train, test))
}

fn find_file(dir: &Path, stem: &str) -> Option<std::path::PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
}

/// Reads the split of an IDX folder laid out as MNIST.
pub fn read_idx_dir(dir: &Path, split: Split, order: idx::PixelOrder) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let im_stem = format!("{prefix}-images-idx3-ubyte");
    let lb_stem = format!("{prefix}-labels-idx1-ubyte");
    let missing = |stem: &str| Error::io(dir.join(stem), std::io::ErrorKind::NotFound.into());
    let im = find_file(dir, &im_stem).ok_or_else(|| missing(&im_stem))?;
    let lb = find_file(dir, &lb_stem).ok_or_else(|| missing(&lb_stem))?;
    idx::read_idx_pair(&im, &lb, order)
}

/// Loads a split of a source, downloading a known set into `home` when it is missing.
pub fn load(
    source: &Source,
    split: Split,
    home: &Home,
    progress: &dyn Progress,
) -> Result<Dataset> {
    match source {
        Source::Known(set) => {
            let dir = home.ensure_dataset(&set.spec(), progress)?;
            let mut d = read_idx_dir(&dir, split, idx::PixelOrder::RowMajor)?;
            d.classes = set.classes();
            Ok(d)
        }
        Source::IdxDir(dir, order) => read_idx_dir(dir, split, *order),
        Source::ImageFolder(dir) => folder::read_image_folder(dir, 28, 28),
    }
}

impl Dataset {
    /// This set plus every image of `other` as one extra class named `name` (outlier
    /// exposure: non-digits as an "unknown" class).
    pub fn with_extra_class(&self, other: &Dataset, name: &str) -> Result<Dataset> {
        if (other.height, other.width) != (self.height, self.width) {
            return Err(Error::Shape {
                name: format!("{name} images"),
                expected: vec![self.height, self.width],
                got: vec![other.height, other.width],
            });
        }
        let k = self.classes.len() as u32;
        let mut pixels = self.pixels.clone();
        pixels.extend_from_slice(&other.pixels);
        let mut labels = self.labels.clone();
        labels.extend(std::iter::repeat_n(k, other.len()));
        let mut classes = self.classes.clone();
        classes.push(name.to_string());
        Dataset::new(pixels, labels, self.height, self.width, classes)
    }
}

/// A source of non-digit images: outlier exposure in training, the unknown class of the
/// digit recognizer's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownSource {
    /// Letters rendered from the DejaVu faces and the fitting handwriting fonts of
    /// [`glyphs::FIT_FONT_FILES`], never the evaluation fonts (`glyphs`).
    Glyphs,
    /// Fashion-MNIST's training split (`fashion-mnist`).
    FashionMnist,
    /// MNIST's training split (`mnist`; for other data sets' recognizers).
    Mnist,
    /// The fitting part of another generator of [`unknowns`] (`strokes`, `fonts`, `kana`,
    /// `fragments`).
    Generated(unknowns::Generator),
    /// MNIST training digits turned, mirrored, cut into a jigsaw or smeared so that they are no
    /// digit ([`unknowns::transformed_digits`]; `transformed`): outlier exposure that needs no
    /// outside data. A training source only, never a held-out generator. MNIST's, whatever
    /// data the embedding is trained on (as `fragments`).
    Transformed,
    /// A folder: IDX files, or class sub-folders of images.
    Folder(std::path::PathBuf),
}

impl std::str::FromStr for UnknownSource {
    type Err = Error;

    /// `glyphs`, `fashion-mnist`, `mnist`, else a folder.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim() {
            "" => return Err(Error::InvalidArgument("an empty unknown source".into())),
            "glyphs" => UnknownSource::Glyphs,
            "fashion-mnist" => UnknownSource::FashionMnist,
            "mnist" => UnknownSource::Mnist,
            "transformed" => UnknownSource::Transformed,
            "strokes" | "fonts" | "kana" | "fragments" => UnknownSource::Generated(s.parse()?),
            dir => UnknownSource::Folder(dir.into()),
        })
    }
}

impl std::fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnknownSource::Glyphs => f.write_str("glyphs"),
            UnknownSource::FashionMnist => f.write_str("fashion-mnist"),
            UnknownSource::Mnist => f.write_str("mnist"),
            UnknownSource::Transformed => f.write_str("transformed"),
            UnknownSource::Generated(g) => write!(f, "{g}"),
            UnknownSource::Folder(p) => write!(f, "{}", p.display()),
        }
    }
}

impl UnknownSource {
    /// A comma-separated list (`fashion-mnist,glyphs`), as the command line and saved
    /// training configs write it; `all` stands for every generator of [`unknowns`] and
    /// `transformed`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for t in s.split(',').filter(|t| !t.trim().is_empty()) {
            if t.trim() == "all" {
                out.extend(unknowns::Generator::ALL.map(Self::of));
                out.push(UnknownSource::Transformed);
            } else {
                out.push(t.parse()?);
            }
        }
        Ok(out)
    }

    /// The fitting part of a generator as a source.
    pub fn of(g: unknowns::Generator) -> Self {
        match g {
            unknowns::Generator::Glyphs => UnknownSource::Glyphs,
            unknowns::Generator::Fashion => UnknownSource::FashionMnist,
            g => UnknownSource::Generated(g),
        }
    }

    /// The generator this source is the fitting part of, if any.
    pub fn generator(&self) -> Option<unknowns::Generator> {
        match self {
            UnknownSource::Glyphs => Some(unknowns::Generator::Glyphs),
            UnknownSource::FashionMnist => Some(unknowns::Generator::Fashion),
            UnknownSource::Generated(g) => Some(*g),
            UnknownSource::Mnist | UnknownSource::Transformed | UnknownSource::Folder(_) => None,
        }
    }

    /// The list back as text.
    pub fn list_string(sources: &[Self]) -> String {
        sources
            .iter()
            .map(Self::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Loads `per_source` non-digit images from each source. Returns the images as one class and
/// a description of each source.
pub fn unknown_images(
    sources: &[UnknownSource],
    per_source: usize,
    seed: u64,
    home: &Home,
    progress: &dyn Progress,
) -> Result<(Dataset, Vec<String>)> {
    let mut pixels = Vec::new();
    let mut described = Vec::new();
    for src in sources {
        let s = src.to_string();
        let set = match src {
            UnknownSource::Glyphs => {
                // A missing font is an error, not a warning: training on DejaVu alone gives
                // another embedding than the recipe's, and one that rejects fewer letters.
                let mut fonts = glyphs::builtin_fonts();
                fonts.extend(glyphs::read_fonts(glyphs::FIT_FONT_FILES)?);
                described.push(format!(
                    "glyphs: {per_source} letters from {} fonts ({})",
                    fonts.len(),
                    fonts
                        .iter()
                        .map(|f| f.0.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                glyphs::render_letters(&fonts, per_source, seed)?
            }
            UnknownSource::FashionMnist | UnknownSource::Mnist => {
                let set = if *src == UnknownSource::Mnist {
                    KnownSet::Mnist
                } else {
                    KnownSet::FashionMnist
                };
                let d = load(&Source::Known(set), Split::Train, home, progress)?.take(per_source);
                described.push(format!("{s}: training split, first {} images", d.len()));
                d
            }
            UnknownSource::Transformed => {
                // The calibration digits (the end of the training split) stay unseen.
                let digits = load(
                    &Source::Known(KnownSet::Mnist),
                    Split::Train,
                    home,
                    progress,
                )?;
                let fit = digits.take(
                    digits
                        .len()
                        .saturating_sub(crate::openset::CALIBRATION_DIGITS),
                );
                let d = unknowns::transformed_digits(&fit, per_source, seed ^ 0x7a5f)?;
                described.push(format!(
                    "transformed: {} MNIST training digits turned, mirrored, cut into a jigsaw or smeared",
                    d.len()
                ));
                d
            }
            UnknownSource::Generated(g) => {
                // As for `glyphs`, a missing font package is an error naming it.
                let (d, what) =
                    unknowns::generate(*g, unknowns::Part::Fit, per_source, seed, home, progress)?;
                described.push(what);
                d
            }
            UnknownSource::Folder(p) => {
                let dir = p.display().to_string();
                let p = p.clone();
                let src = if p.join("train-images-idx3-ubyte.gz").exists()
                    || p.join("train-images-idx3-ubyte").exists()
                {
                    Source::IdxDir(p, idx::PixelOrder::RowMajor)
                } else {
                    Source::ImageFolder(p)
                };
                let d = load(&src, Split::Train, home, progress)?.take(per_source);
                described.push(format!("{dir}: first {} images", d.len()));
                d
            }
        };
        if (set.height, set.width) != (28, 28) {
            return Err(Error::Shape {
                name: format!("unknown source {s}"),
                expected: vec![28, 28],
                got: vec![set.height, set.width],
            });
        }
        pixels.extend_from_slice(&set.pixels);
    }
    if described.is_empty() {
        return Err(Error::InvalidArgument(
            "no unknown source given (fashion-mnist, glyphs or a folder)".into(),
        ));
    }
    let n = pixels.len() / 784;
    Ok((
        Dataset::new(pixels, vec![0; n], 28, 28, vec!["unknown".into()])?,
        described,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(n: usize, classes: usize) -> Dataset {
        let labels: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
        Dataset::new(
            vec![1; n * 4],
            labels,
            2,
            2,
            (0..classes).map(|c| c.to_string()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn extra_class_is_appended() {
        let a = tiny(6, 3);
        let b = tiny(2, 1);
        let c = a.with_extra_class(&b, "unknown").unwrap();
        assert_eq!(c.len(), 8);
        assert_eq!(c.classes.last().map(String::as_str), Some("unknown"));
        assert_eq!(&c.labels[6..], &[3, 3]);
        assert_eq!(c.by_class()[3], vec![6, 7]);
        let odd = Dataset::new(vec![0; 9], vec![0], 3, 3, vec!["x".into()]).unwrap();
        assert!(a.with_extra_class(&odd, "u").is_err());
    }

    #[test]
    fn inconsistent_sizes_are_errors() {
        assert!(Dataset::new(vec![0; 5], vec![0], 2, 2, vec!["a".into()]).is_err());
        assert!(Dataset::new(vec![0; 4], vec![1], 2, 2, vec!["a".into()]).is_err());
    }
}
