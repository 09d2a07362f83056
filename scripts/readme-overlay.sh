#!/usr/bin/env bash
# Regenerates docs/img/cam-overlay.png, the README's heatmap picture: the real cxr-serve on the models in models/
# (`make models`), one fixture X-ray from tests/data posted with `explain=cam&overlay=png&top=1`, and the PNG taken
# out of the response as the server made it. Usage: scripts/readme-overlay.sh [MODEL] [FIXTURE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=${1:-gray}
fixture=${2:-tests/data/images/nih_00000001_000.png}
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/cxr-serve
[[ -x $bin ]] || { echo "readme-overlay: $bin is missing (make build)" >&2; exit 1; }
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.cache/ort/cpu/libonnxruntime.so.1.31.1}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --models models --bind "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "readme-overlay: cxr-serve exited" >&2; exit 1; }
  sleep 0.5
done
curl -fsS --data-binary "@$fixture" "127.0.0.1:$port/predict?model=$model&explain=cam&overlay=png&top=1" |
  python3 -c '
import base64, json, sys
result = json.load(sys.stdin)["results"][0]
(drawn,) = [m for m in result["explanation"]["maps"] if "overlay_png" in m]
open("docs/img/cam-overlay.png", "wb").write(base64.b64decode(drawn["overlay_png"]))
trained = "trained" if result["trained"] else "untrained (seeded)"
model, label, logit = result["model"], drawn["label"], drawn["logit"]
print(f"docs/img/cam-overlay.png: {model} model, {trained}, {label} (logit {logit:.3f})")
'
