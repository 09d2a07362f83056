"""Independent check of the exported models with the reference Python tooling.

Run by `make test` after `make models`: `onnx.checker` (full check, with shape inference) must accept both files,
Python onnxruntime 1.31 must load and run them at batch 1 and 3, the embedded card must match the sidecar JSON, the
gray model's first conv weight must be [32, 1, 3, 3] and the color one's [32, 3, 3, 3], with every other
initializer identical in shape. Prints one line per model and exits non-zero on any failure.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

LABELS = [
    "Atelectasis", "Cardiomegaly", "Emphysema", "Effusion", "Hernia", "Infiltration", "Mass", "Nodule",
    "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Fibrosis", "Pleural_Thickening",
]


def check(path: Path) -> dict:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    card = json.loads(meta["cxr.model_card"])
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert card == sidecar, f"{path.name}: embedded card differs from the sidecar"
    assert card["labels"] == LABELS, f"{path.name}: labels"
    assert card["trained"] is False or card["provenance"]["trained"] is True
    c = card["channels"]

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "image" and inp.shape[1:] == [c, 299, 299], (inp.name, inp.shape)
    outputs = ["probabilities", "logits", "features", "cam"]
    assert [o.name for o in sess.get_outputs()] == outputs
    assert card["outputs"] == outputs, f"{path.name}: the card lists the graph's outputs"
    rng = np.random.default_rng(0)
    for n in (1, 3):
        x = rng.uniform(-1, 1, size=(n, c, 299, 299)).astype(np.float32)
        probs, logits, features, cam = sess.run(None, {"image": x})
        assert probs.shape == (n, 14) and logits.shape == (n, 14)
        assert features.shape == (n, 2048, 8, 8) and cam.shape == (n, 14, 8, 8), (features.shape, cam.shape)
        assert np.allclose(probs, 1 / (1 + np.exp(-logits)), atol=1e-6)
        assert np.all(np.isfinite(probs)) and np.all((probs >= 0) & (probs <= 1))
        # The class activation maps average to the logits (global average pooling and fc are both linear).
        assert np.allclose(cam.mean(axis=(2, 3)), logits, atol=1e-4), np.abs(cam.mean(axis=(2, 3)) - logits).max()
        # Asking for the probabilities alone gives the same probabilities (what the server's plain runs fetch).
        (alone,) = sess.run(["probabilities"], {"image": x})
        assert np.array_equal(alone, probs)
    shapes = [list(t.dims) for t in model.graph.initializer]
    print(f"{path.name}: checker ok, onnxruntime {ort.__version__} ok, ir {model.ir_version}, "
          f"opset {model.opset_import[0].version}, {len(model.graph.node)} nodes, "
          f"{path.stat().st_size / 1e6:.1f} MB, trained={card['trained']}")
    return {"channels": c, "shapes": shapes}


def main() -> int:
    models = Path(sys.argv[1] if len(sys.argv) > 1 else "models")
    color = check(models / "cxr-inception-v3-color.onnx")
    gray = check(models / "cxr-inception-v3-gray.onnx")
    assert [32, 3, 3, 3] in color["shapes"] and [32, 1, 3, 3] not in color["shapes"]
    assert [32, 1, 3, 3] in gray["shapes"] and [32, 3, 3, 3] not in gray["shapes"]
    rest_c = sorted(s for s in color["shapes"] if s != [32, 3, 3, 3])
    rest_g = sorted(s for s in gray["shapes"] if s != [32, 1, 3, 3])
    assert rest_c == rest_g, "color and gray differ beyond the first conv"
    print("color vs gray: only the first conv weight differs ([32, 3, 3, 3] vs [32, 1, 3, 3])")
    print("python checks: 3 passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
