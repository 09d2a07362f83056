//! Training on burn-train: ImageNet-style pretraining (softmax over the folder classes) and fine-tuning on NIH
//! (14 sigmoid outputs, binary cross-entropy) or Indiana (2-class softmax), with burn-train's `SupervisedTraining`
//! loop, metrics, checkpoints (last two + best by validation loss), early stopping and resume.
//!
//! A run directory holds `config.json` (every hyperparameter, the seed, the dataset fingerprints, the git commit),
//! burn-train's `checkpoint/`, `train/` and `valid/` metric logs and `experiment.log`, this crate's
//! `metrics.csv` (one row per epoch) and, once training ends, `best.bpk` (the kept model) and `best.json`.

pub mod dataset;
pub mod loader;
pub mod renderer;
pub mod steps;

use std::path::Path;
use std::sync::Arc;

use burn::lr_scheduler::step::StepLrSchedulerConfig;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, RmsPropConfig};
use burn::tensor::Device;
use burn::train::metric::store::{Aggregate, Direction, Split as MetricSplit};
use burn::train::metric::{AccuracyMetric, AurocMetric, ClassReduction, LossMetric, TopKAccuracyMetric};
use burn::train::{
    ExecutionStrategy, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim, StoppingCondition, SupervisedTraining,
};

use crate::cause::Cause;
use crate::data::loader::Loader;
use crate::data::{Sample, fingerprint};
use crate::model::InceptionV3;
use crate::run::{BestCheckpoint, Fingerprints, OptimizerKind, PRODUCER, TrainConfig, TrainError};
use loader::BurnLoader;
use renderer::ProgressRenderer;
use steps::{MultiLabelClassifier, SoftmaxClassifier};

/// The three sample lists of a run.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub test: Vec<Sample>,
}

/// `git rev-parse HEAD`, if this is a git checkout.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fills in the fingerprints, commit and producer of a config for its splits.
pub fn describe(mut config: TrainConfig, splits: &Splits) -> TrainConfig {
    config.fingerprints = Fingerprints {
        train: fingerprint(&splits.train),
        val: fingerprint(&splits.val),
        test: (!splits.test.is_empty()).then(|| fingerprint(&splits.test)),
    };
    config.git_commit = git_commit();
    config.producer = PRODUCER.into();
    config
}

/// The last `checkpoint/model-N.bpk` in a run directory (what `--resume` continues from).
pub fn last_checkpoint(dir: &Path) -> Option<usize> {
    std::fs::read_dir(dir.join("checkpoint"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("model-")?.strip_suffix(".bpk")?.parse::<usize>().ok()
        })
        .max()
}

/// The mean of each epoch's validation loss from burn-train's logs (`valid/epoch-N/Loss.log`, last line
/// `value,final`).
pub fn validation_losses(dir: &Path) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    for epoch in 1.. {
        let path = dir.join("valid").join(format!("epoch-{epoch}")).join("Loss.log");
        let Ok(text) = std::fs::read_to_string(&path) else { break };
        let final_value =
            text.lines().rev().find_map(|l| l.strip_suffix(",final").and_then(|v| v.trim().parse::<f64>().ok()));
        if let Some(v) = final_value {
            out.push((epoch, v));
        }
    }
    out
}

/// Trains one run in `dir` (created if missing; a directory that already holds a run is refused). With `resume`,
/// continues from the last checkpoint there (model, optimizer and scheduler state), which must have been started on
/// the same data (equal fingerprints); `config.json` is rewritten with the new settings (e.g. more epochs).
pub fn train(
    config: TrainConfig,
    splits: &Splits,
    dir: &Path,
    resume: bool,
    devices: &[Device],
) -> Result<BestCheckpoint, TrainError> {
    let device = devices.first().ok_or_else(|| TrainError::Config("no device".into()))?;
    let start_epoch = prepare_run_dir(&config, dir, resume)?;
    device.seed(config.seed);

    let train_loader = Loader::new(splits.train.clone(), config.loader_config(true))?;
    let val_loader = Loader::new(splits.val.clone(), config.loader_config(false))?;
    let iters_per_epoch = train_loader.batches_per_epoch();
    let train_dl =
        Arc::new(BurnLoader::new(train_loader, config.task, config.num_classes, device.clone(), start_epoch));
    let val_dl = Arc::new(BurnLoader::new(val_loader, config.task, config.num_classes, device.clone(), 0));

    let scheduler = StepLrSchedulerConfig::new(config.learning_rate, (config.lr_decay_epochs * iters_per_epoch).max(1))
        .with_gamma(config.lr_decay)
        .init()
        .map_err(TrainError::Config)?;
    let weight_decay = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay));
    let optimizer = match config.optimizer {
        OptimizerKind::Rmsprop => RmsPropConfig::new()
            .with_alpha(config.rmsprop_decay)
            .with_momentum(config.momentum)
            .with_epsilon(config.epsilon)
            .with_weight_decay(weight_decay)
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(weight_decay).init(),
    };
    // Parameters must live on an autodiff device to be tracked: burn-train trains the model where it was built.
    let model = config.build_model(&device.clone().autodiff())?;
    let renderer = Box::new(ProgressRenderer::new(dir.join("metrics.csv"), config.epochs, start_epoch));

    let stopping = (config.patience > 0).then(|| {
        MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            MetricSplit::Valid,
            StoppingCondition::NoImprovementSince { n_epochs: config.patience },
        )
    });

    macro_rules! launch {
        ($wrapper:expr, $training:expr) => {{
            let mut training = $training
                .with_training_strategy(if devices.len() > 1 {
                    ExecutionStrategy::multi(devices.to_vec(), MultiDeviceOptim::OptimMainDevice).into()
                } else {
                    ExecutionStrategy::SingleDevice(device.clone()).into()
                })
                .renderer(renderer)
                .with_application_logger(None)
                .with_default_checkpointers()
                .num_epochs(config.epochs);
            if let Some(stopping) = stopping {
                training = training.early_stopping(stopping);
            }
            if start_epoch > 0 {
                training = training.checkpoint(start_epoch);
            }
            let result = training.launch(Learner::new($wrapper, optimizer, scheduler));
            if let Some(error) = result.error {
                return Err(TrainError::Training(Cause::other(error)));
            }
        }};
    }

    if config.task.is_softmax() {
        let training =
            SupervisedTraining::new(dir, train_dl, val_dl).metrics((LossMetric::new(), AccuracyMetric::new()));
        let training = if config.num_classes > 5 {
            training.metric_train_numeric(TopKAccuracyMetric::new(5)).metric_valid_numeric(TopKAccuracyMetric::new(5))
        } else {
            training
        };
        launch!(SoftmaxClassifier { net: model }, training);
    } else {
        let training = SupervisedTraining::new(dir, train_dl, val_dl)
            .metric_train_numeric(LossMetric::new())
            .metric_valid_numeric(LossMetric::new())
            .metric_valid_numeric(AurocMetric::multilabel(ClassReduction::Macro));
        launch!(MultiLabelClassifier { net: model }, training);
    }

    keep_best(&config, dir, device)
}

/// Checks the settings and the run directory and returns the epoch training starts after: 0 for a new run (the
/// directory must not hold one), the last checkpoint's for `resume` (on the same data as before). Writes
/// `config.json`.
fn prepare_run_dir(config: &TrainConfig, dir: &Path, resume: bool) -> Result<usize, TrainError> {
    if config.batch_size == 0 || config.epochs == 0 || config.input_size < crate::model::MIN_INPUT_SIZE {
        return Err(TrainError::Config(format!(
            "batch size and epochs must be ≥ 1 and the input size ≥ {} (got {}, {}, {})",
            crate::model::MIN_INPUT_SIZE,
            config.batch_size,
            config.epochs,
            config.input_size
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::run_dir(dir, e))?;
    let start_epoch = if resume {
        let previous = TrainConfig::read(dir)?;
        if previous.fingerprints != config.fingerprints {
            return Err(TrainError::run_dir(dir, "--resume with a different dataset than the run was started on"));
        }
        last_checkpoint(dir).ok_or_else(|| TrainError::run_dir(dir, "--resume: no checkpoint/model-N.bpk to resume"))?
    } else {
        if dir.join("config.json").exists() {
            return Err(TrainError::run_dir(dir, "already holds a run; use --resume or another --out"));
        }
        0
    };
    config.write(dir)?;
    Ok(start_epoch)
}

/// A whole run from its config: the dataset's splits, a one-line summary on stderr, the fingerprints, then
/// [`train`] in `dir` on `devices`.
pub fn run(config: TrainConfig, dir: &Path, resume: bool, devices: &[Device]) -> Result<BestCheckpoint, TrainError> {
    let splits = dataset::splits_for(&config.dataset)?;
    eprintln!(
        "{:?} {}: {} train / {} val / {} test images, {} classes, input {}², batch {}",
        config.task,
        config.variant,
        splits.train.len(),
        splits.val.len(),
        splits.test.len(),
        config.num_classes,
        config.input_size,
        config.batch_size
    );
    let config = describe(config, &splits);
    train(config, &splits, dir, resume, devices)
}

/// Copies the checkpoint with the lowest validation loss to `best.bpk` and describes it in `best.json`.
fn keep_best(config: &TrainConfig, dir: &Path, device: &Device) -> Result<BestCheckpoint, TrainError> {
    let losses = validation_losses(dir);
    let epochs_run = losses.last().map(|(e, _)| *e).unwrap_or(0);
    let (epoch, val_loss) = losses
        .iter()
        .filter(|(e, _)| dir.join("checkpoint").join(format!("model-{e}.bpk")).exists())
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| TrainError::run_dir(dir, "no validation loss with a kept checkpoint"))?;
    let net = load_net(config, &dir.join("checkpoint").join(format!("model-{epoch}.bpk")), device)?;
    save_reproducible(net, &dir.join("best.bpk")).map_err(|e| TrainError::run_dir(dir, e))?;
    let best = BestCheckpoint { epoch, val_loss, epochs_run };
    std::fs::write(dir.join("best.json"), serde_json::to_string_pretty(&best).expect("JSON"))
        .map_err(|e| TrainError::run_dir(dir, e))?;
    Ok(best)
}

/// Writes `net` as a burnpack file whose bytes depend on the weights alone.
///
/// Burn gives every parameter a random 64-bit id (drawn from the OS at construction) and stores it in the file,
/// so two runs with bit-identical weights would still write different bytes. The kept model is what users
/// hash and compare, so its ids are replaced by a hash of each tensor's module path: stable across runs and
/// unique within the model. (Loading assigns whatever ids the file holds; nothing depends on their values.)
pub fn save_reproducible(net: InceptionV3, path: &Path) -> Result<(), Cause> {
    let bytes = net.into_record().into_bytes()?;
    let reader = burn_pack::Reader::from_bytes(bytes)?;
    let (metadata, scalars) = (reader.metadata().clone(), reader.scalars().clone());
    let tensors = reader.into_tensors().and_then(|tensors| {
        tensors
            .into_iter()
            .map(|t| {
                let (name, dtype, shape, _random_id, bytes) = t.into_parts()?;
                let id = crate::hash::Fnv1a::hash(name.as_bytes());
                Ok(burn_pack::Tensor::new(name, dtype, shape, Some(id), bytes))
            })
            .collect::<Result<Vec<_>, burn_pack::Error>>()
    })?;
    let writer = metadata.iter().fold(burn_pack::Writer::new(tensors), |w, (k, v)| w.with_metadata(k, v));
    let writer = scalars.into_iter().fold(writer, |w, (k, v)| w.with_scalar(&k, v));
    Ok(writer.write_to_file(path)?)
}

/// Loads a checkpoint written by training (the `net` of a classifier wrapper) into a fresh network.
pub fn load_net(config: &TrainConfig, path: &Path, device: &Device) -> Result<InceptionV3, TrainError> {
    let err = |cause: Cause| TrainError::Checkpoint { path: path.display().to_string(), cause };
    let net = config.model_config().init_seeded(config.seed, device);
    let record = burn::store::ModuleRecord::load(path).map_err(|e| err(e.into()))?;
    if config.task.is_softmax() {
        SoftmaxClassifier { net }.try_load_record(record).map(|m| m.net).map_err(|e| err(e.into()))
    } else {
        MultiLabelClassifier { net }.try_load_record(record).map(|m| m.net).map_err(|e| err(e.into()))
    }
}
