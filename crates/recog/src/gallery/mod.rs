//! The gallery: people, their photos and the embeddings of those photos, kept by a
//! [`Store`]: an embedded SQLite file ([`sqlite`], the default) or a PostgreSQL database with
//! pgvector ([`postgres`]), searched exactly ([`index`]) or, for large galleries, through
//! an HNSW graph ([`hnsw`]), named or rejected by a decision
//! rule ([`decision`]) whose threshold is calibrated from impostor distances
//! ([`calibration`]); [`recognize`] runs a face pipeline against it.
//!
//! ```
//! use recog::gallery::{Acceptance, Gallery, Index, ModelId, NewPhoto};
//! use recog::metric::Distance;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut g = Gallery::open(&dir.path().join("g.sqlite")).unwrap();
//! let model = ModelId { name: "toy".into(), sha256: "0".into(), dim: 2 };
//! let photo = |v: Vec<f32>| NewPhoto { path: "p".into(), sha256: format!("{v:?}"), embedding: v, thumbnail: None };
//! g.enroll("ada", &model, &[photo(vec![0.0, 0.0])]).unwrap();
//! g.enroll("bob", &model, &[photo(vec![1.0, 0.0])]).unwrap();
//! let index = g.index().unwrap();
//! let m = index.decide(&[0.1, 0.0], &Acceptance::distance(0.5)).unwrap();
//! assert_eq!(m.name.as_deref(), Some("ada"));
//! assert_eq!(index.metric(), Distance::Euclidean);
//! ```

pub mod calibration;
pub mod decision;
pub mod enroll;
pub mod hnsw;
pub mod index;
pub mod postgres;
pub mod recognize;
pub mod service;
pub mod sqlite;
pub mod store;

pub use calibration::{calibrate, calibrate_rule, impostor_pairs, impostor_scores, Calibration};
pub use decision::{identify, Acceptance, Match, Rule};
pub use hnsw::{Hnsw, HnswConfig, IndexKind, Precision, Reduction};
pub use index::{Index, ServerSearch};
pub use recognize::{model_id, FaceAnswer, Recognized, Recognizer};
pub use service::{ImageAnswer, Service};
pub use store::{
    check_name, CheckReport, Export, ExportPerson, Gallery, Location, ModelId, NewPhoto, Person,
    PhotoRow, Store, SCHEMA_VERSION,
};
