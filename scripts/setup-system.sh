#!/usr/bin/env bash
# Install the system packages the build needs, when they are missing (idempotent, fast when present):
#   cmake  — charls-sys builds CharLS (the JPEG-LS decoder used for DICOM) from source;
#   python3 + pip — fetches ONNX Runtime's wheel (scripts/setup-ort.sh) and runs the Python model checks;
#   prometheus — only with --with-promtool (the tests): its `promtool` lints the `/metrics` exposition;
#   fonts-dejavu-core — the TrueType font `cxr-train compare` writes its ROC chart text with;
#   orthanc, orthanc-dicomweb, dicom3tools, dcmtk — only with --with-pacs (the tests): the PACS the DICOMweb test
#   runs against (as a plain process; its service is never started), the `dciodvfy` validator and `dcmodify`.
#
# usage: scripts/setup-system.sh [--with-promtool] [--with-pacs]
set -euo pipefail
with_promtool=false
with_pacs=false
for arg in "$@"; do
  case $arg in
    --with-promtool) with_promtool=true ;;
    --with-pacs) with_pacs=true ;;
    *) echo "setup-system: unknown option $arg" >&2; exit 2 ;;
  esac
done
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
$with_promtool && ! command -v promtool >/dev/null 2>&1 && missing+=(prometheus)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
if $with_pacs; then
  [[ -x /usr/sbin/Orthanc ]] || missing+=(orthanc)
  [[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] || missing+=(orthanc-dicomweb)
  command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
  command -v dcmodify >/dev/null 2>&1 || missing+=(dcmtk)
fi
if ((${#missing[@]} == 0)); then exit 0; fi
if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
  echo "setup-system: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
echo "setup-system: installing ${missing[*]}" >&2

# Debian's prometheus and orthanc packages would start their servers from their maintainer scripts (through systemd
# or an init script). We only want promtool, and Orthanc as a process the test starts itself, so while installing,
# a policy-rc.d that denies every service start is in place (the same mechanism Debian's Docker images use);
# without systemd, deb-systemd-invoke does nothing anyway.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ " ${missing[*]} " =~ " "(prometheus|orthanc)" " && ! -e $policy ]]; then
  printf '#!/bin/sh\n# Installed by cxr-gray scripts/setup-system.sh while installing packages.\nexit 101\n' \
    | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [[ " ${missing[*]} " =~ " "(prometheus|orthanc)" " ]]; then
  # Belt and braces: should a service manager have started a server anyway, stop and disable it.
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now prometheus.service orthanc.service >/dev/null 2>&1 || true
  fi
fi
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if ! command -v promtool >/dev/null 2>&1; then
    echo "setup-system: the prometheus package is installed but promtool is missing" >&2
    exit 1
  fi
fi
