//! face-api.js's 68-point face landmark network (`face_landmark_68_model`).
//!
//! A small DenseNet-style regressor (Huang et al., "Densely Connected Convolutional Networks",
//! 2017) of depthwise-separable convolutions (Howard et al., "MobileNets", 2017): four dense
//! blocks of four convs (32, 64, 128, 256 channels, each block halving the resolution, the
//! first conv of the network a plain 3x3), 7x7 average pooling, and a fully connected layer to
//! the 68 (x, y) points of the iBUG 300-W annotation (dlib's `shape_predictor_68` layout), as
//! fractions of the 112x112 input. Parameter names follow face-api.js
//! (`dense0/conv1/depthwise_filter`, `fc/weights`).
//!
//! ```no_run
//! use recog::nn::face_landmark68::FaceLandmark68Config;
//! let paths = recog::face::ModelPaths::in_home(&recog::Home::from_env());
//! let mut map = recog::weights::tfjs::load(&paths.landmark68)?;
//! let net = FaceLandmark68Config::face_api().load(&mut map, &recog::default_device())?;
//! # let _ = net;
//! # Ok::<(), recog::Error>(())
//! ```

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions};
use serde::{Deserialize, Serialize};

use super::cpu;
use crate::weights::{param, WeightMap};
use crate::Result;

/// Configuration of [`FaceLandmark68`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceLandmark68Config {
    /// Input side (112).
    pub input_size: usize,
    /// Channels of the four dense blocks.
    pub widths: [usize; 4],
    /// RGB mean subtracted from 0..255 pixels before dividing by 255.
    pub mean_rgb: [f32; 3],
}

impl FaceLandmark68Config {
    /// face-api.js's full landmark model.
    pub fn face_api() -> Self {
        Self {
            input_size: 112,
            widths: [32, 64, 128, 256],
            mean_rgb: [122.782, 117.001, 104.298],
        }
    }

    /// Builds the network from the face-api.js weight map.
    pub fn load(&self, map: &mut WeightMap, device: &Device) -> Result<FaceLandmark68> {
        let mut blocks = Vec::new();
        let mut cin = 3;
        for (b, &w) in self.widths.iter().enumerate() {
            let mut convs = Vec::new();
            for c in 0..4 {
                let prefix = format!("dense{b}/conv{c}");
                let conv_in = if c == 0 { cin } else { w };
                if b == 0 && c == 0 {
                    // TF [k, k, in, out] -> burn [out, in, k, k].
                    let name = format!("{prefix}/filters");
                    let f = map.take(&name, &[3, 3, conv_in, w])?.permute(&[3, 2, 0, 1]);
                    convs.push(SepConv {
                        depthwise: None,
                        pointwise: Param::from_tensor(f.to_tensor(&name, device)?),
                        bias: param(map, &format!("{prefix}/bias"), &[w], device)?,
                    });
                } else {
                    let dn = format!("{prefix}/depthwise_filter");
                    let d = map.take(&dn, &[3, 3, conv_in, 1])?.permute(&[2, 3, 0, 1]);
                    let pn = format!("{prefix}/pointwise_filter");
                    let p = map.take(&pn, &[1, 1, conv_in, w])?.permute(&[3, 2, 0, 1]);
                    convs.push(SepConv {
                        depthwise: Some(Param::from_tensor(d.to_tensor(&dn, device)?)),
                        pointwise: Param::from_tensor(p.to_tensor(&pn, device)?),
                        bias: param(map, &format!("{prefix}/bias"), &[w], device)?,
                    });
                }
            }
            blocks.push(DenseBlock { convs });
            cin = w;
        }
        Ok(FaceLandmark68 {
            blocks,
            fc_weights: param(map, "fc/weights", &[cin, 136], device)?,
            fc_bias: param(map, "fc/bias", &[136], device)?,
            mean_rgb: self.mean_rgb,
        })
    }
}

/// A depthwise-separable conv with bias (or a plain conv when `depthwise` is `None`).
#[derive(Module, Debug)]
pub struct SepConv {
    /// `depthwise_filter`, `[channels, 1, 3, 3]`.
    pub depthwise: Option<Param<Tensor<4>>>,
    /// `pointwise_filter` (`[out, in, 1, 1]`) or, for the first conv, `filters` (`[out, in, 3, 3]`).
    pub pointwise: Param<Tensor<4>>,
    /// `bias`.
    pub bias: Param<Tensor<1>>,
}

impl SepConv {
    fn forward(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        // TF "same": stride 1 pads 1 on each side; stride 2 on even sizes pads bottom/right.
        let pad = if stride == 1 {
            [(1, 1), (1, 1)]
        } else {
            [(0, 1), (0, 1)]
        };
        match &self.depthwise {
            Some(d) => {
                let c = d.dims()[0];
                let h = conv2d(
                    x,
                    d.val(),
                    None,
                    ConvOptions::new_with_padding([stride; 2], pad, [1, 1], c),
                );
                conv2d(
                    h,
                    self.pointwise.val(),
                    Some(self.bias.val()),
                    ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                )
            }
            None => conv2d(
                x,
                self.pointwise.val(),
                Some(self.bias.val()),
                ConvOptions::new_with_padding([stride; 2], pad, [1, 1], 1),
            ),
        }
    }
}

/// Four separable convs with dense (summed) connections.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// conv0 (stride 2) .. conv3.
    pub convs: Vec<SepConv>,
}

impl DenseBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let relu = burn::tensor::activation::relu;
        let out1 = relu(self.convs[0].forward(x, 2));
        let out2 = self.convs[1].forward(out1.clone(), 1);
        let in3 = relu(out1.clone() + out2.clone());
        let out3 = self.convs[2].forward(in3, 1);
        let in4 = relu(out1.clone() + out2.clone() + out3.clone());
        let out4 = self.convs[3].forward(in4, 1);
        relu(out1 + out2 + out3 + out4)
    }
}

/// The landmark network.
#[derive(Module, Debug)]
pub struct FaceLandmark68 {
    /// dense0 .. dense3.
    pub blocks: Vec<DenseBlock>,
    /// `fc/weights`, `[256, 136]`.
    pub fc_weights: Param<Tensor<2>>,
    /// `fc/bias`.
    pub fc_bias: Param<Tensor<1>>,
    /// Input normalisation mean.
    pub mean_rgb: [f32; 3],
}

/// [`FaceLandmark68`] for [`super::cpu`]'s kernels (what the landmarker runs on the CPU
/// device): channels-last, each dense block's running sum kept in one map.
#[derive(Debug, Clone)]
pub struct FaceLandmark68Cpu {
    /// Per block, four (depthwise or none, convolution with bias).
    blocks: Vec<Vec<(Option<cpu::Depthwise>, cpu::Conv)>>,
    /// `[256, 136]`.
    fc_weights: Vec<f32>,
    fc_bias: Vec<f32>,
    mean_rgb: [f32; 3],
}

impl FaceLandmark68Cpu {
    /// Landmarks of one `[112, 112, 3]` crop (RGB 0..255): 136 fractions of the crop side,
    /// as [`FaceLandmark68::forward`]. `None` if the crop does not fit the network.
    pub fn forward(&self, x: &cpu::FeatureMap) -> Option<Vec<f32>> {
        if x.c != 3 || !x.is_consistent() {
            return None;
        }
        let mut x = x.clone();
        for px in x.data.chunks_exact_mut(3) {
            px.iter_mut()
                .zip(self.mean_rgb)
                .for_each(|(v, m)| *v = (*v - m) / 255.0);
        }
        // Intermediate maps go back to the kernels' spare storage (`cpu::recycle`) as soon
        // as they are read: fresh zeroed outputs were a large share of the CPU path's time.
        let sep = |(d, c): &(Option<cpu::Depthwise>, cpu::Conv), x: &cpu::FeatureMap| match d {
            Some(d) => {
                let t = d.run(x)?;
                let y = c.run(&t);
                cpu::recycle(t);
                y
            }
            None => c.run(x),
        };
        let relu = |m: &mut cpu::FeatureMap| m.data.iter_mut().for_each(|v| *v = v.max(0.0));
        // `sep(conv, relu(sum))`, with the ReLU'd copy in spare storage.
        let sep_relu = |conv: &(Option<cpu::Depthwise>, cpu::Conv), sum: &cpu::FeatureMap| {
            let mut r = cpu::duplicate(sum);
            relu(&mut r);
            let y = sep(conv, &r);
            cpu::recycle(r);
            y
        };
        let add = |sum: &mut cpu::FeatureMap, out: cpu::FeatureMap| {
            let done = cpu::add(sum, &out);
            cpu::recycle(out);
            done
        };
        for convs in &self.blocks {
            let [c0, c1, c2, c3] = &convs[..] else {
                return None;
            };
            // out1 = relu(c0(x)); then the sum of the outputs so far, relu'd, feeds the next
            // conv; summed left to right as the burn path does.
            let mut sum = sep(c0, &x)?;
            relu(&mut sum);
            let out2 = sep(c1, &sum)?;
            add(&mut sum, out2)?;
            let out3 = sep_relu(c2, &sum)?;
            add(&mut sum, out3)?;
            let out4 = sep_relu(c3, &sum)?;
            add(&mut sum, out4)?;
            relu(&mut sum);
            cpu::recycle(std::mem::replace(&mut x, sum));
        }
        // 7x7 average pooling (stride 2) over the final 7x7 map: one window.
        if x.h != 7 || x.w != 7 {
            return None;
        }
        let c = x.c;
        let mut pooled = vec![0f32; c];
        for px in x.data.chunks_exact(c) {
            pooled.iter_mut().zip(px).for_each(|(p, v)| *p += v);
        }
        pooled.iter_mut().for_each(|p| *p /= 49.0);
        let mut out = vec![0f32; self.fc_bias.len()];
        cpu::matmul(
            &pooled,
            &self.fc_weights,
            &mut out,
            1,
            c,
            self.fc_bias.len(),
        )?;
        out.iter_mut().zip(&self.fc_bias).for_each(|(o, b)| *o += b);
        Some(out)
    }
}

impl FaceLandmark68 {
    /// The same network for [`super::cpu`]'s kernels; `None` if a weight cannot be read.
    pub fn cpu(&self) -> Option<FaceLandmark68Cpu> {
        let values = |t: Tensor<4>| {
            let d = t.dims();
            t.into_data().try_to_vec::<f32>().ok().map(|v| (v, d))
        };
        let mut blocks = Vec::new();
        for b in &self.blocks {
            let mut convs = Vec::new();
            for (k, c) in b.convs.iter().enumerate() {
                let stride = if k == 0 { 2 } else { 1 };
                let bias = c.bias.val().into_data().try_to_vec::<f32>().ok()?;
                let (pw, pd) = values(c.pointwise.val())?;
                let pair = match &c.depthwise {
                    Some(d) => {
                        let (dw, dd) = values(d.val())?;
                        (
                            Some(cpu::Depthwise::from_c1hw(
                                &dw,
                                dd,
                                Vec::new(),
                                [stride; 2],
                                true,
                                None,
                            )?),
                            cpu::Conv::from_oihw(&pw, pd, bias, [1, 1], true, None)?,
                        )
                    }
                    None => (
                        None,
                        cpu::Conv::from_oihw(&pw, pd, bias, [stride; 2], true, None)?,
                    ),
                };
                convs.push(pair);
            }
            blocks.push(convs);
        }
        Some(FaceLandmark68Cpu {
            blocks,
            fc_weights: self.fc_weights.val().into_data().try_to_vec::<f32>().ok()?,
            fc_bias: self.fc_bias.val().into_data().try_to_vec::<f32>().ok()?,
            mean_rgb: self.mean_rgb,
        })
    }

    /// Landmarks of face crops.
    ///
    /// - input: `[batch, 3, 112, 112]`, RGB 0..255
    /// - output: `[batch, 136]`, (x0, y0, x1, y1, ...) as fractions of the input side
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let device = x.device();
        let mean = Tensor::<1>::from_floats(self.mean_rgb, &device).reshape([1, 3, 1, 1]);
        let mut x = (x - mean).div_scalar(255.0);
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = avg_pool2d(x, AvgPoolOptions::new([7, 7]).with_stride([2, 2]));
        let [n, c, _, _] = x.dims();
        x.reshape([n, c]).matmul(self.fc_weights.val()) + self.fc_bias.val().unsqueeze::<2>()
    }
}
