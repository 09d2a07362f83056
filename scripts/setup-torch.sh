#!/usr/bin/env bash
# The PyTorch virtualenv of the `tch` training backend and of `cxr-train bench --compare-pytorch`
# (training/requirements-torch.txt: torch 2.9.0 + torchvision 0.24.0 from PyPI, CUDA 12.8 libraries included).
#
# usage: scripts/setup-torch.sh [--env]
#   prints the venv's python on its last line; with --env, prints instead the shell assignments a `tch` build and
#   its binaries need: LIBTORCH (the wheel's torch/ folder, with include/ and lib/; torch-sys reruns its build
#   script when it changes), LIBTORCH_CXX11_ABI, LD_LIBRARY_PATH (the wheel's lib/) and PATH (that python first).
# Idempotent: the venv (.cache/torch-venv) is rebuilt only when the requirements change.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=$("$root/scripts/setup-python.sh" "$root/training/requirements-torch.txt" "$root/.cache/torch-venv" | tail -n1)
if [[ "${1:-}" == --env ]]; then
  read -r torch abi < <("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__), int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  echo "export LIBTORCH=$torch LIBTORCH_CXX11_ABI=$abi LD_LIBRARY_PATH=$torch/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} PATH=$(dirname "$python"):\$PATH"
else
  echo "$python"
fi
