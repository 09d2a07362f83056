#!/usr/bin/env bash
# The virtualenv of the benchmark's Python reference server (bench/python/requirements.txt: FastAPI, uvicorn,
# onnxruntime, Pillow, numpy). Only `make bench` needs it, never `make test`.
#
# usage: scripts/setup-bench-python.sh [cpu|gpu]     (default cpu)
#   cpu: .cache/bench-venv      with onnxruntime==1.31.1
#   gpu: .cache/bench-venv-gpu  with onnxruntime-gpu==1.31.1 instead (CUDA 13 + cuDNN 9)
# Idempotent; prints the venv's python path on its last line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-cpu}" in
  cpu) exec "$root/scripts/setup-python.sh" "$root/bench/python/requirements.txt" "$root/.cache/bench-venv" ;;
  gpu) mkdir -p "$root/.cache"
       sed 's/^onnxruntime==/onnxruntime-gpu==/' "$root/bench/python/requirements.txt" > "$root/.cache/bench-requirements-gpu.txt"
       exec "$root/scripts/setup-python.sh" "$root/.cache/bench-requirements-gpu.txt" "$root/.cache/bench-venv-gpu" ;;
  *) echo "setup-bench-python: unknown flavor '$1' (expected cpu or gpu)" >&2; exit 2 ;;
esac
