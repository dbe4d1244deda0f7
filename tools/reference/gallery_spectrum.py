"""The second-order shape of real face embeddings, for `recog bench gallery --synthesis lfw`.

Embeds up to 8 photos of every LFW person with at least 5 photos (2,899 photos of 423 people)
with recog's default network (MobileFaceNet, 192-d), then measures, on the unit-length
embeddings:
  - the between-person covariance (class means, less the within-person share each mean
    still carries), its eigenvalues in decreasing order;
  - the within-person covariance (pooled), as its variance along each of those directions;
  - the norm of the global mean;
  - the share of the variance the leading principal components hold (how many dimensions
    the HNSW graph's principal subspace keeps, recog::gallery::hnsw::PCA_VARIANCE).
It prints the Rust constants in crates/recog/src/bench/gallery.rs (LFW_BETWEEN, LFW_WITHIN,
LFW_MEAN_NORM), and the figures quoted there (rank, distances).

    python3 tools/reference/gallery_spectrum.py $RECOG_HOME/data/lfw/images target/release/recog [EMB.npy]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

root, recog = sys.argv[1], sys.argv[2]
files = []
for person in sorted(os.listdir(root)):
    if not os.path.isdir(os.path.join(root, person)):
        continue
    photos = sorted(os.listdir(os.path.join(root, person)))
    if len(photos) >= 5:
        files += [os.path.join(root, person, p) for p in photos[:8]]
if len(sys.argv) > 3:  # embeddings already made for this file list
    x = np.load(sys.argv[3]).astype(np.float64)
else:
    with tempfile.TemporaryDirectory() as tmp:
        npy = os.path.join(tmp, "emb.npy")
        subprocess.run([recog, "--offline", "face", "embed", "--npy", npy] + files,
                       check=True, stdout=subprocess.DEVNULL)
        x = np.load(npy).astype(np.float64)
labels = np.array([os.path.basename(os.path.dirname(f)) for f in files])
ok = np.isfinite(x).all(1) & (np.linalg.norm(x, axis=1) > 0)
x, labels = x[ok], labels[ok]
x /= np.linalg.norm(x, axis=1, keepdims=True)
people = np.unique(labels)
means = np.stack([x[labels == p].mean(0) for p in people])
counts = np.array([(labels == p).sum() for p in people])
resid = np.concatenate([x[labels == p] - x[labels == p].mean(0) for p in people])
within = resid.T @ resid / (len(x) - len(people))
between = np.cov(means.T) - np.mean(1.0 / counts) * within
val, vec = np.linalg.eigh(between)
order = np.argsort(val)[::-1]
val, vec = np.clip(val[order], 0, None), vec[:, order]
w_along = np.einsum("ij,jk,ki->i", vec.T, within, vec)
s = np.linalg.svd(x - x.mean(0), compute_uv=False)
rank = int((s > s[0] * 1e-2).sum())
keep = rank
print(f"// {len(x)} photos of {len(people)} people; numerical rank {rank} of {x.shape[1]}")
kept = np.cumsum(s**2) / (s**2).sum()
print("// principal components for " + ", ".join(
    f"{100 * f:g}%: {int(np.searchsorted(kept, f)) + 1}" for f in (0.9, 0.99, 0.999, 0.9999)))
print("// variance held by the first " + ", ".join(
    f"{k}: {100 * kept[k - 1]:.5f}%" for k in (32, 48, 56, 64, 80)))
print(f"// trace between {val.sum():.4f}, within {within.trace():.4f} "
      f"(of it along the first {keep} between directions: {w_along[:keep].sum():.4f})")
print(f"const LFW_MEAN_NORM: f32 = {np.linalg.norm(x.mean(0)):.4f};")
print("const LFW_BETWEEN: [f32; %d] = [%s];" % (keep, ", ".join(f"{v:.3e}" for v in val[:keep])))
print("const LFW_WITHIN: [f32; %d] = [%s];" % (keep, ", ".join(f"{v:.3e}" for v in w_along[:keep])))
