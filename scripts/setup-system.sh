#!/usr/bin/env bash
# Install the system packages the build needs, when they are missing (idempotent, fast when present):
#   cmake  — charls-sys builds CharLS (the JPEG-LS decoder used for DICOM) from source;
#   python3 + pip — fetches ONNX Runtime's wheel (scripts/setup-ort.sh) and runs the Python model checks.
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]} == 0)); then exit 0; fi
if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
  echo "setup-system: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
echo "setup-system: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
