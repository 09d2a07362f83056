#!/usr/bin/env python3
"""Build the small ONNX classifiers in tests/data/onnx/ that `cxr-train adopt` is tested on.

    python3 tests/python/make_adopt_fixtures.py      # needs onnx and numpy (tests/python/requirements.txt)

Each is a real (if tiny) image classifier with seeded weights — strided convolution, ReLU, global average pooling,
a linear layer — built with the `onnx` helper API in the shapes the two common exporters produce:

- torch_style.onnx: what `torch.onnx.export(model, x, input_names=["image"], output_names=["logits"],
  dynamic_axes={"image": {0: "batch_size"}, "logits": {0: "batch_size"}})` writes for a 3-channel model:
  NCHW input [batch_size, 3, 299, 299], Gemm head, raw logits [batch_size, 14] in NIH order (torch_style.labels.txt,
  the CSV's spellings with underscores). Its tensor names are the served interface's own, so adopting it exercises
  the renaming.
- tf_style.onnx: what tf2onnx writes for a Keras 1-channel model with a sigmoid head: NHWC input
  `input_1` [unk__0, 299, 299, 1] followed by tf2onnx's Transpose to NCHW, MatMul + Add head, `dense/Sigmoid:0`
  [unk__1, 15] — the 14 findings in another order plus "No Finding" (tf_style.labels.txt); trained on [0, 1] pixels.
- Refused shapes: fixed_batch.onnx (batch fixed at 1), softmax.onnx (mutually exclusive classes), size224.onnx
  (224×224 input), two_outputs.onnx (logits and an embedding).
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "onnx"
NIH = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
       "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]


def body(x: str, channels: int, classes: int, rng, head: str = "gemm"):
    """Conv(8 filters, 7×7, stride 8) → Relu → GlobalAveragePool → Flatten → linear; returns (nodes, inits, out)."""
    w = numpy_helper.from_array((rng.standard_normal((8, channels, 7, 7)) * 0.3).astype(np.float32), "conv.weight")
    b = numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "conv.bias")
    nodes = [
        helper.make_node("Conv", [x, "conv.weight", "conv.bias"], ["conv_out"], kernel_shape=[7, 7], strides=[8, 8]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"]),
        helper.make_node("GlobalAveragePool", ["relu_out"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
    ]
    fc = (rng.standard_normal((classes, 8)) * 2.0).astype(np.float32)
    fb = (rng.standard_normal(classes) * 0.5).astype(np.float32)
    if head == "gemm":
        inits = [w, b, numpy_helper.from_array(fc, "fc.weight"), numpy_helper.from_array(fb, "fc.bias")]
        nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["fc_out"], transB=1))
    else:
        inits = [w, b, numpy_helper.from_array(fc.T.copy(), "dense/kernel"), numpy_helper.from_array(fb, "dense/bias")]
        nodes.append(helper.make_node("MatMul", ["features", "dense/kernel"], ["dense/MatMul:0"]))
        nodes.append(helper.make_node("Add", ["dense/MatMul:0", "dense/bias"], ["fc_out"]))
    return nodes, inits, "fc_out"


def save(name: str, nodes, inits, inputs, outputs, producer=("pytorch", "2.15.0"), opset=17):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, producer_name=producer[0], producer_version=producer[1],
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, OUT / f"{name}.onnx")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20180908)

    nodes, inits, out = body("image", 3, 14, rng)
    nodes.append(helper.make_node("Identity", [out], ["logits"]))
    save("torch_style", nodes, inits,
         [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch_size", 3, 299, 299])],
         [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", 14])])
    (OUT / "torch_style.labels.txt").write_text("\n".join(NIH) + "\n")

    order = list(np.random.default_rng(7).permutation(NIH))
    tf_labels = order[:5] + ["No Finding"] + order[5:]
    nodes, inits, out = body("input_1_nchw", 1, 15, rng, head="matmul")
    nodes.insert(0, helper.make_node("Transpose", ["input_1"], ["input_1_nchw"], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("Sigmoid", [out], ["dense/Sigmoid:0"]))
    save("tf_style", nodes, inits,
         [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__0", 299, 299, 1])],
         [helper.make_tensor_value_info("dense/Sigmoid:0", TensorProto.FLOAT, ["unk__1", 15])],
         producer=("tf2onnx", "1.16.1 15c810"), opset=15)
    (OUT / "tf_style.labels.txt").write_text("\n".join(l.replace("_", " ") for l in tf_labels) + "\n")

    def simple(name, input_shape, output="gemm", extra_output=False):
        nodes, inits, out = body("x", 3, 14, rng)
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [input_shape[0], 14])]
        if output == "softmax":
            nodes.append(helper.make_node("Softmax", [out], ["y"], axis=1))
        else:
            nodes.append(helper.make_node("Identity", [out], ["y"]))
        if extra_output:
            outputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [input_shape[0], 8]))
        save(name, nodes, inits, [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)], outputs)

    simple("fixed_batch", [1, 3, 299, 299])
    simple("softmax", ["N", 3, 299, 299], output="softmax")
    simple("size224", ["N", 3, 224, 224])
    simple("two_outputs", ["N", 3, 299, 299], extra_output=True)
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
