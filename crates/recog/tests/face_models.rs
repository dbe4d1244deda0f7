//! Pretrained face models checked against their reference implementations, on the weights in
//! `RECOG_HOME`'s models search path (CI: `RECOG_HOME=../shared` and the models fetched into
//! `RECOG_MODEL_PATH`); they say so when they skip, and fail instead when
//! `RECOG_TEST_DATA=required` (as CI sets it).
//!
//! - face ResNet vs face-api.js 0.22.2 (`tools/reference/face_resnet_reference.js`);
//! - BlazeFace vs onnxruntime (`tools/reference/blazeface_reference.py`).

use burn::tensor::{Tensor, TensorData};
use recog::face::{self, Detector, Embedder, ModelPaths};
use recog::Home;

mod common;
use common::{max_abs_diff, skip, zero_map};

fn paths() -> Option<(Home, ModelPaths)> {
    let home = Home::from_env();
    let p = ModelPaths::in_home(&home);
    for f in [
        &p.face_resnet,
        &p.blazeface,
        &p.haar,
        &p.landmark68,
        &p.mobilefacenet,
    ] {
        if !f.exists() {
            skip(&f.display().to_string());
            return None;
        }
    }
    Some((home, p))
}

/// LFW's first photo, if the home has LFW (else the test is skipped, or fails under
/// `RECOG_TEST_DATA=required`).
fn lfw_image(home: &Home) -> Option<std::path::PathBuf> {
    let p = home
        .data_dir("lfw")
        .join("images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg");
    if p.exists() {
        Some(p)
    } else {
        skip("LFW under RECOG_HOME/data");
        None
    }
}

/// [`paths`] and [`lfw_image`] together, for the tests that run on a real photo.
fn paths_and_lfw_image() -> Option<(Home, ModelPaths, std::path::PathBuf)> {
    let (home, p) = paths()?;
    let img = lfw_image(&home)?;
    Some((home, p, img))
}

fn pattern(h: usize, w: usize) -> Vec<f32> {
    // pixel (y, x, c) = (7y + 13x + 29c) mod 256, laid out [c][y][x]
    let mut v = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                v[(c * h + y) * w + x] = ((7 * y + 13 * x + 29 * c) % 256) as f32;
            }
        }
    }
    v
}

/// A fixture written by a script in `tools/reference/`.
fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A tensor's values, row-major.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn face_resnet_matches_face_api_js() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let emb = face::FaceResNetEmbedder::load(&p.face_resnet, &device).unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(pattern(150, 150), [1, 3, 150, 150]),
        &device,
    );
    let got = values(emb.forward(x));
    let want: Vec<f32> = serde_json::from_str(&fixture("face_resnet_reference.json")).unwrap();
    assert_eq!(got.len(), 128);
    let max_err = max_abs_diff(&got, &want);
    assert!(max_err < 1e-4, "max |rust - face-api.js| = {max_err}");
}

#[test]
fn blazeface_matches_onnxruntime() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let mut map = recog::weights::onnx::load(&p.blazeface).unwrap();
    let net = recog::nn::BlazeFaceConfig::front()
        .load(&mut map, &device)
        .unwrap();
    let x: Vec<f32> = pattern(128, 128).iter().map(|v| v / 127.5 - 1.0).collect();
    let out = net.forward(Tensor::<4>::from_data(
        TensorData::new(x, [1, 3, 128, 128]),
        &device,
    ));
    let scores = values(out.scores);
    let regs = values(out.boxes);
    let text = fixture("blazeface_reference.json");
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ws: Vec<f32> = serde_json::from_value(want["scores"].clone()).unwrap();
    assert_eq!(scores.len(), 896);
    let max_err = max_abs_diff(&scores, &ws);
    assert!(max_err < 1e-3, "max score |rust - onnxruntime| = {max_err}");
    let top: Vec<usize> = serde_json::from_value(want["top"].clone()).unwrap();
    let tr: Vec<Vec<f32>> = serde_json::from_value(want["top_regressors"].clone()).unwrap();
    for (i, r) in top.iter().zip(&tr) {
        for (k, w) in r.iter().enumerate() {
            let g = regs[i * 16 + k];
            assert!(
                (g - w).abs() < 1e-2 * (1.0 + w.abs()),
                "anchor {i} reg {k}: {g} vs {w}"
            );
        }
    }
    let sum: f32 = regs.iter().map(|v| v.abs()).sum();
    let want_sum = want["regressor_abs_sum"].as_f64().unwrap() as f32;
    assert!(
        (sum - want_sum).abs() / want_sum < 1e-4,
        "{sum} vs {want_sum}"
    );
}

/// BlazeFace on recog's CPU kernels (what the detector runs on the CPU device) against
/// burn's ops, on the letterboxed 128x128 input and on a pyramid level's 208x160 (both sides
/// multiples of 16, as the detector pads them).
#[test]
fn blazeface_cpu_kernels_match_burns_ops() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let mut map = recog::weights::onnx::load(&p.blazeface).unwrap();
    let net = recog::nn::BlazeFaceConfig::front()
        .load(&mut map, &device)
        .unwrap();
    let cpu = net.cpu().expect("BlazeFace on the CPU kernels");
    for (h, w) in [(128, 128), (208, 160)] {
        let x: Vec<f32> = pattern(h, w).iter().map(|v| v / 127.5 - 1.0).collect();
        let (scores, regs) = cpu
            .forward(&recog::nn::cpu::FeatureMap::from_planar(&x, 3, h, w))
            .unwrap();
        let out = net.forward(Tensor::<4>::from_data(
            TensorData::new(x, [1, 3, h, w]),
            &device,
        ));
        let (ws, wr) = (values(out.scores), values(out.boxes));
        assert_eq!((scores.len(), regs.len()), (ws.len(), wr.len()));
        let (ds, dr) = (max_abs_diff(&scores, &ws), max_abs_diff(&regs, &wr));
        eprintln!("BlazeFace {h}x{w}: max |cpu - burn| scores {ds:.2e}, regressors {dr:.2e}");
        assert!(ds < 1e-4 && dr < 1e-3, "{h}x{w}: {ds} / {dr}");
    }
    // A side that is not a multiple of 16 is refused, not run on misaligned anchors.
    assert!(cpu.forward(&zero_map(120, 128, 3)).is_none());
}

#[test]
fn blazeface_finds_the_face_and_eyes_in_an_lfw_image() {
    let Some((_, p, img_path)) = paths_and_lfw_image() else {
        return;
    };
    let device = recog::default_device();
    let det = face::BlazeFaceDetector::load(&p.blazeface, &device).unwrap();
    let img = recog::data::image_file::load_rgb(&img_path).unwrap();
    let faces = det.detect(&img).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let f = &faces[0];
    // onnxruntime + the same decoding put the eyes at (0.432, 0.443) and (0.597, 0.447) of
    // the 250-px image (Pillow's resize differs slightly from ours: 3 px tolerance).
    for (k, want) in [[0.432f32, 0.443], [0.597, 0.447]].iter().enumerate() {
        let got = f.keypoints[k];
        assert!(
            (got[0] - want[0] * 250.0).abs() < 3.0 && (got[1] - want[1] * 250.0).abs() < 3.0,
            "{got:?}"
        );
    }
    assert!(f.score > 0.8);
}

/// OpenCV 4.14's `detectMultiScale(gray, 1.3, 5)` boxes (`tools/reference/haar_reference.py`)
/// against ours: same count per image, and each box overlapping its match by IoU >= 0.7
/// (OpenCV resizes the pyramid with its own bilinear kernel, so windows can shift a step).
#[test]
fn haar_matches_opencv() {
    let Some((home, p)) = paths() else { return };
    let det = recog::face::haar::HaarDetector::load(&p.haar).unwrap();
    let text = fixture("haar_reference.json");
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    for d in want["detections"].as_array().unwrap() {
        let path = home
            .data_dir("lfw")
            .join("images")
            .join(d["image"].as_str().unwrap());
        if !path.exists() {
            skip("LFW under RECOG_HOME/data");
            return;
        }
        let img = recog::data::image_file::load_rgb(&path).unwrap();
        let got = det.detect(&img).unwrap();
        let boxes: Vec<[f32; 4]> = serde_json::from_value(d["boxes"].clone()).unwrap();
        assert_eq!(
            got.len(),
            boxes.len(),
            "{}: {got:?} vs {boxes:?}",
            d["image"]
        );
        for b in boxes {
            let r = face::FaceBox {
                x0: b[0],
                y0: b[1],
                x1: b[0] + b[2],
                y1: b[1] + b[3],
                score: 1.0,
                keypoints: vec![],
                landmarks: vec![],
            };
            let best = got.iter().map(|g| g.iou(&r)).fold(0f32, f32::max);
            assert!(
                best >= 0.7,
                "{}: best IoU {best} with OpenCV box {b:?}; ours {got:?}",
                d["image"]
            );
        }
    }
}

/// The landmark network on recog's CPU kernels (what `Landmarker::annotate` runs on the CPU
/// device) against face-api.js's output and burn's ops, on the same crop.
#[test]
fn landmark68_cpu_kernels_match_face_api_js_and_burn() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let mut map = recog::weights::tfjs::load(&p.landmark68).unwrap();
    let net = recog::nn::FaceLandmark68Config::face_api()
        .load(&mut map, &device)
        .unwrap();
    let cpu = net.cpu().expect("the landmark network on the CPU kernels");
    let x = pattern(112, 112);
    let got = cpu
        .forward(&recog::nn::cpu::FeatureMap::from_planar(&x, 3, 112, 112))
        .unwrap();
    let burn = values(net.forward(Tensor::<4>::from_data(
        TensorData::new(x, [1, 3, 112, 112]),
        &device,
    )));
    let want: Vec<f32> = serde_json::from_str(&fixture("landmark68_reference.json")).unwrap();
    let (dw, db) = (max_abs_diff(&got, &want), max_abs_diff(&got, &burn));
    eprintln!("landmarks: max |cpu - face-api.js| {dw:.2e}, |cpu - burn| {db:.2e}");
    assert!(dw < 1e-4 && db < 1e-5, "{dw} / {db}");
    // A crop of another size is refused, not read past.
    assert!(cpu.forward(&zero_map(96, 96, 3)).is_none());
}

#[test]
fn landmark68_matches_face_api_js() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let lm = recog::face::landmarks::Landmarker::load(&p.landmark68, &device).unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(pattern(112, 112), [1, 3, 112, 112]),
        &device,
    );
    let got = values(lm.forward(x));
    let want: Vec<f32> = serde_json::from_str(&fixture("landmark68_reference.json")).unwrap();
    assert_eq!(got.len(), 136);
    let max_err = max_abs_diff(&got, &want);
    assert!(max_err < 1e-4, "max |rust - face-api.js| = {max_err}");
}

/// The batch `tools/reference/mobilefacenet_reference.py` feeds TensorFlow Lite: two 112x112
/// inputs (b, y, x, c) = (((7y + 13x + 29c + 3b) mod 256) - 127.5) / 128, written there in NHWC,
/// here in NCHW.
fn tflite_reference_input(device: &recog::Device) -> Tensor<4> {
    let s = 112;
    let mut v = vec![0f32; 2 * 3 * s * s];
    for b in 0..2 {
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    v[((b * 3 + c) * s + y) * s + x] =
                        (((7 * y + 13 * x + 29 * c + 3 * b) % 256) as f32 - 127.5) / 128.0;
                }
            }
        }
    }
    Tensor::<4>::from_data(TensorData::new(v, [2, 3, s, s]), device)
}

/// MobileFaceNet (`MobileFaceNet.tflite`) run by recog's graph executor vs TensorFlow Lite's
/// interpreter (`tools/reference/mobilefacenet_reference.py`, ai-edge-litert) on a batch of
/// two patterned inputs, raw outputs (before normalisation).
#[test]
fn mobilefacenet_matches_tflite() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let emb = face::MobileFaceNetEmbedder::load(&p.mobilefacenet, &device).unwrap();
    let x = tflite_reference_input(&device);
    let got: Vec<f32> = emb
        .net()
        .forward_raw(x)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let want: Vec<f32> = serde_json::from_str(&fixture("mobilefacenet_reference.json")).unwrap();
    let d = max_abs_diff(&got, &want);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!("MobileFaceNet: max |recog - tflite| = {d:.2e}, largest output {scale:.3}");
    // float32 summation orders differ between the runtimes.
    assert!(
        d < 1e-4 * scale.max(1.0),
        "max |recog - tflite| = {d} (outputs up to {scale})"
    );
    // And the two inputs give different descriptors (the batch is not mixed up).
    assert!(max_abs_diff(&got[..192], &got[192..]) > 1e-3);
}

/// The embedder's CPU path, from the chips' bytes straight into the kernels' maps
/// (`MobileFaceNet::forward_rgb`), gives the descriptors of the tensor path
/// (`chips_to_tensor`, burn's input scaling, `forward`) bit for bit, in a batch of chips
/// that differ; and a chip of another size is a shape error on both.
#[test]
fn mobilefacenet_from_chip_bytes_equals_its_tensor_path() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let emb = face::MobileFaceNetEmbedder::load(&p.mobilefacenet, &device).unwrap();
    let chips: Vec<image::RgbImage> = (0..3u32)
        .map(|b| {
            image::RgbImage::from_fn(112, 112, |x, y| {
                let v = |c: u32| ((7 * y + 13 * x + 29 * c + 31 * b + x * y / 5) % 256) as u8;
                image::Rgb([v(0), v(1), v(2)])
            })
        })
        .collect();
    let tensor = face::embed::chips_to_tensor(&chips, 112, &device).unwrap();
    let want = values(emb.net().forward(tensor).unwrap());
    let got = values(
        emb.net()
            .forward_rgb(chips.len(), |i| chips[i].as_raw(), &device)
            .expect("the CPU kernels' path")
            .unwrap(),
    );
    assert_eq!(got.len(), 3 * 192);
    assert_eq!(got, want);
    assert_eq!(
        emb.embed(&chips).unwrap().concat(),
        want,
        "the embedder takes the bytes' path"
    );
    let odd = vec![image::RgbImage::new(112, 111)];
    assert!(matches!(emb.embed(&odd), Err(recog::Error::Shape { .. })));
}

/// MobileFaceNet with its convolutions in bfloat16 (`Precision::Bf16`, the face pipeline's
/// `--precision bf16`) against TensorFlow Lite's float32 outputs: the descriptors' directions, which is
/// all that recognition compares, agree to a cosine of 0.9999.
#[test]
fn mobilefacenet_in_bf16_keeps_tflites_descriptor_directions() {
    use recog::nn::cpu::Precision;
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let mut net = recog::nn::MobileFaceNetConfig::tflite()
        .load(&p.mobilefacenet, &device)
        .unwrap();
    assert_eq!(
        net.precision(),
        Precision::F32,
        "loaded as the source computes"
    );
    net.set_precision(Precision::Bf16);
    if Precision::effective(Precision::Bf16) != Precision::Bf16 {
        assert_eq!(net.precision(), Precision::F32);
        eprintln!("skipped: this CPU has no AVX512-BF16, so Bf16 runs as f32");
        return;
    }
    assert_eq!(net.precision(), Precision::Bf16);
    let x = tflite_reference_input(&device);
    let got = values(net.forward_raw(x).unwrap());
    let want: Vec<f32> = serde_json::from_str(&fixture("mobilefacenet_reference.json")).unwrap();
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    };
    for i in 0..2 {
        let (g, w) = (&got[i * 192..][..192], &want[i * 192..][..192]);
        let c = cosine(g, w);
        eprintln!(
            "MobileFaceNet bf16, input {i}: cosine to tflite {c:.6}, max |diff| {:.2e}",
            max_abs_diff(g, w)
        );
        assert!(c > 0.9999, "input {i}: cosine {c}");
        // Not the f32 result: the bf16 kernel did run.
        assert!(max_abs_diff(g, w) > 1e-5);
    }
}

/// recog's CPU kernels (`nn::cpu`, what `forward` runs on the CPU device) against burn's own
/// ops on the same graph: a batch of three, at the model's 112 px and at another size, so that
/// a kernel that assumed the model's shapes would show.
#[test]
fn mobilefacenet_cpu_kernels_match_burns_ops() {
    let Some((_, p)) = paths() else { return };
    let device = recog::default_device();
    let model = recog::weights::tflite::load(&p.mobilefacenet).unwrap();
    let graph = recog::nn::tf_graph::TfGraph::from_tflite(&model, &device).unwrap();
    assert!(
        graph.has_cpu_plan(),
        "MobileFaceNet fell back to burn's ops"
    );
    // 97 px: odd sizes all the way down (97, 49, 25, 13, 7) pad SAME unevenly.
    for s in [112, 97] {
        let mut v = Vec::new();
        for b in 0..3 {
            v.extend(
                pattern(s, s)
                    .iter()
                    .map(|x| ((x + 40.0 * b as f32) % 256.0 - 127.5) / 128.0),
            );
        }
        let x = Tensor::<4>::from_data(TensorData::new(v, [3, 3, s, s]), &device);
        let host = graph.forward(x.clone());
        let burn = graph.forward_burn(x);
        let (host, burn) = (values(host.unwrap()), values(burn.unwrap()));
        let d = max_abs_diff(&host, &burn);
        let scale = burn.iter().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("MobileFaceNet: max |cpu kernels - burn| = {d:.2e}, largest output {scale:.3}");
        assert!(
            d < 1e-5 * scale.max(1.0),
            "max |cpu - burn| = {d} (outputs up to {scale})"
        );
        assert!(max_abs_diff(&host[..192], &host[192..384]) > 1e-3);
    }
    // 64 px leaves a 4x4 map for the final 7x7 depthwise conv: an error, not a panic.
    let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
    let err = graph.forward(x).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
}

/// `--projection` was applied by `face embed` and `face verify` only: enrolment,
/// identification, watch and serve embedded with the bare network. The projection now lives
/// in the pipeline, so every way of embedding goes through it, and the gallery's model id
/// names it.
#[test]
fn projection_applies_to_every_embedding_path() {
    let Some((home, _, img_path)) = paths_and_lfw_image() else {
        return;
    };
    let device = recog::default_device();
    let mut pipe = face::FacePipeline::standard(&home, &device, &recog::NoProgress).unwrap();
    let plain = recog::gallery::model_id(&pipe);
    let dir = tempfile::tempdir().unwrap();
    let cfg = face::finetune::FineTuneConfig {
        dim: 32,
        ..Default::default()
    };
    face::finetune::Projection::new(pipe.embedder.dim(), 32, &device)
        .save(dir.path(), &cfg, pipe.embedder.dim())
        .unwrap();
    pipe.set_projection(dir.path()).unwrap();
    let img = recog::data::image_file::load_rgb(&img_path).unwrap();
    let (central, _) = pipe.central_face(&img).unwrap();
    assert_eq!(central.unwrap().1.len(), 32, "central_face (enrolment)");
    let all = pipe.all_faces(std::slice::from_ref(&img)).unwrap();
    assert_eq!(all[0][0].1.len(), 32, "all_faces (identify, watch, serve)");
    let files = pipe
        .embed_files(
            std::slice::from_ref(&img_path),
            1,
            false,
            &recog::NoProgress,
        )
        .unwrap();
    assert_eq!(files[0].embedding.len(), 32, "embed_files (embed, verify)");
    let projected = recog::gallery::model_id(&pipe);
    assert_eq!(projected.dim, 32);
    assert!(projected.name.ends_with("+projection"), "{projected:?}");
    assert_ne!(projected.sha256, plain.sha256);

    // A projection made for another network is refused with the shapes named.
    let other = tempfile::tempdir().unwrap();
    let small = face::finetune::FineTuneConfig { dim: 4, ..cfg };
    face::finetune::Projection::new(7, 4, &device)
        .save(other.path(), &small, 7)
        .unwrap();
    let e = pipe.set_projection(other.path()).unwrap_err();
    assert_eq!(e.kind(), recog::ErrorKind::ModelMismatch, "{e}");
    assert!(e.to_string().contains("projection input"), "{e}");
}

/// `recog watch` follows faces between full detections: a face that moved a few pixels is
/// found where it went, with the descriptor a full detection gives it; a face that left is
/// dropped (not replaced by whatever the crop holds); two boxes on one face are one face.
#[test]
fn a_followed_face_moves_with_its_face_and_is_dropped_when_it_leaves() {
    let Some((home, _, img_path)) = paths_and_lfw_image() else {
        return;
    };
    let device = recog::default_device();
    let pipe = face::FacePipeline::standard(&home, &device, &recog::NoProgress).unwrap();
    let photo = recog::data::image_file::load_rgb(&img_path).unwrap();
    let frame = |dx: i64, dy: i64| {
        let mut f = image::RgbImage::from_pixel(640, 480, image::Rgb([80, 112, 80]));
        image::imageops::replace(&mut f, &photo, 100 + dx, 120 + dy);
        f
    };
    let first = frame(0, 0);
    let found = pipe
        .all_faces(std::slice::from_ref(&first))
        .unwrap()
        .remove(0);
    assert_eq!(found.len(), 1, "{found:?}");
    let last = found[0].0.clone();

    let moved = frame(12, 6);
    let followed = pipe
        .followed_faces(&moved, std::slice::from_ref(&last))
        .unwrap();
    assert_eq!(followed.len(), 1, "{followed:?}");
    let (now, e) = &followed[0];
    let ([x0, y0], [x1, y1]) = (last.centre(), now.centre());
    assert!(
        (x1 - x0 - 12.0).abs() < 3.0 && (y1 - y0 - 6.0).abs() < 3.0,
        "moved by ({}, {})",
        x1 - x0,
        y1 - y0
    );
    assert_eq!(now.landmarks.len(), 68, "landmarks for the alignment");
    let full = pipe
        .all_faces(std::slice::from_ref(&moved))
        .unwrap()
        .remove(0);
    let d = recog::metric::distance::euclidean(e, &full[0].1);
    assert!(d < 0.1, "followed vs fully detected descriptor: {d}");

    let gone = image::RgbImage::from_pixel(640, 480, image::Rgb([80, 112, 80]));
    assert!(pipe
        .follow(&gone, std::slice::from_ref(&last))
        .unwrap()
        .is_empty());
    assert_eq!(
        pipe.follow(&moved, &[last.clone(), last.clone()])
            .unwrap()
            .len(),
        1
    );
    assert!(pipe.follow(&moved, &[]).unwrap().is_empty());
}
