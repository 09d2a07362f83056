#!/usr/bin/env bash
# Builds the CPU container image from the repository's Dockerfile and proves that it serves: /readyz, a /predict
# with a fixture DICOM, the image's own HEALTHCHECK, then SIGTERM and a clean drain (exit 0).
#
# usage: scripts/container-check.sh                      (as root; run by .ci/run after `make test`, which built
#                                                         what it uses)
#        scripts/container-check.sh --source RUST_IMAGE   the same checks on an image compiled by the Dockerfile's
#                                                         build-source stage in RUST_IMAGE (a Rust 1.95 image with
#                                                         cargo on PATH); CXR_BUILD_CA_BUNDLE=FILE mounts FILE as
#                                                         the CA bundle of the build's RUN steps (for a
#                                                         TLS-intercepting proxy to crates.io / PyPI)
#
# Docker Hub is not reachable where this project is built and tested, and no Docker engine runs there, so:
#   - the base image is a Debian bookworm made here with mmdebstrap (from Debian's own mirror) and imported into
#     podman (DEBIAN_IMAGE build argument);
#   - the image is built with BINARIES=prebuilt: the release cxr-serve, ONNX Runtime's library and the exported
#     models that `make test` produced are staged in dist/container/ (the Dockerfile's build-source stage compiles
#     the same files; it needs the rust image from Docker Hub);
#   - podman runs with runc and explicit ulimits: on the development VM (cgroups v1 + v2 "hybrid") crun refuses to
#     start containers, and raising RLIMIT_NPROC/NOFILE to podman's defaults is not permitted.
# Prints the image size, the time from `podman run` to ready, and the time SIGTERM took.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
models=${MODELS_DIR:-models}
ort_lib=.cache/ort/cpu/libonnxruntime.so.1.31.1
base=localhost/cxr-debian:bookworm
image=localhost/cxr-serve:check
name=cxr-container-check
fixture=tests/data/dicom/cxr_explicit_le.dcm
rust_image=
if [[ ${1:-} == --source ]]; then
  rust_image=${2:?--source needs the Rust image to build in}
  image=localhost/cxr-serve:source-check
fi

missing=()
for tool in podman:podman mmdebstrap:mmdebstrap runc:runc; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "container-check: needs root to install ${missing[*]}" >&2; exit 1; }
  echo "container-check: installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ -z $rust_image ]]; then
  for f in "$target_dir/release/cxr-serve" "$ort_lib" "$models/cxr-inception-v3-color.onnx" "$models/cxr-inception-v3-gray.onnx"; do
    [[ -e $f ]] || { echo "container-check: $f is missing (run make test or make models first)" >&2; exit 1; }
  done
fi

run_flags=(--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
# Without systemd podman cannot schedule (or remove) the HEALTHCHECK timer and logs it on every run and stop; the
# check runs the HEALTHCHECK by hand below, so those lines are dropped and every other message is kept.
without_systemd_noise() { "$@" 2> >(grep -v 'systemd connection' >&2); }

if ! podman image exists "$base"; then
  echo "container-check: building $base with mmdebstrap" >&2
  tarball=$(mktemp /tmp/cxr-bookworm.XXXXXX.tar)
  mmdebstrap --quiet --variant=minbase bookworm "$tarball"
  podman import --quiet "$tarball" "$base" >/dev/null
  rm -f "$tarball"
fi

stage=dist/container
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$root/dist"
}
trap cleanup EXIT
build_args=(--build-arg FLAVOR=cpu --build-arg "DEBIAN_IMAGE=$base")
rm -rf dist
if [[ -n $rust_image ]]; then
  build_args+=(--build-arg BINARIES=source --build-arg "RUST_IMAGE=$rust_image")
  [[ -n ${CXR_BUILD_CA_BUNDLE:-} ]] && build_args+=(-v "$CXR_BUILD_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
else
  build_args+=(--build-arg BINARIES=prebuilt)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/models"
  cp "$target_dir/release/cxr-serve" "$stage/bin/"
  cp -P .cache/ort/cpu/libonnxruntime* "$stage/lib/"
  cp "$models"/cxr-inception-v3-{color,gray}.{onnx,json} "$stage/models/"
fi

echo "container-check: building $image" >&2
build_start=$(date +%s)
# FLAVOR is passed although it is the default: buildah 1.28 (Debian bookworm's podman) resolves `FROM runtime-${FLAVOR}`
# to the stage only for an ARG given on the command line, and looks for an image of that name otherwise.
podman build --quiet --format docker "${run_flags[@]}" "${build_args[@]}" -t "$image" -f Dockerfile . >/dev/null
build_secs=$(( $(date +%s) - build_start ))
size=$(podman image inspect --format '{{.Size}}' "$image")

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_ns=$(date +%s%N)
without_systemd_noise podman run -d --name "$name" "${run_flags[@]}" -p "127.0.0.1:$port:8080" -e CXR_SHADOW=color \
  "$image" >/dev/null
ready=false
for _ in $(seq 1 240); do
  if curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=true; break; fi
  [[ $(podman inspect --format '{{.State.Running}}' "$name") == true ]] || break
  sleep 0.25
done
if ! $ready; then
  podman logs "$name" >&2 || true
  echo "container-check: the container never became ready" >&2
  exit 1
fi
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

answer=$(curl -fsS -X POST -H 'Content-Type: application/dicom' --data-binary "@$fixture" "127.0.0.1:$port/predict")
python3 - "$answer" <<'PY'
import json, sys
body = json.loads(sys.argv[1])
result = body["results"][0]
assert body["input"]["format"] == "dicom", body["input"]
probabilities = [f["probability"] for f in result["findings"]]
assert len(probabilities) == 14 and all(0.0 <= p <= 1.0 for p in probabilities), result
print(f"container-check: /predict answered {result['model']} ({result['provider']}) with {len(probabilities)} findings")
PY
problem=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -X POST --data-binary 'not an image' "127.0.0.1:$port/predict")
[[ $problem == "415 application/problem+json" ]] || { echo "container-check: garbage upload got $problem" >&2; exit 1; }
podman exec "$name" /bin/bash -c 'id -u' | grep -qx 10001 || { echo "container-check: not running as uid 10001" >&2; exit 1; }
# The image's HEALTHCHECK command, run by podman exactly as declared (no systemd timer needed).
podman healthcheck run "$name" >/dev/null || { echo "container-check: the image's HEALTHCHECK failed" >&2; exit 1; }
metrics=$(curl -fsS "127.0.0.1:$port/metrics")
grep -q '^cxr_model_info{' <<<"$metrics" || { echo "container-check: /metrics has no cxr_model_info" >&2; exit 1; }

stop_start=$(date +%s%N)
without_systemd_noise podman stop --time 35 "$name" >/dev/null
stop_ms=$(( ($(date +%s%N) - stop_start) / 1000000 ))
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
logs=$(podman logs "$name" 2>&1)
[[ $exit_code == 0 ]] || { echo "$logs" | tail -20 >&2; echo "container-check: exit code $exit_code after SIGTERM" >&2; exit 1; }
grep -q 'shut down cleanly' <<<"$logs" || { echo "$logs" | tail -20 >&2; echo "container-check: no clean shutdown" >&2; exit 1; }

echo "container-check: image $image $(( size / 1000000 )) MB (built in $build_secs s), ready ${ready_ms} ms after podman run, SIGTERM -> exit 0 in ${stop_ms} ms"
