#!/usr/bin/env bash
# Install the system packages the build needs, when they are missing (idempotent, fast when present):
#   cmake  — charls-sys builds CharLS (the JPEG-LS decoder used for DICOM) from source;
#   python3 + pip — fetches ONNX Runtime's wheel (scripts/setup-ort.sh) and runs the Python model checks;
#   prometheus — only with --with-promtool (the tests): its `promtool` lints the `/metrics` exposition;
#   fonts-dejavu-core — the TrueType font `cxr-train compare` writes its ROC chart text with.
#
# usage: scripts/setup-system.sh [--with-promtool]
set -euo pipefail
with_promtool=false
[[ "${1:-}" == "--with-promtool" ]] && with_promtool=true
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
$with_promtool && ! command -v promtool >/dev/null 2>&1 && missing+=(prometheus)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
if ((${#missing[@]} == 0)); then exit 0; fi
if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
  echo "setup-system: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
echo "setup-system: installing ${missing[*]}" >&2

# Debian's prometheus package would start a Prometheus server from its maintainer scripts (through systemd or its
# init script). We only want promtool, so while installing, a policy-rc.d that denies every service start is in
# place (the same mechanism Debian's Docker images use); without systemd, deb-systemd-invoke does nothing anyway.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ " ${missing[*]} " == *" prometheus "* && ! -e $policy ]]; then
  printf '#!/bin/sh\n# Installed by cxr-gray scripts/setup-system.sh while installing packages.\nexit 101\n' \
    | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  # Belt and braces: should a service manager have started the server anyway, stop and disable it.
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    echo "setup-system: the prometheus package is installed but promtool is missing" >&2
    exit 1
  fi
fi
