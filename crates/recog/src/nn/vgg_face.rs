//! VGG-Face, exactly as the notebook builds it in Keras.
//!
//! Parkhi, Vedaldi, Zisserman, "Deep Face Recognition", BMVC 2015. Thirteen 3x3 convolutions
//! (each after a 1-pixel zero padding, relu) in five blocks of 64, 128, 256, 512, 512 channels
//! separated by 2x2 max-pooling; fc6 as a 7x7 convolution to 4096 (relu), fc7 as 1x1 to 4096
//! (relu), fc8 as 1x1 to 2622 (the identities of the training set), flatten. The notebook's
//! "descriptor" is the 2622-d fc8 output before the softmax; the 4096-d fc7 output is the
//! other common choice ([`VggOutput::Fc7`]).
//!
//! Weights come from the notebook's `vgg_face_weights.h5` (Keras 2 `save_weights`): the 16
//! layers that hold weights, in model order, whatever their Keras names.
//!
//! ```no_run
//! use recog::face::Embedder;
//! let home = recog::Home::from_env();
//! let e = recog::face::VggFaceEmbedder::load(&home.vgg_face()?, recog::nn::VggOutput::Fc8, &recog::default_device())?;
//! assert_eq!(e.dim(), 2622);
//! # Ok::<(), recog::Error>(())
//! ```

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use serde::{Deserialize, Serialize};

use crate::weights::hdf5::KerasLayer;
use crate::weights::WeightMap;
use crate::{Error, Result};

/// Which layer's output is the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VggOutput {
    /// fc8, 2622-d, before the softmax (the notebook's descriptor).
    Fc8,
    /// fc7, 4096-d, after its relu.
    Fc7,
}

/// Configuration of [`VggFace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VggFaceConfig {
    /// Input side (224).
    pub input_size: usize,
    /// Output channels of the 13 convolutions.
    pub conv_widths: Vec<usize>,
    /// Width of fc6 and fc7.
    pub fc_width: usize,
    /// Identities (fc8 width).
    pub classes: usize,
    /// Which output [`VggFace::forward`] returns.
    pub output: VggOutput,
}

impl VggFaceConfig {
    /// The published network.
    pub fn vgg_face() -> Self {
        Self::reduced(1)
    }

    /// Every width divided by `div` (fc8 keeps 2622): for tests on small generated files.
    pub fn reduced(div: usize) -> Self {
        let div = div.max(1);
        let mut conv_widths = Vec::new();
        for (w, n) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
            conv_widths.extend(std::iter::repeat_n(w / div, n));
        }
        Self {
            input_size: 224,
            conv_widths,
            fc_width: 4096 / div,
            classes: 2622,
            output: VggOutput::Fc8,
        }
    }

    /// The configuration a Keras weights file holds, read off its kernel shapes: 16 layers
    /// with weights, thirteen 3x3 convolutions in blocks of 2, 2, 3, 3, 3 equal widths, each
    /// taking the previous one's channels (3 for the first), then a 7x7 fc6 and two 1x1
    /// layers. Anything else is an error naming the layer and its shape. The published
    /// network reads as [`VggFaceConfig::vgg_face`]; test files of reduced width read as
    /// what they are.
    pub fn from_layers(map: &WeightMap, layers: &[KerasLayer], output: VggOutput) -> Result<Self> {
        let err = |problem: String| Error::Checkpoint {
            path: map.source.clone(),
            problem,
        };
        if layers.len() != 16 {
            return Err(err(format!(
                "VGG-Face has 16 layers with weights, the file has {}",
                layers.len()
            )));
        }
        let mut cin = 3;
        let mut widths = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let kname = l
                .weights
                .first()
                .ok_or_else(|| err(format!("layer {} should hold kernel and bias", l.name)))?;
            let shape = map
                .tensors
                .get(kname)
                .map(|t| t.shape.clone())
                .unwrap_or_default();
            let k = match i {
                0..=12 => 3,
                13 => 7,
                _ => 1,
            };
            match shape.as_slice() {
                &[kh, kw, ci, co] if kh == k && kw == k && ci == cin && co > 0 => {
                    widths.push(co);
                    cin = co;
                }
                _ => {
                    return Err(err(format!(
                        "{kname}: expected a [{k}, {k}, {cin}, out] kernel, got {shape:?}"
                    )))
                }
            }
        }
        let mut start = 0;
        for n in [2, 2, 3, 3, 3] {
            let block = &widths[start..start + n];
            if block.iter().any(|&w| w != block[0]) {
                return Err(err(format!(
                    "convolutions {}..{} should share one width, got {block:?}",
                    start + 1,
                    start + n
                )));
            }
            start += n;
        }
        if widths[13] != widths[14] {
            return Err(err(format!(
                "fc6 and fc7 should share one width, got {} and {}",
                widths[13], widths[14]
            )));
        }
        Ok(Self {
            input_size: 224,
            conv_widths: widths[..13].to_vec(),
            fc_width: widths[13],
            classes: widths[15],
            output,
        })
    }

    /// Builds the network from a Keras weights file's layers (see
    /// [`crate::weights::hdf5::load_keras`]); shapes are checked layer by layer.
    pub fn load(
        &self,
        map: &mut WeightMap,
        layers: &[KerasLayer],
        device: &Device,
    ) -> Result<VggFace> {
        let mut shapes: Vec<(usize, usize, usize)> = Vec::new(); // (k, in, out)
        let mut cin = 3;
        for &w in &self.conv_widths {
            shapes.push((3, cin, w));
            cin = w;
        }
        shapes.push((7, cin, self.fc_width));
        shapes.push((1, self.fc_width, self.fc_width));
        shapes.push((1, self.fc_width, self.classes));
        if layers.len() != shapes.len() {
            return Err(Error::Checkpoint {
                path: map.source.clone(),
                problem: format!(
                    "VGG-Face has {} layers with weights, the file has {} ({})",
                    shapes.len(),
                    layers.len(),
                    layers
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let mut convs = Vec::new();
        for (layer, &(k, cin, cout)) in layers.iter().zip(&shapes) {
            let [kname, bname] = match layer.weights.as_slice() {
                [a, b] => [a.clone(), b.clone()],
                _ => {
                    return Err(Error::Checkpoint {
                        path: map.source.clone(),
                        problem: format!("layer {} should hold kernel and bias", layer.name),
                    })
                }
            };
            // Keras kernels are [kh, kw, in, out]; burn convolves with [out, in, kh, kw].
            let kernel = map.take(&kname, &[k, k, cin, cout])?.permute(&[3, 2, 0, 1]);
            let bias = map.take(&bname, &[cout])?;
            convs.push(KerasConv {
                name: layer.name.clone(),
                kernel: Param::from_tensor(kernel.to_tensor(&kname, device)?),
                bias: Param::from_tensor(bias.to_tensor(&bname, device)?),
            });
        }
        Ok(VggFace {
            convs,
            blocks: vec![2, 2, 3, 3, 3],
            output_fc7: self.output == VggOutput::Fc7,
        })
    }
}

/// One Keras convolution (or fc layer written as a convolution).
#[derive(Module, Debug)]
pub struct KerasConv {
    /// The Keras layer name in the weights file.
    pub name: String,
    /// `kernel:0`, stored as `[out, in, k, k]`.
    pub kernel: Param<Tensor<4>>,
    /// `bias:0`.
    pub bias: Param<Tensor<1>>,
}

impl KerasConv {
    fn forward(&self, x: Tensor<4>, pad: usize) -> Tensor<4> {
        conv2d(
            x,
            self.kernel.val(),
            Some(self.bias.val()),
            ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
        )
    }
}

/// VGG-Face.
#[derive(Module, Debug)]
pub struct VggFace {
    /// conv1_1 .. conv5_3, fc6, fc7, fc8, in model order.
    pub convs: Vec<KerasConv>,
    /// Convolutions per block.
    pub blocks: Vec<usize>,
    /// Return fc7 instead of fc8.
    pub output_fc7: bool,
}

/// The notebook's preprocessing (Keras `preprocess_input`, "caffe" mode) of RGB 0..255
/// pixels laid out `[batch, 3, H, W]`: reorder to BGR and subtract the ImageNet means.
pub fn preprocess(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let bgr = x.flip([1]);
    let mean = Tensor::<1>::from_floats([103.939, 116.779, 123.68], &device).reshape([1, 3, 1, 1]);
    bgr - mean
}

impl VggFace {
    /// Descriptors.
    ///
    /// - input: `[batch, 3, 224, 224]`, RGB 0..255 (preprocessing is applied here)
    /// - output: `[batch, 2622]` (fc8) or `[batch, 4096]` (fc7)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let relu = burn::tensor::activation::relu;
        let mut x = preprocess(x);
        let mut i = 0;
        for &n in &self.blocks {
            for _ in 0..n {
                x = relu(self.convs[i].forward(x, 1));
                i += 1;
            }
            x = max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
        }
        x = relu(self.convs[i].forward(x, 0));
        x = relu(self.convs[i + 1].forward(x, 0));
        let out = if self.output_fc7 {
            x
        } else {
            self.convs[i + 2].forward(x, 0)
        };
        let [b, c, h, w] = out.dims();
        out.reshape([b, c * h * w])
    }
}
