#!/usr/bin/env bash
# The CUDA check: export the models, prove CUDA agrees with the CPU, and benchmark cxr-serve on the GPU.
#
# usage: scripts/gpu-check.sh [OUT_DIR]        (default: gpu-check/, git-ignored)
#
# Works on a bare GPU host where only the NVIDIA driver and a Python with the CUDA 13 libraries (the nvidia-* wheels
# PyTorch installs: cu13, cudnn, cublas, ...) exist — no Rust, no network. It needs, relative to the repository root
# (or set the variables):
#   BIN_DIR=target/release       cxr-train, cxr-serve and cxr-bench, built on any x86-64 Linux with an older glibc
#   ORT_GPU_DIR=.cache/ort/gpu   libonnxruntime.so.1.31.1, libonnxruntime_providers_shared.so and
#                                libonnxruntime_providers_cuda.so from the onnxruntime-gpu==1.31.1 wheel
#                                (`scripts/setup-ort.sh gpu` on a machine that reaches PyPI)
#   ORT_CPU_DIR=.cache/ort/cpu   the CPU build, for the parity reference (optional: without it, the GPU library's
#                                CPU provider is the reference)
#   PYTHON=python3               the Python whose site-packages hold the nvidia libraries
#   BENCH_ARGS=--quick           extra cxr-bench flags (the Python reference server is skipped: it needs PyPI)
# Steps, each printed: library check (ldd: nothing missing), `cxr-train export`, CPU-vs-CUDA parity on every fixture
# through the real server (max |Δp|, must be ≤ 1e-3), the FP16 files on CUDA against FP32 on the CPU (max |Δp|
# printed, must be ≤ 1e-2), `/v1/models` showing CUDAExecutionProvider with every padded batch size warmed, then
# `cxr-bench --device cuda` for FP32, for FP16, and for FP32 with `--io-binding off` (what the pinned-memory binding
# buys). Exit status 0 only when every check passed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${1:-gpu-check}
bin=${BIN_DIR:-target/release}
ort_gpu=${ORT_GPU_DIR:-.cache/ort/gpu}
ort_cpu=${ORT_CPU_DIR:-.cache/ort/cpu}
python=${PYTHON:-python3}
mkdir -p "$out"
say() { printf '\n== %s\n' "$*"; }
fail() { echo "gpu-check: FAILED: $*" >&2; exit 1; }

say "binaries and libraries"
for b in cxr-train cxr-serve cxr-bench; do [[ -x "$bin/$b" ]] || fail "$bin/$b missing (cargo build --release)"; done
for l in libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
  [[ -s "$ort_gpu/$l" ]] || fail "$ort_gpu/$l missing (scripts/setup-ort.sh gpu, or set ORT_GPU_DIR)"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || fail "nvidia-smi: no GPU or driver"
# The CUDA 13 runtime, cuBLAS and cuDNN of the Python nvidia-* wheels.
site=$("$python" -c 'import site; print(site.getsitepackages()[0])')
cuda_libs=$(find "$site/nvidia" -type d -name lib 2>/dev/null | sort | tr '\n' ':')
export LD_LIBRARY_PATH="$(cd "$ort_gpu" && pwd):${cuda_libs}${LD_LIBRARY_PATH:-}"
missing=$(ldd "$ort_gpu/libonnxruntime_providers_cuda.so" | grep 'not found' || true)
[[ -z "$missing" ]] || fail "the CUDA provider cannot find: $missing (is $site/nvidia from the CUDA 13 wheels?)"
echo "ldd: every library of the CUDA provider found"

say "export"
"$bin/cxr-train" export --variant both --fp16 --out "$out/models"

# One server per device on a free port; prints its address, answers each fixture, is stopped with SIGTERM.
serve_and_predict() { # device dylib result-file [precision]
  local precision=${4:-fp32}
  local log="$out/serve-$1-$precision.log"
  "$bin/cxr-serve" --bind 127.0.0.1:0 --models "$out/models" --device "$1" --ort-dylib "$2" \
    --precision "$precision" >"$log" 2>&1 &
  local pid=$! addr=""
  for _ in $(seq 1 600); do
    addr=$(grep -o 'listening on [0-9.:]*' "$log" | head -n1 | awk '{print $3}') || true
    [[ -n "$addr" ]] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "cxr-serve --device $1 exited"; }
    sleep 0.5
  done
  curl -fsS "http://$addr/v1/models" >"$out/models-$1-$precision.json"
  : >"$3"
  for f in $(cd tests/data && ls dicom/*.dcm images/*); do
    local type=application/dicom
    case "$f" in *.png) type=image/png ;; *.jpg) type=image/jpeg ;; esac
    printf '%s ' "$f" >>"$3"
    curl -fsS -H "content-type: $type" --data-binary "@tests/data/$f" "http://$addr/predict?model=both" >>"$3"
    echo >>"$3"
  done
  kill -TERM "$pid"; wait "$pid" || true
}

say "parity: CPU vs CUDA on every fixture"
cpu_lib="$ort_cpu/libonnxruntime.so.1.31.1"
[[ -s "$cpu_lib" ]] || cpu_lib="$ort_gpu/libonnxruntime.so.1.31.1"
serve_and_predict cpu "$cpu_lib" "$out/predict-cpu.txt"
serve_and_predict cuda "$ort_gpu/libonnxruntime.so.1.31.1" "$out/predict-cuda.txt"
serve_and_predict cuda "$ort_gpu/libonnxruntime.so.1.31.1" "$out/predict-cuda-fp16.txt" fp16
"$python" - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
def load(name):
    rows = {}
    for line in open(f"{out}/predict-{name}.txt"):
        f, body = line.split(" ", 1)
        rows[f] = {r["model"]: [x["probability"] for x in r["findings"]] for r in json.loads(body)["results"]}
    return rows
cpu, cuda, fp16 = load("cpu"), load("cuda"), load("cuda-fp16")
def worst_of(other):
    return max(abs(a - b) for f in cpu for m in cpu[f] for a, b in zip(cpu[f][m], other[f][m]))
worst, worst16 = worst_of(cuda), worst_of(fp16)
for m in json.load(open(f"{out}/models-cuda-fp32.json"))["models"] + json.load(open(f"{out}/models-cuda-fp16.json"))["models"]:
    print(f"{m['model']} ({m['precision']}, I/O binding {m['io_binding']}): {m['provider']}, batch sizes {m['batch_sizes']}, warmed {m['warmed_batch_sizes']}, "
          f"warm-up {m['warm_up_ms']:.0f} ms")
    assert m["provider"] == "CUDAExecutionProvider", "not on CUDA"
    assert m["warmed_batch_sizes"] == m["batch_sizes"], "a padded batch size was not warmed"
print(f"CPU vs CUDA: {len(cpu)} fixtures x 2 models, max |dp| = {worst:.2e}")
print(f"FP16 on CUDA vs FP32 on the CPU: max |dp| = {worst16:.2e}")
assert worst <= 1e-3, "CUDA disagrees with the CPU"
assert worst16 <= 1e-2, "the FP16 files on CUDA disagree with FP32"
EOF

say "benchmark (cxr-bench --device cuda)"
"$bin/cxr-bench" --device cuda --models "$out/models" --ort-dylib "$ort_gpu/libonnxruntime.so.1.31.1" \
  --server-bin "$bin/cxr-serve" --max-batch 64 --batch-sizes 8,32,64 --no-python --out "$out/bench.json" \
  ${BENCH_ARGS:-} | tee "$out/bench.md"
"$bin/cxr-bench" --device cuda --precision fp16 --models "$out/models" --ort-dylib "$ort_gpu/libonnxruntime.so.1.31.1" \
  --server-bin "$bin/cxr-serve" --max-batch 64 --batch-sizes 8,32,64 --no-python --out "$out/bench-fp16.json" \
  ${BENCH_ARGS:-} | tee "$out/bench-fp16.md"
# The same FP32 server without the pinned-memory I/O binding, to see what it buys (raw phase skipped: unchanged).
"$bin/cxr-bench" --device cuda --io-binding off --no-raw --models "$out/models" \
  --ort-dylib "$ort_gpu/libonnxruntime.so.1.31.1" --server-bin "$bin/cxr-serve" --max-batch 64 --no-python \
  --out "$out/bench-no-io-binding.json" ${BENCH_ARGS:-} | tee "$out/bench-no-io-binding.md"
echo "gpu-check: passed; results in $out/"
