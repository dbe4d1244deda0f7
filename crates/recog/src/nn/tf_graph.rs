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
    /// The same graph for [`super::cpu`]'s kernels, used on the CPU device; `None` where
    /// the graph holds something those kernels do not cover (burn's ops then run it).
    host: Option<std::sync::Arc<HostPlan>>,
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
    /// the output node as `[n, c]` (a TensorFlow rank-2 output). On the CPU device this is
    /// [`super::cpu`]'s kernels, one image per thread; elsewhere, burn's ops.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        match &self.host {
            Some(plan) if x.device() == Device::flex() => self.forward_host(plan, x),
            _ => self.forward_burn(x),
        }
    }

    /// Whether [`Self::forward`] runs [`super::cpu`]'s kernels on the CPU device.
    pub fn has_cpu_plan(&self) -> bool {
        self.host.is_some()
    }

    /// The number format of the dense convolutions: [`super::cpu::Precision::Bf16`] if any
    /// runs in it.
    pub fn precision(&self) -> super::cpu::Precision {
        use super::cpu::Precision;
        let bf16 = self.host.as_ref().is_some_and(|plan| {
            plan.steps
                .iter()
                .any(|s| matches!(&s.op, HostOp::Conv(cv) if cv.precision() == Precision::Bf16))
        });
        if bf16 {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }

    /// Sets the number format of the dense convolutions on [`super::cpu`]'s kernels (`f32`
    /// at load); burn's path is always `f32`.
    pub fn set_precision(&mut self, precision: super::cpu::Precision) {
        if let Some(plan) = self.host.as_mut() {
            for s in &mut std::sync::Arc::make_mut(plan).steps {
                if let HostOp::Conv(cv) = &mut s.op {
                    cv.set_precision(precision);
                }
            }
        }
    }

    fn forward_host(&self, plan: &HostPlan, x: Tensor<4>) -> Result<Tensor<2>> {
        let device = x.device();
        let [n, c, h, w] = x.dims();
        let data = x
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| self.fail(format!("input is not float32: {e:?}")))?;
        let per = c * h * w;
        let outs = self.run_plan(plan, n, |i| {
            Some(super::cpu::FeatureMap::from_planar(
                &data[i * per..][..per],
                c,
                h,
                w,
            ))
        })?;
        Ok(Self::stack(outs, &device))
    }

    /// Runs the graph on [`super::cpu`]'s kernels for `n` images, image `i` given as the
    /// channels-last map `input(i)` (the graph's own NHWC layout), built on the thread that
    /// runs it: no NCHW tensor and no transposed copy. Returns `[n, features]`; `None` where
    /// the graph has no CPU plan (then [`Self::forward`] runs it with burn's ops).
    pub fn forward_maps(
        &self,
        n: usize,
        input: impl Fn(usize) -> Option<super::cpu::FeatureMap> + Sync,
        device: &Device,
    ) -> Option<Result<Tensor<2>>> {
        let plan = self.host.as_ref()?;
        Some(
            self.run_plan(plan, n, input)
                .map(|outs| Self::stack(outs, device)),
        )
    }

    fn run_plan(
        &self,
        plan: &HostPlan,
        n: usize,
        input: impl Fn(usize) -> Option<super::cpu::FeatureMap> + Sync,
    ) -> Result<Vec<Vec<f32>>> {
        use rayon::prelude::*;
        (0..n)
            .into_par_iter()
            .map(|i| {
                let img = input(i).ok_or_else(|| {
                    self.fail(format!(
                        "input {i} is not an image of the graph's input size"
                    ))
                })?;
                plan.run(img).map_err(|problem| self.fail(problem))
            })
            .collect()
    }

    /// Per-image output vectors as one `[n, features]` tensor.
    fn stack(outs: Vec<Vec<f32>>, device: &Device) -> Tensor<2> {
        let n = outs.len();
        let dim = match outs.first() {
            Some(o) => o.len(),
            None => 0,
        };
        let flat: Vec<f32> = outs.into_iter().flatten().collect();
        Tensor::from_data(TensorData::new(flat, [n, dim]), device)
    }

    fn fail(&self, problem: String) -> Error {
        Error::Checkpoint {
            path: self.source.clone(),
            problem,
        }
    }

    /// Runs the graph with burn's ops on any device: the reference [`super::cpu`]'s kernels
    /// are checked against.
    pub fn forward_burn(&self, x: Tensor<4>) -> Result<Tensor<2>> {
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
        let host = HostPlan::compile(&steps, out).map(std::sync::Arc::new);
        Ok(Self {
            steps,
            output: out,
            source,
            host,
        })
    }
}

/// A constant operand of an element-wise op, broadcast over a feature map.
#[derive(Debug, Clone)]
enum HostConst {
    Scalar(f32),
    /// One value per channel.
    Channel(Vec<f32>),
}

impl HostConst {
    fn at(&self, ch: usize) -> f32 {
        match self {
            HostConst::Scalar(v) => *v,
            HostConst::Channel(v) => v[ch],
        }
    }

    fn fits(&self, c: usize) -> bool {
        match self {
            HostConst::Scalar(_) => true,
            HostConst::Channel(v) => v.len() == c,
        }
    }
}

#[derive(Debug, Clone)]
enum HostOp {
    Input,
    Const(HostConst),
    Conv(super::cpu::Conv),
    Depthwise(super::cpu::Depthwise),
    Unary(Unary),
    Binary(Binary),
    /// `x >= 0 ? x : slope * x`.
    PRelu(HostConst),
    /// Passes its input on (a squeeze, or an activation fused into the op before).
    Identity,
    /// Fused into another step.
    Dead,
}

#[derive(Debug, Clone)]
struct HostStep {
    op: HostOp,
    inputs: Vec<usize>,
}

/// A [`TfGraph`] for [`super::cpu`]'s kernels: the same steps, channels-last, with
/// TensorFlow Lite's PReLU decomposition (`relu(x) + a * (x - |x|)`) folded back into one
/// PReLU, and each activation folded into the convolution before it.
#[derive(Debug, Clone)]
struct HostPlan {
    steps: Vec<HostStep>,
    output: usize,
}

/// A burn tensor's values, or `None` if they cannot be read as `f32`.
fn host_values<const D: usize>(t: &Tensor<D>) -> Option<Vec<f32>> {
    t.to_data().try_to_vec::<f32>().ok()
}

impl HostPlan {
    /// `None` where a step is outside what the kernels cover: dilation, a depth multiplier,
    /// constants other than scalars or per-channel vectors, or an element-wise op of two
    /// constants.
    fn compile(steps: &[Step], output: usize) -> Option<Self> {
        use super::cpu::{Conv as CpuConv, Depthwise};
        if steps.get(output)?.rank != 2 {
            return None;
        }
        let mut out: Vec<HostStep> = Vec::with_capacity(steps.len());
        for s in steps {
            let op = match &s.op {
                Op::Input => HostOp::Input,
                Op::Const(t) => {
                    let [a, c, h, w] = t.dims();
                    let v = host_values(t.as_ref())?;
                    match (a, c, h, w) {
                        (1, 1, 1, 1) => HostOp::Const(HostConst::Scalar(v[0])),
                        (1, _, 1, 1) => HostOp::Const(HostConst::Channel(v)),
                        _ => return None,
                    }
                }
                Op::Conv(cv) => {
                    if cv.dilation != [1, 1] {
                        return None;
                    }
                    let [o, i, kh, kw] = cv.weight.dims();
                    let w = host_values(&cv.weight)?;
                    let bias = match &cv.bias {
                        Some(b) => host_values(b)?,
                        None => Vec::new(),
                    };
                    let act = match cv.act {
                        None => None,
                        Some(Unary::Relu) => Some(super::cpu::Act::Relu),
                        Some(Unary::Relu6) => Some(super::cpu::Act::Relu6),
                        Some(Unary::Abs) => return None,
                    };
                    let dims = [o, i, kh, kw];
                    if cv.groups == 1 {
                        HostOp::Conv(CpuConv::from_oihw(&w, dims, bias, cv.stride, cv.same, act)?)
                    } else if i == 1 && cv.groups == o {
                        HostOp::Depthwise(Depthwise::from_c1hw(
                            &w, dims, bias, cv.stride, cv.same, act,
                        )?)
                    } else {
                        return None;
                    }
                }
                Op::Unary(u) => HostOp::Unary(*u),
                Op::Binary(b) => HostOp::Binary(*b),
                Op::Squeeze => HostOp::Identity,
            };
            out.push(HostStep {
                op,
                inputs: s.inputs.clone(),
            });
        }
        for s in &out {
            if let HostOp::Binary(_) = s.op {
                let consts = s
                    .inputs
                    .iter()
                    .filter(|&&i| matches!(out[i].op, HostOp::Const(_)))
                    .count();
                if consts > 1 {
                    return None;
                }
            }
        }
        let mut plan = Self { steps: out, output };
        plan.fuse_prelu();
        plan.fuse_activations();
        Some(plan)
    }

    /// How many live steps read each step's value.
    fn uses(&self) -> Vec<usize> {
        let mut uses = vec![0usize; self.steps.len()];
        for s in &self.steps[..=self.output] {
            for &i in &s.inputs {
                uses[i] += 1;
            }
        }
        uses[self.output] += 1;
        uses
    }

    /// `relu(x) + a * (x - |x|)` (TensorFlow Lite's PReLU) -> `prelu(x, 2a)`: for `x < 0` the
    /// sum is `a * 2x`, which rounds exactly as `2a * x` (doubling is exact).
    fn fuse_prelu(&mut self) {
        let uses = self.uses();
        let single = |i: usize| uses[i] == 1;
        for k in 0..self.steps.len() {
            let HostStep {
                op: HostOp::Binary(Binary::Add),
                inputs,
            } = &self.steps[k]
            else {
                continue;
            };
            let [p, q] = inputs[..] else { continue };
            let found = [(p, q), (q, p)].into_iter().find_map(|(r, m)| {
                let HostStep {
                    op: HostOp::Unary(Unary::Relu),
                    inputs: ri,
                } = &self.steps[r]
                else {
                    return None;
                };
                let x = *ri.first()?;
                let HostStep {
                    op: HostOp::Binary(Binary::Mul),
                    inputs: mi,
                } = &self.steps[m]
                else {
                    return None;
                };
                let [m0, m1] = mi[..] else { return None };
                let (a, s) = match (&self.steps[m0].op, &self.steps[m1].op) {
                    (HostOp::Const(c), _) => (c.clone(), m1),
                    (_, HostOp::Const(c)) => (c.clone(), m0),
                    _ => return None,
                };
                let HostStep {
                    op: HostOp::Binary(Binary::Sub),
                    inputs: si,
                } = &self.steps[s]
                else {
                    return None;
                };
                let [sx, t] = si[..] else { return None };
                let HostStep {
                    op: HostOp::Unary(Unary::Abs),
                    inputs: ti,
                } = &self.steps[t]
                else {
                    return None;
                };
                (sx == x && ti.first() == Some(&x) && [r, m, s, t].iter().all(|&i| single(i)))
                    .then_some((x, a, [r, m, s, t]))
            });
            let Some((x, a, dead)) = found else { continue };
            let slope = match a {
                HostConst::Scalar(v) => HostConst::Scalar(2.0 * v),
                HostConst::Channel(v) => HostConst::Channel(v.iter().map(|v| 2.0 * v).collect()),
            };
            self.steps[k] = HostStep {
                op: HostOp::PRelu(slope),
                inputs: vec![x],
            };
            for i in dead {
                self.steps[i] = HostStep {
                    op: HostOp::Dead,
                    inputs: Vec::new(),
                };
            }
        }
    }

    /// An activation whose input is a convolution read by nothing else runs in that
    /// convolution's epilogue.
    fn fuse_activations(&mut self) {
        use super::cpu::Act;
        let uses = self.uses();
        for k in 0..self.steps.len() {
            let Some(&x) = self.steps[k].inputs.first() else {
                continue;
            };
            if uses[x] != 1 {
                continue;
            }
            let act = match &self.steps[k].op {
                HostOp::PRelu(HostConst::Channel(s)) => Act::PRelu(s.clone()),
                HostOp::Unary(Unary::Relu) => Act::Relu,
                HostOp::Unary(Unary::Relu6) => Act::Relu6,
                _ => continue,
            };
            let fused = match &mut self.steps[x].op {
                HostOp::Conv(cv) => cv.fuse(act),
                HostOp::Depthwise(dw) => dw.fuse(act),
                _ => false,
            };
            if !fused {
                continue;
            }
            self.steps[k].op = HostOp::Identity;
        }
    }

    /// Runs the plan on one image; the output as a vector. Errors are messages about the
    /// input not fitting the graph.
    fn run(&self, x: super::cpu::FeatureMap) -> std::result::Result<Vec<f32>, String> {
        use super::cpu::FeatureMap;
        let mut uses = self.uses();
        let mut vals: Vec<Option<FeatureMap>> = vec![None; self.steps.len()];
        let mut x = Some(x);
        let shape_err = |k: usize| format!("step {k}: the input does not fit the graph's shapes");
        for (k, s) in self.steps[..=self.output].iter().enumerate() {
            let v = match &s.op {
                HostOp::Dead | HostOp::Const(_) => continue,
                HostOp::Input => x.take().ok_or("input read twice")?,
                HostOp::Conv(cv) => {
                    let i = s.inputs[0];
                    let y = vals[i].as_ref().and_then(|a| cv.run(a));
                    release_at(&mut vals, &mut uses, i);
                    y.ok_or_else(|| shape_err(k))?
                }
                HostOp::Depthwise(dw) => {
                    let i = s.inputs[0];
                    let y = vals[i].as_ref().and_then(|a| dw.run(a));
                    release_at(&mut vals, &mut uses, i);
                    y.ok_or_else(|| shape_err(k))?
                }
                HostOp::Identity => {
                    let i = s.inputs[0];
                    owned(&mut vals, &mut uses, i).ok_or_else(|| shape_err(k))?
                }
                HostOp::Unary(u) => {
                    let mut a =
                        owned(&mut vals, &mut uses, s.inputs[0]).ok_or_else(|| shape_err(k))?;
                    let f = |v: &mut f32| match u {
                        Unary::Relu => *v = v.max(0.0),
                        Unary::Relu6 => *v = v.clamp(0.0, 6.0),
                        Unary::Abs => *v = v.abs(),
                    };
                    a.data.iter_mut().for_each(f);
                    a
                }
                HostOp::PRelu(slope) => {
                    let mut a =
                        owned(&mut vals, &mut uses, s.inputs[0]).ok_or_else(|| shape_err(k))?;
                    if !slope.fits(a.c) {
                        return Err(shape_err(k));
                    }
                    for px in a.data.chunks_exact_mut(a.c.max(1)) {
                        for (ch, v) in px.iter_mut().enumerate() {
                            if *v < 0.0 {
                                *v *= slope.at(ch);
                            }
                        }
                    }
                    a
                }
                HostOp::Binary(b) => self
                    .binary(*b, s.inputs[0], s.inputs[1], &mut vals, &mut uses)
                    .ok_or_else(|| shape_err(k))?,
            };
            vals[k] = Some(v);
        }
        let out = vals[self.output]
            .take()
            .ok_or("the output was not computed")?;
        if out.h != 1 || out.w != 1 {
            return Err(format!(
                "the output is {}x{}x{}, expected a [batch, features] vector",
                out.h, out.w, out.c
            ));
        }
        Ok(out.data)
    }

    /// An element-wise op of two maps of one shape, or of a map and a constant, computed in
    /// the storage of a map read for the last time where there is one.
    fn binary(
        &self,
        b: Binary,
        l: usize,
        r: usize,
        vals: &mut [Option<super::cpu::FeatureMap>],
        uses: &mut [usize],
    ) -> Option<super::cpu::FeatureMap> {
        let f = |x: f32, y: f32| match b {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
        };
        let konst = |i: usize| match &self.steps[i].op {
            HostOp::Const(c) => Some(c.clone()),
            _ => None,
        };
        let (kl, kr) = (konst(l), konst(r));
        if kl.is_some() && kr.is_some() {
            return None;
        }
        // Written in place: the left map, unless the left is a constant or only the right
        // one is read for the last time.
        let into_left = kl.is_none() && (kr.is_some() || uses[l] == 1 || uses[r] != 1);
        let (d, o, o_const) = if into_left { (l, r, kr) } else { (r, l, kl) };
        let g = |dv: f32, ov: f32| if into_left { f(dv, ov) } else { f(ov, dv) };
        let mut a = owned(vals, uses, d)?;
        match o_const {
            Some(c) => {
                if !c.fits(a.c) {
                    return None;
                }
                for px in a.data.chunks_exact_mut(a.c.max(1)) {
                    px.iter_mut()
                        .enumerate()
                        .for_each(|(ch, v)| *v = g(*v, c.at(ch)));
                }
            }
            None => {
                let bm = vals[o].as_ref()?;
                if (bm.h, bm.w, bm.c) != (a.h, a.w, a.c) {
                    return None;
                }
                a.data
                    .iter_mut()
                    .zip(&bm.data)
                    .for_each(|(v, w)| *v = g(*v, *w));
                release_at(vals, uses, o);
            }
        }
        Some(a)
    }
}

/// Value `i` for a step that overwrites it: the map itself at its last read, else a copy.
fn owned(
    vals: &mut [Option<super::cpu::FeatureMap>],
    uses: &mut [usize],
    i: usize,
) -> Option<super::cpu::FeatureMap> {
    uses[i] = uses[i].checked_sub(1)?;
    if uses[i] == 0 {
        vals[i].take()
    } else {
        vals[i].as_ref().map(super::cpu::duplicate)
    }
}

/// Drops value `i` after its last reader.
fn release_at(vals: &mut [Option<super::cpu::FeatureMap>], uses: &mut [usize], i: usize) {
    uses[i] = uses[i].saturating_sub(1);
    if uses[i] == 0 {
        if let Some(v) = vals[i].take() {
            super::cpu::recycle(v);
        }
    }
}
