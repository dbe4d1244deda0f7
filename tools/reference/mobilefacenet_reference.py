"""Reference output of MobileFaceNet.tflite on a patterned batch, from TensorFlow Lite's own
interpreter (PyPI: ai-edge-litert). Writes the raw [2, 192] output as JSON to stdout.

input (b, y, x, c) = (((7y + 13x + 29c + 3b) mod 256) - 127.5) / 128, NHWC.

Usage: python3 mobilefacenet_reference.py MobileFaceNet.tflite > mobilefacenet_reference.json
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter

it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
inp, out = it.get_input_details()[0], it.get_output_details()[0]
b, y, x, c = np.meshgrid(np.arange(2), np.arange(112), np.arange(112), np.arange(3), indexing="ij")
data = (((7 * y + 13 * x + 29 * c + 3 * b) % 256) - 127.5) / 128
it.set_tensor(inp["index"], data.astype(np.float32))
it.invoke()
json.dump([round(float(v), 7) for v in it.get_tensor(out["index"]).ravel()], sys.stdout)
