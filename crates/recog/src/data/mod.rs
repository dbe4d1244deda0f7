//! Data sets: IDX files, labelled image folders, samplers.

pub mod folder;
pub mod glyphs;
pub mod idx;
pub mod image_file;
pub mod mnistify;
pub mod sampler;

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

/// Loads non-digit images from a comma-separated list of sources, `per_source` from each:
/// `glyphs` (letters rendered from the DejaVu faces and the fitting handwriting fonts of
/// [`glyphs::FIT_FONT_FILES`], never the evaluation fonts), `fashion-mnist` (training split),
/// or a folder (IDX or class sub-folders). Returns the images as one class and a description
/// of each source.
pub fn unknown_images(
    sources: &str,
    per_source: usize,
    seed: u64,
    home: &Home,
    progress: &dyn Progress,
) -> Result<(Dataset, Vec<String>)> {
    let mut pixels = Vec::new();
    let mut described = Vec::new();
    for s in sources.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let set = match s {
            "glyphs" => {
                let mut fonts = glyphs::builtin_fonts();
                match glyphs::read_fonts(glyphs::FIT_FONT_FILES) {
                    Ok(f) => fonts.extend(f),
                    Err(e) => progress.warn(&format!(
                        "handwriting fonts for fitting not found ({e}); using DejaVu only"
                    )),
                }
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
            "fashion-mnist" | "mnist" => {
                let set = if s == "mnist" {
                    KnownSet::Mnist
                } else {
                    KnownSet::FashionMnist
                };
                let d = load(&Source::Known(set), Split::Train, home, progress)?.take(per_source);
                described.push(format!("{s}: training split, first {} images", d.len()));
                d
            }
            dir => {
                let p = std::path::PathBuf::from(dir);
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
