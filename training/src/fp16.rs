//! FP16 variant of an exported model, for GPUs: half the weight bytes and Tensor Core convolutions, same interface.
//!
//! [`to_fp16`] rewrites a finalised FP32 `ModelProto` (see [`crate::export::finalize`]):
//! - every `FLOAT` initializer becomes `FLOAT16` (round to nearest even, stored little-endian in `raw_data`);
//! - the graph input keeps its `FLOAT` type and is cast to `FLOAT16` once, at the top (`Cast`, named
//!   `<input>_fp16`), and each output is computed in FP16 and cast back to `FLOAT` at the end, so the server, the
//!   card and every client see exactly the FP32 file's interface (`keep_io_types` in ONNX Runtime's own converter);
//! - `FLOAT` value infos of intermediates become `FLOAT16`; the embedded card and metadata are kept, with a flat
//!   `cxr.precision` key added.
//!
//! Only operators whose kernels are type-generic over `T` are accepted (the ones this project's exporter writes, plus
//! a few common neighbours); anything else — a `Cast`, a `Constant`, a tensor attribute, external data — is refused
//! with the operator's name rather than converted half-right. How far FP16 moves the probabilities is measured, not
//! assumed: `training/tests/parity.rs` checks it on the fixtures for both variants.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cxr_core::card::{FP16_PRECISION, PRECISION_METADATA_KEY};
use half::f16;
use onnx_ir::{AttributeProto, AttributeType, Message, ModelProto, NodeProto};

use crate::export::{ExportError, FLOAT};

/// ONNX `TensorProto.DataType` codes used here.
const FLOAT16: i32 = 10;
const INT64: i32 = 7;
const INT32: i32 = 6;

/// Operators whose every floating-point input and output share one type `T` (or take integer shapes/indices), so
/// switching all floats to FP16 is exact in meaning.
const TYPE_GENERIC_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Concat",
    "Conv",
    "Div",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Squeeze",
    "Sub",
    "Unsqueeze",
];

/// The FP16 model of the FP32 model `onnx` (see the module documentation).
pub fn to_fp16(onnx: &[u8]) -> Result<Vec<u8>, ExportError> {
    let unsupported = |what: String| ExportError::interface(format!("FP16 conversion: {what}"));
    let mut model = ModelProto::parse_from_bytes(onnx)?;
    let graph = model.graph.as_mut().ok_or_else(|| unsupported("model has no graph".into()))?;

    for node in &graph.node {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(unsupported(format!(
                "operator {}::{} is not a standard ONNX operator",
                node.domain, node.op_type
            )));
        }
        if !TYPE_GENERIC_OPS.contains(&node.op_type.as_str()) {
            return Err(unsupported(format!(
                "operator {} ({}) is not known to be type-generic",
                node.op_type, node.name
            )));
        }
        if let Some(attr) = node.attribute.iter().find(|a| a.t.is_some() || !a.tensors.is_empty() || a.g.is_some()) {
            return Err(unsupported(format!(
                "{} node {} has a tensor or graph attribute {}",
                node.op_type, node.name, attr.name
            )));
        }
    }

    for init in graph.initializer.iter_mut() {
        if init.data_location.value() != 0 {
            return Err(unsupported(format!("initializer {} keeps its data in an external file", init.name)));
        }
        match init.data_type {
            FLOAT => {
                let values: Vec<f32> = if init.raw_data.is_empty() {
                    std::mem::take(&mut init.float_data)
                } else {
                    if init.raw_data.len() % 4 != 0 {
                        return Err(unsupported(format!("initializer {} has a truncated raw_data", init.name)));
                    }
                    init.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                };
                init.float_data.clear();
                init.raw_data = values.iter().flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes()).collect();
                init.data_type = FLOAT16;
            }
            INT64 | INT32 => {}
            other => return Err(unsupported(format!("initializer {} has element type {other}", init.name))),
        }
    }

    // Intermediates become FP16; the graph's own inputs and outputs stay FP32 (the casts below bridge them).
    for value in graph.value_info.iter_mut() {
        if let Some(t) = value.type_.as_mut().filter(|t| t.has_tensor_type())
            && t.tensor_type().elem_type == FLOAT
        {
            t.mut_tensor_type().elem_type = FLOAT16;
        }
    }
    let float_io = |v: &onnx_ir::ValueInfoProto| {
        v.type_.as_ref().is_some_and(|t| t.has_tensor_type() && t.tensor_type().elem_type == FLOAT)
    };
    let initializers: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut head = Vec::new();
    for input in graph.input.iter().filter(|v| float_io(v) && !initializers.contains(&v.name)) {
        let half_name = format!("{}_{FP16_PRECISION}", input.name);
        for node in graph.node.iter_mut() {
            for name in node.input.iter_mut().filter(|n| **n == input.name) {
                *name = half_name.clone();
            }
        }
        head.push(cast_node(&input.name, &half_name, FLOAT16));
    }
    let mut tail = Vec::new();
    for output in graph.output.iter().filter(|v| float_io(v)) {
        let half_name = format!("{}_{FP16_PRECISION}", output.name);
        for node in graph.node.iter_mut() {
            for name in node.output.iter_mut().chain(node.input.iter_mut()).filter(|n| **n == output.name) {
                *name = half_name.clone();
            }
        }
        tail.push(cast_node(&half_name, &output.name, FLOAT));
    }
    let body = std::mem::take(&mut graph.node);
    graph.node = head.into_iter().chain(body).chain(tail).collect();

    model.metadata_props.retain(|p| p.key != PRECISION_METADATA_KEY);
    model.metadata_props.push(Default::default());
    let entry = model.metadata_props.last_mut().expect("just pushed");
    entry.key = PRECISION_METADATA_KEY.into();
    entry.value = FP16_PRECISION.into();
    model.doc_string = format!("{} Weights and arithmetic in FP16; input and outputs FP32.", model.doc_string);
    Ok(model.write_to_bytes()?)
}

/// Path of the FP16 file beside the FP32 file `onnx_path` (`<stem>.onnx` → `<stem>.fp16.onnx`).
pub fn fp16_path(onnx_path: &Path) -> PathBuf {
    onnx_path.with_extension(format!("{FP16_PRECISION}.onnx"))
}

/// Converts the exported FP32 file `onnx_path` and writes `<stem>.fp16.onnx` beside it (temp file + rename); the
/// sidecar card is shared, since the card describes the model, not its number format. Returns the path and size.
pub fn write_fp16(onnx_path: &Path) -> Result<(PathBuf, usize), ExportError> {
    let read_error = |source| ExportError::Write { path: onnx_path.to_path_buf(), source };
    let bytes = to_fp16(&std::fs::read(onnx_path).map_err(read_error)?)?;
    let path = fp16_path(onnx_path);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| ExportError::Write { path: path.clone(), source })?;
    Ok((path, bytes.len()))
}

/// A `Cast` node from `input` to `output` with element type `to`.
fn cast_node(input: &str, output: &str, to: i32) -> NodeProto {
    let mut node = NodeProto::new();
    node.op_type = "Cast".into();
    node.name = format!("cast_{output}");
    node.input.push(input.into());
    node.output.push(output.into());
    let mut attr = AttributeProto::new();
    attr.name = "to".into();
    attr.type_ = AttributeType::INT.into();
    attr.i = i64::from(to);
    node.attribute.push(attr);
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_ir::{GraphProto, TensorProto, TypeProto, ValueInfoProto};

    fn value(name: &str, elem_type: i32) -> ValueInfoProto {
        let mut v = ValueInfoProto::new();
        v.name = name.into();
        let mut t = TypeProto::new();
        t.mut_tensor_type().elem_type = elem_type;
        v.type_ = Some(t).into();
        v
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.name = format!("{op}_0");
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outputs.iter().map(|s| s.to_string()).collect();
        n
    }

    /// `y = sigmoid(x · w + b)`, `z = x · w + b`, with `w` in `float_data` and `b` in `raw_data`.
    fn tiny_model() -> ModelProto {
        let mut g = GraphProto::new();
        g.input.push(value("x", FLOAT));
        g.output.push(value("y", FLOAT));
        g.output.push(value("z", FLOAT));
        g.value_info.push(value("xw", FLOAT));
        let mut w = TensorProto::new();
        w.name = "w".into();
        w.data_type = FLOAT;
        w.dims = vec![2, 2];
        w.float_data = vec![1.0, -0.5, 0.1, 65504.0];
        let mut b = TensorProto::new();
        b.name = "b".into();
        b.data_type = FLOAT;
        b.dims = vec![2];
        b.raw_data = [0.25f32, 1e-8].iter().flat_map(|v| v.to_le_bytes()).collect();
        g.initializer.push(w);
        g.initializer.push(b);
        g.node.push(node("MatMul", &["x", "w"], &["xw"]));
        g.node.push(node("Add", &["xw", "b"], &["z"]));
        g.node.push(node("Sigmoid", &["z"], &["y"]));
        let mut m = ModelProto::new();
        m.graph = Some(g).into();
        m
    }

    fn halves(t: &TensorProto) -> Vec<f32> {
        t.raw_data.chunks_exact(2).map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()).collect()
    }

    #[test]
    fn weights_become_fp16_and_the_interface_stays_fp32() {
        let bytes = to_fp16(&tiny_model().write_to_bytes().unwrap()).unwrap();
        let m = ModelProto::parse_from_bytes(&bytes).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert!(g.initializer.iter().all(|t| t.data_type == FLOAT16 && t.float_data.is_empty()));
        assert_eq!(halves(&g.initializer[0]), [1.0, -0.5, f16::from_f32(0.1).to_f32(), 65504.0]);
        assert_eq!(halves(&g.initializer[1]), [0.25, 0.0], "1e-8 is below FP16's smallest subnormal");
        assert!(g.input.iter().chain(&g.output).all(|v| v.type_.tensor_type().elem_type == FLOAT));
        assert_eq!(g.value_info[0].type_.tensor_type().elem_type, FLOAT16);
        let ops: Vec<(&str, Vec<&str>, Vec<&str>)> = g
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.as_str(),
                    n.input.iter().map(String::as_str).collect(),
                    n.output.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                ("Cast", vec!["x"], vec!["x_fp16"]),
                ("MatMul", vec!["x_fp16", "w"], vec!["xw"]),
                ("Add", vec!["xw", "b"], vec!["z_fp16"]),
                ("Sigmoid", vec!["z_fp16"], vec!["y_fp16"]),
                ("Cast", vec!["y_fp16"], vec!["y"]),
                ("Cast", vec!["z_fp16"], vec!["z"]),
            ]
        );
        let to = |n: &NodeProto| n.attribute[0].i;
        assert_eq!(
            (to(&g.node[0]), to(&g.node[4]), to(&g.node[5])),
            (i64::from(FLOAT16), i64::from(FLOAT), i64::from(FLOAT))
        );
        assert!(m.metadata_props.iter().any(|p| p.key == PRECISION_METADATA_KEY && p.value == FP16_PRECISION));
    }

    #[test]
    fn refuses_what_it_cannot_convert_faithfully() {
        let mut m = tiny_model();
        m.graph.as_mut().unwrap().node.push(node("Cast", &["y"], &["q"]));
        let err = to_fp16(&m.write_to_bytes().unwrap()).unwrap_err().to_string();
        assert!(err.contains("Cast"), "{err}");

        let mut m = tiny_model();
        m.graph.as_mut().unwrap().initializer[0].data_type = 11; // DOUBLE
        let err = to_fp16(&m.write_to_bytes().unwrap()).unwrap_err().to_string();
        assert!(err.contains("element type 11"), "{err}");

        let mut m = tiny_model();
        let raw = &mut m.graph.as_mut().unwrap().initializer[1].raw_data;
        *raw = raw.slice(..raw.len() - 1);
        assert!(to_fp16(&m.write_to_bytes().unwrap()).is_err());
    }
}
