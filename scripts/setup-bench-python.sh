#!/usr/bin/env bash
# Create the git-ignored virtualenv .cache/bench-venv with the Python reference server's packages
# (bench/python/requirements.txt: FastAPI, uvicorn, onnxruntime, Pillow, numpy). Only `make bench` needs it.
# Idempotent; prints the venv's python path on its last line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.cache/bench-venv"
requirements="$root/bench/python/requirements.txt"
stamp="$venv/.requirements"
want="$(cat "$requirements")"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"; exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
printf '%s' "$want" > "$stamp"
echo "$venv/bin/python"
