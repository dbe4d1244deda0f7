#!/usr/bin/env python3
"""Writes the committed seed corpora of recog's fuzz targets (fuzz/corpus/TARGET/seed-*).

Every seed is made here, small and synthetic, in the layout recog's loaders read: nothing is
copied from third-party models or data sets. Long fuzzing runs add the real files at run time
(tools/fuzz/run.sh). Needs NumPy, h5py and Pillow.
"""
import gzip
import io
import json
import os
import struct
import sys

import h5py
import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def onnx_tensor(name, dims, dtype, raw=None, floats=None, int64s=None):
    t = b"".join(field(1, 0, d) for d in dims) + field(2, 0, dtype) + field(8, 2, name.encode())
    if raw is not None:
        t += field(9, 2, raw)
    if floats is not None:
        t += field(4, 2, b"".join(struct.pack("<f", x) for x in floats))
    if int64s is not None:
        t += field(7, 2, b"".join(varint(x) for x in int64s))
    return t


def main():
    # IDX: images (3-d) and labels (1-d), plain and gzip.
    images = idx([2, 3, 3], range(18))
    labels = idx([2], [7, 1])
    put("idx", "images", images)
    put("idx", "labels", labels)
    put("idx_gz", "images", gzip.compress(images))
    put("idx_gz", "labels", gzip.compress(labels))
    put("idx_gz", "plain", labels)

    # npy: version 1 and 2 headers, float32, C order.
    for v in (1, 2):
        a = np.arange(6, dtype="<f4").reshape(2, 3)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, version=(v, 0))
        put("npy", f"v{v}", buf.getvalue())

    # TFJS: manifest, NUL, the shard `s` it names.
    manifest = [{"paths": ["s"], "weights": [
        {"name": "a", "shape": [2], "dtype": "float32"},
        {"name": "b", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "c", "shape": [1], "dtype": "float32", "quantization": {"dtype": "float16"}}]}]
    shard = struct.pack("<ff", 1.5, -2.0) + bytes([0, 2, 255]) + struct.pack("<H", 0x3C00)
    put("tfjs", "three-dtypes", json.dumps(manifest).encode() + b"\0" + shard)
    put("tfjs", "int32", json.dumps([{"paths": ["s"], "weights": [
        {"name": "i", "shape": [2, 1], "dtype": "int32"}]}]).encode() + b"\0" + struct.pack("<ii", 3, -4))

    # ONNX: a ModelProto whose graph (field 7) holds initializers (field 5) as raw bytes,
    # float_data and int64_data.
    graph = field(5, 2, onnx_tensor("conv.weight", [2, 2], 1, raw=struct.pack("<4f", 1, 2, 3, 4)))
    graph += field(5, 2, onnx_tensor("bias", [2], 1, floats=[0.5, -0.5]))
    graph += field(5, 2, onnx_tensor("shape", [2], 7, int64s=[1, 2]))
    model = field(1, 0, 7) + field(7, 2, graph)
    put("onnx", "three-initializers", model)

    # TFLite: the file identifier with an empty root table (the loader's first checks); the
    # long runs add a real model.
    put("tflite", "header", struct.pack("<I", 8) + b"TFL3" + struct.pack("<iH", 4, 0) + b"\0\0")

    # Keras HDF5: two layers in Keras 2's layout (layer_names, weight_names).
    h5 = os.path.join(ROOT, "..", "..", "target", "seed.h5")
    os.makedirs(os.path.dirname(h5), exist_ok=True)
    with h5py.File(h5, "w") as f:
        f.attrs["layer_names"] = [b"conv2d_1", b"dense_1"]
        for layer, shapes in (("conv2d_1", [(3, 3, 1, 2), (2,)]), ("dense_1", [(2, 2), (2,)])):
            g = f.create_group(layer)
            names = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            g.attrs["weight_names"] = names
            for n, s in zip(names, shapes):
                g.create_dataset(n.decode(), data=np.ones(s, dtype="<f4"))
    with open(h5, "rb") as f:
        put("keras_hdf5", "two-layers", f.read())

    # Images: each format the decode path reads, tiny.
    img = Image.new("RGB", (5, 4), (200, 30, 60))
    for fmt, name in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("BMP", "bmp"),
                      ("TIFF", "tiff"), ("WEBP", "webp")):
        buf = io.BytesIO()
        img.save(buf, fmt)
        put("image_decode", name, buf.getvalue())
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the decode path turns it upright
    img.save(buf, "JPEG", exif=exif.tobytes())
    put("image_decode", "jpg-exif-rotated", buf.getvalue())
    png = io.BytesIO()
    img.save(png, "PNG")

    # Gallery export JSON.
    export = {"model": {"name": "face-resnet-dlib", "sha256": "ab" * 32, "dim": 2},
              "calibration": None,
              "people": [{"name": "Ada", "photos": [["a.jpg", "cd" * 32, [0.1, 0.2]]]},
                         {"name": "Bob", "photos": [["b.jpg", "ef" * 32, [0.9, -0.3]],
                                                    ["c.jpg", "01" * 32, [0.8, -0.2]]]}]}
    put("gallery_import", "two-people", json.dumps(export).encode())

    # serve_request: 0 + a WebSocket text message; 1-4 + "path\nauthorization\nbody".
    put("serve_request", "ws-drawn", b"\0" + json.dumps({"type": "drawn", "labels": ["Ada 0.31"]}).encode())
    put("serve_request", "list", b"\x04/api/people?token=t0k\n\n")
    put("serve_request", "identify", b"\x01/api/identify\nBearer t0k\n" + png.getvalue())
    put("serve_request", "enroll", b"\x01/api/people/Ada%20L\nBearer t0k\n" + png.getvalue())
    put("serve_request", "remove", b"\x02/api/people/Ada%20L?token=t0k\n\n")
    put("serve_request", "thumbnail", b"\x04/api/people/Ada/thumbnail\nBearer t0k\n")
    put("serve_request", "no-token", b"\x04/api/stats\n\n")


if __name__ == "__main__":
    sys.exit(main())
