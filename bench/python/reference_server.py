"""The Python reference server of `cxr-bench`: what a user would write instead of cxr-serve.

FastAPI + uvicorn + onnxruntime + Pillow/numpy, one model per process, batch 1 per request. It follows the same
method as cxr-core (see the model card's `preprocessing`), so the probabilities agree with cxr-serve's:

    PNG/JPEG bytes --Pillow--> gray plane in [0, 1] (16-bit /65535, 8-bit /255, RGB -> Luma 0.299R+0.587G+0.114B)
    -> letterbox onto a centred black square -> Pillow BILINEAR resize (antialiased when downscaling) to N x N
    -> (x - mean) / std -> 1 channel, or the plane stacked to 3 (color) -> session.run

The ONNX Runtime session is what a user writes: `ort.InferenceSession(model, providers=[...])` with ONNX Runtime's
default options (all graph optimisations, one intra-op thread per physical core, spinning); `--intra-threads N`
overrides the thread count only when given. Only PNG/JPEG are decoded (the benchmark sends the PNG): DICOM would need pydicom and
is not part of the comparison.

    python reference_server.py --model models/cxr-inception-v3-gray.onnx --card models/cxr-inception-v3-gray.json \
        --bind 127.0.0.1:0

prints `listening on HOST:PORT` once the model is loaded and warmed up, then serves `POST /predict` (raw image body)
and `GET /readyz`.
"""

import argparse
import io
import json
import socket
import sys
import time

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool


def gray_plane(data: bytes) -> np.ndarray:
    """Decodes a PNG/JPEG into a float32 plane in [0, 1]."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if img.mode in ("I;16", "I;16L", "I;16B", "I"):
        return np.asarray(img, dtype=np.float32) / 65535.0
    if img.mode in ("L", "LA"):
        return np.asarray(img.getchannel(0), dtype=np.float32) / 255.0
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0


def preprocess(plane: np.ndarray, size: int, mean: float, std: float, channels: int) -> np.ndarray:
    """Letterbox, antialiased bilinear resize, normalise, stack: a [1, C, size, size] float32 tensor."""
    h, w = plane.shape
    side = max(h, w)
    if (h, w) != (side, side):
        square = np.zeros((side, side), dtype=np.float32)
        y, x = (side - h) // 2, (side - w) // 2
        square[y : y + h, x : x + w] = plane
        plane = square
    resized = np.asarray(Image.fromarray(plane).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    normalised = (resized - mean) / std
    return np.ascontiguousarray(np.broadcast_to(normalised, (1, channels, size, size)), dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--card", required=True, help="the model's sidecar card (input size, normalisation)")
    parser.add_argument("--intra-threads", type=int, default=0, help="0: ONNX Runtime's default")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bind", default="127.0.0.1:0")
    args = parser.parse_args()

    with open(args.card, encoding="utf-8") as f:
        card = json.load(f)
    size, channels = card["input_size"], card["channels"]
    mean, std = card["normalization"]["mean"], card["normalization"]["std"]

    options = ort.SessionOptions()  # ONNX Runtime's defaults
    if args.intra_threads:
        options.intra_op_num_threads = args.intra_threads
    if args.device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.exit("reference_server: --device cuda but this onnxruntime has no CUDAExecutionProvider "
                     "(install onnxruntime-gpu==1.31.1)")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(args.model, options, providers=providers)
    provider = session.get_providers()[0]
    labels = card["labels"]
    session.run(["probabilities"], {"image": np.zeros((1, channels, size, size), dtype=np.float32)})  # warm-up

    def infer(body: bytes) -> dict:
        t0 = time.perf_counter()
        plane = gray_plane(body)
        t1 = time.perf_counter()
        tensor = preprocess(plane, size, mean, std, channels)
        t2 = time.perf_counter()
        (probabilities,) = session.run(["probabilities"], {"image": tensor})
        t3 = time.perf_counter()
        return {
            "results": [
                {
                    "model": card["variant"],
                    "provider": provider,
                    "findings": [{"label": l, "probability": float(p)} for l, p in zip(labels, probabilities[0])],
                    "timing_ms": {
                        "decode": (t1 - t0) * 1e3,
                        "preprocess": (t2 - t1) * 1e3,
                        "inference": (t3 - t2) * 1e3,
                        "total": (t3 - t0) * 1e3,
                    },
                    "batch_size": 1,
                }
            ]
        }

    app = FastAPI(title="cxr reference (Python)")

    @app.get("/readyz")
    def readyz() -> dict:
        return {"status": "ready"}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = await request.body()
        # Decoding and inference block: run them on the threadpool, as FastAPI does for a plain `def` endpoint.
        return await run_in_threadpool(infer, body)

    host, port = args.bind.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"listening on {bound_host}:{bound_port}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
