//! The Keras HDF5 loader and VGG-Face against an independent NumPy computation.
//!
//! `tools/reference/vgg_face_reference.py` writes a reduced-width weights file in the layout
//! of the notebook's `vgg_face_weights.h5` (Keras 2 `save_weights`, made with h5py) and the
//! network's output for a fixed input, computed with NumPy in float64. The test needs python3
//! with numpy and h5py (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Tensor, TensorData};
use recog::nn::{VggFaceConfig, VggOutput};
use recog::weights::hdf5::load_keras;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/reference/vgg_face_reference.py")
}

fn generate(dir: &Path, args: &[&str]) {
    let status = Command::new("python3")
        .arg(script())
        .arg(dir)
        .args(args)
        .status()
        .expect("python3 is needed for this test (with numpy and h5py)");
    assert!(
        status.success(),
        "the reference script failed: pip install numpy h5py"
    );
}

fn pattern() -> Vec<f32> {
    let mut v = vec![0f32; 3 * 224 * 224];
    for c in 0..3 {
        for y in 0..224 {
            for x in 0..224 {
                v[(c * 224 + y) * 224 + x] = ((7 * y + 13 * x + 29 * c) % 256) as f32;
            }
        }
    }
    v
}

fn max_rel_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn vgg_face_matches_numpy_on_a_reduced_width_file() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["--width-div", "16"]);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("reference.json")).unwrap())
            .unwrap();
    let device = recog::default_device();
    for (output, key) in [(VggOutput::Fc8, "descriptor"), (VggOutput::Fc7, "fc7")] {
        let (mut map, layers) = load_keras(&dir.path().join("vgg_face_weights.h5")).unwrap();
        let cfg = VggFaceConfig {
            output,
            ..VggFaceConfig::reduced(16)
        };
        let net = cfg.load(&mut map, &layers, &device).unwrap();
        assert!(
            map.remaining().is_empty(),
            "unused weights: {:?}",
            map.remaining()
        );
        let x = Tensor::<4>::from_data(TensorData::new(pattern(), [1, 3, 224, 224]), &device);
        let got: Vec<f32> = net.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f64> = serde_json::from_value(reference[key].clone()).unwrap();
        assert_eq!(got.len(), want.len());
        let err = max_rel_err(&got, &want);
        // Within 1e-4 of the output's scale: float32 against NumPy's float64.
        assert!(
            err < 1e-4,
            "{key}: max |rust - numpy| / max |numpy| = {err}"
        );
        eprintln!("{key}: {} values, max relative error {err:.2e}", got.len());
    }
}

#[test]
fn wrong_width_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["--width-div", "16"]);
    let (mut map, layers) = load_keras(&dir.path().join("vgg_face_weights.h5")).unwrap();
    let err = VggFaceConfig::reduced(8)
        .load(&mut map, &layers, &recog::default_device())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv2d_1/kernel:0")
            && err.contains("[3, 3, 3, 8]")
            && err.contains("[3, 3, 3, 4]"),
        "{err}"
    );
}

#[test]
fn full_size_constant_file_loads_with_published_shapes() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["--constant"]);
    let path = dir.path().join("vgg_face_weights.h5");
    let (mut map, layers) = load_keras(&path).unwrap();
    assert_eq!(layers.len(), 16);
    let net = VggFaceConfig::vgg_face()
        .load(&mut map, &layers, &recog::default_device())
        .unwrap();
    assert_eq!(net.convs.len(), 16);
    assert_eq!(net.convs[13].kernel.dims(), [4096, 512, 7, 7]);
    assert_eq!(net.convs[15].kernel.dims(), [2622, 4096, 1, 1]);
}

#[test]
fn not_an_hdf5_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.h5");
    std::fs::write(&p, b"not hdf5").unwrap();
    let err = load_keras(&p).unwrap_err().to_string();
    assert!(err.contains("x.h5") && err.contains("HDF5"), "{err}");
}

/// Registered through the home (`recog models add vgg-face`): the layout is read off the file
/// (widths / 16 here), and the embedder gives the NumPy reference's descriptor, unit length,
/// for a chip holding the reference's input pattern.
#[test]
fn an_added_reduced_file_embeds_a_chip_as_numpy_does() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["--width-div", "16"]);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("reference.json")).unwrap())
            .unwrap();
    let home = recog::Home::new(dir.path().join("home"));
    let reg = home
        .add_vgg_face(
            &dir.path().join("vgg_face_weights.h5"),
            None,
            &recog::NoProgress,
        )
        .unwrap();
    assert_eq!(reg.config.conv_widths[0], 4);
    assert_eq!(reg.config.fc_width, 256);
    assert_eq!(home.vgg_face().unwrap(), reg);
    let px = pattern();
    let chip = image::RgbImage::from_fn(224, 224, |x, y| {
        let at = |c: usize| px[(c * 224 + y as usize) * 224 + x as usize] as u8;
        image::Rgb([at(0), at(1), at(2)])
    });
    use recog::face::Embedder;
    for (output, key) in [(VggOutput::Fc8, "descriptor"), (VggOutput::Fc7, "fc7")] {
        let emb =
            recog::face::VggFaceEmbedder::load(&reg, output, &recog::default_device()).unwrap();
        let got = emb.embed(std::slice::from_ref(&chip)).unwrap().remove(0);
        let want: Vec<f64> = serde_json::from_value(reference[key].clone()).unwrap();
        let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
        let want: Vec<f64> = want.iter().map(|v| v / norm).collect();
        assert_eq!(got.len(), emb.dim());
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "{key}: max |rust - numpy| = {err}");
    }
}

/// The published layout is recognised from the full-size file, and a file of another layout
/// is refused with the layer named.
#[test]
fn the_full_size_layout_is_read_off_the_file_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["--constant"]);
    let (map, layers) = load_keras(&dir.path().join("vgg_face_weights.h5")).unwrap();
    let cfg = VggFaceConfig::from_layers(&map, &layers, VggOutput::Fc8).unwrap();
    assert_eq!(cfg, VggFaceConfig::vgg_face());
    // conv2_2 made 99 wide: conv3_1 no longer takes its channels, and the error says so.
    let mut map = map;
    let k = layers[3].weights[0].clone();
    map.tensors.get_mut(&k).unwrap().shape = vec![3, 3, 128, 99];
    let e = VggFaceConfig::from_layers(&map, &layers, VggOutput::Fc8)
        .unwrap_err()
        .to_string();
    let next = &layers[4].weights[0];
    assert!(
        e.contains(next.as_str())
            && e.contains("[3, 3, 128, 256]")
            && e.contains("[3, 3, 99, out]"),
        "{e}"
    );
}
