//! BlazeFace, MediaPipe's short-range (front camera) face detector.
//!
//! Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs",
//! 2019. The weights are the 128x128 "front" model as exported to ONNX for Unity Barracuda
//! (`face_detection_front_128x128_barracuda.onnx`); parameter names follow that file's
//! initializers (`StatefulPartitionedCall/functional_1/<layer>/...`).
//!
//! Layout: conv 5x5/2 3 -> 24 + relu, then 16 BlazeBlocks (depthwise 3x3 + pointwise 1x1,
//! residual sum, relu; a stride-2 block max-pools its shortcut; a block that widens pads
//! its shortcut with zero channels). Two heads read the 16x16x88 map (2 anchors per cell)
//! and two the 8x8x96 map (6 anchors per cell): a score and 16 regressors per anchor
//! (box centre offset, width, height, six keypoints; in input pixels).
//!
//! ```no_run
//! let paths = recog::face::ModelPaths::in_home(&recog::Home::from_env());
//! let det = recog::face::BlazeFaceDetector::load(&paths.blazeface, &recog::default_device())?;
//! # let _ = det;
//! # Ok::<(), recog::Error>(())
//! ```

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions, PadMode};
use serde::{Deserialize, Serialize};

use super::cpu;
use crate::weights::{param, WeightMap};
use crate::Result;

const PREFIX: &str = "StatefulPartitionedCall/functional_1/";

/// Configuration of [`BlazeFace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlazeFaceConfig {
    /// Input side in pixels.
    pub input_size: usize,
    /// Channels and stride of each BlazeBlock: (in, out, stride).
    pub blocks: Vec<(usize, usize, usize)>,
    /// Index of the block whose output feeds the 16x16 heads.
    pub first_head_after: usize,
    /// Anchors per cell on the two feature maps.
    pub anchors_per_cell: [usize; 2],
}

impl BlazeFaceConfig {
    /// The 128x128 front-camera model.
    pub fn front() -> Self {
        let chans = [
            (24, 24, 1),
            (24, 28, 1),
            (28, 32, 2),
            (32, 36, 1),
            (36, 42, 1),
            (42, 48, 2),
            (48, 56, 1),
            (56, 64, 1),
            (64, 72, 1),
            (72, 80, 1),
            (80, 88, 1),
            (88, 96, 2),
            (96, 96, 1),
            (96, 96, 1),
            (96, 96, 1),
            (96, 96, 1),
        ];
        Self {
            input_size: 128,
            blocks: chans.to_vec(),
            first_head_after: 10,
            anchors_per_cell: [2, 6],
        }
    }

    /// Builds the network from the ONNX initializers.
    pub fn load(&self, map: &mut WeightMap, device: &Device) -> Result<BlazeFace> {
        let w = |i: usize| {
            if i == 0 {
                "conv2d".to_string()
            } else {
                format!("conv2d_{i}")
            }
        };
        let conv = |map: &mut WeightMap, name: &str, cout: usize, cin: usize, k: usize| {
            Ok::<_, crate::Error>(PointConv {
                weight: param(
                    map,
                    &format!("{PREFIX}{name}/Conv2D/ReadVariableOp:0"),
                    &[cout, cin, k, k],
                    device,
                )?,
                bias: param(
                    map,
                    &format!("{PREFIX}{name}/BiasAdd/ReadVariableOp:0"),
                    &[cout],
                    device,
                )?,
            })
        };
        let stem = conv(map, "conv2d", 24, 3, 5)?;
        let mut blocks = Vec::new();
        for (i, &(cin, cout, stride)) in self.blocks.iter().enumerate() {
            let dw_name = if i == 0 {
                "depthwise_conv2d".to_string()
            } else {
                format!("depthwise_conv2d_{i}")
            };
            blocks.push(BlazeBlock {
                depthwise: param(
                    map,
                    &format!("{PREFIX}{dw_name}/depthwise/ReadVariableOp:0"),
                    &[cin, 1, 3, 3],
                    device,
                )?,
                pointwise: conv(map, &w(i + 1), cout, cin, 1)?,
                stride,
            });
        }
        let c16 = self.blocks[self.first_head_after].1;
        let c8 = self.blocks[self.blocks.len() - 1].1;
        let [a16, a8] = self.anchors_per_cell;
        Ok(BlazeFace {
            conv2d: stem,
            blocks,
            first_head_after: self.first_head_after,
            cls16: conv(map, "conv2d_17", a16, c16, 1)?,
            cls8: conv(map, "conv2d_18", a8, c8, 1)?,
            reg16: conv(map, "conv2d_19", a16 * 16, c16, 1)?,
            reg8: conv(map, "conv2d_20", a8 * 16, c8, 1)?,
        })
    }
}

/// A convolution with bias (the stem, the pointwise convs and the heads).
#[derive(Module, Debug)]
pub struct PointConv {
    /// `Conv2D/ReadVariableOp:0`, `[out, in, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// `BiasAdd/ReadVariableOp:0`.
    pub bias: Param<Tensor<1>>,
}

impl PointConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.val(),
            Some(self.bias.val()),
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        )
    }
}

/// Depthwise 3x3 + pointwise 1x1 with a residual shortcut.
#[derive(Module, Debug)]
pub struct BlazeBlock {
    /// `depthwise/ReadVariableOp:0`, `[channels, 1, 3, 3]`, no bias.
    pub depthwise: Param<Tensor<4>>,
    /// The 1x1 conv that follows.
    pub pointwise: PointConv,
    /// 1 or 2.
    pub stride: usize,
}

impl BlazeBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.depthwise.dims()[0];
        // TF "same" padding: symmetric for stride 1, bottom/right only for stride 2. The
        // asymmetric case is padded beforehand: burn-flex's fast depthwise kernel only takes
        // symmetric padding, and its general path made these blocks 3x slower.
        let h = if self.stride == 1 {
            conv2d(
                x.clone(),
                self.depthwise.val(),
                None,
                ConvOptions::new([1, 1], [1, 1], [1, 1], c),
            )
        } else {
            conv2d(
                x.clone()
                    .pad([(0, 0), (0, 0), (0, 1), (0, 1)], PadMode::Constant(0.0)),
                self.depthwise.val(),
                None,
                ConvOptions::new([2, 2], [0, 0], [1, 1], c),
            )
        };
        let h = self.pointwise.forward(h);
        let mut skip = if self.stride == 2 {
            max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]))
        } else {
            x
        };
        let cout = h.dims()[1];
        if cout > c {
            skip = skip.pad(
                [(0, 0), (0, cout - c), (0, 0), (0, 0)],
                PadMode::Constant(0.0),
            );
        }
        burn::tensor::activation::relu(h + skip)
    }
}

/// Raw BlazeFace outputs for a batch, anchors in [16x16 x 2, then 8x8 x 6] order.
#[derive(Debug, Clone)]
pub struct BlazeOutput {
    /// Logits `[batch, anchors]`.
    pub scores: Tensor<2>,
    /// Regressors `[batch, anchors, 16]`, in input pixels relative to the anchor centre.
    pub boxes: Tensor<3>,
}

/// The BlazeFace network.
#[derive(Module, Debug)]
pub struct BlazeFace {
    /// Stem conv 5x5/2.
    pub conv2d: PointConv,
    /// The BlazeBlocks.
    pub blocks: Vec<BlazeBlock>,
    /// Index of the block that feeds the 16x16 heads.
    pub first_head_after: usize,
    /// Scores on the 16x16 map (`conv2d_17`).
    pub cls16: PointConv,
    /// Scores on the 8x8 map (`conv2d_18`).
    pub cls8: PointConv,
    /// Regressors on the 16x16 map (`conv2d_19`).
    pub reg16: PointConv,
    /// Regressors on the 8x8 map (`conv2d_20`).
    pub reg8: PointConv,
}

/// [`BlazeFace`] for [`super::cpu`]'s kernels (what the detector runs on the CPU device):
/// channels-last, each ReLU in its convolution's epilogue, the shortcut's zero channels never
/// materialised.
#[derive(Debug, Clone)]
pub struct BlazeFaceCpu {
    stem: cpu::Conv,
    /// (depthwise, pointwise, stride).
    blocks: Vec<(cpu::Depthwise, cpu::Conv, usize)>,
    first_head_after: usize,
    /// cls16, reg16, cls8, reg8.
    heads: [cpu::Conv; 4],
}

impl BlazeFaceCpu {
    /// Runs the network on one `[h, w, 3]` image (RGB in [-1, 1]), `h` and `w` multiples of
    /// 16: (logits, regressors) in [`BlazeOutput`]'s anchor order. `None` for other sizes.
    pub fn forward(&self, x: &cpu::FeatureMap) -> Option<(Vec<f32>, Vec<f32>)> {
        if !x.h.is_multiple_of(16) || !x.w.is_multiple_of(16) || x.h == 0 || x.w == 0 {
            return None;
        }
        // TF SAME on even sides: the stem's (1, 2) padding and the stride-2 blocks' (0, 1),
        // as the burn path pads explicitly.
        let mut x = self.stem.run(x)?;
        let mut f16 = None;
        for (i, (dw, pw, stride)) in self.blocks.iter().enumerate() {
            let shortcut = if *stride == 2 {
                cpu::Shortcut::MaxPool2x2(&x)
            } else {
                cpu::Shortcut::Identity(&x)
            };
            let d = dw.run(&x)?;
            let y = pw.run_residual(&d, shortcut)?;
            cpu::recycle(d);
            cpu::recycle(std::mem::replace(&mut x, y));
            if i == self.first_head_after {
                f16 = Some(cpu::duplicate(&x));
            }
        }
        let f16 = f16.unwrap_or_else(|| x.clone());
        let [c16, r16, c8, r8] = &self.heads;
        let mut scores = c16.run(&f16)?.data;
        scores.extend(c8.run(&x)?.data);
        let mut regs = r16.run(&f16)?.data;
        regs.extend(r8.run(&x)?.data);
        cpu::recycle(f16);
        cpu::recycle(x);
        Some((scores, regs))
    }
}

impl BlazeFace {
    /// The same network for [`super::cpu`]'s kernels; `None` if a weight cannot be read.
    pub fn cpu(&self) -> Option<BlazeFaceCpu> {
        let values = |t: Tensor<4>| {
            let d = t.dims();
            t.into_data().try_to_vec::<f32>().ok().map(|v| (v, d))
        };
        let conv = |c: &PointConv, stride: usize, act: Option<cpu::Act>| {
            let (w, d) = values(c.weight.val())?;
            let b = c.bias.val().into_data().try_to_vec::<f32>().ok()?;
            cpu::Conv::from_oihw(&w, d, b, [stride, stride], true, act)
        };
        let mut blocks = Vec::new();
        for b in &self.blocks {
            let (w, d) = values(b.depthwise.val())?;
            let s = [b.stride, b.stride];
            blocks.push((
                cpu::Depthwise::from_c1hw(&w, d, Vec::new(), s, true, None)?,
                conv(&b.pointwise, 1, None)?,
                b.stride,
            ));
        }
        Some(BlazeFaceCpu {
            stem: conv(&self.conv2d, 2, Some(cpu::Act::Relu))?,
            blocks,
            first_head_after: self.first_head_after,
            heads: [
                conv(&self.cls16, 1, None)?,
                conv(&self.reg16, 1, None)?,
                conv(&self.cls8, 1, None)?,
                conv(&self.reg8, 1, None)?,
            ],
        })
    }

    /// Runs the detector network.
    ///
    /// - input: `[batch, 3, 128, 128]`, RGB scaled to [-1, 1]
    /// - output: 896 anchor logits and regressors per image
    pub fn forward(&self, x: Tensor<4>) -> BlazeOutput {
        let x = x.pad([(0, 0), (0, 0), (1, 2), (1, 2)], PadMode::Constant(0.0));
        let x = conv2d(
            x,
            self.conv2d.weight.val(),
            Some(self.conv2d.bias.val()),
            ConvOptions::new([2, 2], [0, 0], [1, 1], 1),
        );
        let mut x = burn::tensor::activation::relu(x);
        let mut f16 = None;
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.forward(x);
            if i == self.first_head_after {
                f16 = Some(x.clone());
            }
        }
        let f16 = f16.unwrap_or_else(|| x.clone());
        let n = x.dims()[0];
        let nhwc = |t: Tensor<4>, per: usize| -> Tensor<3> {
            let [b, c, h, w] = t.dims();
            t.permute([0, 2, 3, 1]).reshape([b, h * w * c / per, per])
        };
        let s16 = nhwc(self.cls16.forward(f16.clone()), 1);
        let s8 = nhwc(self.cls8.forward(x.clone()), 1);
        let r16 = nhwc(self.reg16.forward(f16), 16);
        let r8 = nhwc(self.reg8.forward(x), 16);
        let scores: Tensor<3> = Tensor::cat(vec![s16, s8], 1);
        let a = scores.dims()[1];
        BlazeOutput {
            scores: scores.reshape([n, a]),
            boxes: Tensor::cat(vec![r16, r8], 1),
        }
    }
}
