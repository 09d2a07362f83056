#!/usr/bin/env bash
# Create the git-ignored virtualenv .cache/venv with the Python tools the tests use: onnx (checker),
# onnxruntime (an independent consumer of our exports) and numpy. Idempotent; prints the venv's python path.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.cache/venv"
stamp="$venv/.requirements"
want="$(cat "$root/tests/python/requirements.txt")"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"; exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/tests/python/requirements.txt" >&2
printf '%s' "$want" > "$stamp"
echo "$venv/bin/python"
