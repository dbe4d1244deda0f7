//! The library's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in recog, with the path or shape that explains it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An IDX file is malformed (bad magic, truncated, wrong dimensions...).
    #[error("{path}: {problem}")]
    Idx {
        /// The IDX file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Images and labels disagree.
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Number of images.
        n_images: usize,
        /// The label file.
        labels: PathBuf,
        /// Number of labels.
        n_labels: usize,
    },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {problem}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// Decoder message.
        problem: String,
    },
    /// A data set is missing and could not be downloaded.
    #[error(
        "{dataset} is missing and could not be downloaded ({problem}); put {files} into {dir}"
    )]
    Download {
        /// The data set name.
        dataset: String,
        /// The files expected, comma separated.
        files: String,
        /// Where they are expected.
        dir: PathBuf,
        /// Why the download failed.
        problem: String,
    },
    /// A pretrained model is missing and could not be installed.
    #[error(
        "model {model} is missing and could not be installed ({problem}); run `recog models fetch {model}` \
         (with network access), or put {files} into {dir}"
    )]
    Model {
        /// The model's registry name.
        model: String,
        /// Its files, relative to a models folder, comma separated.
        files: String,
        /// The models folder they are installed into.
        dir: PathBuf,
        /// Why it could not be installed.
        problem: String,
    },
    /// A tensor has a shape other than the one expected.
    #[error("shape mismatch for {name}: expected {expected:?}, got {got:?}")]
    Shape {
        /// Tensor or input name.
        name: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A checkpoint or model record could not be used.
    #[error("{path}: {problem}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Parser error.
        #[source]
        source: serde_json::Error,
    },
    /// A plot could not be drawn.
    #[error("{path}: cannot draw plot: {problem}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// Drawing backend message.
        problem: String,
    },
    /// The gallery database refused an operation or is inconsistent with the request.
    #[error("{path}: {problem}")]
    Gallery {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// FFmpeg could not read or write a video.
    #[error("video {target}: {problem}")]
    Video {
        /// The source or output (file, URL, device).
        target: String,
        /// What went wrong (FFmpeg's own message where it gave one).
        problem: String,
    },
    /// A setting or argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias for recog.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
