#!/bin/bash
# Two recog builds side by side on `recog bench face`, alternating, in f32 and bf16: the
# ratio between builds that README's speed figures quote (absolute times on this 2-core host
# move by up to 20% from run to run, so only alternating runs compare).
#
# Usage: tools/bench/face_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [N]
#   e.g. git worktree add /tmp/old f31136f && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \
#        cargo build --release -p recog-cli)
#        tools/bench/face_ab.sh /tmp/old-target/release/recog target/release/recog 2 512
set -euo pipefail
old=$1 new=$2 rounds=${3:-3} n=${4:-128}
for r in $(seq "$rounds"); do
  for build in old new; do
    bin=$old
    [ "$build" = new ] && bin=$new
    for p in f32 bf16; do
      printf 'round %s %s %-4s --n %s: ' "$r" "$build" "$p" "$n"
      "$bin" bench face --precision "$p" --n "$n" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("decode %.2f detect %.2f ms/image, landmarks %.2f align %.2f embed %.2f ms/face, %.1f faces/s" % (
    d["decode_ms_per_image"], d["detect_ms_per_image"], d["landmarks_ms_per_face"],
    d["align_ms_per_face"], d["embed_ms_per_face"], d["faces_per_s"]))'
    done
  done
done
