#!/usr/bin/env bash
# Provision the ONNX Runtime shared library that `ort` (load-dynamic) opens at run time.
#
# usage: scripts/setup-ort.sh [cpu|gpu]      (default cpu)
#
# Fetches the official PyPI wheel (onnxruntime==1.31.1, or onnxruntime-gpu==1.31.1 for `gpu`) with pip, no deps,
# and extracts libonnxruntime.so.1.31.1 (plus, for gpu, the CUDA provider libraries) into the git-ignored cache
# .cache/ort/<flavor>/. Idempotent: a second run with the library present does nothing. Prints the library path
# on its last line so callers can `export ORT_DYLIB_PATH=$(scripts/setup-ort.sh | tail -n1)`.
set -euo pipefail

ORT_VERSION=1.31.1
flavor=${1:-cpu}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$flavor" in
  cpu) package=onnxruntime ;;
  gpu) package=onnxruntime-gpu ;;
  *) echo "setup-ort: unknown flavor '$flavor' (expected cpu or gpu)" >&2; exit 2 ;;
esac

dest="$root/.cache/ort/$flavor"
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [[ -s "$lib" ]]; then
  echo "$lib"
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "setup-ort: '$python -m pip' is not available; install Python 3 with pip (Debian: python3-pip)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "setup-ort: downloading $package==$ORT_VERSION from PyPI" >&2
if ! "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "$package==$ORT_VERSION" >&2; then
  echo "setup-ort: pip could not fetch $package==$ORT_VERSION (is PyPI reachable?)" >&2
  exit 1
fi
wheel=$(ls "$work"/*.whl | head -n1)
mkdir -p "$dest"
# A wheel is a zip; Python's zipfile avoids depending on unzip being installed.
"$python" - "$wheel" "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and (base.startswith("libonnxruntime") and ".so" in base):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as out:
                out.write(src.read())
PY
if [[ ! -s "$lib" ]]; then
  echo "setup-ort: $wheel did not contain onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" >&2
  exit 1
fi
ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
echo "setup-ort: installed $(ls "$dest" | tr '\n' ' ')" >&2
echo "$lib"
