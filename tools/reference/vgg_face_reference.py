"""Writes a VGG-Face weights file in the layout of the notebook's `vgg_face_weights.h5`
(Keras 2 `model.save_weights` of the Sequential VGG-Face: root attribute `layer_names`, one
group per layer with attribute `weight_names` and datasets `<layer>/kernel:0`, `<layer>/bias:0`,
kernels as [kh, kw, in, out]) and the network's output for a fixed input, computed
independently here with NumPy.

    python3 vgg_face_reference.py OUT_DIR [--width-div 16] [--constant]

`--width-div k` divides every layer width by k (fc8 keeps 2622 outputs) and fills the weights
with seeded random numbers; OUT_DIR gets `vgg_face_weights.h5` and `reference.json`.
`--constant` writes the full-size network (580 MB of float32) with constant weights, gzip
compressed (a few MB on disk), and no reference.
Needs: pip install numpy h5py.
"""
import json
import sys

import h5py
import numpy as np

out = sys.argv[1]
div = int(sys.argv[sys.argv.index("--width-div") + 1]) if "--width-div" in sys.argv else 16
constant = "--constant" in sys.argv
if constant:
    div = 1

# (layer kind, out channels, kernel) in the notebook's order.
plan = []
cin = 3
for block, (width, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
    for _ in range(n):
        plan.append(("pad", None, None))
        plan.append(("conv", width // div, 3))
    plan.append(("pool", None, None))
plan += [("conv", 4096 // div, 7), ("dropout", None, None), ("conv", 4096 // div, 1),
         ("dropout", None, None), ("conv", 2622, 1), ("flatten", None, None), ("softmax", None, None)]

rng = np.random.default_rng(7)
names, weights = [], []
counters = {}
for kind, cout, k in plan:
    keras = {"pad": "zero_padding2d", "conv": "conv2d", "pool": "max_pooling2d",
             "dropout": "dropout", "flatten": "flatten", "softmax": "activation"}[kind]
    counters[keras] = counters.get(keras, 0) + 1
    name = f"{keras}_{counters[keras]}"
    names.append(name)
    if kind == "conv":
        if constant:
            w = np.full((k, k, cin, cout), 0.001, np.float32)
            b = np.full((cout,), 0.01, np.float32)
        else:
            std = np.sqrt(2.0 / (k * k * cin))
            w = (rng.standard_normal((k, k, cin, cout)) * std).astype(np.float32)
            b = (rng.standard_normal(cout) * 0.05).astype(np.float32)
        weights.append((name, w, b))
        cin = cout
    else:
        weights.append((name, None, None))

with h5py.File(f"{out}/vgg_face_weights.h5", "w") as f:
    f.attrs["layer_names"] = np.array([n.encode() for n in names])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.2.4"
    for name, w, b in weights:
        g = f.create_group(name)
        if w is None:
            g.attrs["weight_names"] = np.array([], dtype="S1")
            continue
        g.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
        opts = {"compression": "gzip", "chunks": True} if constant else {}
        g.create_dataset(f"{name}/kernel:0", data=w, **opts)
        g.create_dataset(f"{name}/bias:0", data=b, **opts)

if constant:
    sys.exit(0)

# NumPy forward pass, NHWC. Input: pixel (y, x, c) = (7y + 13x + 29c) mod 256 (RGB),
# preprocessed as the notebook's keras preprocess_input: RGB -> BGR, minus the ImageNet means.
y, x, c = np.meshgrid(np.arange(224), np.arange(224), np.arange(3), indexing="ij")
img = ((7 * y + 13 * x + 29 * c) % 256).astype(np.float64)
h = img[:, :, ::-1] - np.array([103.939, 116.779, 123.68])


def conv(h, w, b):
    k = w.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(h, (k, k), axis=(0, 1))  # H', W', C, k, k
    return np.einsum("ijcab,abco->ijo", win, w.astype(np.float64)) + b


wi = iter([(w, b) for _, w, b in weights if w is not None])
fc7 = None
for kind, cout, k in plan:
    if kind == "pad":
        h = np.pad(h, ((1, 1), (1, 1), (0, 0)))
    elif kind == "conv":
        w, b = next(wi)
        h = conv(h, w, b)
        if w.shape[3] != 2622:
            h = np.maximum(h, 0)
        if k == 1 and w.shape[3] != 2622:
            fc7 = h.reshape(-1).copy()
    elif kind == "pool":
        H, W, C = h.shape
        h = h[: H // 2 * 2, : W // 2 * 2].reshape(H // 2, 2, W // 2, 2, C).max(axis=(1, 3))
descriptor = h.reshape(-1)
json.dump({"width_div": div, "descriptor": descriptor.tolist(), "fc7": fc7.tolist()},
          open(f"{out}/reference.json", "w"))
