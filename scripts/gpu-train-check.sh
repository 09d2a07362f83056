#!/usr/bin/env bash
# The GPU training benchmark: Burn's training step on the GPU beside PyTorch eager on the same GPU, in one run.
#
# usage: scripts/gpu-train-check.sh [OUT_DIR]        (default: gpu-train-check/, git-ignored)
#
# Builds nothing. Needs, relative to the repository root (or set the variables):
#   CXR_TRAIN=target/release/cxr-train   built with the GPU backend to measure (`--features tch` or `vulkan`)
#   DEVICE=tch-cuda                      its `--device` (`tch-cuda`, `vulkan`, `cuda` where CubeCL builds)
#   PYTHON=python3                       a Python with torch + torchvision and the nvidia-* CUDA wheels. For the
#                                        `tch` backend it must be the PyTorch cxr-train was linked against (2.9.0).
#   BATCHES=32,64   STEPS=10             batch sizes and timed steps per row (after one warm-up step)
# Runs `cxr-train bench --no-loader --compare-pytorch` for both variants at 299², once with PyTorch in TF32 (its
# default for convolutions is cuDNN TF32 off: `tf32` turns it on, as the paper-era GPUs could not) and once with
# bf16 autocast + channels-last (PyTorch's fastest eager setting), then the loader on the fixtures (images/s per
# core: how many cores keep the GPU fed). Writes OUT_DIR/{tf32,bf16}.json and OUT_DIR/loader.txt.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${1:-gpu-train-check}
cxr_train=${CXR_TRAIN:-target/release/cxr-train}
device=${DEVICE:-tch-cuda}
python=${PYTHON:-python3}
batches=${BATCHES:-32,64}
steps=${STEPS:-10}
mkdir -p "$out"
say() { printf '\n== %s\n' "$*"; }
fail() { echo "gpu-train-check: FAILED: $*" >&2; exit 1; }

say "host"
[[ -x "$cxr_train" ]] || fail "$cxr_train missing (cargo build --release -p cxr-train --features tch)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || fail "nvidia-smi: no GPU or driver"
"$python" -c 'import torch, torchvision; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__, torch.cuda.get_device_name(0))' \
  || fail "$python has no CUDA PyTorch"

# The CUDA libraries of the PyPI wheels (and libtorch itself, for the `tch` backend) on the loader path.
site=$("$python" -c 'import site; print(site.getsitepackages()[0])')
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
nvidia_libs=$(find "$site/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$torch_lib:$nvidia_libs${LD_LIBRARY_PATH:-}"
if [[ "$device" == vulkan* && -z "${VK_DRIVER_FILES:-}" && -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
if ldd "$cxr_train" | grep 'not found'; then fail "$cxr_train: libraries missing (above)"; fi

bench() {
  "$cxr_train" bench --device "$device" --batch-sizes "$batches" --input-size 299 --steps "$steps" --no-loader \
    --compare-pytorch "$python" "$@"
}
say "training step, Burn $device FP32 vs PyTorch TF32"
bench --pytorch-precision tf32 --json "$out/tf32.json"
say "training step, Burn $device FP32 vs PyTorch bf16 autocast + channels-last"
bench --pytorch-precision bf16 --pytorch-channels-last --json "$out/bf16.json"
say "loader (decode + preprocess + augmentation) images/s on this host's CPUs"
for workers in 1 "$(nproc)"; do
  "$cxr_train" bench --no-training --workers "$workers" --images tests/data
done | tee "$out/loader.txt"
say "gpu-train-check: wrote $out/tf32.json $out/bf16.json $out/loader.txt"
