//! The library's single error type, [`Error`], and the [`ErrorKind`] that lets a caller tell
//! a bad input from a missing file, a model mismatch or a storage failure.
//!
//! ```
//! use recog::{Error, ErrorKind};
//! let e = Error::InvalidArgument("--far 2: must be in [0, 1)".into());
//! assert_eq!(e.kind(), ErrorKind::BadInput);
//! let e = Error::io("missing.jpg", std::io::Error::from(std::io::ErrorKind::NotFound));
//! assert_eq!(e.kind(), ErrorKind::NotFound);
//! ```

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
    /// Embeddings of one model were compared with, or stored beside, another model's.
    #[error("{path}: {problem}")]
    ModelMismatch {
        /// The gallery (or other store) involved.
        path: PathBuf,
        /// Which models disagree.
        problem: String,
    },
    /// The approximate (HNSW) index failed, or its file next to a gallery is unusable.
    #[error("HNSW index {path}: {problem}")]
    Hnsw {
        /// The index file, or `(in memory)`.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A setting or argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// What kind of failure an [`Error`] is: what a front end needs to answer it (the server's
/// HTTP status, a retry, a message to the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The caller's input is wrong: an undecodable image, an argument out of range, a name
    /// the gallery refuses.
    BadInput,
    /// A file or folder does not exist.
    NotFound,
    /// A file exists but its contents are malformed or truncated (IDX, JSON, weights).
    Corrupt,
    /// Models disagree: a tensor of the wrong shape, a gallery made by another network.
    ModelMismatch,
    /// The gallery database failed.
    Storage,
    /// Something recog needs is missing and could not be fetched (data set, model).
    Unavailable,
    /// Any other I/O failure (permissions, disk full, a video tool that failed).
    Io,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Io { .. } | Error::Plot { .. } | Error::Video { .. } => ErrorKind::Io,
            Error::Idx { .. }
            | Error::CountMismatch { .. }
            | Error::Checkpoint { .. }
            | Error::Json { .. } => ErrorKind::Corrupt,
            Error::Image { .. } | Error::InvalidArgument(_) => ErrorKind::BadInput,
            Error::Download { .. } | Error::Model { .. } => ErrorKind::Unavailable,
            Error::Shape { .. } | Error::ModelMismatch { .. } => ErrorKind::ModelMismatch,
            Error::Gallery { .. } | Error::Hnsw { .. } => ErrorKind::Storage,
        }
    }
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
