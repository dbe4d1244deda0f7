#!/usr/bin/env python3
"""Writes crates/recog/tests/fixtures/keras_hdf5_external_storage.h5: a Keras-layout weights
file (layer_names, weight_names) whose one weight keeps its data in an external raw file,
`external_weights.bin`, instead of in the HDF5 file. HDF5 allows this; a weights loader must
not follow it, since the name inside an untrusted file would make it read any file's bytes as
weights. The test copies the fixture beside such a file and checks that the loader refuses it.
Needs NumPy and h5py.
"""
import os

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "recog",
                   "tests", "fixtures", "keras_hdf5_external_storage.h5")

with h5py.File(OUT, "w") as f:
    f.attrs["layer_names"] = [b"dense_1"]
    g = f.create_group("dense_1")
    g.attrs["weight_names"] = [b"dense_1/kernel:0"]
    # 4 float32 values read from byte 0 of external_weights.bin.
    g.create_dataset("dense_1/kernel:0", shape=(2, 2), dtype="<f4",
                     external=[("external_weights.bin", 0, 16)])
print(OUT, os.path.getsize(OUT))
