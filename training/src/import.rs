//! Bring your own weights: torchvision `inception_v3` state dicts (`.pth` / `.pt` / `.safetensors`) into a run
//! directory that `finetune --init-from` and `export --run` accept, optionally as a gray model derived from the color
//! one ([`GrayFromColor`]).
//!
//! The file is read through burn-store ([`PytorchStore`] for pickled PyTorch checkpoints, [`SafetensorsStore`] with
//! [`PyTorchToBurnAdapter`] for safetensors). torchvision's key names are mapped to this crate's field names by
//! regex (`Conv2d_1a_3x3` → `conv2d_1a_3x3`, `Mixed_5b` → `mixed_5b`, `AuxLogits` → `aux_logits`; a leading
//! `module.` from `DataParallel` and a `state_dict.` / `model_state_dict.` wrapper are dropped); the adapter
//! transposes linear weights and maps batch norm's `weight` / `bias` to `gamma` / `beta`. Every parameter must be
//! matched: missing, unexpected or mis-shaped keys end the import with one error that lists them all
//! ([`ImportError::Keys`]). `num_batches_tracked` counters are ignored (they do not enter inference or
//! fine-tuning). `AuxLogits.*` is optional; when present it is checked and then dropped (fine-tuning here trains
//! without the auxiliary head).
//!
//! torchvision's ImageNet weights expect inputs in `[-1, 1]` (its `transform_input=True` converts ImageNet-normalised
//! input to that range), which is this project's normalisation, so the imported network is used as is.
//!
//! The import directory holds `config.json` (task `imported`, epochs 0, the source file and its SHA-256 as the
//! "dataset"), `best.bpk` (the network) and `import.json` ([`ImportReport`]).

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::store::{KeyRemapper, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use burn::tensor::{Device, Tensor};
use cxr_core::card::ModelVariant;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::cause::Cause;
use crate::model::{INPUT_SIZE, InceptionV3, InceptionV3Config};
use crate::run::GrayFromColor;
use crate::run::{DatasetSpec, Fingerprints, OptimizerKind, PRODUCER, Task, TrainConfig, TrainError, read_run_file};

/// Errors of the import layer.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: String,
        #[source]
        cause: Cause,
    },
    #[error("{path} is not a torchvision inception_v3 state dict:\n{details}")]
    Keys { path: String, details: String },
    /// Options that do not fit the file or each other (the message says how).
    #[error("{0}")]
    Request(String),
    #[error("cannot write {path}: {cause}")]
    Write {
        path: String,
        #[source]
        cause: Cause,
    },
}

/// What to import and how (also the flags of `cxr-train import`).
#[derive(Debug, Clone, clap::Args)]
pub struct ImportRequest {
    /// The state dict file: `.pth` / `.pt` / `.bin` (PyTorch pickle) or `.safetensors`.
    #[arg(long)]
    pub from: PathBuf,
    /// The variant to produce. A gray model from a color file needs `--gray-from-color`.
    #[arg(long, value_enum)]
    pub variant: ModelVariant,
    /// Build the gray model's 1-channel first convolution from the color file's: `sum` (exactly the color model
    /// on a gray image stacked three times) or `luma` (0.299/0.587/0.114 weighting). See docs/training.md.
    #[arg(long, value_enum)]
    pub gray_from_color: Option<GrayFromColor>,
    /// Check that the file's head has this many classes (unset: take it from the file).
    #[arg(long, conflicts_with = "new_head")]
    pub num_classes: Option<usize>,
    /// Replace the head by a fresh (seeded) one with this many classes, e.g. 14 to export or fine-tune on NIH.
    #[arg(long)]
    pub new_head: Option<usize>,
    /// Seed of a fresh head (and of the initialisation the file's weights overwrite).
    #[arg(long, default_value_t = crate::run::DEFAULT_SEED)]
    pub seed: u64,
    /// State that the file's 14-class head was trained for the NIH findings (the exported card says so).
    #[arg(long)]
    pub trained: bool,
}

/// What an import did; written to `import.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub source: PathBuf,
    /// `pytorch` or `safetensors`.
    pub format: String,
    pub sha256: String,
    /// Input channels of the file's first convolution.
    pub source_channels: usize,
    /// Head size in the file.
    pub source_classes: usize,
    pub variant: ModelVariant,
    pub num_classes: usize,
    /// Parameters loaded from the file.
    pub applied: usize,
    /// Keys of the file that were not used: `num_batches_tracked` counters and, when present, `AuxLogits.*`.
    pub ignored: Vec<String>,
    pub gray_from_color: Option<GrayFromColor>,
    pub new_head: Option<usize>,
    pub trained: bool,
}

/// One error per problem kind, each listing its keys (long lists are cut after this many).
const MAX_LISTED: usize = 25;

/// The key renames from torchvision's `inception_v3` names to this crate's fields, applied in order.
const TORCHVISION_KEYS: [(&str, &str); 4] = [
    (r"^(?:state_dict\.|model_state_dict\.)?(?:module\.)?", ""),
    (r"^Conv2d_", "conv2d_"),
    (r"^Mixed_", "mixed_"),
    (r"^AuxLogits\.", "aux_logits."),
];

/// A burn-store reader for the file's format.
enum Store {
    Pytorch(PytorchStore),
    Safetensors(SafetensorsStore),
}

impl Store {
    fn open(path: &Path) -> Result<(Store, &'static str), ImportError> {
        let remapper = KeyRemapper::from_patterns(TORCHVISION_KEYS.to_vec()).expect("valid patterns");
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Ok((
                Store::Safetensors(
                    SafetensorsStore::from_file(path)
                        .remap(remapper)
                        .with_from_adapter(PyTorchToBurnAdapter)
                        .allow_partial(true)
                        .validate(false),
                ),
                "safetensors",
            )),
            "pth" | "pt" | "bin" => Ok((
                Store::Pytorch(PytorchStore::from_file(path).remap(remapper).allow_partial(true).validate(false)),
                "pytorch",
            )),
            _ => Err(ImportError::Request(format!(
                "{}: unknown weight format (expected .pth, .pt, .bin or .safetensors)",
                path.display()
            ))),
        }
    }

    /// Every key (after renaming) with its shape.
    fn shapes(&mut self) -> Result<Vec<(String, Vec<usize>)>, Cause> {
        let collect = |m: &std::collections::BTreeMap<String, burn::store::burn_pack::Tensor>| {
            m.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect()
        };
        match self {
            Store::Pytorch(s) => s.get_all_tensors().map(collect).map_err(Cause::other),
            Store::Safetensors(s) => s.get_all_tensors().map(collect).map_err(Cause::other),
        }
    }

    fn apply(&mut self, model: &mut InceptionV3) -> Result<burn::store::ApplyResult, Cause> {
        match self {
            Store::Pytorch(s) => s.apply_to(model).map_err(Cause::other),
            Store::Safetensors(s) => s.apply_to(model).map_err(Cause::other),
        }
    }
}

/// Reads a torchvision `inception_v3` state dict into an [`InceptionV3`] of the requested variant and head.
pub fn load_torchvision(request: &ImportRequest, device: &Device) -> Result<(InceptionV3, ImportReport), ImportError> {
    let path = request.from.as_path();
    let read_err = |cause: Cause| ImportError::Read { path: path.display().to_string(), cause };
    // Streamed: a checkpoint is ~100 MB, and burn-store reads (or maps) the file itself.
    let mut hasher = sha2::Sha256::new();
    std::fs::File::open(path)
        .and_then(|mut file| std::io::copy(&mut file, &mut hasher))
        .map_err(|e| read_err(e.into()))?;
    let sha256 = format!("{:x}", hasher.finalize());
    let (mut store, format) = Store::open(path)?;
    let shapes = store.shapes().map_err(read_err)?;
    let shape_of = |key: &str| shapes.iter().find(|(k, _)| k == key).map(|(_, s)| s.clone());
    let keys_error = |details: String| ImportError::Keys { path: path.display().to_string(), details };

    let conv1 = shape_of("conv2d_1a_3x3.conv.weight");
    let fc = shape_of("fc.weight");
    let (Some(conv1), Some(fc)) = (conv1, fc) else {
        let sample: Vec<&str> = shapes.iter().take(8).map(|(k, _)| k.as_str()).collect();
        return Err(keys_error(format!(
            "  no `Conv2d_1a_3x3.conv.weight` and `fc.weight` among its {} tensors (first keys: {})",
            shapes.len(),
            if sample.is_empty() { "none".to_string() } else { sample.join(", ") }
        )));
    };
    if conv1.len() != 4 || fc.len() != 2 {
        return Err(keys_error(format!(
            "  Conv2d_1a_3x3.conv.weight {conv1:?} / fc.weight {fc:?} have the wrong rank"
        )));
    }
    let (source_channels, source_classes) = (conv1[1], fc[0]);
    check_variant(request, source_channels)?;
    if let Some(expected) = request.num_classes
        && expected != source_classes
    {
        return Err(ImportError::Request(format!(
            "the file's head has {source_classes} classes, not --num-classes {expected} (use --new-head {expected} \
             to replace it with a fresh head)"
        )));
    }
    let has_aux = shapes.iter().any(|(k, _)| k.starts_with("aux_logits."));

    let config = InceptionV3Config::new(source_channels, source_classes).with_aux_logits(has_aux);
    let mut model = config.init_seeded(request.seed, device);
    let result = store.apply(&mut model).map_err(read_err)?;
    let counters: Vec<String> = result.unused.iter().filter(|k| k.ends_with("num_batches_tracked")).cloned().collect();
    let unexpected: Vec<&String> = result.unused.iter().filter(|k| !k.ends_with("num_batches_tracked")).collect();
    let mut details = String::new();
    let mut list = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            details.push_str(&format!("  {title} ({}):\n", items.len()));
            for item in items.iter().take(MAX_LISTED) {
                details.push_str(&format!("    {item}\n"));
            }
            if items.len() > MAX_LISTED {
                details.push_str(&format!("    … and {} more\n", items.len() - MAX_LISTED));
            }
        }
    };
    list("missing", result.missing.iter().map(|(k, _)| k.clone()).collect());
    list("unexpected", unexpected.iter().map(|k| k.to_string()).collect());
    list("mis-shaped or unreadable", result.errors.iter().map(|e| e.to_string()).collect());
    if !details.is_empty() {
        return Err(keys_error(details.trim_end().to_string()));
    }

    // The auxiliary head was checked by loading it; it is not part of the imported network.
    let (aux, applied): (Vec<String>, Vec<String>) =
        result.applied.into_iter().partition(|k| k.starts_with("aux_logits."));
    let mut ignored = counters;
    ignored.extend(aux);
    model.aux_logits = None;
    let applied = applied.len();
    if let Some(how) = request.gray_from_color {
        model = gray_from_color(model, how);
    }
    if let Some(classes) = request.new_head {
        let fresh = InceptionV3Config::new(model.in_channels(), classes).init_seeded(request.seed, device);
        model.fc = fresh.fc;
    }
    let report = ImportReport {
        source: path.to_path_buf(),
        format: format.into(),
        sha256,
        source_channels,
        source_classes,
        variant: request.variant,
        num_classes: model.num_classes(),
        applied,
        ignored,
        gray_from_color: request.gray_from_color,
        new_head: request.new_head,
        trained: request.trained && request.new_head.is_none(),
    };
    Ok((model, report))
}

/// The file's first convolution must fit the requested variant (directly or through `--gray-from-color`).
fn check_variant(request: &ImportRequest, source_channels: usize) -> Result<(), ImportError> {
    let file = match source_channels {
        3 => ModelVariant::Color,
        1 => ModelVariant::Gray,
        n => {
            return Err(ImportError::Request(format!(
                "the file's first convolution takes {n} input channels; only 3 (color) or 1 (gray) are supported"
            )));
        }
    };
    match (file, request.variant, request.gray_from_color) {
        (ModelVariant::Color, ModelVariant::Gray, None) => Err(ImportError::Request(
            "the file is a color model (3 input channels); pass --gray-from-color sum|luma to derive the gray model"
                .into(),
        )),
        (ModelVariant::Gray, ModelVariant::Color, _) => Err(ImportError::Request(
            "the file is a gray model (1 input channel); it cannot be imported as --variant color".into(),
        )),
        (_, ModelVariant::Color, Some(_)) | (ModelVariant::Gray, _, Some(_)) => Err(ImportError::Request(
            "--gray-from-color applies only to a color file imported as --variant gray".into(),
        )),
        _ => Ok(()),
    }
}

/// Replaces a color network's 3-channel first convolution by the 1-channel one `how` describes; every other weight
/// is kept. See [`GrayFromColor`] for what each choice computes.
pub fn gray_from_color(mut model: InceptionV3, how: GrayFromColor) -> InceptionV3 {
    let weight: Tensor<4> = model.conv2d_1a_3x3.conv.weight.val();
    assert_eq!(weight.dims()[1], 3, "gray_from_color needs a 3-channel first convolution");
    let [r, g, b] = how.channel_weights();
    let gray = weight.clone().narrow(1, 0, 1).mul_scalar(r)
        + weight.clone().narrow(1, 1, 1).mul_scalar(g)
        + weight.narrow(1, 2, 1).mul_scalar(b);
    model.conv2d_1a_3x3.conv.weight = Param::from_tensor(gray.detach());
    model
}

/// Imports into the directory `out` (created; refused when it already holds a run): `config.json`, `best.bpk`
/// and `import.json`.
pub fn import_to_dir(request: &ImportRequest, out: &Path, device: &Device) -> Result<ImportReport, ImportError> {
    let write_err = |cause: Cause| ImportError::Write { path: out.display().to_string(), cause };
    if out.join("config.json").exists() {
        return Err(write_err("already holds a run or an import; choose another --out".into()));
    }
    let (model, report) = load_torchvision(request, device)?;
    std::fs::create_dir_all(out).map_err(|e| write_err(e.into()))?;
    let config = imported_config(&report, request.seed);
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&config).expect("JSON"))
        .and_then(|()| std::fs::write(out.join("import.json"), serde_json::to_string_pretty(&report).expect("JSON")))
        .map_err(|e| write_err(e.into()))?;
    model.save_file(out.join("best")).map_err(|e| write_err(e.into()))?;
    Ok(report)
}

/// The `config.json` of an import: task `imported`, no training (epochs 0, no optimizer settings that apply), the
/// source file as the dataset.
fn imported_config(report: &ImportReport, seed: u64) -> TrainConfig {
    TrainConfig {
        task: Task::Imported,
        variant: report.variant,
        num_classes: report.num_classes,
        input_size: INPUT_SIZE,
        batch_size: 0,
        epochs: 0,
        optimizer: OptimizerKind::Rmsprop,
        learning_rate: 0.0,
        lr_decay: 1.0,
        lr_decay_epochs: 1,
        rmsprop_decay: 0.0,
        momentum: 0.0,
        epsilon: 0.0,
        weight_decay: 0.0,
        dropout: 0.5,
        patience: 0,
        seed,
        workers: 0,
        max_bad_fraction: 0.0,
        init_from: None,
        dataset: DatasetSpec::Imported {
            source: report.source.clone(),
            format: report.format.clone(),
            sha256: report.sha256.clone(),
            gray_from_color: report.gray_from_color,
            trained: report.trained,
        },
        fingerprints: Fingerprints::default(),
        git_commit: None,
        producer: PRODUCER.into(),
    }
}

/// Reads `import.json` of an import directory.
pub fn read_report(dir: &Path) -> Result<ImportReport, TrainError> {
    read_run_file(dir, "import.json", "not an import directory")
}
