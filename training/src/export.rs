//! ONNX export of the Burn Inception-V3 into the files the server loads.
//!
//! The export is two steps:
//! 1. `burn-onnx`'s experimental [`OnnxExporter::export_dynamic`] captures the forward pass (twice, at batch 1 and 2,
//!    so the batch axis becomes symbolic) and lowers it to an ONNX `ModelProto` (IR 8, opset 18) with embedded
//!    weights. It names tensors `tensor_N` and writes no metadata.
//! 2. [`finalize`] rewrites that `ModelProto` to the project's stable interface — input [`INPUT_NAME`]
//!    `[batch, C, 299, 299]`, outputs [`PROBABILITIES_NAME`] and [`LOGITS_NAME`] `[batch, 14]` and [`FEATURES_NAME`]
//!    `[batch, 2048, g, g]` (`g` = [`feature_grid`]) —, appends the class activation maps [`CAM_NAME`]
//!    `[batch, 14, g, g]` as one 1 × 1 `Conv` of the features with the classifier's weights ([`CamHead`]; burn-onnx
//!    cannot lower the transposes that [`InceptionV3::cam`] uses), and embeds the [`ModelCard`] in
//!    `metadata_props` under [`CARD_METADATA_KEY`] (plus a few flat keys for tools that cannot parse JSON).
//!
//! Invariant: the exported graph computes exactly [`InceptionV3::forward`] (logits), its sigmoid,
//! [`InceptionV3::features`] and [`InceptionV3::cam`]; the parity tests in `training/tests/parity.rs` prove it
//! against ONNX Runtime for both variants. The maps add one 1 × 1 `Conv` (~1.8 M multiply-adds per image beside
//! Inception-V3's ~5.7 G), which ONNX Runtime runs whatever is fetched; a caller that fetches the probabilities
//! alone pays nothing else (no copy of the feature map).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};
use cxr_core::card::{
    CAM_NAME, CARD_METADATA_KEY, CARD_SCHEMA_VERSION, ExternalSource, FEATURES_NAME, INPUT_NAME, LOGITS_NAME,
    ModelCard, ModelVariant, Normalization, PROBABILITIES_NAME, Provenance, SourceKind,
};
use cxr_core::labels::{LABELS, NUM_LABELS};
use cxr_core::preprocess::PREPROCESSING_DESCRIPTION;
use onnx_ir::{Message, ModelProto, ValueInfoProto};

use crate::cause::Cause;
use crate::model::{FEATURES, INPUT_SIZE, InceptionV3, InceptionV3Config, feature_grid};
use crate::run::{PRODUCER, TrainError};

/// Name of the symbolic batch axis of the exported input and outputs.
pub const BATCH_AXIS: &str = "batch";
/// ONNX `TensorProto.DataType` code of FP32 tensors.
pub(crate) const FLOAT: i32 = 1;

/// Errors of the export layer.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("burn-onnx could not export the model: {0}")]
    Burn(#[from] burn_onnx::export::ExportError),
    #[error("exported ONNX is not a valid ModelProto: {0}")]
    Protobuf(#[from] protobuf::Error),
    #[error("exported ONNX graph has an unexpected interface: {0}")]
    Interface(#[source] Cause),
    #[error("cannot export the run: {0}")]
    Run(#[source] Box<TrainError>),
    /// The run cannot become a served model (its head or task is not the 14 NIH findings); the message says why.
    #[error("cannot export the run: {0}")]
    NotServable(String),
    #[error("could not write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl ExportError {
    /// The graph is not the interface it should be: a check's message, or the error that broke it.
    pub(crate) fn interface(cause: impl Into<Cause>) -> Self {
        ExportError::Interface(cause.into())
    }
}

/// The files and measurements one export produced.
#[derive(Debug, Clone)]
pub struct ExportedModel {
    pub card: ModelCard,
    pub onnx_path: PathBuf,
    pub card_path: PathBuf,
    pub bytes: usize,
    pub export_seconds: f64,
}

/// Builds the card of a seeded, untrained initialisation of `variant`.
pub fn untrained_card(variant: ModelVariant, seed: u64, parameters: u64) -> ModelCard {
    ModelCard {
        schema_version: CARD_SCHEMA_VERSION,
        name: variant.file_stem(),
        version: format!("{}+seed.{seed}", env!("CARGO_PKG_VERSION")),
        variant,
        architecture: "inception_v3".into(),
        channels: variant.channels(),
        input_size: INPUT_SIZE,
        normalization: Normalization::INCEPTION,
        preprocessing: PREPROCESSING_DESCRIPTION.into(),
        labels: LABELS.iter().map(|l| l.to_string()).collect(),
        input_name: INPUT_NAME.into(),
        outputs: [PROBABILITIES_NAME, LOGITS_NAME, FEATURES_NAME, CAM_NAME].map(String::from).to_vec(),
        trained: false,
        provenance: Provenance {
            trained: false,
            description: format!(
                "Seeded random initialisation (seed {seed}) of Inception-V3 with {} input channel(s) and {NUM_LABELS} \
                 sigmoid outputs. NOT trained: its probabilities carry no diagnostic meaning.",
                variant.channels()
            ),
            seed,
            datasets: Vec::new(),
            producer: PRODUCER.into(),
            source: None,
        },
        parameters,
        evaluation: None,
    }
}

/// Captures `model`'s forward pass and returns the finalised ONNX bytes carrying `card`.
pub fn export_onnx(model: &InceptionV3, card: &ModelCard, device: &Device) -> Result<Vec<u8>, ExportError> {
    let (channels, size) = (card.channels, card.input_size);
    let sample = Tensor::<4>::zeros([1, channels, size, size], device);
    let validation = Tensor::<4>::zeros([2, channels, size, size], device);
    let specs = [InputSpec::new([AxisSpec::dynamic(BATCH_AXIS), AxisSpec::Static, AxisSpec::Static, AxisSpec::Static])];
    // burn-onnx moves `module.clone()` to its capture device, but a clone shares BatchNorm's running statistics
    // (`RunningState` is reference-counted), so exporting `model` itself would strand the caller's running stats
    // on the capture device and break every later forward pass. `valid()` rebuilds that state, detached.
    let detached = model.valid();
    let onnx = OnnxExporter::new().export_dynamic(&detached, sample, validation, &specs, |m: &InceptionV3, x| {
        let features = m.features(x);
        let logits = m.classify(features.clone());
        (sigmoid(logits.clone()), logits, features)
    })?;
    finalize(onnx.as_bytes(), card, &CamHead::of(model)?)
}

/// The classifier as a 1 × 1 convolution: `fc` applied at every position of the feature map.
#[derive(Debug, Clone, PartialEq)]
pub struct CamHead {
    /// `[classes, channels]`, row-major: `fc`'s `[channels, classes]` weight transposed.
    pub weight: Vec<f32>,
    /// `[classes]`.
    pub bias: Vec<f32>,
}

impl CamHead {
    /// The class activation head of `model`'s classifier.
    pub fn of(model: &InceptionV3) -> Result<CamHead, ExportError> {
        let read = |t: Tensor<2>| {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| ExportError::interface(Cause::during("fc weights", Cause::debug(e))))
        };
        let [channels, classes] = model.fc.weight.val().dims();
        let weight = read(model.fc.weight.val())?;
        let bias = match &model.fc.bias {
            Some(bias) => read(bias.val().unsqueeze())?,
            None => vec![0.0; classes],
        };
        let transposed = (0..classes).flat_map(|k| weight.iter().skip(k).step_by(classes).copied()).collect::<Vec<_>>();
        debug_assert_eq!(transposed.len(), channels * classes);
        Ok(CamHead { weight: transposed, bias })
    }

    fn classes(&self) -> usize {
        self.bias.len()
    }
}

/// Builds the seeded model for `variant`, exports it and writes `<stem>.onnx` and `<stem>.json` into `out_dir`.
pub fn export_untrained(
    variant: ModelVariant,
    seed: u64,
    out_dir: &Path,
    device: &Device,
) -> Result<ExportedModel, ExportError> {
    let model = InceptionV3Config::for_variant(variant, NUM_LABELS).init_seeded(seed, device);
    let card = untrained_card(variant, seed, model.num_trainable_params() as u64);
    export_with_card(&model, &card, out_dir, device)
}

/// Exports a finished NIH fine-tuning run (`best.bpk` + `evaluation.json`), or an import directory whose head has
/// the 14 findings (card `trained` as the importer stated, `source` = the file), with a trained card: dataset, split
/// seed, the kept epoch, validation and test metrics, and the per-label Youden thresholds from validation. The
/// export keeps the run's input size; the server reads it from the card.
pub fn export_run(run: &Path, out_dir: &Path, device: &Device) -> Result<ExportedModel, ExportError> {
    use crate::run::{BestCheckpoint, DatasetSpec, Task, load_best};
    let failed = |e: TrainError| ExportError::Run(Box::new(e));
    let (config, model) = load_best(run, device).map_err(failed)?;
    if let DatasetSpec::Imported { source, format, sha256, gray_from_color, trained } = &config.dataset {
        if config.num_classes != NUM_LABELS {
            return Err(ExportError::NotServable(format!(
                "{} holds an imported model with a {}-class head; the server needs the {NUM_LABELS} NIH findings: \
                 fine-tune it (finetune --init-from {}) or import it with --new-head {NUM_LABELS}",
                run.display(),
                config.num_classes,
                run.display()
            )));
        }
        let mut card = untrained_card(config.variant, config.seed, model.num_trainable_params() as u64);
        card.trained = *trained;
        card.version = format!("{}+imported.{}", env!("CARGO_PKG_VERSION"), &sha256[..12]);
        let file =
            source.file_name().map_or_else(|| source.display().to_string(), |n| n.to_string_lossy().into_owned());
        card.provenance = Provenance {
            trained: *trained,
            description: format!(
                "Inception-V3 weights imported from {file} ({format}, SHA-256 {sha256}){}. {}",
                gray_from_color
                    .map(|g| format!(", gray first convolution derived from the color one ({g:?})"))
                    .unwrap_or_default(),
                if *trained {
                    "Trained for the 14 NIH findings as stated by whoever imported it; not evaluated by this project."
                } else {
                    "NOT stated to be trained for the 14 NIH findings: its probabilities carry no diagnostic meaning."
                }
            ),
            seed: config.seed,
            datasets: Vec::new(),
            producer: PRODUCER.into(),
            source: Some(ExternalSource {
                kind: SourceKind::Imported,
                file,
                format: format.clone(),
                sha256: sha256.clone(),
            }),
        };
        return export_with_card(&model, &card, out_dir, device);
    }
    let DatasetSpec::Nih { split_seed, .. } = &config.dataset else {
        return Err(ExportError::NotServable(format!(
            "{} is a {:?} run; only NIH fine-tuning runs have the server's 14-finding interface",
            run.display(),
            config.task
        )));
    };
    debug_assert_eq!(config.task, Task::Nih);
    let evaluation = crate::report::evaluate::read_evaluation(run).map_err(failed)?;
    let best = BestCheckpoint::read(run).map_err(failed)?;
    let mut test = std::collections::BTreeMap::from([("mean_auc".to_string(), evaluation.test_mean_auc)]);
    for (label, estimate) in &evaluation.test_auc {
        if let Some(e) = estimate {
            test.insert(format!("auc_{label}"), e.auc);
        }
    }
    let card_eval = cxr_core::card::Evaluation {
        dataset: "NIH ChestX-ray14".into(),
        split_seed: *split_seed,
        epochs: best.epoch,
        validation: std::collections::BTreeMap::from([
            ("loss".to_string(), best.val_loss),
            ("mean_auc".to_string(), evaluation.val_mean_auc),
        ]),
        test,
        thresholds: LABELS.iter().map(|l| evaluation.thresholds.get(*l).copied().flatten().map(|t| t as f32)).collect(),
    };
    let mut card = untrained_card(config.variant, config.seed, model.num_trainable_params() as u64);
    card.input_size = config.input_size;
    card.trained = true;
    card.version = format!("{}+run.{}.epoch.{}", env!("CARGO_PKG_VERSION"), config.seed, best.epoch);
    card.provenance = Provenance {
        trained: true,
        description: format!(
            "Inception-V3 ({} input channel(s)) fine-tuned on NIH ChestX-ray14 ({} epochs run, epoch {} kept by \
             validation loss {:.4}){}; test mean AUC {:.4}.",
            config.variant.channels(),
            best.epochs_run,
            best.epoch,
            best.val_loss,
            config.init_from.as_ref().map(|p| format!(" from the pretraining run {}", p.display())).unwrap_or_default(),
            evaluation.test_mean_auc
        ),
        seed: config.seed,
        datasets: vec!["NIH ChestX-ray14".into()],
        producer: PRODUCER.into(),
        source: None,
    };
    card.evaluation = Some(card_eval);
    export_with_card(&model, &card, out_dir, device)
}

/// Checks `card`, exports `model` with it and writes both into `out_dir` (the tail of every export path).
fn export_with_card(
    model: &InceptionV3,
    card: &ModelCard,
    out_dir: &Path,
    device: &Device,
) -> Result<ExportedModel, ExportError> {
    card.validate().map_err(ExportError::interface)?;
    let started = Instant::now();
    let bytes = export_onnx(model, card, device)?;
    write_model(out_dir, card, &bytes, started.elapsed().as_secs_f64())
}

/// Writes the ONNX file and its sidecar card atomically (temp file + rename) into `out_dir`.
pub fn write_model(
    out_dir: &Path,
    card: &ModelCard,
    bytes: &[u8],
    export_seconds: f64,
) -> Result<ExportedModel, ExportError> {
    let write = |path: &Path, data: &[u8]| -> Result<(), ExportError> {
        let tmp = path.with_extension("tmp");
        std::fs::create_dir_all(out_dir)
            .and_then(|()| std::fs::write(&tmp, data))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
    };
    let onnx_path = out_dir.join(format!("{}.onnx", card.name));
    let card_path = out_dir.join(format!("{}.json", card.name));
    write(&onnx_path, bytes)?;
    write(&card_path, format!("{}\n", card.to_json()).as_bytes())?;
    Ok(ExportedModel { card: card.clone(), onnx_path, card_path, bytes: bytes.len(), export_seconds })
}

/// Appends `cam = Conv(features, cam_weight [14, 2048, 1, 1], cam_bias [14])` and its graph output, whose shape is
/// the `features` output's with 14 channels.
fn append_cam(graph: &mut onnx_ir::GraphProto, head: &CamHead) {
    let tensor = |name: &str, dims: Vec<i64>, values: &[f32]| {
        let mut t = onnx_ir::TensorProto::new();
        t.name = name.into();
        t.data_type = FLOAT;
        t.dims = dims;
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t
    };
    let classes = head.classes() as i64;
    let channels = head.weight.len() as i64 / classes;
    graph.initializer.push(tensor(CAM_WEIGHT, vec![classes, channels, 1, 1], &head.weight));
    graph.initializer.push(tensor(CAM_BIAS, vec![classes], &head.bias));
    let mut node = onnx_ir::NodeProto::new();
    node.op_type = "Conv".into();
    node.name = "class_activation_maps".into();
    node.input = vec![FEATURES_NAME.into(), CAM_WEIGHT.into(), CAM_BIAS.into()];
    node.output = vec![CAM_NAME.into()];
    let mut kernel = onnx_ir::AttributeProto::new();
    kernel.name = "kernel_shape".into();
    kernel.type_ = onnx_ir::AttributeType::INTS.into();
    kernel.ints = vec![1, 1];
    node.attribute.push(kernel);
    graph.node.push(node);
    let mut output = graph.output[2].clone();
    output.name = CAM_NAME.into();
    if let Some(dims) = output.type_.as_mut().and_then(|t| t.mut_tensor_type().shape.as_mut()).map(|s| &mut s.dim) {
        dims[1].set_dim_value(classes);
    }
    graph.output.push(output);
}

/// Names of the class activation head's initializers in the exported graph.
const CAM_WEIGHT: &str = "cam_weight";
const CAM_BIAS: &str = "cam_bias";

/// Rewrites a `burn-onnx` export to the project's interface and embeds the card.
///
/// Expects exactly one graph input and three outputs, in the order (probabilities, logits, features). Every
/// reference to the old names (node inputs/outputs, value infos) is renamed, the batch axis is named
/// [`BATCH_AXIS`], the class activation maps are appended (`cam` = the `Conv` of `features` with `cam_head`), and
/// the model gets a producer, a doc string and the card in `metadata_props`.
pub fn finalize(onnx: &[u8], card: &ModelCard, cam_head: &CamHead) -> Result<Vec<u8>, ExportError> {
    let mut model = ModelProto::parse_from_bytes(onnx)?;
    let graph = model.graph.as_mut().ok_or_else(|| ExportError::interface("model has no graph"))?;
    if graph.input.len() != 1 || graph.output.len() != 3 {
        return Err(ExportError::interface(format!(
            "expected 1 input and 3 outputs, found {} and {}",
            graph.input.len(),
            graph.output.len()
        )));
    }
    // burn-onnx numbers intermediate tensors from a process-wide counter, so two exports in one process would
    // differ in names only. Every name is mapped to a canonical one: the interface names for the graph input and
    // outputs, `value_K` (K in order of first definition) for intermediates; initializers keep their parameter
    // path names. This makes the bytes a function of the weights alone.
    let mut renames: HashMap<String, String> = HashMap::new();
    renames.insert(graph.input[0].name.clone(), INPUT_NAME.into());
    renames.insert(graph.output[0].name.clone(), PROBABILITIES_NAME.into());
    renames.insert(graph.output[1].name.clone(), LOGITS_NAME.into());
    renames.insert(graph.output[2].name.clone(), FEATURES_NAME.into());
    let is_counter_name =
        |name: &str| name.strip_prefix("tensor_").is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
    for (k, init) in graph.initializer.iter().filter(|t| is_counter_name(&t.name)).enumerate() {
        renames.entry(init.name.clone()).or_insert_with(|| format!("const_{k}"));
    }
    let initializers: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut next = 0usize;
    for node in &graph.node {
        for name in node.output.iter().filter(|n| !n.is_empty() && !initializers.contains(*n)) {
            renames.entry(name.clone()).or_insert_with(|| {
                next += 1;
                format!("value_{}", next - 1)
            });
        }
    }
    let rename = |name: &mut String| {
        if let Some(new) = renames.get(name.as_str()) {
            *name = new.clone();
        }
    };
    for value in graph.input.iter_mut().chain(graph.output.iter_mut()).chain(graph.value_info.iter_mut()) {
        rename(&mut value.name);
    }
    for init in graph.initializer.iter_mut() {
        rename(&mut init.name);
    }
    for node in graph.node.iter_mut() {
        node.input.iter_mut().chain(node.output.iter_mut()).for_each(rename);
    }
    check_and_name_dims(
        &mut graph.input[0],
        &[None, Some(card.channels as i64), Some(card.input_size as i64), Some(card.input_size as i64)],
    )?;
    let (labels, grid) = (Some(NUM_LABELS as i64), Some(feature_grid(card.input_size) as i64));
    let expected = [vec![None, labels], vec![None, labels], vec![None, Some(FEATURES as i64), grid, grid]];
    for (output, dims) in graph.output.iter_mut().zip(&expected) {
        check_and_name_dims(output, dims)?;
    }
    if cam_head.classes() != NUM_LABELS || cam_head.weight.len() != NUM_LABELS * FEATURES {
        return Err(ExportError::interface(format!(
            "the classifier has {} outputs over {} features, expected {NUM_LABELS} over {FEATURES}",
            cam_head.classes(),
            cam_head.weight.len() / cam_head.classes().max(1)
        )));
    }
    append_cam(graph, cam_head);
    embed_card(&mut model, card);
    Ok(model.write_to_bytes()?)
}

/// Names the graph after the card and writes the card (plus flat `cxr.*` keys for tools that cannot parse JSON) into
/// `metadata_props`, replacing what was there; sets producer, domain, version and doc string.
pub fn embed_card(model: &mut ModelProto, card: &ModelCard) {
    if let Some(graph) = model.graph.as_mut() {
        graph.name = card.name.clone();
        graph.doc_string = card.provenance.description.clone();
    }
    model.producer_name = "cxr-train".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.domain = "org.cxr-gray".into();
    model.model_version = i64::from(CARD_SCHEMA_VERSION);
    model.doc_string = format!(
        "{} ({} channel(s), {}x{} input, outputs {}).{} Trained: {}.",
        card.name,
        card.channels,
        card.input_size,
        card.input_size,
        card.outputs.join(", "),
        if card.outputs.iter().any(|o| o == CAM_NAME) {
            format!(
                " {PROBABILITIES_NAME}, {LOGITS_NAME} [N, 14] and {CAM_NAME} [N, 14, g, g] in NIH label order; the mean of each {CAM_NAME} map is its logit."
            )
        } else {
            format!(" {PROBABILITIES_NAME} and {LOGITS_NAME} [N, 14] in NIH label order.")
        },
        card.trained
    );
    model.metadata_props.clear();
    let props = [
        (CARD_METADATA_KEY.to_string(), card.to_json()),
        ("cxr.variant".into(), card.variant.as_str().into()),
        ("cxr.version".into(), card.version.clone()),
        ("cxr.channels".into(), card.channels.to_string()),
        ("cxr.input_size".into(), card.input_size.to_string()),
        ("cxr.labels".into(), card.labels.join(",")),
        ("cxr.trained".into(), card.trained.to_string()),
    ];
    for (key, value) in props {
        // The entry type is not re-exported by onnx-ir; build it through inference on the field.
        model.metadata_props.push(Default::default());
        let entry = model.metadata_props.last_mut().expect("just pushed");
        entry.key = key;
        entry.value = value;
    }
}

/// Checks a value's static dims (`None` = the dynamic batch axis) and names the batch axis.
fn check_and_name_dims(value: &mut ValueInfoProto, expected: &[Option<i64>]) -> Result<(), ExportError> {
    let name = value.name.clone();
    let shape =
        value.type_.as_mut().and_then(|t| if t.has_tensor_type() { t.mut_tensor_type().shape.as_mut() } else { None });
    let shape = shape.ok_or_else(|| ExportError::interface(format!("{name} has no tensor shape")))?;
    if shape.dim.len() != expected.len() {
        return Err(ExportError::interface(format!(
            "{name} has rank {}, expected {}",
            shape.dim.len(),
            expected.len()
        )));
    }
    for (i, (dim, want)) in shape.dim.iter_mut().zip(expected).enumerate() {
        match want {
            Some(size) if dim.has_dim_value() && dim.dim_value() == *size => {}
            Some(size) => {
                return Err(ExportError::interface(format!("{name} axis {i} is not the static size {size}")));
            }
            None if dim.has_dim_param() => dim.set_dim_param(BATCH_AXIS.into()),
            None => return Err(ExportError::interface(format!("{name} axis {i} is not dynamic"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InceptionV3Config, init_seeded};

    const SEED: u64 = 20_240_601;

    /// What [`export_onnx`] builds on: burn-onnx's capture of [`InceptionV3::forward`] (the gray model), before
    /// [`finalize`] — deterministic weights and ops, torchvision's operator counts and attributes, a symbolic batch
    /// axis and every trainable parameter embedded.
    #[test]
    fn burn_onnx_captures_the_network_with_a_dynamic_batch() {
        use onnx_ir::{Message, ModelProto};

        let device = Device::default();
        let model = init_seeded(&InceptionV3Config::for_variant(ModelVariant::Gray, 14), SEED, &device);
        let sample = Tensor::<4>::zeros([1, 1, INPUT_SIZE, INPUT_SIZE], &device);
        let validation = Tensor::<4>::zeros([2, 1, INPUT_SIZE, INPUT_SIZE], &device);
        let specs =
            [InputSpec::new([AxisSpec::dynamic("batch"), AxisSpec::Static, AxisSpec::Static, AxisSpec::Static])];
        let export = |model: &InceptionV3| {
            OnnxExporter::new()
                .export_dynamic(model, sample.clone(), validation.clone(), &specs, |m: &InceptionV3, x| m.forward(x))
                .expect("export")
        };
        let onnx = export(&model);
        // Same seed, fresh model: byte-identical file.
        let again = export(&init_seeded(&InceptionV3Config::for_variant(ModelVariant::Gray, 14), SEED, &device));
        {
            // burn-onnx 0.22 names intermediate tensors `tensor_<capture id>` with ids from a process-wide counter,
            // so two exports in one process differ in those names; the embedded weights and the ops must not.
            let a = ModelProto::parse_from_bytes(onnx.as_bytes()).expect("valid ModelProto");
            let b = ModelProto::parse_from_bytes(again.as_bytes()).expect("valid ModelProto");
            let ops = |m: &ModelProto| m.graph.node.iter().map(|n| n.op_type.clone()).collect::<Vec<_>>();
            assert_eq!(ops(&a), ops(&b));
            let weights = |m: &ModelProto| {
                let mut inits = m
                    .graph
                    .initializer
                    .iter()
                    .filter(|t| !t.name.starts_with("tensor_") && !t.name.starts_with("node_"))
                    .map(|t| (t.name.clone(), t.raw_data.clone(), t.float_data.clone()))
                    .collect::<Vec<_>>();
                inits.sort_by(|x, y| x.0.cmp(&y.0));
                inits
            };
            let (wa, wb) = (weights(&a), weights(&b));
            assert_eq!(wa.len(), 94 * 5 + 2, "named parameters embedded");
            assert!(wa == wb, "same seed must embed identical weights");
        }

        let proto = ModelProto::parse_from_bytes(onnx.as_bytes()).expect("valid ModelProto");
        let ops = proto.graph.node.iter().map(|node| node.op_type.as_str()).collect::<Vec<_>>();
        let count = |op: &str| ops.iter().filter(|o| **o == op).count();
        assert_eq!(count("Conv"), 94);
        assert_eq!(count("GlobalAveragePool"), 1);
        assert_eq!(count("AveragePool"), 3 + 4 + 2);
        assert_eq!(count("MaxPool"), 4);
        assert_eq!(count("BatchNormalization"), 94);
        assert_eq!(count("Relu"), 94);
        // Branch concatenations along channels (the exporter adds an axis-0 Concat for the dynamic flatten shape).
        let channel_concats = proto
            .graph
            .node
            .iter()
            .filter(|node| node.op_type == "Concat")
            .filter(|node| node.attribute.iter().any(|a| a.name == "axis" && a.i == 1))
            .count();
        assert_eq!(channel_concats, 3 + 1 + 4 + 1 + 2 * 3);
        let attribute = |node: &onnx_ir::NodeProto, name: &str| node.attribute.iter().find(|a| a.name == name).cloned();
        for node in proto.graph.node.iter() {
            match node.op_type.as_str() {
                "AveragePool" => {
                    assert_eq!(attribute(node, "count_include_pad").map(|a| a.i), Some(1));
                }
                "BatchNormalization" => {
                    let epsilon = attribute(node, "epsilon").map(|a| a.f).unwrap_or(1e-5);
                    assert!((epsilon - 1e-3).abs() < 1e-9, "epsilon {epsilon}");
                }
                _ => {}
            }
        }
        assert!(!ops.contains(&"Dropout"));
        assert_eq!(proto.graph.input.len(), 1);
        let dims = &proto.graph.input[0].type_.tensor_type().shape.dim;
        assert_eq!(dims.len(), 4);
        assert_eq!(dims[0].dim_param(), "batch");
        assert_eq!(
            dims[1..].iter().map(|d| d.dim_value()).collect::<Vec<_>>(),
            [1, INPUT_SIZE as i64, INPUT_SIZE as i64]
        );
        // Weights are embedded: at least all trainable parameters as float32.
        let embedded = proto.graph.initializer.iter().map(|t| t.raw_data.len() / 4 + t.float_data.len()).sum::<usize>();
        assert!(embedded >= model.num_trainable_params(), "{embedded}");
    }
}
