#!/usr/bin/env bash
# recog's checks on a machine with a GPU, in one bounded run: the benches on the GPU and on that
# machine's CPU side by side, a PyTorch peer on both, GPU-vs-CPU embeddings of the same photos,
# and the test binaries, all built with a GPU feature (`wgpu` or `cuda`, named by GPU=...,
# default wgpu). `BURN_DEVICE` puts each step on the GPU or, with `flex`, on the CPU.
#
# The tarballs are made on the build machine by tools/bench/gpu_bundle.sh (`recog` and test
# binaries built with the GPU feature, the face models, the first LFW photos).
#
#   tools/bench/gpu_check.sh BUNDLE_DIR OUT_DIR SECONDS TARBALL...
#
# It unpacks the tarballs named (from BUNDLE_DIR), runs the test binaries among them, then the
# benches if `recog` is among them.
#
# Each step has its own time limit, and a step that would start after SECONDS is skipped, so
# that the whole run ends inside a lease. Each step's output goes to OUT_DIR/steps.log, and its
# tail to the terminal. Where /work/main is missing, REPO=PATH links it to the checkout there,
# because the test binaries read their fixtures from the path they were built in.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
B=$(cd "$1" && pwd)
O=$2
BUDGET=$3
shift 3
mkdir -p "$O"
cd "$B" || exit 1
for t in "$@"; do python3 -c "import tarfile; tarfile.open('$t').extractall('x')" || exit 1; done
X=$B/x
chmod +x "$X"/bin/*
export RECOG_HOME=$X/home RECOG_MODEL_PATH=$X/models RECOG_OFFLINE=1 RUST_BACKTRACE=1
# The test binaries find their fixtures under the path they were built in.
if [ ! -e /work/main ] && [ -n "${REPO:-}" ]; then mkdir -p /work && ln -s "$REPO" /work/main; fi
# cudarc loads the driver and NVRTC at run time: NVRTC comes with the CUDA toolkit or a wheel.
nvrtc=$(find / -name 'libnvrtc.so.1[2-9]*' -not -path '/proc/*' 2>/dev/null | head -1)
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH=$(dirname "$nvrtc"):${LD_LIBRARY_PATH:-}
echo "nvrtc: ${nvrtc:-not found}"
# wgpu reaches the GPU through Vulkan: the NVIDIA driver's ICD, where the machine has one.
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
echo "vulkan ICD: $([ -f "$icd" ] && echo "$icd" || echo none); loader: $(ldconfig -p | grep -c libvulkan.so.1)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
nproc
R=$X/bin/recog
# Faces run on the CPU unless BURN_DEVICE names a device (recog::face_device), so every GPU
# step names it: GPU=cuda for a cuda build.
G=${GPU:-wgpu}
# Every step's whole output goes to OUT_DIR/steps.log; the npy files stay here.
T=$(mktemp -d)

step() {
  local name=$1 limit=$2
  shift 2
  if [ "$SECONDS" -ge "$BUDGET" ]; then
    echo "=== $name: skipped (budget)"
    return
  fi
  local t0=$SECONDS
  timeout "$limit" "$@" >"$T/$name.txt" 2>&1
  local rc=$?
  { echo "=== $name: rc=$rc, $((SECONDS - t0)) s: $*"; cat "$T/$name.txt"; } >>"$O/steps.log"
  echo "=== $name: rc=$rc, $((SECONDS - t0)) s"
  grep -v '^\s*$' "$T/$name.txt" | tail -n "${TAIL:-12}"
}

for t in "$X"/bin/test_*; do
  [ -e "$t" ] && TAIL=8 step "$(basename "$t")" 120 "$t" --test-threads 8
done
[ -e "$R" ] || { echo "=== done in $SECONDS s"; exit; }

step train_gpu 150 env BURN_DEVICE=$G "$R" bench train --steps 30 --warmup 5 --reference-ms 1 --reference-name none
step torch_gpu 90 python3 "$HERE/torch_train_peer.py" --device cuda --steps 30 --warmup 5
step face_gpu 150 env BURN_DEVICE=$G "$R" bench face --n 128
TAIL=4 step face_gpu_b64 90 env BURN_DEVICE=$G "$R" bench face --n 128 --batch 64
step train_cpu16 120 env BURN_DEVICE=flex "$R" bench train --steps 10 --warmup 2 --reference-ms 1 --reference-name none
step torch_cpu16 90 python3 "$HERE/torch_train_peer.py" --device cpu --steps 10 --warmup 2
TAIL=4 step face_cpu16 90 env BURN_DEVICE=flex "$R" bench face --n 128
imgs=$(find "$X/home/data/lfw/images" -name '*.jpg' | sort | head -64)
for m in mobilefacenet dlib; do
  TAIL=2 step "embed_${m}_gpu" 90 env BURN_DEVICE=$G "$R" face embed --face-model $m --npy "$T/${m}_gpu.npy" $imgs
  TAIL=2 step "embed_${m}_cpu" 90 env BURN_DEVICE=flex "$R" face embed --face-model $m --npy "$T/${m}_cpu.npy" $imgs
done
step embed_compare 30 python3 -c "
import numpy as np
for m in ['mobilefacenet', 'dlib']:
    a = np.load('$T/' + m + '_gpu.npy'); b = np.load('$T/' + m + '_cpu.npy')
    d = np.linalg.norm(a - b, axis=1)
    print(m, a.shape, 'GPU vs CPU distance: max %.2e mean %.2e' % (d.max(), d.mean()))
"
rm -rf "$T"
echo "=== done in $SECONDS s"
