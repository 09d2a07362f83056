#!/usr/bin/env bash
# Schemathesis against openapi.yaml and the real server: every check, fixed seed, bounded examples
# (tests/schemathesis.toml). Fails on any 5xx, any response that does not match the schema, and any other check.
#
# usage: tests/python/schemathesis.sh PYTHON CXR_SERVE MODELS_DIR ORT_DYLIB
set -euo pipefail
python=$1 server=$2 models=$3 dylib=$4
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log=$(mktemp)
# A push target that never answers: the STOW-RS routes are served (their results would queue for it).
"$server" --bind 127.0.0.1:0 --models "$models" --ort-dylib "$dylib" --dicomweb-push http://127.0.0.1:9/dicom-web/ \
  >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1 600); do
  addr=$(grep -o 'listening on [0-9.:]*' "$log" | head -n1 | awk '{print $3}') || true
  [[ -n "$addr" ]] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "schemathesis: cxr-serve exited" >&2; exit 1; }
  sleep 0.5
done
SCHEMATHESIS_HOOKS="$root/tests/python/schemathesis_hooks.py" "$(dirname "$python")/st" --config-file "$root/tests/schemathesis.toml" run "$root/openapi.yaml" \
  --url "http://$addr" --checks all --no-color
