#!/usr/bin/env python3
"""Record what real torchvision computes for the seeded `inception_v3` weights of the import tests.

Run once, by hand, when the generator, the fixtures or cxr-core preprocessing change (needs PyTorch, which CI does
not install):

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision numpy
    CXR_RECORD_INPUTS=/tmp/inputs.f32 cargo test --release -p cxr-train --test import safetensors_import_matches
    /tmp/tv/bin/python tests/python/record_torchvision.py /tmp/inputs.f32

(The cargo test fails its comparison the first time; it has written the inputs by then. Without a recording yet,
start from a JSON file holding only {"fixtures": [...]} with the list below.)

It writes tests/data/torchvision/inception_v3_seeded.json and data.pkl:
- the state dict's keys, shapes and dtypes as torchvision builds them
  (`inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)`), in its order;
- the weights from the generator below (mirrored in training/tests/common/torchvision.rs), loaded with
  `load_state_dict(strict=True)`;
- `torch.save`'s container for that state dict: its pickle (data.pkl), its small text entries and which storage
  holds which tensor, so the Rust test rebuilds the same .pth from the seed; this script checks that such a rebuilt
  file loads in torch to the same tensors;
- torchvision's logits in eval mode for the inputs (cxr-core's preprocessed color tensors of the fixtures, f32).
"""
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "torchvision"
SEED = 20180908
FIXTURES = ["images/nih_00000001_000.png", "dicom/cxr_explicit_le.dcm", "images/padchest_16747_3_1.jpg"]
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def splitmix64(x: np.ndarray) -> np.ndarray:
    z = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def value_range(key: str, shape) -> tuple:
    fan_in = max(int(np.prod(shape[1:])) if len(shape) > 1 else 1, 1)
    if key.endswith("conv.weight"):
        a = (6.0 / fan_in) ** 0.5
        return -a, a
    if key.endswith("fc.weight"):
        a = 1.0 / fan_in ** 0.5
        return -a, a
    if key.endswith("bn.weight") or key.endswith("running_var"):
        return 0.5, 1.5
    return -0.1, 0.1


def values(seed: int, key: str, shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    s = np.uint64(seed ^ fnv1a64(key.encode()))
    with np.errstate(over="ignore"):
        x = s + np.arange(1, n + 1, dtype=np.uint64) * GOLDEN
        u = (splitmix64(x) >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    lo, hi = value_range(key, shape)
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


def main() -> None:
    inputs_path = Path(sys.argv[1])
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    reference = model.state_dict()
    state = {}
    entries = []
    for key, tensor in reference.items():
        shape = list(tensor.shape)
        if tensor.dtype == torch.int64:
            state[key] = torch.zeros(shape, dtype=torch.int64)
            dtype = "int64"
        else:
            state[key] = torch.from_numpy(values(SEED, key, shape))
            dtype = "float32"
        entries.append({"key": key, "shape": shape, "dtype": dtype})
    model.load_state_dict(state, strict=True)
    model.eval()

    # torch.save's container: which storage holds which tensor, the pickle and the small entries.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    archive = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    names = archive.namelist()
    prefix = names[0].split("/")[0]
    storages = []
    for name in names:
        rel = name[len(prefix) + 1:]
        if rel.startswith("data/"):
            storages.append((rel[len("data/"):], archive.read(name)))
    by_bytes = {data: key for key, data in storages}
    extra = []
    for name in names:
        rel = name[len(prefix) + 1:]
        if rel != "data.pkl" and not rel.startswith("data/"):
            extra.append([rel, archive.read(name).decode()])
    for entry in entries:
        data = state[entry["key"]].numpy().tobytes()
        entry["storage"] = by_bytes[data] if entry["dtype"] == "float32" else None
    # int64 counters are all zero: each has its own storage; assign the remaining keys in order.
    float_keys = {e["storage"] for e in entries if e["storage"] is not None}
    remaining = sorted((k for k, _ in storages if k not in float_keys), key=int)
    for entry, key in zip([e for e in entries if e["storage"] is None], remaining):
        entry["storage"] = key
    pickle = archive.read(f"{prefix}/data.pkl")

    # The rebuilt file (what the Rust test writes) loads to the same tensors.
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as z:
        z.writestr("inception_v3_seeded/data.pkl", pickle)
        for rel, text in extra:
            z.writestr(f"inception_v3_seeded/{rel}", text)
        for entry in entries:
            z.writestr(f"inception_v3_seeded/data/{entry['storage']}", state[entry["key"]].numpy().tobytes())
    loaded = torch.load(io.BytesIO(rebuilt.getvalue()), weights_only=True)
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state), "rebuilt .pth differs"

    raw = inputs_path.read_bytes()
    x = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(len(FIXTURES), 3, 299, 299)
    with torch.no_grad():
        logits = model(x)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "data.pkl").write_bytes(pickle)
    record = {
        "seed": SEED,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "state_dict": entries,
        "pth_extra_entries": extra,
        "fixtures": FIXTURES,
        "inputs_sha256": hashlib.sha256(raw).hexdigest(),
        "logits": [[float(v) for v in row] for row in logits.numpy()],
    }
    (OUT / "inception_v3_seeded.json").write_text(json.dumps(record, indent=1) + "\n")
    p = torch.softmax(logits, 1)
    print(f"recorded {len(entries)} keys; logits range [{logits.min():.3f}, {logits.max():.3f}], "
          f"max softmax {p.max():.4f}; .pth rebuilt and verified; inputs sha256 {record['inputs_sha256'][:16]}")


if __name__ == "__main__":
    main()
