"""Tries committee rejection rules offline on embeddings written by the example
`dump_digit_embeddings`, before any is built into recog.

    cargo run --release -p recog --example dump_digit_embeddings -- runs/d64-oe3s emb-oe3s fragments
    cargo run --release -p recog --example dump_digit_embeddings -- runs/d64-oe3s-s43 emb-oe3s-s43 fragments
    python3 tools/experiments/committee_rules.py emb-oe3s,emb-oe3s-s43 fragments 0,1,2,3,4

Arguments: the dump folders (the committee's members), the held-out generator, the views
(0 = the image as given, 1-4 = its one-pixel shifts). It rebuilds recog's `distance` rule
exactly (the blocks concatenated and scaled by 1/sqrt(blocks), class centres of the first
55,000 training digits renormalised, the threshold at the target false-reject rate of the last
5,000), which checks the dump against `recog digits eval-logo`, then prints two rules decided
before any figure was seen (2026-12-05):
- max-block: the largest squared distance of any block (member x view) to its own centre of
  the digit the committee names;
- vote gate + distance: reject when any block's own nearest centre names another digit, and
  calibrate the distance threshold so that gate and threshold together reject the target
  rate of the calibration digits.
Each figure is: test digits named right / held-out unknowns rejected, in percent.
Needs numpy.
"""
import sys

import numpy as np

DIM = 64
N_FIT = 55000
TARGETS = (0.0025, 0.005, 0.0075, 0.01)


def read(folder, name, view=None):
    suffix = "labels" if view is None else f"v{view}"
    x = np.fromfile(f"{folder}/{name}-{suffix}.f32", dtype=np.float32)
    return x.astype(int) if view is None else x.reshape(-1, DIM)


def centres(x, y):
    c = np.stack([x[y == k].mean(0) for k in range(10)])
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def sq_dist(x, c):
    return ((x[:, None, :] - c[None]) ** 2).sum(-1)


def threshold(scores, target):
    """recog's calibrate_threshold: the ceil((1 - target) n)-th smallest score."""
    s = np.sort(scores)
    return s[int(np.clip(np.ceil((1 - target) * len(s)), 1, len(s))) - 1]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    folders = sys.argv[1].split(",")
    held_out = sys.argv[2]
    views = [int(v) for v in sys.argv[3].split(",")]
    blocks = [(f, v) for v in views for f in folders]
    sets = {s: [read(f, s, v) for f, v in blocks] for s in ("train", "test", f"eval-{held_out}")}
    y_train, y_test = read(folders[0], "train"), read(folders[0], "test")
    y_fit = y_train[:N_FIT]

    def committee(name, rows=slice(None)):
        return np.concatenate([b[rows] for b in sets[name]], axis=1) / np.sqrt(len(blocks))

    c = centres(committee("train", slice(0, N_FIT)), y_fit)
    block_c = [centres(b[:N_FIT], y_fit) for b in sets["train"]]
    parts = {
        "cal": ("train", slice(N_FIT, None)),
        "test": ("test", slice(None)),
        "unknown": (f"eval-{held_out}", slice(None)),
    }
    info = {}
    for part, (name, rows) in parts.items():
        d = sq_dist(committee(name, rows), c)
        label = d.argmin(1)
        per_block = [sq_dist(b[rows], bc) for b, bc in zip(sets[name], block_c)]
        info[part] = {
            "label": label,
            "distance": np.sqrt(d.min(1)),
            "max_block": np.stack([p[np.arange(len(label)), label] for p in per_block], 1).max(1),
            "gate": np.stack([p.argmin(1) != label for p in per_block], 1).any(1),
        }
    closed = (info["test"]["label"] == y_test).mean() * 100
    print(f"{len(blocks)} blocks ({', '.join(folders)}; views {views}), {held_out} held out; "
          f"nearest-centre accuracy {closed:.2f}%")

    def row(name, score, gated=False):
        cells = []
        for target in TARGETS:
            s = {p: info[p][score] for p in info}
            g = {p: info[p]["gate"] if gated else np.zeros(len(s[p]), bool) for p in info}
            if gated:
                # The smallest threshold whose rejections, gate included, stay within the
                # target: the gate spends part of the budget, the scores of the digits it
                # passes the rest.
                t = np.inf
                for cand in np.sort(s["cal"][~g["cal"]])[::-1]:
                    if (g["cal"] | (s["cal"] > cand)).mean() > target:
                        break
                    t = cand
            else:
                t = threshold(s["cal"], target)
            rej_test = g["test"] | (s["test"] > t)
            right = (~rej_test & (info["test"]["label"] == y_test)).mean() * 100
            rejected = (g["unknown"] | (s["unknown"] > t)).mean() * 100
            cells.append(f"{100 * target:.2f}%: {right:.2f} / {rejected:.2f}")
        print(f"  {name:22s}" + "   ".join(cells))

    row("distance", "distance")
    row("max-block", "max_block")
    g = info["test"]["gate"]
    print(f"  (the vote gate fires on {100 * info['cal']['gate'].mean():.2f}% of calibration digits, "
          f"{100 * g.mean():.2f}% of test digits, {(g & (info['test']['label'] != y_test)).sum()} of "
          f"them misnamed, and {100 * info['unknown']['gate'].mean():.2f}% of {held_out})")
    row("vote gate + distance", "distance", gated=True)


if __name__ == "__main__":
    main()
