#!/usr/bin/env bash
# Builds what tools/bench/gpu_check.sh runs on a GPU machine that has no Rust and no network,
# in two xz tarballs that each fit one device call's 64 MiB: `bench.tar.xz`, `recog` built with
# a GPU feature, stripped, with the face models and the first 160 LFW photos from RECOG_HOME;
# `test_lib.tar.xz` and `test_train_trajectory.tar.xz`, the library's unit tests and the
# PyTorch trajectory test, built likewise.
#
#   tools/bench/gpu_bundle.sh FEATURE DEST_DIR      # FEATURE: wgpu or cuda
#
# DEST_DIR gets the tarballs. The data are copies from RECOG_HOME and RECOG_MODEL_PATH for that
# run only: keep DEST_DIR out of the repository's tracked files (`.gpu/` is a good place, listed
# in .git/info/exclude). The builds replace target/release/recog: build without the feature
# afterwards to get the CPU-only binary back.
set -euo pipefail
F=$1
D=$2
: "${RECOG_HOME:?RECOG_HOME must name a home with MNIST, LFW and the face models}"
MODELS=${RECOG_MODEL_PATH:-$RECOG_HOME/models}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release -p recog-cli --features "$F"
tests=$(cargo test --release -p recog --features "$F" --lib --test train_trajectory --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        t = m["target"]
        name = t["name"] if t["kind"] != ["lib"] else "lib"
        if name in ("lib", "train_trajectory"):
            print(name + "=" + m["executable"])
')
S=$(mktemp -d)
mkdir -p "$S/bin" "$S/tests/bin" "$S/home/data/lfw" "$S/home/models/face-api" "$S/models"
strip -o "$S/bin/recog" target/release/recog
for t in $tests; do strip -o "$S/tests/bin/test_${t%%=*}" "${t#*=}"; done
cp -r "$RECOG_HOME/models/blazeface" "$RECOG_HOME/models/opencv" "$S/home/models/"
cp "$RECOG_HOME"/models/face-api/{LICENSE,face_landmark_68_model*,face_recognition_model*} "$S/home/models/face-api/"
[ -d "$MODELS/mobilefacenet" ] && cp -r "$MODELS/mobilefacenet" "$S/models/"
(cd "$RECOG_HOME/data/lfw" && find images -name '*.jpg' | sort | sed -n 1,160p | tar cf - -T - pairs.txt) |
  tar xf - -C "$S/home/data/lfw"
mkdir -p "$D"
for t in "$S"/tests/bin/*; do tar cJf "$D/$(basename "$t").tar.xz" -C "$S/tests" "bin/$(basename "$t")"; done
rm -rf "$S/tests"
tar cJf "$D/bench.tar.xz" -C "$S" .
rm -rf "$S"
du -sh "$D"/*
