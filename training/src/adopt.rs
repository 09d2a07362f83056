//! Adopting ONNX image classifiers exported elsewhere (`torch.onnx`, `tf2onnx`, …) into the served interface.
//!
//! The served interface is: one input [`INPUT_NAME`] `[batch, C, S, S]` (C = 1 gray / 3 color, S = 299 unless the
//! card says otherwise) holding pixels normalised to `[-1, 1]` by `cxr-core`, and outputs [`PROBABILITIES_NAME`]
//! and [`LOGITS_NAME`] `[batch, 14]` in NIH label order, with the card in `metadata_props`. [`adopt`] leaves the
//! original graph untouched and wires it in with a few nodes:
//!
//! - in front: `image` → (optional `Mul`/`Add` converting `[-1, 1]` to the mean/std the model was trained with) →
//!   (optional `Transpose` to NHWC) → the original input name (an `Identity` when nothing else is needed);
//! - behind: the chosen output, or the input of its final `Sigmoid`, is the logits; a `Gather` reorders (and with
//!   `--drop-extra-labels` selects) the columns to NIH order by the label file; `probabilities = Sigmoid(logits)`.
//!   A file that outputs probabilities without a final `Sigmoid` node gets `logits = log(p / (1 - p))`.
//!
//! Layout, size and label count are read from the graph. Anything the interface cannot take as is (NHWC, a size
//! other than 299, a static batch axis, a label list that is not the 14 findings) is refused with an error that says
//! which option adapts it, if one can. Softmax outputs are refused: they are mutually exclusive classes, not 14
//! independent findings.

use std::path::{Path, PathBuf};

use cxr_core::card::{
    ExternalSource, INPUT_NAME, LOGITS_NAME, ModelCard, ModelVariant, Normalization, PROBABILITIES_NAME, Provenance,
    SourceKind,
};
use cxr_core::labels::{LABELS, NUM_LABELS};
use onnx_ir::{AttributeProto, AttributeType, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use sha2::Digest;

use crate::cause::Cause;
use crate::export::{BATCH_AXIS, ExportedModel, embed_card, untrained_card, write_model};
use crate::model::INPUT_SIZE;
use crate::run::PRODUCER;

/// ONNX `TensorProto.DataType` values used here.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;
/// Prefix of every tensor and node name the adoption adds.
const PREFIX: &str = "cxr_adopt_";

/// Errors of the adopt layer; each says what was found and, when an option adapts it, which.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: String,
        #[source]
        cause: Cause,
    },
    /// The graph does not fit the served interface; the cause says how (usually a check's message).
    #[error("{path}: {cause}")]
    Graph {
        path: String,
        #[source]
        cause: Cause,
    },
    #[error("labels {path}: {cause}")]
    Labels {
        path: String,
        #[source]
        cause: Cause,
    },
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// What the chosen output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Probabilities when the output is produced by a `Sigmoid` node, logits otherwise.
    Auto,
    Logits,
    Probabilities,
}

cxr_core::keywords!(clap OutputKind, "output kind", { Auto => "auto", Logits => "logits", Probabilities => "probabilities" });

/// The memory layout of the file's image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    /// Channels last (`tf2onnx`'s default): a `Transpose` is inserted.
    Nhwc,
}

cxr_core::keywords!(clap Layout, "layout", { Nchw => "nchw", Nhwc => "nhwc" });

/// What to adopt and how to adapt it (also the flags of `cxr-train adopt`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdoptRequest {
    /// The ONNX file.
    #[arg(long)]
    pub onnx: PathBuf,
    /// `color` (3 input channels) or `gray` (1).
    #[arg(long)]
    pub variant: ModelVariant,
    /// The model's output labels, one per line in output-column order (NIH names; `_`/space/case ignored).
    #[arg(long)]
    pub labels: PathBuf,
    /// State that the model was trained for these findings (the card says so).
    #[arg(long)]
    pub trained: bool,
    /// The graph output to use when there are several.
    #[arg(long)]
    pub output: Option<String>,
    /// What the output holds (auto: probabilities when a Sigmoid produces it).
    #[arg(long, value_enum, default_value = "auto")]
    pub output_kind: OutputKind,
    /// The layout of the file's input; `nhwc` inserts a transpose (channels-last files are refused without it).
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Serve at this input size when the graph's is not 299 (the server preprocesses to the card's size).
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Mean the model subtracts from [0, 1] pixels, one value or one per channel (default 0.5: [-1, 1] input).
    #[arg(long, value_delimiter = ',')]
    pub input_mean: Option<Vec<f32>>,
    /// Standard deviation the model divides by, one value or one per channel (default 0.5).
    #[arg(long, value_delimiter = ',')]
    pub input_std: Option<Vec<f32>>,
    /// Serve only the 14 NIH findings when the model has more outputs (others are dropped instead of refused).
    #[arg(long)]
    pub drop_extra_labels: bool,
}

/// A graph dimension: a fixed size or a symbolic one.
#[derive(Debug, Clone, PartialEq)]
enum Dim {
    Fixed(i64),
    Symbolic,
}

/// A tensor value's element type (ONNX `TensorProto.DataType`) and dimensions.
type TensorShape = (i32, Vec<Dim>);

fn dims(value: &ValueInfoProto) -> Option<TensorShape> {
    let t = value.type_.as_ref()?;
    if !t.has_tensor_type() {
        return None;
    }
    let tensor = t.tensor_type();
    let shape = tensor.shape.as_ref()?;
    let dims = shape
        .dim
        .iter()
        .map(|d| if d.has_dim_value() && d.dim_value() > 0 { Dim::Fixed(d.dim_value()) } else { Dim::Symbolic })
        .collect();
    Some((tensor.elem_type, dims))
}

fn describe(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Canonical form of a label for matching: lower case, `_`, `-` and spaces removed (`Pleural_Thickening` =
/// `pleural thickening`).
fn canonical(label: &str) -> String {
    label.chars().filter(|c| !matches!(c, '_' | '-' | ' ')).flat_map(char::to_lowercase).collect()
}

/// Reads the label file and returns, for each NIH finding in [`LABELS`] order, the output column that holds it.
fn label_columns(request: &AdoptRequest, columns: Option<usize>) -> Result<Vec<i64>, AdoptError> {
    let path = request.labels.display().to_string();
    let err = |cause: Cause| AdoptError::Labels { path: path.clone(), cause };
    let text = std::fs::read_to_string(&request.labels).map_err(|e| err(e.into()))?;
    let labels: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if let Some(k) = columns
        && k != labels.len()
    {
        return Err(err(Cause::Check(format!("{} labels for a model with {k} output columns", labels.len()))));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = labels.iter().find(|l| !seen.insert(canonical(l))) {
        return Err(err(Cause::Check(format!("`{dup}` is listed twice"))));
    }
    let missing: Vec<&str> =
        LABELS.iter().copied().filter(|nih| !labels.iter().any(|l| canonical(l) == canonical(nih))).collect();
    if !missing.is_empty() {
        return Err(err(Cause::Check(format!(
            "the served interface has the {NUM_LABELS} NIH findings; missing from the file: {}",
            missing.join(", ")
        ))));
    }
    let extra: Vec<&str> =
        labels.iter().copied().filter(|l| !LABELS.iter().any(|nih| canonical(nih) == canonical(l))).collect();
    if !extra.is_empty() && !request.drop_extra_labels {
        return Err(err(Cause::Check(format!(
            "labels that are not NIH findings: {} (pass --drop-extra-labels to serve only the {NUM_LABELS} findings)",
            extra.join(", ")
        ))));
    }
    Ok(LABELS
        .iter()
        .map(|nih| labels.iter().position(|l| canonical(l) == canonical(nih)).expect("checked above") as i64)
        .collect())
}

fn attribute_ints(name: &str, values: Vec<i64>) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = values;
    a
}

fn attribute_int(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = value;
    a
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("{PREFIX}{name}");
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.to_string()];
    n.attribute = attributes;
    n
}

fn float_tensor(name: &str, dims: Vec<i64>, values: Vec<f32>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = FLOAT;
    t.dims = dims;
    t.float_data = values;
    t
}

/// Renames every occurrence of tensor `from` in the graph's nodes, inputs, outputs and value infos.
fn rename_tensor(graph: &mut onnx_ir::GraphProto, from: &str, to: &str) {
    let fix = |s: &mut String| {
        if s == from {
            *s = to.to_string();
        }
    };
    for n in graph.node.iter_mut() {
        n.input.iter_mut().chain(n.output.iter_mut()).for_each(fix);
    }
    for v in graph.input.iter_mut().chain(graph.output.iter_mut()).chain(graph.value_info.iter_mut()) {
        fix(&mut v.name);
    }
    for t in graph.initializer.iter_mut() {
        fix(&mut t.name);
    }
}

/// Sets a value info's shape to `dims` (`None` = the symbolic batch axis) and its element type to float.
fn set_shape(value: &mut ValueInfoProto, name: &str, dims: &[Option<i64>]) {
    value.name = name.into();
    let t = value.type_.mut_or_insert_default();
    let tensor = t.mut_tensor_type();
    tensor.elem_type = FLOAT;
    let shape = tensor.shape.mut_or_insert_default();
    shape.dim.clear();
    for d in dims {
        shape.dim.push(Default::default());
        let dim = shape.dim.last_mut().expect("just pushed");
        match d {
            Some(n) => dim.set_dim_value(*n),
            None => dim.set_dim_param(BATCH_AXIS.into()),
        }
    }
}

/// Wraps the classifier in `request.onnx` into the served interface and writes `<name>.onnx` + `<name>.json` into
/// `out_dir`. See the [module docs](self).
///
/// The phases, in order: `read_source` (the file and its SHA-256), `image_input` (layout and size of the one image
/// input), `classifier_output` (which tensor holds the logits), the label file (`label_columns`),
/// `free_interface_names`, `front_nodes` and `back_nodes` (the few nodes around the untouched graph),
/// `set_interface`, and the card.
pub fn adopt(request: &AdoptRequest, out_dir: &Path) -> Result<ExportedModel, AdoptError> {
    let path = request.onnx.display().to_string();
    let graph_err = |cause: Cause| AdoptError::Graph { path: path.clone(), cause };
    let Source { mut model, sha256 } = read_source(&request.onnx)?;
    let (producer, producer_version) = (model.producer_name.clone(), model.producer_version.clone());
    let graph = model.graph.as_mut().ok_or_else(|| graph_err("the model has no graph".into()))?;
    if graph.initializer.iter().any(|t| t.data_location.value() == EXTERNAL) {
        return Err(graph_err(
            "weights are stored in external data files; save the model with all tensors inside one file".into(),
        ));
    }
    let channels = request.variant.channels() as i64;
    let input = image_input(graph, request, channels).map_err(graph_err)?;
    let output = classifier_output(graph, request).map_err(graph_err)?;
    let gather = label_columns(request, output.columns)?;
    let (input_name, logits_source) = free_interface_names(graph, &input.value.name, &output.logits_source);
    let front = front_nodes(graph, request, input.layout, channels, &input_name).map_err(graph_err)?;
    let back = back_nodes(graph, &logits_source, output.is_logits, &gather, output.columns);
    set_interface(graph, front, back, input.value, &input_name, channels, input.size);
    let parameters: u64 = graph
        .initializer
        .iter()
        .filter(|t| !t.name.starts_with(PREFIX))
        .map(|t| t.dims.iter().map(|d| (*d).max(0) as u64).product::<u64>())
        .sum();

    let file = request.onnx.file_name().map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
    let card = adopted_card(request, &file, &sha256, input.size, parameters, &producer, &producer_version);
    card.validate().map_err(|e| graph_err(e.into()))?;
    embed_card(&mut model, &card);
    let out = model.write_to_bytes().map_err(crate::export::ExportError::from)?;
    Ok(write_model(out_dir, &card, &out, 0.0)?)
}

/// The parsed file and the SHA-256 of its bytes (recorded in the card).
struct Source {
    model: ModelProto,
    sha256: String,
}

fn read_source(onnx: &Path) -> Result<Source, AdoptError> {
    let path = onnx.display().to_string();
    let bytes = std::fs::read(onnx).map_err(|e| AdoptError::Read { path: path.clone(), cause: e.into() })?;
    let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| AdoptError::Read { path, cause: Cause::during("not an ONNX model", e) })?;
    Ok(Source { model, sha256 })
}

/// The graph's image input as the served interface will take it.
struct ImageInput {
    /// Its value info (name, element type, shape) as the file declares it.
    value: ValueInfoProto,
    layout: Layout,
    /// The square input size served.
    size: usize,
}

/// The one graph input that is not an initializer (old exporters list weights as inputs), with its layout and size
/// checked against the request.
fn image_input(graph: &onnx_ir::GraphProto, request: &AdoptRequest, channels: i64) -> Result<ImageInput, Cause> {
    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph.input.iter().filter(|v| !initializers.contains(v.name.as_str())).collect();
    let [input] = inputs.as_slice() else {
        let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
        return Err(format!("expected one image input, found {}: {}", names.len(), names.join(", ")).into());
    };
    let name = &input.name;
    let (elem, dims) = dims(input).ok_or_else(|| format!("input `{name}` is not a tensor with a shape"))?;
    if elem != FLOAT || dims.len() != 4 {
        return Err(format!(
            "input `{name}` must be a 4-D float tensor, found element type {elem} and shape {}",
            describe(&dims)
        )
        .into());
    }
    let layout = input_layout(name, &dims, channels, request.layout)?;
    if let Dim::Fixed(n) = dims[0] {
        return Err(format!(
            "input `{name}` has a fixed batch size {n}; re-export it with a dynamic batch axis (torch.onnx.export \
             dynamic_axes / dynamo dynamic_shapes, tf2onnx --inputs name:0[-1,...]) so the server can batch"
        )
        .into());
    }
    let (h, w) = match layout {
        Layout::Nchw => (&dims[2], &dims[3]),
        Layout::Nhwc => (&dims[1], &dims[2]),
    };
    let size = input_size(name, h, w, request.input_size)?;
    Ok(ImageInput { value: (*input).clone(), layout, size })
}

/// The layout of a 4-D input: the axis whose fixed size is the variant's channel count, or what the request says
/// when no axis tells; a channels-last input needs `--layout nhwc` said out loud.
fn input_layout(name: &str, dims: &[Dim], channels: i64, asked: Option<Layout>) -> Result<Layout, Cause> {
    let detected = match (&dims[1], &dims[3]) {
        (Dim::Fixed(c), _) if *c == channels => Some(Layout::Nchw),
        (_, Dim::Fixed(c)) if *c == channels => Some(Layout::Nhwc),
        (Dim::Fixed(c), _) | (_, Dim::Fixed(c)) if *c == 1 || *c == 3 => {
            return Err(format!(
                "input `{name}` {} has {c} channel(s); adopt it as --variant {}",
                describe(dims),
                if *c == 1 { "gray" } else { "color" }
            )
            .into());
        }
        _ => None,
    };
    match (detected, asked) {
        (Some(Layout::Nhwc), None) => Err(format!(
            "input `{name}` {} is channels-last (NHWC); the served interface is NCHW: pass --layout nhwc to insert a \
             transpose",
            describe(dims)
        )
        .into()),
        (Some(d), Some(asked)) if d != asked => {
            Err(format!("input `{name}` {} is {d:?}, not {asked:?}", describe(dims)).into())
        }
        (Some(d), _) => Ok(d),
        (None, Some(asked)) => Ok(asked),
        (None, None) => Err(format!(
            "cannot tell the layout of input `{name}` {} (no fixed channel axis of size {channels}); pass --layout \
             nchw or nhwc",
            describe(dims)
        )
        .into()),
    }
}

/// The square size to serve: the graph's fixed height / width, which `--input-size` must match (and must name
/// when it is not 299), or `--input-size` (default 299) for a symbolic one.
fn input_size(name: &str, h: &Dim, w: &Dim, asked: Option<usize>) -> Result<usize, Cause> {
    let size = match (h, w) {
        (Dim::Fixed(h), Dim::Fixed(w)) if h != w => {
            return Err(format!("input `{name}` is {h}×{w}; the served interface is square").into());
        }
        (Dim::Fixed(s), _) | (_, Dim::Fixed(s)) => {
            let s = *s as usize;
            match asked {
                Some(asked) if asked != s => {
                    return Err(format!("input `{name}` is {s}×{s}, not --input-size {asked}").into());
                }
                None if s != INPUT_SIZE => {
                    return Err(format!(
                        "input `{name}` is {s}×{s}; the served interface is {INPUT_SIZE}×{INPUT_SIZE}: pass \
                         --input-size {s} to serve it at {s} (the server preprocesses to the card's size)"
                    )
                    .into());
                }
                _ => s,
            }
        }
        _ => asked.unwrap_or(INPUT_SIZE),
    };
    if !(crate::model::MIN_INPUT_SIZE..=4096).contains(&size) {
        return Err(format!("input size {size} is outside {}..=4096", crate::model::MIN_INPUT_SIZE).into());
    }
    Ok(size)
}

/// The graph output the adoption builds on.
struct ClassifierOutput {
    /// Its column count when the graph fixes it.
    columns: Option<usize>,
    /// The tensor that holds the logits, or the probabilities when `is_logits` is false.
    logits_source: String,
    is_logits: bool,
}

/// The chosen output (`--output`, or the only one), checked to be `[batch, labels]`; the logits are the input of
/// its final `Sigmoid` when it has one (through `Identity` nodes), and a `Softmax` is refused unless the request
/// says what the output holds.
fn classifier_output(graph: &onnx_ir::GraphProto, request: &AdoptRequest) -> Result<ClassifierOutput, Cause> {
    let outputs: Vec<(String, Option<TensorShape>)> = graph.output.iter().map(|o| (o.name.clone(), dims(o))).collect();
    let (output_name, shape) = match &request.output {
        Some(name) => outputs.iter().find(|(n, _)| n == name).ok_or_else(|| {
            let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
            format!("no output `{name}`; outputs: {}", names.join(", "))
        })?,
        None => match outputs.as_slice() {
            [one] => one,
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|(n, d)| format!("`{n}` {}", d.as_ref().map(|(_, d)| describe(d)).unwrap_or_default()))
                    .collect();
                return Err(format!("{} outputs ({}); choose one with --output", many.len(), list.join(", ")).into());
            }
        },
    };
    let columns = match shape {
        Some((FLOAT, d)) if d.len() == 2 => match d[1] {
            Dim::Fixed(k) => Some(k as usize),
            Dim::Symbolic => None,
        },
        Some((_, d)) => {
            return Err(
                format!("output `{output_name}` {} must be a 2-D float tensor [batch, labels]", describe(d)).into()
            );
        }
        None => None,
    };
    let producer_of = |name: &str| graph.node.iter().find(|n| n.output.iter().any(|o| o == name));
    // Follow `Identity` nodes back to the operator that computed the output.
    let mut source = output_name.clone();
    while let Some(n) = producer_of(&source).filter(|n| n.op_type == "Identity") {
        source = n.input[0].clone();
    }
    let final_op = producer_of(&source).map(|n| (n.op_type.as_str(), n.input.first().cloned().unwrap_or_default()));
    if let Some(("Softmax", _)) = final_op
        && request.output_kind == OutputKind::Auto
    {
        return Err(format!(
            "output `{output_name}` comes from a Softmax: mutually exclusive classes, not {NUM_LABELS} independent \
             findings; choose the logits before it with --output, or say --output-kind logits|probabilities"
        )
        .into());
    }
    let (logits_source, is_logits) = match (request.output_kind, final_op) {
        (OutputKind::Logits, _) => (output_name.clone(), true),
        (OutputKind::Auto | OutputKind::Probabilities, Some(("Sigmoid", x))) => (x, true),
        (OutputKind::Probabilities, _) => (output_name.clone(), false),
        (OutputKind::Auto, _) => (output_name.clone(), true),
    };
    Ok(ClassifierOutput { columns, logits_source, is_logits })
}

/// Renames the graph's own uses of the interface names (`image`, `probabilities`, `logits`) out of the way and
/// returns the new names of the original input and of the logits source.
fn free_interface_names(graph: &mut onnx_ir::GraphProto, input: &str, logits_source: &str) -> (String, String) {
    let reserved = [INPUT_NAME, PROBABILITIES_NAME, LOGITS_NAME];
    for name in reserved {
        rename_tensor(graph, name, &format!("{PREFIX}original_{name}"));
    }
    let moved = |name: &str| {
        if reserved.contains(&name) { format!("{PREFIX}original_{name}") } else { name.to_string() }
    };
    (moved(input), moved(logits_source))
}

/// The nodes in front of the graph: `image` → [normalisation to the model's mean / std] → [transpose to NHWC] →
/// the original input (an `Identity` when nothing else is needed).
fn front_nodes(
    graph: &mut onnx_ir::GraphProto,
    request: &AdoptRequest,
    layout: Layout,
    channels: i64,
    input_name: &str,
) -> Result<Vec<NodeProto>, Cause> {
    let per_channel = |values: &Option<Vec<f32>>, default: f32, what: &str| -> Result<Vec<f32>, Cause> {
        match values {
            None => Ok(vec![default; channels as usize]),
            Some(v) if v.len() == 1 => Ok(vec![v[0]; channels as usize]),
            Some(v) if v.len() == channels as usize => Ok(v.clone()),
            Some(v) => Err(format!("--input-{what} has {} values for {channels} channel(s)", v.len()).into()),
        }
    };
    let mean = per_channel(&request.input_mean, 0.5, "mean")?;
    let std = per_channel(&request.input_std, 0.5, "std")?;
    if let Some(s) = std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
        return Err(format!("--input-std must be positive, got {s}").into());
    }
    let mut front: Vec<NodeProto> = Vec::new();
    let mut current = INPUT_NAME.to_string();
    let inception = Normalization::INCEPTION;
    if mean.iter().zip(&std).any(|(m, s)| *m != inception.mean || *s != inception.std) {
        // image = (x - 0.5) / 0.5 for pixels x in [0, 1]; the model wants (x - m) / s = image · (0.5 / s) + (0.5 - m) / s.
        let scale: Vec<f32> = std.iter().map(|s| inception.std / s).collect();
        let shift: Vec<f32> = mean.iter().zip(&std).map(|(m, s)| (inception.mean - m) / s).collect();
        graph.initializer.push(float_tensor(&format!("{PREFIX}scale"), vec![1, channels, 1, 1], scale));
        graph.initializer.push(float_tensor(&format!("{PREFIX}shift"), vec![1, channels, 1, 1], shift));
        let scaled = format!("{PREFIX}scaled");
        front.push(node("Mul", "scale", &[&current, &format!("{PREFIX}scale")], &scaled, vec![]));
        let shifted = format!("{PREFIX}normalised");
        front.push(node("Add", "shift", &[&scaled, &format!("{PREFIX}shift")], &shifted, vec![]));
        current = shifted;
    }
    if layout == Layout::Nhwc {
        let t = format!("{PREFIX}nhwc");
        front.push(node("Transpose", "to_nhwc", &[&current], &t, vec![attribute_ints("perm", vec![0, 2, 3, 1])]));
        current = t;
    }
    match front.last_mut() {
        Some(last) => last.output = vec![input_name.to_string()],
        None => front.push(node("Identity", "input", &[&current], input_name, vec![])),
    }
    Ok(front)
}

/// The nodes behind the graph: [`logits = log(p / (1 - p))` for a probabilities output] → [a `Gather` to NIH order
/// by the label file] → `logits` and `probabilities = Sigmoid(logits)`.
fn back_nodes(
    graph: &mut onnx_ir::GraphProto,
    logits_source: &str,
    is_logits: bool,
    gather: &[i64],
    columns: Option<usize>,
) -> Vec<NodeProto> {
    let mut back: Vec<NodeProto> = Vec::new();
    let identity: Vec<i64> = (0..NUM_LABELS as i64).collect();
    let mut logits = logits_source.to_string();
    if !is_logits {
        let one = format!("{PREFIX}one");
        let (one_minus_p, odds) = (format!("{PREFIX}one_minus_p"), format!("{PREFIX}odds"));
        graph.initializer.push(float_tensor(&one, vec![], vec![1.0]));
        back.push(node("Sub", "one_minus_p", &[&one, logits_source], &one_minus_p, vec![]));
        back.push(node("Div", "odds", &[logits_source, &one_minus_p], &odds, vec![]));
        back.push(node("Log", "log_odds", &[&odds], &format!("{PREFIX}logits_all"), vec![]));
        logits = format!("{PREFIX}logits_all");
    }
    if gather != identity || columns != Some(NUM_LABELS) {
        let indices = format!("{PREFIX}label_columns");
        let mut t = TensorProto::new();
        t.name = indices.clone();
        t.data_type = INT64;
        t.dims = vec![NUM_LABELS as i64];
        t.int64_data = gather.to_vec();
        graph.initializer.push(t);
        let selected = format!("{PREFIX}nih_logits");
        back.push(node("Gather", "nih_order", &[&logits, &indices], &selected, vec![attribute_int("axis", 1)]));
        logits = selected;
    }
    back.push(node("Identity", "logits", &[&logits], LOGITS_NAME, vec![]));
    back.push(node("Sigmoid", "probabilities", &[&logits], PROBABILITIES_NAME, vec![]));
    back
}

/// Puts the front and back nodes around the graph's own and declares the served input and outputs.
fn set_interface(
    graph: &mut onnx_ir::GraphProto,
    front: Vec<NodeProto>,
    mut back: Vec<NodeProto>,
    mut image: ValueInfoProto,
    input_name: &str,
    channels: i64,
    size: usize,
) {
    let mut nodes = front;
    nodes.append(&mut graph.node);
    nodes.append(&mut back);
    graph.node = nodes;
    let initializers: std::collections::HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    set_shape(&mut image, INPUT_NAME, &[None, Some(channels), Some(size as i64), Some(size as i64)]);
    graph.input.retain(|v| initializers.contains(&v.name));
    graph.input.insert(0, image);
    let mut probabilities = ValueInfoProto::new();
    set_shape(&mut probabilities, PROBABILITIES_NAME, &[None, Some(NUM_LABELS as i64)]);
    let mut logits_info = ValueInfoProto::new();
    set_shape(&mut logits_info, LOGITS_NAME, &[None, Some(NUM_LABELS as i64)]);
    graph.output = vec![probabilities, logits_info];
    // Shapes recorded for the old input / output no longer hold for the renamed tensors; ONNX Runtime re-infers.
    graph.value_info.retain(|v| v.name != input_name);
}

fn adopted_card(
    request: &AdoptRequest,
    file: &str,
    sha256: &str,
    size: usize,
    parameters: u64,
    producer: &str,
    producer_version: &str,
) -> ModelCard {
    let mut card = untrained_card(request.variant, 0, parameters);
    card.version = format!("{}+adopted.{}", env!("CARGO_PKG_VERSION"), &sha256[..12]);
    card.architecture = format!("external ONNX ({} {})", producer, producer_version).replace(" )", ")");
    // An external graph has no known last feature map, so adopted models serve no class activation maps.
    card.outputs = vec![PROBABILITIES_NAME.into(), LOGITS_NAME.into()];
    card.input_size = size;
    card.trained = request.trained;
    card.provenance = Provenance {
        trained: request.trained,
        description: format!(
            "ONNX classifier {file} (SHA-256 {sha256}, produced by {producer} {producer_version}) adopted into the \
             served interface by cxr-train adopt. {}",
            if request.trained {
                "Trained for the 14 NIH findings as stated by whoever adopted it; not evaluated by this project."
            } else {
                "NOT stated to be trained: its probabilities carry no diagnostic meaning."
            }
        ),
        seed: 0,
        datasets: Vec::new(),
        producer: PRODUCER.into(),
        source: Some(ExternalSource {
            kind: SourceKind::Adopted,
            file: file.into(),
            format: "onnx".into(),
            sha256: sha256.into(),
        }),
    };
    card
}
