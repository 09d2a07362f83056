//! The run directory: what training, import, evaluation and export agree on. A run directory holds `config.json`
//! ([`TrainConfig`]: every hyperparameter, the seed, the dataset and its fingerprints, the git commit, the
//! producer), `best.bpk` (the kept network) and `best.json` ([`BestCheckpoint`]) once training ends; an import
//! directory is a run with task [`Task::Imported`]. [`load_best`] reads the kept model back.
//!
//! Architecture invariant: this module sits below `train`, `import` and `export`, which all read or write run
//! directories; it uses only `model` and `data`, so none of them has to import another for the format.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use cxr_core::card::{ModelVariant, Normalization};
use serde::{Deserialize, Serialize};

use crate::cause::Cause;
use crate::data::loader::LoaderConfig;
use crate::data::{Augment, DataError};
use crate::model::{InceptionV3, InceptionV3Config};
use crate::roc::RocError;

/// Producer written into every run, import and exported model.
pub const PRODUCER: &str = concat!("cxr-train ", env!("CARGO_PKG_VERSION"));

/// Errors of the training layer.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Roc(#[from] RocError),
    #[error("{path}: {cause}")]
    RunDir {
        path: String,
        #[source]
        cause: Cause,
    },
    #[error("training failed: {0}")]
    Training(#[source] Cause),
    #[error("cannot load the model from {path}: {cause}")]
    Checkpoint {
        path: String,
        #[source]
        cause: Cause,
    },
    /// Options that contradict each other or the run they refer to (the message says which; no underlying error).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl TrainError {
    pub(crate) fn run_dir(path: &Path, cause: impl Into<Cause>) -> Self {
        TrainError::RunDir { path: path.display().to_string(), cause: cause.into() }
    }
}

/// What a run learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// ImageNet-style pretraining: one softmax class per folder.
    Pretrain,
    /// NIH ChestX-ray14: 14 independent findings (sigmoid, binary cross-entropy).
    Nih,
    /// Indiana University: normal (0) vs abnormal (1), 2-class softmax.
    Indiana,
    /// Weights brought in by `cxr-train import` (no training run); a starting point for `finetune --init-from`,
    /// or exported as is when the head has the 14 NIH findings.
    Imported,
}

impl Task {
    /// Whether the head is a softmax over classes (else independent sigmoids).
    pub fn is_softmax(self) -> bool {
        !matches!(self, Task::Nih)
    }

    /// The paper's settings for this task, used for every hyperparameter the user leaves unset (docs/PAPER.md:
    /// pretraining at batch 64 with lr 0.01 × 0.94 every 2 epochs; fine-tuning at batch 32 with a constant lr 1e-4,
    /// here with early stopping after 5 epochs without a lower validation loss).
    pub fn paper_defaults(self) -> PaperDefaults {
        match self {
            Task::Pretrain => PaperDefaults { batch_size: 64, learning_rate: 0.01, lr_decay: 0.94, patience: 0 },
            Task::Nih | Task::Indiana | Task::Imported => {
                PaperDefaults { batch_size: 32, learning_rate: 1e-4, lr_decay: 1.0, patience: 5 }
            }
        }
    }
}

/// The seed of every seeded step (weights, splits, augmentation, fresh heads) when none is given.
pub const DEFAULT_SEED: u64 = 20180908;

/// The hyperparameters whose paper value depends on the task ([`Task::paper_defaults`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperDefaults {
    pub batch_size: usize,
    pub learning_rate: f64,
    /// The learning-rate factor every `lr_decay_epochs` (1.0: constant).
    pub lr_decay: f64,
    /// Early stopping: epochs without a lower validation loss (0: off).
    pub patience: usize,
}

/// The optimizer of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// RMSProp as in the paper (decay 0.9, momentum 0.9, ε 1.0).
    Rmsprop,
    /// Adam (β 0.9/0.999); converges faster on small data, used by the CI smoke run.
    Adam,
}

cxr_core::keywords!(clap OptimizerKind, "optimizer", { Rmsprop => "rmsprop", Adam => "adam" });

/// Every hyperparameter of a run; written to `config.json` and read back by `--resume`, `evaluate` and `export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub task: Task,
    pub variant: ModelVariant,
    /// Output classes of the head (1000 for ImageNet, 14 for NIH, 2 for Indiana).
    pub num_classes: usize,
    pub input_size: usize,
    pub batch_size: usize,
    pub epochs: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    /// Multiply the learning rate by this every `lr_decay_epochs` epochs (1.0: constant).
    pub lr_decay: f64,
    pub lr_decay_epochs: usize,
    pub rmsprop_decay: f32,
    pub momentum: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    pub dropout: f64,
    /// Stop after this many epochs without a lower validation loss (0: never).
    pub patience: usize,
    pub seed: u64,
    pub workers: usize,
    pub max_bad_fraction: f64,
    /// The run directory whose kept model the weights started from (fine-tuning from pretraining), if any.
    pub init_from: Option<PathBuf>,
    /// Where the data came from, so that `evaluate` can rebuild the test split from the run alone.
    pub dataset: DatasetSpec,
    /// Fingerprints of the train / validation / test sample lists.
    pub fingerprints: Fingerprints,
    /// `git rev-parse HEAD` of the working directory, when available.
    pub git_commit: Option<String>,
    pub producer: String,
}

/// The dataset a run used, as given on the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DatasetSpec {
    /// Class folders for training and validation (ImageNet layout).
    ImageFolder { train: PathBuf, val: PathBuf, val_ground_truth: Option<PathBuf>, classes: Vec<String> },
    /// NIH ChestX-ray14.
    Nih { csv: PathBuf, images: PathBuf, split_seed: u64, train_val_list: Option<PathBuf>, test_list: Option<PathBuf> },
    /// Indiana University / OpenI.
    Indiana { reports: PathBuf, metadata: PathBuf, images: PathBuf, split_seed: u64 },
    /// No dataset: the weights came from a file (`cxr-train import`).
    Imported {
        source: PathBuf,
        format: String,
        sha256: String,
        gray_from_color: Option<GrayFromColor>,
        /// The user's statement that the file's head was trained for the 14 NIH findings.
        trained: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    pub train: String,
    pub val: String,
    pub test: Option<String>,
}

/// How the 1-channel first convolution of a gray model is built from a color checkpoint's 3-channel one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrayFromColor {
    /// `w_R + w_G + w_B`: the gray model on image `g` computes exactly the color model on `(g, g, g)`.
    Sum,
    /// `0.299 w_R + 0.587 w_G + 0.114 w_B` (ITU-R BT.601 Luma weights, which sum to 1): the gray model on `g`
    /// computes the color model on `(0.299 g, 0.587 g, 0.114 g)` (normalised values).
    Luma,
}

cxr_core::keywords!(clap GrayFromColor, "gray-from-color rule", { Sum => "sum", Luma => "luma" });

impl GrayFromColor {
    /// The weight of each color channel (R, G, B) in the gray filter.
    pub fn channel_weights(self) -> [f32; 3] {
        match self {
            GrayFromColor::Sum => [1.0, 1.0, 1.0],
            GrayFromColor::Luma => cxr_core::decode::LUMA,
        }
    }
}

impl TrainConfig {
    /// The loader settings for one split: training shuffles and augments, evaluation does neither.
    pub fn loader_config(&self, training: bool) -> LoaderConfig {
        let augment = match (training, self.task) {
            (false, _) => Augment::None,
            (true, Task::Pretrain) => Augment::Inception,
            (true, _) => Augment::Flip,
        };
        LoaderConfig {
            batch_size: self.batch_size,
            input_size: self.input_size,
            channels: self.variant.channels(),
            normalization: Normalization::INCEPTION,
            augment,
            shuffle: training,
            seed: self.seed,
            workers: self.workers,
            prefetch: 2,
            max_bad_fraction: self.max_bad_fraction,
        }
    }

    pub(crate) fn model_config(&self) -> InceptionV3Config {
        InceptionV3Config::new(self.variant.channels(), self.num_classes).with_dropout(self.dropout)
    }

    /// A fresh network: seeded initialisation, or with `init_from` the pretraining run's kept weights with this
    /// network's fresh head (fine-tuning replaces the head).
    pub fn build_model(&self, device: &Device) -> Result<InceptionV3, TrainError> {
        let model = self.model_config().init_seeded(self.seed, device);
        match &self.init_from {
            None => Ok(model),
            Some(path) => load_backbone(model, path, device),
        }
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<(), TrainError> {
        let json = serde_json::to_string_pretty(self).expect("config serialises");
        std::fs::write(dir.join("config.json"), json).map_err(|e| TrainError::run_dir(dir, e))
    }

    /// Reads `config.json` of a run directory.
    pub fn read(dir: &Path) -> Result<TrainConfig, TrainError> {
        read_run_file(dir, "config.json", "not a training run directory")
    }
}

/// Reads one JSON file of a run directory; `missing` says what to do when it is absent.
pub(crate) fn read_run_file<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    missing: &str,
) -> Result<T, TrainError> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::run_dir(&path, Cause::during(missing, e)))?;
    serde_json::from_str(&text).map_err(|e| TrainError::run_dir(&path, e))
}

/// The pretraining run in `run` as the starting point of a fine-tuning model: every weight from its `best.bpk`
/// except the classifier head, which `fresh` provides (fine-tuning replaces the 1000-class head).
fn load_backbone(fresh: InceptionV3, run: &Path, device: &Device) -> Result<InceptionV3, TrainError> {
    let (pretrain, mut net) = load_best(run, device)?;
    if net.in_channels() != fresh.in_channels() {
        return Err(TrainError::Config(format!(
            "--init-from {} is a {} model ({} input channel(s)); this run needs {} channel(s)",
            run.display(),
            pretrain.variant,
            net.in_channels(),
            fresh.in_channels()
        )));
    }
    net.fc = fresh.fc;
    net.aux_logits = fresh.aux_logits;
    net.dropout = fresh.dropout;
    Ok(net)
}

/// What a finished training run left behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BestCheckpoint {
    /// 1-based epoch of the kept model (lowest validation loss).
    pub epoch: usize,
    pub val_loss: f64,
    /// Epochs actually run (early stopping may end a run before `epochs`).
    pub epochs_run: usize,
}

impl BestCheckpoint {
    /// Reads `best.json` of a finished run.
    pub fn read(dir: &Path) -> Result<BestCheckpoint, TrainError> {
        read_run_file(dir, "best.json", "the run has not finished training")
    }
}

/// Loads a run's kept model (`best.bpk`, saved as the bare network).
pub fn load_best(dir: &Path, device: &Device) -> Result<(TrainConfig, InceptionV3), TrainError> {
    let config = TrainConfig::read(dir)?;
    let path = dir.join("best.bpk");
    let err = |cause: Cause| TrainError::Checkpoint { path: path.display().to_string(), cause };
    let net = config.model_config().init_seeded(config.seed, device);
    let net = net.try_load_file(dir.join("best")).map_err(|e| err(e.into()))?;
    Ok((config, net))
}
