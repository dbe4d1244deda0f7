"""MobileFaceNet.tflite under TensorFlow Lite's own interpreter (XNNPACK delegate), the peer for
`recog bench face`'s embed figure: milliseconds per face with mirror averaging, i.e. one batch
of two 112x112 chips (a face and its mirror), as recog's default pipeline computes it.

Outside CI. Setup, once:
    python3 -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert numpy
Run, alternating with recog on the same machine:
    /tmp/litert/bin/python tools/bench/mobilefacenet_tflite.py RECOG_HOME/models/mobilefacenet/MobileFaceNet.tflite
"""
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

path = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 40
x = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
for threads in (1, 2):
    it = Interpreter(model_path=path, num_threads=threads)
    inp = it.get_input_details()[0]
    # The file's input is already [2, 112, 112, 3]: one face and its mirror.
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        it.set_tensor(inp["index"], x)
        it.invoke()
        times.append(time.perf_counter() - t)
    ms = 1e3 * np.median(times)
    print(f"tflite xnnpack, {threads} thread(s): {ms:.2f} ms per face with its mirror "
          f"(median of {rounds}; p10 {1e3 * np.percentile(times, 10):.2f})")
