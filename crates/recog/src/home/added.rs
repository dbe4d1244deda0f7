//! Models the user adds from a file of their own: VGG-Face's `vgg_face_weights.h5` (Keras,
//! 580 MB, non-commercial licence) is on no package registry, so recog cannot fetch it; the
//! notebook's users have it. `recog models add vgg-face PATH` checks the file's layout,
//! records its SHA-256 and registers it: `<models folder>/vgg-face/registration.json` names
//! the file where it is (580 MB are not copied).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let home = recog::Home::new(dir.path());
//! let e = home.vgg_face().unwrap_err().to_string();
//! assert!(e.contains("recog models add vgg-face"));
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::install::{sha256_file, write_atomic};
use super::Home;
use crate::error::{Error, Result};
use crate::nn::{VggFaceConfig, VggOutput};
use crate::progress::Progress;

/// The name VGG-Face is added and listed under.
pub const VGG_FACE: &str = "vgg-face";

/// The notebook's cosine-distance threshold (0.40) as a Euclidean distance between unit
/// descriptors (`sqrt(2 * 0.40)`): VGG-Face's verification distance until the user measures
/// one on LFW View 1 (`tools/lfw_dev_threshold.py`).
pub const VGG_FACE_DEFAULT_DISTANCE: f32 = 0.894_427_2;

/// A registered VGG-Face weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VggFaceRegistration {
    /// The weights file, absolute.
    pub path: PathBuf,
    /// Its SHA-256 when it was added.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The layer widths read off the file.
    pub config: VggFaceConfig,
    /// Verification distance between unit descriptors, if the user measured one (else
    /// [`VGG_FACE_DEFAULT_DISTANCE`]).
    #[serde(default, alias = "match_distance")]
    pub verification_distance: Option<f32>,
}

impl VggFaceRegistration {
    /// The verification distance in force.
    pub fn verification_distance(&self) -> f32 {
        self.verification_distance
            .unwrap_or(VGG_FACE_DEFAULT_DISTANCE)
    }
}

impl Home {
    /// Where a registration is, or would be written.
    fn vgg_face_registration_path(&self) -> PathBuf {
        self.model_file(&format!("{VGG_FACE}/registration.json"))
    }

    /// Checks a Keras weights file's layout (16 layers of VGG-Face's shapes), hashes it and
    /// registers it in the first models folder; `verification_distance` records a verification
    /// distance measured on LFW View 1 (else a previous registration's is kept).
    pub fn add_vgg_face(
        &self,
        path: &Path,
        verification_distance: Option<f32>,
        progress: &dyn Progress,
    ) -> Result<VggFaceRegistration> {
        let path = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        progress.start("checking vgg-face layout", 0);
        let (map, layers) = crate::weights::hdf5::load_keras(&path)?;
        let config = VggFaceConfig::from_layers(&map, &layers, VggOutput::Fc8)?;
        drop(map);
        progress.finish();
        progress.start("hashing vgg-face", 0);
        let sha256 = sha256_file(&path).map_err(|e| Error::io(&path, e))?;
        progress.finish();
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        let kept = self.vgg_face().ok().and_then(|r| r.verification_distance);
        if let Some(d) = verification_distance {
            if !(d.is_finite() && d > 0.0 && d <= 2.0) {
                return Err(Error::InvalidArgument(format!(
                    "a distance between unit descriptors lies in (0, 2], not {d}"
                )));
            }
        }
        let reg = VggFaceRegistration {
            path,
            sha256,
            size,
            config,
            verification_distance: verification_distance.or(kept),
        };
        let dest = self.install_root().join(VGG_FACE).join("registration.json");
        let text = serde_json::to_vec_pretty(&reg).map_err(|e| Error::Json {
            path: dest.clone(),
            source: e,
        })?;
        write_atomic(&dest, &text).map_err(|e| Error::io(&dest, e))?;
        Ok(reg)
    }

    /// The registered VGG-Face file; an error that says how to add it when there is none, or
    /// when the file has moved or changed size since.
    pub fn vgg_face(&self) -> Result<VggFaceRegistration> {
        let reg_path = self.vgg_face_registration_path();
        let text = std::fs::read_to_string(&reg_path).map_err(|_| Error::Checkpoint {
            path: reg_path.clone(),
            problem: "VGG-Face is not added: no registry has `vgg_face_weights.h5` (the notebook's \
                      Keras file, non-commercial licence); `recog models add vgg-face PATH` registers your copy"
                .into(),
        })?;
        let reg: VggFaceRegistration = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: reg_path.clone(),
            source: e,
        })?;
        match std::fs::metadata(&reg.path) {
            Ok(m) if m.len() == reg.size => Ok(reg),
            _ => Err(Error::Checkpoint {
                path: reg.path.clone(),
                problem: format!(
                    "registered as VGG-Face ({} bytes) but missing or changed: run `recog models add vgg-face PATH` again",
                    reg.size
                ),
            }),
        }
    }
}
