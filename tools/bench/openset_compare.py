"""Compares two `recog gallery eval-lfw` runs at matched stranger false-accept rates.

A calibrated threshold moves with its calibration scores, so two builds can report different
(DIR, rejection) pairs that lie on the same curve. This reads each run's `openset.json` and
prints, per rule, the best DIR each reaches at the same fraction of strangers accepted.

    python3 tools/bench/openset_compare.py runs/f32/openset.json runs/bf16/openset.json
"""
import json
import sys


def dir_at(curve, far):
    """The highest DIR among the curve's points with a stranger FAR of at most `far`."""
    return max((d for f, d in curve if f <= far + 1e-12), default=0.0)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = (json.load(open(p)) for p in sys.argv[1:])
    for rule in ("distance_rule", "ratio_rule"):
        print(f"{rule}: DIR at matched stranger FAR ({sys.argv[1]} | {sys.argv[2]})")
        for far in (0.002, 0.005, 0.01, 0.0135, 0.02, 0.05):
            da, db = dir_at(a[rule]["curve"], far), dir_at(b[rule]["curve"], far)
            print(f"  FAR {100 * far:5.2f}%: {100 * da:6.2f}% | {100 * db:6.2f}% ({100 * (db - da):+.2f} pt)")


if __name__ == "__main__":
    main()
