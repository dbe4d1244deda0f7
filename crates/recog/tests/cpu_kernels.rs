//! recog's CPU kernels (`nn::cpu`) against burn's `conv2d` on the same data, and their
//! refusals of maps they cannot run on. No model files needed.

mod common;
use common::{max_abs_diff, zero_map};

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::TensorData;
use rand::{Rng, SeedableRng};
use recog::nn::cpu::{Act, Conv, Depthwise, FeatureMap};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

/// burn's `conv2d` on the same data, NCHW, as the reference.
#[allow(clippy::too_many_arguments)]
fn burn_conv(
    x: &FeatureMap,
    w_hwio: &[f32],
    kh: usize,
    kw: usize,
    cout: usize,
    bias: &[f32],
    stride: usize,
    pad: [(usize, usize); 2],
    groups: usize,
) -> Vec<f32> {
    let d = recog::default_device();
    let (h, wd, c) = (x.h, x.w, x.c);
    let mut nchw = vec![0f32; c * h * wd];
    for y in 0..h {
        for xx in 0..wd {
            for ch in 0..c {
                nchw[(ch * h + y) * wd + xx] = x.data[(y * wd + xx) * c + ch];
            }
        }
    }
    let cin_g = c / groups;
    let mut w = vec![0f32; cout * cin_g * kh * kw];
    for o in 0..cout {
        for i in 0..cin_g {
            for ky in 0..kh {
                for kx in 0..kw {
                    // Dense: [kh, kw, cin, cout]; depthwise: [kh, kw, c].
                    let v = if groups == 1 {
                        w_hwio[((ky * kw + kx) * c + i) * cout + o]
                    } else {
                        w_hwio[(ky * kw + kx) * c + o]
                    };
                    w[((o * cin_g + i) * kh + ky) * kw + kx] = v;
                }
            }
        }
    }
    let y = conv2d(
        Tensor::<4>::from_data(TensorData::new(nchw, [1, c, h, wd]), &d),
        Tensor::from_data(TensorData::new(w, [cout, cin_g, kh, kw]), &d),
        Some(Tensor::from_data(
            TensorData::new(bias.to_vec(), [cout]),
            &d,
        )),
        ConvOptions::new_with_padding([stride, stride], pad, [1, 1], groups),
    );
    let [_, oc, oh, ow] = y.dims();
    let v = y.into_data().try_to_vec::<f32>().unwrap();
    let mut nhwc = vec![0f32; v.len()];
    for ch in 0..oc {
        for yy in 0..oh {
            for xx in 0..ow {
                nhwc[(yy * ow + xx) * oc + ch] = v[(ch * oh + yy) * ow + xx];
            }
        }
    }
    nhwc
}

#[test]
fn cpu_convolutions_match_burn() {
    // (h, w, cin, cout, k, stride, same): odd sizes make SAME pad unevenly.
    for (i, &(h, w, cin, cout, k, s, same)) in [
        (9, 7, 3, 8, 3, 2, true),
        (8, 8, 5, 6, 3, 1, true),
        (6, 5, 4, 7, 1, 1, false),
        (7, 7, 4, 3, 7, 1, false),
        (10, 9, 6, 6, 1, 2, true),
        // Large enough to be split into bands of rows that run in parallel (odd row counts,
        // so the last band is short).
        (151, 97, 24, 24, 3, 1, true),
        (151, 97, 24, 32, 1, 1, true),
        (301, 203, 3, 24, 5, 2, true),
        (157, 96, 48, 8, 3, 2, false),
        (400, 300, 64, 8, 3, 1, true),
    ]
    .iter()
    .enumerate()
    {
        let x = FeatureMap {
            h,
            w,
            c: cin,
            data: random(h * w * cin, i as u64),
        };
        // TensorFlow's SAME: output ceil(n / s), the odd padding pixel after.
        let pad = |n: usize| {
            let need = ((n.div_ceil(s) - 1) * s + k).saturating_sub(n);
            (need / 2, need - need / 2)
        };
        let pads = if same { [pad(h), pad(w)] } else { [(0, 0); 2] };
        let wt = random(k * k * cin * cout, 100 + i as u64);
        let b = random(cout, 200 + i as u64);
        let conv = Conv::new(k, k, cin, cout, [s, s], same, wt.clone(), b.clone(), None);
        let got = conv.unwrap().run(&x).unwrap();
        let want = burn_conv(&x, &wt, k, k, cout, &b, s, pads, 1);
        assert!(max_abs_diff(&got.data, &want) < 1e-5, "conv case {i}");

        let wd = random(k * k * cin, 300 + i as u64);
        let bd = random(cin, 400 + i as u64);
        let dw = Depthwise::new(k, k, cin, [s, s], same, wd.clone(), bd.clone(), None);
        let got = dw.unwrap().run(&x).unwrap();
        let want = burn_conv(&x, &wd, k, k, cin, &bd, s, pads, cin);
        assert!(max_abs_diff(&got.data, &want) < 1e-5, "depthwise case {i}");
    }
}

#[test]
fn a_feature_map_of_the_wrong_depth_is_refused_not_read_past() {
    let conv = Conv::new(3, 3, 4, 2, [1, 1], true, vec![0.0; 72], vec![], None).unwrap();
    let x = zero_map(4, 4, 3);
    assert!(conv.run(&x).is_none());
    let short = FeatureMap {
        h: 4,
        w: 4,
        c: 4,
        data: vec![0.0; 60],
    };
    assert!(conv.run(&short).is_none());
    let tiny = zero_map(2, 2, 4);
    let valid = Conv::new(3, 3, 4, 2, [1, 1], false, vec![0.0; 72], vec![], None).unwrap();
    assert!(valid.run(&tiny).is_none());
}

#[test]
fn prelu_scales_only_the_negative_side() {
    let mut v = vec![-2.0, 3.0, -1.0];
    Act::PRelu(vec![0.5, 0.5, 0.25]).apply(&mut v);
    assert_eq!(v, vec![-1.0, 3.0, -0.25]);
}

/// The depthwise kernel's sums in the order it promises: the bias, then the taps in
/// (ky, kx) order, padding taps skipped, each as a multiply then an add.
fn depthwise_in_order(
    x: &FeatureMap,
    k: usize,
    s: usize,
    same: bool,
    w: &[f32],
    b: &[f32],
) -> Vec<f32> {
    let geo = |n: usize| {
        if same {
            let out = n.div_ceil(s);
            (out, ((out - 1) * s + k).saturating_sub(n) / 2)
        } else {
            ((n - k) / s + 1, 0)
        }
    };
    let ((oh, pt), (ow, pl), c) = (geo(x.h), geo(x.w), x.c);
    let mut out = Vec::with_capacity(oh * ow * c);
    for oy in 0..oh {
        for ox in 0..ow {
            for ch in 0..c {
                let mut acc = b[ch];
                for ky in 0..k {
                    for kx in 0..k {
                        let (iy, ix) = (oy * s + ky, ox * s + kx);
                        if iy < pt || ix < pl || iy - pt >= x.h || ix - pl >= x.w {
                            continue;
                        }
                        acc += x.data[((iy - pt) * x.w + ix - pl) * c + ch]
                            * w[(ky * k + kx) * c + ch];
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// The 3x3 depthwise kernel sweeps the outputs whose taps all lie inside the map apart
    /// from the border's: bit for bit the same sums, on any size, stride, padding and
    /// channel count (blocks of 8 and 4, and single channels).
    #[test]
    fn depthwise_inner_sweep_equals_the_border_path_bit_for_bit(
        h in 1usize..14, w in 1usize..14, c in 1usize..70,
        k in proptest::sample::select(vec![1usize, 3, 5]), s in 1usize..3, same: bool, seed: u64,
    ) {
        proptest::prop_assume!(same || (h >= k && w >= k));
        let x = FeatureMap { h, w, c, data: random(h * w * c, seed) };
        let wt = random(k * k * c, seed ^ 1);
        let b = random(c, seed ^ 2);
        let dw = Depthwise::new(k, k, c, [s, s], same, wt.clone(), b.clone(), None).unwrap();
        let got = dw.run(&x).unwrap();
        let want = depthwise_in_order(&x, k, s, same, &wt, &b);
        proptest::prop_assert_eq!(got.data, want);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(100))]
    /// A convolution set to bfloat16 gives the f32 convolution's outputs up to the rounding
    /// of its inputs: each sum within 2^-7 of the sum of its terms' magnitudes (two roundings
    /// of at most 2^-9 each, and f32 sums), on any size, stride, kernel and channel count,
    /// bands included. Below 32 output channels it stays f32, bit for bit.
    #[test]
    fn a_bf16_convolution_is_the_f32_one_up_to_input_rounding(
        h in 1usize..40, w in 1usize..40, cin in 1usize..70, cout in 1usize..100,
        k in proptest::sample::select(vec![1usize, 3]), s in 1usize..3, seed: u64,
    ) {
        use recog::nn::cpu::Precision;
        let x = FeatureMap { h, w, c: cin, data: random(h * w * cin, seed) };
        let wt = random(k * k * cin * cout, seed ^ 1);
        let b = random(cout, seed ^ 2);
        let f32_conv = Conv::new(k, k, cin, cout, [s, s], true, wt.clone(), b.clone(), None).unwrap();
        let mut bf = f32_conv.clone();
        bf.set_precision(Precision::Bf16);
        let want = f32_conv.run(&x).unwrap();
        let got = bf.run(&x).unwrap();
        if cout < 32 || Precision::effective(Precision::Bf16) == Precision::F32 {
            proptest::prop_assert_eq!(bf.precision(), Precision::F32);
            proptest::prop_assert_eq!(got.data, want.data);
            return Ok(());
        }
        proptest::prop_assert_eq!(bf.precision(), Precision::Bf16);
        // The magnitude of each output's terms: the same convolution of |x| and |w|.
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
        let mag_conv = Conv::new(k, k, cin, cout, [s, s], true, abs(&wt), vec![0.0; cout], None).unwrap();
        let mag = mag_conv.run(&FeatureMap { data: abs(&x.data), ..x.clone() }).unwrap();
        for ((g, w), m) in got.data.iter().zip(&want.data).zip(&mag.data) {
            proptest::prop_assert!((g - w).abs() <= m / 128.0 + 1e-6, "{} vs {} (terms {})", g, w, m);
        }
    }
}

/// `Conv::run_residual` is `add_relu(run(x), shortcut)`, bit for bit, with the shortcut as
/// it is or max-pooled, with fewer channels than the output, and on maps large enough to
/// run in bands; a shortcut of the wrong size is refused.
#[test]
fn a_fused_residual_equals_the_separate_add_and_relu() {
    use recog::nn::cpu::{add_relu, max_pool_2x2, Shortcut};
    for (i, &(h, w, cin, cout, cs, pooled)) in [
        (8, 6, 5, 7, 5, false),
        (9, 7, 4, 6, 3, true),
        (301, 203, 24, 28, 24, false),
        (300, 202, 24, 32, 24, true),
    ]
    .iter()
    .enumerate()
    {
        let x = FeatureMap {
            h,
            w,
            c: cin,
            data: random(h * w * cin, 500 + i as u64),
        };
        let skip = FeatureMap {
            h,
            w,
            c: cs,
            data: random(h * w * cs, 600 + i as u64),
        };
        let (s, dense_in) = if pooled {
            // The convolution runs on the pooled size, as after a stride-2 depthwise.
            let small = FeatureMap {
                h: h / 2,
                w: w / 2,
                c: cin,
                data: random(h / 2 * (w / 2) * cin, 700 + i as u64),
            };
            (Shortcut::MaxPool2x2(&skip), small)
        } else {
            (Shortcut::Identity(&skip), x.clone())
        };
        let conv = Conv::new(
            1,
            1,
            cin,
            cout,
            [1, 1],
            true,
            random(cin * cout, 800 + i as u64),
            random(cout, 900 + i as u64),
            None,
        )
        .unwrap();
        let got = conv.run_residual(&dense_in, s).unwrap();
        let mut want = conv.run(&dense_in).unwrap();
        let pooled_skip;
        let sref = if pooled {
            pooled_skip = max_pool_2x2(&skip).unwrap();
            &pooled_skip
        } else {
            &skip
        };
        add_relu(&mut want, sref).unwrap();
        assert_eq!(got, want, "case {i}");
    }
    let conv = Conv::new(1, 1, 2, 2, [1, 1], true, vec![1.0; 4], vec![], None).unwrap();
    let x = zero_map(4, 4, 2);
    assert!(conv
        .run_residual(&x, Shortcut::Identity(&zero_map(4, 3, 2)))
        .is_none());
    assert!(conv
        .run_residual(&x, Shortcut::Identity(&zero_map(4, 4, 3)))
        .is_none());
    assert!(conv
        .run_residual(&x, Shortcut::MaxPool2x2(&zero_map(4, 4, 2)))
        .is_none());
    // A shortcut of no channels adds nothing, pooled or not: ReLU of the convolution.
    let relu = conv.run(&x).unwrap().relu();
    for s in [
        Shortcut::Identity(&zero_map(4, 4, 0)),
        Shortcut::MaxPool2x2(&zero_map(8, 9, 0)),
    ] {
        assert_eq!(conv.run_residual(&x, s).unwrap(), relu);
    }
}

/// Outputs reuse recycled storage without clearing it, so every kernel must write every
/// value: with the spare storages full of NaN, each kernel still gives what it gives on
/// fresh storage (NaN left anywhere would make them differ).
#[test]
fn recycled_storage_full_of_nan_leaves_no_trace_in_outputs() {
    use recog::nn::cpu::{recycle, Shortcut};
    let x = FeatureMap {
        h: 23,
        w: 17,
        c: 12,
        data: random(23 * 17 * 12, 1000),
    };
    let dense = Conv::new(
        3,
        3,
        12,
        10,
        [2, 2],
        true,
        random(3 * 3 * 12 * 10, 1001),
        random(10, 1002),
        Some(Act::Relu),
    )
    .unwrap();
    let point = Conv::new(
        1,
        1,
        12,
        16,
        [1, 1],
        true,
        random(12 * 16, 1003),
        vec![],
        None,
    )
    .unwrap();
    let dw = Depthwise::new(
        3,
        3,
        12,
        [1, 1],
        true,
        random(9 * 12, 1004),
        random(12, 1005),
        None,
    )
    .unwrap();
    let run = || {
        (
            dense.run(&x).unwrap(),
            point.run_residual(&x, Shortcut::Identity(&x)).unwrap(),
            dw.run(&x).unwrap(),
        )
    };
    let fresh = run();
    let lens = [fresh.0.data.len(), fresh.1.data.len(), fresh.2.data.len()];
    // Spares a little larger than each output, which each output takes (a far larger one
    // it would leave to a larger map).
    let before = recog::nn::cpu::spare_values();
    for n in lens {
        recycle(FeatureMap {
            h: 1,
            w: 1,
            c: n + 7,
            data: vec![f32::NAN; n + 7],
        });
    }
    let reused = run();
    assert_eq!(
        recog::nn::cpu::spare_values(),
        before,
        "the outputs did not take the NaN spares"
    );
    assert_eq!(fresh, reused);
}

/// Regression: an output that leaves the kernels for good (a detector's logits, a
/// descriptor) took the smallest spare that held it, however large, so the spare storages
/// drained two or three large maps per network pass and four outputs in five were fresh,
/// page-faulting allocations in `recog bench face`. A small output now leaves a large
/// spare where it is.
#[test]
fn a_small_output_leaves_a_large_spare_to_a_large_map() {
    use recog::nn::cpu::{recycle, spare_values};
    let large = 100_000;
    recycle(FeatureMap {
        h: 1,
        w: 1,
        c: large,
        data: vec![0.0; large],
    });
    let held = spare_values();
    assert!(held >= large);
    let x = FeatureMap {
        h: 4,
        w: 4,
        c: 8,
        data: random(4 * 4 * 8, 1006),
    };
    let head = Conv::new(1, 1, 8, 2, [1, 1], true, random(16, 1007), vec![], None).unwrap();
    let logits = head.run(&x).unwrap();
    assert_eq!(logits.data.len(), 32);
    assert!(logits.data.capacity() < large);
    assert_eq!(spare_values(), held, "the 32 logits took the large spare");
}

/// A network input built from image bytes straight into spare storage: every value is
/// written, the image's at the top left and 0 beyond, whatever the storage held.
#[test]
fn an_interleaved_image_fills_the_whole_canvas_in_reused_storage() {
    use recog::nn::cpu::recycle;
    let (iw, ih, w, h) = (5, 3, 8, 6);
    let bytes: Vec<u8> = (0..iw * ih * 3).map(|i| (i * 7 % 256) as u8).collect();
    recycle(FeatureMap {
        h: 1,
        w: 1,
        c: w * h * 3,
        data: vec![f32::NAN; w * h * 3],
    });
    let m = FeatureMap::from_interleaved(&bytes, (iw, ih), 3, (w, h), |v| v as f32 + 0.5).unwrap();
    assert_eq!((m.h, m.w, m.c, m.data.len()), (h, w, 3, w * h * 3));
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let want = if x < iw && y < ih {
                    bytes[(y * iw + x) * 3 + c] as f32 + 0.5
                } else {
                    0.0
                };
                assert_eq!(m.data[(y * w + x) * 3 + c], want, "({x}, {y}, {c})");
            }
        }
    }
    // A canvas smaller than the image crops it; too few bytes is refused.
    let crop = FeatureMap::from_interleaved(&bytes, (iw, ih), 3, (2, 2), |v| v as f32).unwrap();
    let (x, y) = (1, 1);
    assert_eq!(crop.data[(y * 2 + x) * 3], bytes[(y * iw + x) * 3] as f32);
    assert!(FeatureMap::from_interleaved(&bytes[1..], (iw, ih), 3, (w, h), |v| v as f32).is_none());
}

/// A server that once met a huge photo must not keep its maps forever: the spare storages of
/// a thread stay under their cap, whatever is recycled.
#[test]
fn spare_storage_stays_bounded_after_huge_maps() {
    use recog::nn::cpu::{recycle, spare_values};
    let cap = 16 << 20;
    for n in [cap + 1, cap / 2, cap / 2, cap / 3, 1000, cap / 4] {
        recycle(FeatureMap {
            h: 1,
            w: 1,
            c: n,
            data: vec![0.0; n],
        });
        assert!(spare_values() <= cap, "{} values held", spare_values());
    }
    for _ in 0..100 {
        recycle(FeatureMap {
            h: 1,
            w: 1,
            c: 10,
            data: vec![0.0; 10],
        });
    }
    assert!(spare_values() <= cap);
}
