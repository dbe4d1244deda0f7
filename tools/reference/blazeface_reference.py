"""Reference outputs of the BlazeFace front model for a fixed synthetic input, computed with
onnxruntime (pip install onnxruntime numpy). recog's test `blazeface_matches_onnxruntime`
compares against the JSON this writes.

    python3 blazeface_reference.py ../../../shared/models/blazeface > ../../crates/recog/tests/fixtures/blazeface_reference.json
"""
import json
import sys

import numpy as np
import onnxruntime as ort

path = sys.argv[1] + "/face_detection_front_128x128_barracuda.onnx"
s = ort.InferenceSession(path)
y, x, c = np.meshgrid(np.arange(128), np.arange(128), np.arange(3), indexing="ij")
# Same formula as the Rust test: pixel (y, x, c) = (7y + 13x + 29c) mod 256, scaled to [-1, 1].
img = ((7 * y + 13 * x + 29 * c) % 256).astype(np.float32) / 127.5 - 1.0
outs = s.run(None, {"input:0": img[None]})
scores = np.concatenate([outs[0].reshape(-1), outs[1].reshape(-1)])
regs = np.concatenate([outs[2].reshape(-1, 16), outs[3].reshape(-1, 16)])
top = [int(i) for i in np.argsort(-scores)[:5]]
print(json.dumps({
    "scores": [float(v) for v in scores],
    "top": top,
    "top_regressors": [[float(v) for v in regs[i]] for i in top],
    "regressor_abs_sum": float(np.abs(regs).sum()),
}))
