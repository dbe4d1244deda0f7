"""The verification distance of a face network on LFW View 1's training pairs
(`pairsDevTrain.txt`, 1,100 same and 1,100 different pairs): embeds the pairs' images with
`recog face embed`, prints the accuracy-maximising threshold and the true-accept rates at 1%
and 0.1% false accepts.

This is how `FaceModel::MobileFaceNet.verification_distance()` (1.06) was chosen: on View 1, never on the
View 2 folds or the open-set evaluation that report results. For VGG-Face, record the printed
distance with `recog models add vgg-face PATH --verification-distance D`.

Usage: RECOG_HOME=../shared python3 tools/lfw_dev_threshold.py [recog face embed options...]
       e.g. --face-model dlib, --face-model vgg-face (the default network: MobileFaceNet)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

home = os.environ.get("RECOG_HOME", "../shared")
lfw = os.path.join(home, "data", "lfw")
recog = os.environ.get("RECOG", "target/release/recog")


def path(name, i):
    return os.path.join(lfw, "images", name, f"{name}_{int(i):04d}.jpg")


pairs = []
for line in open(os.path.join(lfw, "pairsDevTrain.txt")).read().splitlines()[1:]:
    t = line.split("\t")
    if len(t) == 3:
        pairs.append((path(t[0], t[1]), path(t[0], t[2]), 1))
    elif len(t) == 4:
        pairs.append((path(t[0], t[1]), path(t[2], t[3]), 0))
images = sorted({p for a, b, _ in pairs for p in (a, b)})
with tempfile.TemporaryDirectory() as tmp:
    npy = os.path.join(tmp, "e.npy")
    subprocess.run([recog, "face", "embed", "--npy", npy, *sys.argv[1:], *images],
                   check=True, stdout=subprocess.DEVNULL)
    e = np.load(npy).astype(np.float64)
row = {p: i for i, p in enumerate(images)}
d = np.array([np.linalg.norm(e[row[a]] - e[row[b]]) for a, b, _ in pairs])
same = np.array([s for _, _, s in pairs]) == 1
acc, t = max((np.mean((d <= t) == same), t) for t in np.unique(d))
print(f"{len(pairs)} pairs, {len(images)} images: best accuracy {100 * acc:.2f}% at distance {t:.4f}")
neg = np.sort(d[~same])
for far in (0.01, 0.001):
    th = neg[int(far * len(neg))]
    print(f"true accepts at FAR {far:g}: {100 * np.mean(d[same] < th):.1f}%")
