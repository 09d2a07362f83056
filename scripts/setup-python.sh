#!/usr/bin/env bash
# Create (or reuse) a git-ignored Python virtualenv holding exactly the pinned requirements of one file.
#
# usage: scripts/setup-python.sh [REQUIREMENTS [VENV]]
#   defaults: tests/python/requirements.txt (onnx checker, onnxruntime, numpy) into .cache/venv
# Idempotent: the venv is rebuilt only when the requirements change. Prints the venv's python on its last line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements=${1:-$root/tests/python/requirements.txt}
venv=${2:-$root/.cache/venv}
want="$(cat "$requirements")"
stamp="$venv/.requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"; exit 0
fi
echo "setup-python: creating $venv from $requirements" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
printf '%s' "$want" > "$stamp"
echo "$venv/bin/python"
