//! Frozen TensorFlow Lite graphs run on burn.
//!
//! Face-description networks published for phones (MobileFaceNet, ...) come as a frozen
//! graph rather than as layers, so recog runs the graph itself. Only the ops those networks
//! use are implemented; any other op is refused at load time with the tensor's name, never
//! half-run.
//!
//! TensorFlow is NHWC, burn's convolutions NCHW: every value is held as a rank-4 NCHW
//! tensor together with its TensorFlow rank. A TensorFlow `[N, C]` value is `[N, C, 1, 1]`
//! here, and a `[C]` constant broadcasts as `[1, C, 1, 1]`, so per-channel constants and
//! squeezed feature vectors need no special cases.
//!
//! ```no_run
//! let paths = recog::face::ModelPaths::in_home(&recog::Home::from_env());
//! let model = recog::weights::tflite::load(&paths.mobilefacenet)?;
//! let graph = recog::nn::tf_graph::TfGraph::from_tflite(&model, &recog::default_device())?;
//! # let _ = graph;
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::TensorData;

use crate::weights::tflite::{FusedActivation, Padding, TfLiteModel};
use crate::weights::HostTensor;
use crate::{Error, Result};

/// Element-wise ops of one input; also the activations TFLite fuses into other ops.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unary {
    Relu,
    Relu6,
    Abs,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Binary {
    Add,
    Sub,
    Mul,
}

#[derive(Debug, Clone)]
enum Op {
    Input,
    Const(Box<Tensor<4>>),
    Conv(Box<Conv>),
    Unary(Unary),
    Binary(Binary),
    /// Squeeze of the spatial axes: nothing to do in the NCHW layout.
    Squeeze,
}

#[derive(Debug, Clone)]
struct Conv {
    /// `[out, in / groups, kh, kw]`.
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    same: bool,
    /// Fused activation.
    act: Option<Unary>,
}

#[derive(Debug, Clone)]
struct Step {
    name: String,
    op: Op,
    /// Indices of earlier steps.
    inputs: Vec<usize>,
    /// TensorFlow rank of the value.
    rank: usize,
}

/// An executable graph: steps in topological order, one input, one output.
#[derive(Debug, Clone)]
pub struct TfGraph {
    steps: Vec<Step>,
    output: usize,
    source: PathBuf,
}

/// A constant as a broadcastable NCHW tensor.
fn const_nchw(t: &HostTensor, device: &Device) -> Option<Tensor<4>> {
    let (shape, host) = match t.shape.len() {
        0 => ([1, 1, 1, 1], t.clone()),
        1 => ([1, t.shape[0], 1, 1], t.clone()),
        2 => ([t.shape[0], t.shape[1], 1, 1], t.clone()),
        4 => {
            let p = t.permute(&[0, 3, 1, 2]);
            ([p.shape[0], p.shape[1], p.shape[2], p.shape[3]], p)
        }
        _ => return None,
    };
    Some(Tensor::from_data(TensorData::new(host.data, shape), device))
}

impl Unary {
    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Unary::Relu => burn::tensor::activation::relu(x),
            Unary::Relu6 => x.clamp(0.0, 6.0),
            Unary::Abs => x.abs(),
        }
    }
}

impl TfGraph {
    /// Runs the graph on an NCHW batch (the graph's NHWC input, transposed) and returns
    /// the output node as `[n, c]` (a TensorFlow rank-2 output).
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let out = self.run(x)?;
        let [n, c, h, w] = out.dims();
        if self.steps[self.output].rank != 2 || h != 1 || w != 1 {
            return Err(Error::Checkpoint {
                path: self.source.clone(),
                problem: format!(
                    "output {} has shape {:?}, expected a [batch, features] vector",
                    self.steps[self.output].name,
                    [n, c, h, w]
                ),
            });
        }
        Ok(out.reshape([n, c]))
    }

    fn run(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        // How many later steps read each value, so that it is dropped after its last use.
        let mut uses = vec![0usize; self.steps.len()];
        for s in &self.steps[..=self.output] {
            for &i in &s.inputs {
                uses[i] += 1;
            }
        }
        let mut vals: Vec<Option<Tensor<4>>> = vec![None; self.steps.len()];
        let mut x = Some(x);
        for (k, s) in self.steps[..=self.output].iter().enumerate() {
            let mut arg = |j: usize| -> Result<Tensor<4>> {
                let i = s.inputs[j];
                uses[i] -= 1;
                let v = if uses[i] == 0 {
                    vals[i].take()
                } else {
                    vals[i].clone()
                };
                v.ok_or_else(|| Error::Checkpoint {
                    path: self.source.clone(),
                    problem: format!("node {}: input {} has no value", s.name, i),
                })
            };
            let v = match &s.op {
                Op::Input => x.take().ok_or_else(|| Error::Checkpoint {
                    path: self.source.clone(),
                    problem: "input read twice".into(),
                })?,
                Op::Const(t) => t.as_ref().clone(),
                Op::Conv(c) => {
                    let Conv {
                        weight,
                        bias,
                        stride,
                        dilation,
                        groups,
                        same,
                        act,
                    } = c.as_ref();
                    let a = arg(0)?;
                    let [_, _, h, w] = a.dims();
                    let [_, _, kh, kw] = weight.dims();
                    let pad = if *same {
                        // TF "SAME": output ceil(in / stride); any odd padding goes after.
                        let p = |n: usize, k: usize, s: usize, d: usize| {
                            let out = n.div_ceil(s);
                            let need = ((out - 1) * s + (k - 1) * d + 1).saturating_sub(n);
                            (need / 2, need - need / 2)
                        };
                        [
                            p(h, kh, stride[0], dilation[0]),
                            p(w, kw, stride[1], dilation[1]),
                        ]
                    } else {
                        [(0, 0), (0, 0)]
                    };
                    let y = conv2d(
                        a,
                        weight.clone(),
                        bias.clone(),
                        ConvOptions::new_with_padding(*stride, pad, *dilation, *groups),
                    );
                    match act {
                        Some(u) => u.apply(y),
                        None => y,
                    }
                }
                Op::Unary(u) => u.apply(arg(0)?),
                Op::Binary(b) => {
                    let (l, r) = (arg(0)?, arg(1)?);
                    match b {
                        Binary::Add => l + r,
                        Binary::Sub => l - r,
                        Binary::Mul => l * r,
                    }
                }
                Op::Squeeze => arg(0)?,
            };
            vals[k] = Some(v);
        }
        vals[self.output].take().ok_or_else(|| Error::Checkpoint {
            path: self.source.clone(),
            problem: "the output was not computed".into(),
        })
    }

    /// Builds the executable graph of a TFLite model's first subgraph (one input, its
    /// first output).
    pub fn from_tflite(m: &TfLiteModel, device: &Device) -> Result<Self> {
        use crate::weights::tflite::op;
        let source = m.source.clone();
        let fail = |node: &str, problem: String| Error::Checkpoint {
            path: source.clone(),
            problem: format!("operator {node}: {problem}"),
        };
        let mut steps: Vec<Step> = Vec::new();
        let mut of_tensor: std::collections::HashMap<i32, usize> = Default::default();
        let tensor = |i: i32| {
            usize::try_from(i)
                .ok()
                .and_then(|i| m.tensors.get(i))
                .ok_or_else(|| fail(&format!("tensor {i}"), "no such tensor".into()))
        };
        let &input = m
            .inputs
            .first()
            .ok_or_else(|| fail("-", "the subgraph has no input".into()))?;
        of_tensor.insert(input, 0);
        steps.push(Step {
            name: tensor(input)?.name.clone(),
            op: Op::Input,
            inputs: Vec::new(),
            rank: 4,
        });
        // The step computing tensor `i`, making a constant step for a constant tensor.
        let value = |i: i32,
                     steps: &mut Vec<Step>,
                     of_tensor: &mut std::collections::HashMap<i32, usize>|
         -> Result<usize> {
            if let Some(&k) = of_tensor.get(&i) {
                return Ok(k);
            }
            let t = tensor(i)?;
            let data = t
                .data
                .clone()
                .ok_or_else(|| fail(&t.name, "read before any operator computed it".into()))?;
            let host = HostTensor {
                shape: t.shape.clone(),
                data,
            };
            let dev = const_nchw(&host, device)
                .ok_or_else(|| fail(&t.name, format!("constant of shape {:?}", t.shape)))?;
            steps.push(Step {
                name: t.name.clone(),
                op: Op::Const(Box::new(dev)),
                inputs: Vec::new(),
                rank: t.shape.len(),
            });
            of_tensor.insert(i, steps.len() - 1);
            Ok(steps.len() - 1)
        };
        let act_of = |name: &str, a: FusedActivation| match a {
            FusedActivation::None => Ok(None),
            FusedActivation::Relu => Ok(Some(Unary::Relu)),
            FusedActivation::Relu6 => Ok(Some(Unary::Relu6)),
            other => Err(fail(name, format!("fused activation {other:?}"))),
        };
        for o in &m.ops {
            let &out = o
                .outputs
                .first()
                .ok_or_else(|| fail("-", "an operator without output".into()))?;
            let name = tensor(out)?.name.clone();
            let arg = |j: usize| {
                o.inputs
                    .get(j)
                    .copied()
                    .ok_or_else(|| fail(&name, format!("missing input {j}")))
            };
            let (op, inputs, rank) = match o.code {
                op::CONV_2D | op::DEPTHWISE_CONV_2D => {
                    let x = value(arg(0)?, &mut steps, &mut of_tensor)?;
                    let w = tensor(arg(1)?)?;
                    let wd = w
                        .data
                        .clone()
                        .filter(|_| w.shape.len() == 4)
                        .ok_or_else(|| fail(&name, "filter is not a rank-4 constant".into()))?;
                    let host = HostTensor {
                        shape: w.shape.clone(),
                        data: wd,
                    };
                    // TFLite filters: conv [out, h, w, in], depthwise [1, h, w, out]; burn:
                    // [out, in / groups, h, w], a depthwise conv having one group per input
                    // channel.
                    let (perm, groups) = if o.code == op::CONV_2D {
                        ([0, 3, 1, 2], 1)
                    } else {
                        let cin = tensor(arg(0)?)?.shape.get(3).copied().unwrap_or(w.shape[3]);
                        ([3, 0, 1, 2], cin.max(1))
                    };
                    let p = host.permute(&perm);
                    let s = [p.shape[0], p.shape[1], p.shape[2], p.shape[3]];
                    let weight = Tensor::from_data(TensorData::new(p.data, s), device);
                    let cout = s[0];
                    let bias = match o.inputs.get(2).copied().filter(|&b| b >= 0) {
                        Some(b) => {
                            let b = tensor(b)?;
                            let d = b
                                .data
                                .clone()
                                .ok_or_else(|| fail(&name, "bias is not a constant".into()))?;
                            if d.len() != cout {
                                return Err(Error::Shape {
                                    name: format!("{} in {}", b.name, source.display()),
                                    expected: vec![cout],
                                    got: b.shape.clone(),
                                });
                            }
                            Some(Tensor::from_data(TensorData::new(d, [cout]), device))
                        }
                        None => None,
                    };
                    let conv = Conv {
                        weight,
                        bias,
                        stride: o.options.stride,
                        dilation: o.options.dilation,
                        groups,
                        same: o.options.padding == Padding::Same,
                        act: act_of(&name, o.options.activation)?,
                    };
                    (Op::Conv(Box::new(conv)), vec![x], 4)
                }
                op::RELU | op::RELU6 | op::ABS => {
                    let x = value(arg(0)?, &mut steps, &mut of_tensor)?;
                    let u = match o.code {
                        op::RELU => Unary::Relu,
                        op::RELU6 => Unary::Relu6,
                        _ => Unary::Abs,
                    };
                    let r = steps[x].rank;
                    (Op::Unary(u), vec![x], r)
                }
                op::ADD | op::SUB | op::MUL => {
                    let a = value(arg(0)?, &mut steps, &mut of_tensor)?;
                    let b = value(arg(1)?, &mut steps, &mut of_tensor)?;
                    let bin = match o.code {
                        op::ADD => Binary::Add,
                        op::SUB => Binary::Sub,
                        _ => Binary::Mul,
                    };
                    let r = steps[a].rank.max(steps[b].rank);
                    if r == 3 {
                        return Err(fail(&name, "rank-3 values are not supported".into()));
                    }
                    match act_of(&name, o.options.activation)? {
                        None => (Op::Binary(bin), vec![a, b], r),
                        Some(u) => {
                            steps.push(Step {
                                name: format!("{name}/pre-activation"),
                                op: Op::Binary(bin),
                                inputs: vec![a, b],
                                rank: r,
                            });
                            (Op::Unary(u), vec![steps.len() - 1], r)
                        }
                    }
                }
                op::RESHAPE => {
                    let x = value(arg(0)?, &mut steps, &mut of_tensor)?;
                    let to = &tensor(out)?.shape;
                    if steps[x].rank != 4 || to.len() != 2 {
                        return Err(fail(
                            &name,
                            format!("reshape to {to:?}; only [n, h, w, c] -> [n, c] with h = w = 1 is supported"),
                        ));
                    }
                    (Op::Squeeze, vec![x], 2)
                }
                other => return Err(fail(&name, format!("unsupported builtin operator {other}"))),
            };
            steps.push(Step {
                name,
                op,
                inputs,
                rank,
            });
            of_tensor.insert(out, steps.len() - 1);
        }
        let out = m
            .outputs
            .first()
            .and_then(|o| of_tensor.get(o))
            .copied()
            .ok_or_else(|| fail("-", "the subgraph output is not computed".into()))?;
        Ok(Self {
            steps,
            output: out,
            source,
        })
    }
}
