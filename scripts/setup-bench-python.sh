#!/usr/bin/env bash
# Create the git-ignored virtualenv of the benchmark's Python reference server (bench/python/requirements.txt:
# FastAPI, uvicorn, onnxruntime, Pillow, numpy). Only `make bench` needs it, never `make test`.
#
# usage: scripts/setup-bench-python.sh [cpu|gpu]     (default cpu)
#   cpu: .cache/bench-venv      with onnxruntime==1.31.1
#   gpu: .cache/bench-venv-gpu  with onnxruntime-gpu==1.31.1 instead (CUDA 13 + cuDNN 9)
# Idempotent; prints the venv's python path on its last line.
set -euo pipefail
flavor=${1:-cpu}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$flavor" in
  cpu) venv="$root/.cache/bench-venv"; want="$(cat "$root/bench/python/requirements.txt")" ;;
  gpu) venv="$root/.cache/bench-venv-gpu"
       want="$(sed 's/^onnxruntime==/onnxruntime-gpu==/' "$root/bench/python/requirements.txt")" ;;
  *) echo "setup-bench-python: unknown flavor '$flavor' (expected cpu or gpu)" >&2; exit 2 ;;
esac
stamp="$venv/.requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"; exit 0
fi
echo "setup-bench-python: creating $venv" >&2
python3 -m venv "$venv"
requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
printf '%s\n' "$want" > "$requirements"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
printf '%s' "$want" > "$stamp"
echo "$venv/bin/python"
