#!/usr/bin/env python3
"""The Open Inference Protocol (KServe v2) routes of cxr-serve, exercised by the real `tritonclient[http]`.

    python tests/python/oip_tritonclient.py --server target/release/cxr-serve --models models \
        --ort-dylib .cache/ort/cpu/libonnxruntime.so.1.31.1

Starts cxr-serve on a free port, then with NVIDIA's client (not written by this project): server and model
metadata, liveness and readiness, inference with binary input and outputs, with JSON input and outputs, a batch of
three, the class activation maps and feature map on request, and an unknown model. The outputs must equal what onnxruntime (Python, same version as the server's library)
computes from the same tensor with the same model file, to 1e-5. Stops the server with SIGTERM; it must exit 0.
"""
import argparse
import re
import signal
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def start(args):
    server = subprocess.Popen(
        [args.server, "--bind", "127.0.0.1:0", "--models", args.models, "--ort-dylib", args.ort_dylib],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    for line in server.stdout:
        match = re.search(r"listening on (\S+)", line)
        if match:
            return server, match.group(1)
        if time.time() > deadline:
            break
    server.kill()
    sys.exit("oip: cxr-serve did not print its address")


def expected(models, name, x, outputs=("probabilities", "logits")):
    session = ort.InferenceSession(f"{models}/cxr-inception-v3-{name}.onnx", providers=["CPUExecutionProvider"])
    return session.run(list(outputs), {"image": x})


def infer(client, name, x, binary_in, binary_out, names=("probabilities", "logits")):
    image = httpclient.InferInput("image", list(x.shape), "FP32")
    image.set_data_from_numpy(x, binary_data=binary_in)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=binary_out) for o in names]
    result = client.infer(name, [image], outputs=outputs, request_id="oip-test")
    assert result.get_response()["model_name"] == name
    return [result.as_numpy(o) for o in names]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--ort-dylib", required=True)
    args = parser.parse_args()
    server, addr = start(args)
    try:
        client = httpclient.InferenceServerClient(url=addr)
        for _ in range(600):
            if client.is_server_ready():
                break
            time.sleep(0.2)
        assert client.is_server_live() and client.is_server_ready()
        meta = client.get_server_metadata()
        assert meta["name"] == "cxr-serve" and "binary_tensor_data" in meta["extensions"], meta
        rng = np.random.default_rng(20180908)
        worst = 0.0
        for name, channels in (("color", 3), ("gray", 1)):
            assert client.is_model_ready(name)
            model = client.get_model_metadata(name)
            assert model["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, channels, 299, 299]}], model
            assert [o["name"] for o in model["outputs"]] == ["probabilities", "logits", "features", "cam"], model
            for batch, binary_in, binary_out in ((1, True, True), (1, False, False), (3, True, False)):
                x = rng.uniform(-1, 1, (batch, channels, 299, 299)).astype(np.float32)
                probabilities, logits = infer(client, name, x, binary_in, binary_out)
                want_p, want_l = expected(args.models, name, x)
                assert probabilities.shape == (batch, 14) and logits.shape == (batch, 14)
                diff = max(float(np.abs(probabilities - want_p).max()), float(np.abs(logits - want_l).max()))
                print(f"oip {name}: batch {batch}, binary in {binary_in}, binary out {binary_out}: "
                      f"max |diff| vs onnxruntime {diff:.2e}")
                assert diff <= 1e-5, diff
                worst = max(worst, diff)
            # The maps, asked for by name: what onnxruntime's own `cam` and `features` outputs are.
            x = rng.uniform(-1, 1, (2, channels, 299, 299)).astype(np.float32)
            cam, features = infer(client, name, x, True, True, ("cam", "features"))
            want_cam, want_features = expected(args.models, name, x, ("cam", "features"))
            assert cam.shape == (2, 14, 8, 8) and features.shape == (2, 2048, 8, 8), (cam.shape, features.shape)
            diff = max(float(np.abs(cam - want_cam).max()), float(np.abs(features - want_features).max()))
            print(f"oip {name}: cam and features, batch 2: max |diff| vs onnxruntime {diff:.2e}")
            assert diff <= 1e-4, diff
        try:
            client.get_model_metadata("resnet50")
            raise AssertionError("unknown model answered")
        except InferenceServerException as e:
            assert "unknown model" in str(e), e
        print(f"oip: tritonclient passed (max |diff| {worst:.2e})")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, f"cxr-serve exited {code}"


if __name__ == "__main__":
    main()
