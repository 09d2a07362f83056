//! The `cxr-train` command line: one [`Cli`] (clap derive + env) and [`run`], which hands each command to the
//! library through one small function per command. Nothing here decides a setting: a hyperparameter left unset
//! takes the task's paper value ([`Task::paper_defaults`]) and every seed defaults to [`DEFAULT_SEED`].

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use cxr_core::card::{ModelSelection, ModelVariant};

use crate::bench::{BenchConfig, PyTorchPrecision, PyTorchSide};
use crate::data::{DataError, indiana, nih, scores};
use crate::device::{DeviceSpec, default_workers, open_all};
use crate::export::{ExportError, export_untrained};
use crate::roc::RocError;
use crate::run::{DEFAULT_SEED, DatasetSpec, OptimizerKind, Task, TrainConfig, TrainError};

/// Train, evaluate and export the color (3-channel) and gray (1-channel) Inception-V3 chest X-ray classifiers.
#[derive(Debug, Parser)]
#[command(name = "cxr-train", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `cxr-train`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export seeded (untrained) Inception-V3 classifiers to ONNX with their model cards.
    ///
    /// The same seed always gives byte-identical files. Cards say `"trained": false`.
    Export(ExportArgs),
    /// Pretrain on an ImageNet-layout folder (softmax over the class folders; Inception augmentation).
    Pretrain(PretrainArgs),
    /// Fine-tune on NIH ChestX-ray14 (14 sigmoid outputs) or Indiana (normal vs abnormal), usually from a
    /// pretraining run (`--init-from`), with a new head.
    #[command(subcommand)]
    Finetune(FinetuneCommand),
    /// Evaluate a finished fine-tuning run on its test split: per-class AUC with 95 % CI, mean AUC (and accuracy
    /// for Indiana), Youden thresholds on validation; writes evaluation.json and the prediction CSVs.
    Evaluate {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// The Burn device (see `finetune nih --help`).
        #[arg(long, default_value = "flex")]
        device: DeviceSpec,
    },
    /// Compare two evaluated runs on the same test set: per-class DeLong test, written as a Table-2-style
    /// markdown table and JSON.
    Compare {
        /// First run (e.g. the color model).
        #[arg(long)]
        a: PathBuf,
        /// Second run (e.g. the gray model).
        #[arg(long)]
        b: PathBuf,
        /// Where to write compare.md and compare.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// DeLong's test for two scores of the same cases, from any CSV with a 0/1 truth column.
    ///
    /// Prints `{"auc_a", "auc_b", "z", "p"}` as JSON.
    Delong {
        /// The CSV file (with a header row).
        #[arg(long)]
        csv: PathBuf,
        /// Column holding the truth, 0 or 1.
        #[arg(long)]
        truth: String,
        /// Column holding the first score.
        #[arg(long)]
        a: String,
        /// Column holding the second score.
        #[arg(long)]
        b: String,
    },
    /// Benchmark (not a test): training images/s at `--input-size` per variant and batch size on a device, and
    /// loader images/s (decode + preprocess + augmentation) on the fixture images; prints a markdown table.
    Bench(BenchArgs),
    /// Reads a dataset's metadata and prints what the pipeline derives from it (counts and split sizes) as JSON.
    #[command(subcommand)]
    Data(DataCommand),
    /// Import torchvision `inception_v3` weights (`.pth` / `.pt` / `.safetensors`) into a directory that
    /// `finetune --init-from` and `export --run` accept.
    ///
    /// Keys are torchvision's (`AuxLogits.*` optional, `num_batches_tracked` ignored); any head size. Missing,
    /// unexpected or mis-shaped keys end the import with one error that lists them.
    Import {
        #[command(flatten)]
        request: crate::import::ImportRequest,
        /// The import directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Wrap an ONNX image classifier exported elsewhere (torch.onnx, tf2onnx) into the served interface: input
    /// `image [N, C, 299, 299]`, outputs `probabilities` and `logits` `[N, 14]` in NIH order, with a model card.
    Adopt {
        #[command(flatten)]
        request: crate::adopt::AdoptRequest,
        /// Output directory for `<name>.onnx` and `<name>.json` (the server's --models folder).
        #[arg(long, default_value = "models")]
        out: PathBuf,
    },
}

/// `cxr-train export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Which variant(s) to export.
    #[arg(long, env = "CXR_VARIANT", value_enum, default_value = "both")]
    pub variant: ModelSelection,
    /// Seed of the weight initialisation.
    #[arg(long, env = "CXR_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Output directory for `<name>.onnx` and `<name>.json`.
    #[arg(long, env = "CXR_MODELS_DIR", default_value = "models")]
    pub out: PathBuf,
    /// Export this NIH fine-tuning run (after `evaluate`) instead of a seeded initialisation: the card says
    /// `trained: true` and carries the run's metrics and thresholds. `--variant` and `--seed` are ignored.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Also write `<name>.fp16.onnx` beside each model: FP16 weights and arithmetic, FP32 input and outputs, for
    /// `cxr-serve --precision fp16` on a GPU (slower than FP32 on x86 CPUs, which lack FP16 kernels).
    #[arg(long, env = "CXR_EXPORT_FP16")]
    pub fp16: bool,
}

/// `cxr-train pretrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct PretrainArgs {
    /// `train/<class>/*.JPEG`.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation: class folders, or a flat folder with `--val-ground-truth`.
    #[arg(long)]
    pub val: PathBuf,
    /// The devkit's `ILSVRC2012_validation_ground_truth.txt` for a flat validation folder (ids are taken as
    /// 1-based indices of the sorted training class folders).
    #[arg(long)]
    pub val_ground_truth: Option<PathBuf>,
    /// Train the gray model: Luma (0.299, 0.587, 0.114) after augmentation, 1 input channel. The same as
    /// `--variant gray` (the default; `--variant color` trains on RGB).
    #[arg(long, conflicts_with = "variant")]
    pub grayscale: bool,
    #[command(flatten)]
    pub args: TrainArgs,
}

/// `cxr-train finetune nih|indiana`: each dataset with the files it needs.
#[derive(Debug, Clone, Subcommand)]
pub enum FinetuneCommand {
    /// NIH ChestX-ray14: 14 independent findings (sigmoid, binary cross-entropy).
    Nih {
        /// `Data_Entry_2017*.csv[.gz]`.
        #[arg(long)]
        csv: PathBuf,
        /// The official `train_val_list.txt` (with `--test-list`); otherwise a seeded patient split.
        #[arg(long, requires = "test_list")]
        train_val_list: Option<PathBuf>,
        /// The official `test_list.txt`.
        #[arg(long, requires = "train_val_list")]
        test_list: Option<PathBuf>,
        #[command(flatten)]
        common: FinetuneArgs,
    },
    /// Indiana University / OpenI: normal vs abnormal (2-class softmax).
    Indiana {
        /// `NLMCXR_reports.tgz` or its folder of XML reports.
        #[arg(long)]
        reports: PathBuf,
        /// The DICOM metadata table.
        #[arg(long)]
        metadata: PathBuf,
        #[command(flatten)]
        common: FinetuneArgs,
    },
}

/// The flags every fine-tuning dataset shares.
#[derive(Debug, Clone, clap::Args)]
pub struct FinetuneArgs {
    /// The pretraining run directory whose kept model starts the weights (the head is replaced).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// The image folder (NIH PNGs by `Image Index`; Indiana DICOMs by the table's file name, or `<id>.png`).
    #[arg(long)]
    pub images: PathBuf,
    /// Seed of the patient-disjoint 70/10/20 split.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub split_seed: u64,
    #[command(flatten)]
    pub args: TrainArgs,
}

/// Hyperparameters shared by `pretrain` and `finetune`; unset ones take the paper's value for the task.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// The run directory (config.json, checkpoints, logs, metrics.csv, best.bpk).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in `--out` from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// The model: `gray` (1 input channel) or `color` (3; X-rays are the gray plane stacked ×3).
    #[arg(long, value_enum, default_value = "gray")]
    pub variant: ModelVariant,
    /// Input height and width (≥ 75; the paper and the server use 299).
    #[arg(long, default_value_t = 299)]
    pub input_size: usize,
    /// Batch size (paper: 64 pretraining, 32 fine-tuning).
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    #[arg(long, value_enum, default_value = "rmsprop")]
    pub optimizer: OptimizerKind,
    /// Learning rate (paper: 0.01 pretraining, 1e-4 fine-tuning).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate factor every `--lr-decay-epochs` (paper: 0.94 every 2 epochs for pretraining; 1 = constant).
    #[arg(long)]
    pub lr_decay: Option<f64>,
    #[arg(long, default_value_t = 2)]
    pub lr_decay_epochs: usize,
    /// RMSProp decay of the squared-gradient average.
    #[arg(long, default_value_t = 0.9)]
    pub rmsprop_decay: f32,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// RMSProp ε (the paper's TF-slim setting is 1.0).
    #[arg(long, default_value_t = 1.0)]
    pub epsilon: f32,
    #[arg(long, default_value_t = 4e-5)]
    pub weight_decay: f32,
    /// Dropout before the classifier.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Early stopping: epochs without a lower validation loss (0 = off; default 5 for fine-tuning, off for
    /// pretraining).
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Decoding threads (default: CPUs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Fail the run when more than this fraction of images cannot be read.
    #[arg(long, default_value_t = 0.01)]
    pub max_bad_fraction: f64,
    /// Burn device(s), comma-separated: `flex` (CPU; always built), `tch` / `tch-cuda[:N]` (LibTorch), `vulkan[:N]`,
    /// `cuda[:N]` (crate features).
    /// Several devices train data-parallel.
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    pub device: Vec<DeviceSpec>,
}

/// `cxr-train bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The Burn device (see `finetune nih --help`).
    #[arg(long, default_value = "flex")]
    pub device: DeviceSpec,
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch_sizes: Vec<usize>,
    #[arg(long, default_value_t = 299)]
    pub input_size: usize,
    /// Timed training steps per row (after one warm-up step).
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Images for the loader rows (default: the repository's fixtures in tests/data).
    #[arg(long, default_value = "tests/data")]
    pub images: PathBuf,
    /// Decoding threads of the loader rows (default: CPUs).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also train the same Inception-V3 (torchvision's, same head, loss, RMSProp, batch and input) in PyTorch
    /// with this Python (it needs `torch` and `torchvision`), and print both images/s and the ratio.
    #[arg(long, value_name = "PYTHON")]
    pub compare_pytorch: Option<PathBuf>,
    /// PyTorch's device (default: `cuda:N` for a GPU `--device`, else `cpu`).
    #[arg(long)]
    pub pytorch_device: Option<String>,
    /// PyTorch's precision (`tf32` on CUDA; `bf16` and `fp16` by autocast).
    #[arg(long, value_enum, default_value = "fp32")]
    pub pytorch_precision: PyTorchPrecision,
    /// PyTorch in channels-last (NHWC) memory format.
    #[arg(long)]
    pub pytorch_channels_last: bool,
    /// PyTorch's intra-op CPU threads (default: the threads Burn's CPU backend uses, `RAYON_NUM_THREADS` or
    /// the CPUs).
    #[arg(long)]
    pub pytorch_threads: Option<usize>,
    /// Also write every row as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Time training only (no loader rows).
    #[arg(long, conflicts_with = "no_training")]
    pub no_loader: bool,
    /// Time the loader only (no training rows).
    #[arg(long)]
    pub no_training: bool,
}

/// `cxr-train data ...`: dataset metadata checks.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// NIH ChestX-ray14: images, patients, per-label counts and the patient-disjoint split.
    Nih {
        /// `Data_Entry_2017*.csv` (or `.csv.gz`).
        #[arg(long)]
        csv: PathBuf,
        /// Seed of the patient-disjoint 70/10/20 split.
        #[arg(long, default_value_t = DEFAULT_SEED)]
        split_seed: u64,
    },
    /// Indiana University (OpenI): reports, frontal images, patients, normal/abnormal.
    Indiana {
        /// `NLMCXR_reports.tgz` or the folder of report XML files.
        #[arg(long)]
        reports: PathBuf,
        /// The DICOM metadata table (`nlmcxr_dicom_metadata.csv(.gz)`).
        #[arg(long)]
        metadata: PathBuf,
    },
}

/// Errors surfaced by the command line: the library's, unchanged.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Roc(#[from] RocError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Adopt(#[from] crate::adopt::AdoptError),
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Export(args) => export(args),
        Command::Pretrain(args) => pretrain(args),
        Command::Finetune(command) => finetune(command),
        Command::Evaluate { run, device } => {
            print_json(&crate::report::evaluate::evaluate_run(&run, &device.open()?)?);
            Ok(())
        }
        Command::Compare { a, b, out } => {
            println!("{}", crate::report::compare::compare_runs(&a, &b, &out)?);
            Ok(())
        }
        Command::Delong { csv, truth, a, b } => {
            let columns = scores::read_score_columns(&csv, &truth, &a, &b)?;
            let test = crate::roc::delong(&columns.truth, &columns.a, &columns.b)?;
            println!("{}", serde_json::json!({ "auc_a": test.auc_a, "auc_b": test.auc_b, "z": test.z, "p": test.p }));
            Ok(())
        }
        Command::Bench(args) => bench(args),
        Command::Data(command) => data(command),
        Command::Import { request, out } => {
            print_json(&crate::import::import_to_dir(&request, &out, &Device::flex())?);
            Ok(())
        }
        Command::Adopt { request, out } => {
            let adopted = crate::adopt::adopt(&request, &out)?;
            let card = &adopted.card;
            println!(
                "adopted {} ({} channel(s), {}² input, trained: {}) -> {}",
                card.name,
                card.channels,
                card.input_size,
                card.trained,
                adopted.onnx_path.display()
            );
            Ok(())
        }
    }
}

/// Prints a result as pretty JSON on stdout (the machine-readable answer of most commands).
fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("results serialise to JSON"));
}

/// `export`: a finished run (`--run`), or the seeded initialisation of each selected variant.
fn export(args: ExportArgs) -> Result<(), CliError> {
    let exported = match &args.run {
        Some(run) => {
            let exported = crate::export::export_run(run, &args.out, &Device::flex())?;
            let card = &exported.card;
            let mean_auc = card.evaluation.as_ref().and_then(|e| e.test.get("mean_auc")).copied();
            println!(
                "exported {} (trained: {}, input {}², test mean AUC {:.4}) -> {}",
                card.name,
                card.trained,
                card.input_size,
                mean_auc.unwrap_or(f64::NAN),
                exported.onnx_path.display()
            );
            vec![exported]
        }
        None => {
            let device = Device::default();
            let mut all = Vec::new();
            for &variant in args.variant.variants() {
                let exported = export_untrained(variant, args.seed, &args.out, &device)?;
                let card = &exported.card;
                println!(
                    "exported {} ({} channel(s), {} trainable parameters, trained: {}) -> {} ({:.1} MB) in {:.2} s",
                    card.name,
                    card.channels,
                    card.parameters,
                    card.trained,
                    exported.onnx_path.display(),
                    exported.bytes as f64 / 1e6,
                    exported.export_seconds,
                );
                all.push(exported);
            }
            all
        }
    };
    if args.fp16 {
        for model in &exported {
            print_fp16(&model.onnx_path)?;
        }
    }
    Ok(())
}

/// Writes the FP16 file beside an exported model and says where.
fn print_fp16(onnx_path: &Path) -> Result<(), CliError> {
    let (path, bytes) = crate::fp16::write_fp16(onnx_path)?;
    println!("  + FP16 -> {} ({:.1} MB)", path.display(), bytes as f64 / 1e6);
    Ok(())
}

/// `pretrain`: the class folders of `--train` are the classes.
fn pretrain(PretrainArgs { train, val, val_ground_truth, grayscale, mut args }: PretrainArgs) -> Result<(), CliError> {
    if grayscale {
        args.variant = ModelVariant::Gray;
    }
    let classes = crate::data::imagefolder::scan_class_folders(&train)?.classes;
    let spec = DatasetSpec::ImageFolder { train, val, val_ground_truth, classes };
    train_run(Task::Pretrain, spec, None, args)
}

/// `finetune nih|indiana`.
fn finetune(command: FinetuneCommand) -> Result<(), CliError> {
    match command {
        FinetuneCommand::Nih { csv, train_val_list, test_list, common } => {
            let FinetuneArgs { init_from, images, split_seed, args } = common;
            let spec = DatasetSpec::Nih { csv, images, split_seed, train_val_list, test_list };
            train_run(Task::Nih, spec, init_from, args)
        }
        FinetuneCommand::Indiana { reports, metadata, common } => {
            let FinetuneArgs { init_from, images, split_seed, args } = common;
            train_run(Task::Indiana, DatasetSpec::Indiana { reports, metadata, images, split_seed }, init_from, args)
        }
    }
}

/// Trains one run from the flags and prints its kept checkpoint.
fn train_run(task: Task, dataset: DatasetSpec, init_from: Option<PathBuf>, args: TrainArgs) -> Result<(), CliError> {
    let devices = open_all(&args.device)?;
    let (out, resume) = (args.out.clone(), args.resume);
    let config = args.into_config(task, dataset, init_from);
    print_json(&crate::train::run(config, &out, resume, &devices)?);
    Ok(())
}

impl TrainArgs {
    /// The run's config: these flags, and the task's paper value for each one left unset.
    fn into_config(self, task: Task, dataset: DatasetSpec, init_from: Option<PathBuf>) -> TrainConfig {
        let paper = task.paper_defaults();
        TrainConfig {
            task,
            variant: self.variant,
            num_classes: crate::train::dataset::class_names(&dataset).len(),
            input_size: self.input_size,
            batch_size: self.batch_size.unwrap_or(paper.batch_size),
            epochs: self.epochs,
            optimizer: self.optimizer,
            learning_rate: self.lr.unwrap_or(paper.learning_rate),
            lr_decay: self.lr_decay.unwrap_or(paper.lr_decay),
            lr_decay_epochs: self.lr_decay_epochs,
            rmsprop_decay: self.rmsprop_decay,
            momentum: self.momentum,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            dropout: self.dropout,
            patience: self.patience.unwrap_or(paper.patience),
            seed: self.seed,
            workers: self.workers.unwrap_or_else(default_workers),
            max_bad_fraction: self.max_bad_fraction,
            init_from,
            dataset,
            fingerprints: Default::default(),
            git_commit: None,
            producer: String::new(),
        }
    }
}

/// `bench`: the flags resolved (defaults that depend on the machine or the device) and the table printed.
fn bench(args: BenchArgs) -> Result<(), CliError> {
    let device = args.device.open()?;
    let pytorch = args.compare_pytorch.map(|python| PyTorchSide {
        python,
        threads: args.pytorch_threads.unwrap_or_else(rayon::current_num_threads),
        device: args.pytorch_device.unwrap_or_else(|| args.device.pytorch_device()),
        precision: args.pytorch_precision,
        channels_last: args.pytorch_channels_last,
    });
    let config = BenchConfig {
        workers: args.workers.unwrap_or_else(default_workers),
        device: args.device,
        batch_sizes: args.batch_sizes,
        input_size: args.input_size,
        steps: args.steps,
        images: args.images,
        pytorch,
        json: args.json,
        no_loader: args.no_loader,
        no_training: args.no_training,
    };
    crate::bench::print_table(&config, &device)?;
    Ok(())
}

/// `data nih|indiana`: what the pipeline derives from a dataset's metadata.
fn data(command: DataCommand) -> Result<(), CliError> {
    match command {
        DataCommand::Nih { csv, split_seed } => {
            let records = nih::read_nih_csv(&csv)?;
            let facts = nih::facts(&records);
            let split = nih::split_by_patient(&records, (0.7, 0.1), split_seed);
            let per_label: serde_json::Map<String, serde_json::Value> =
                cxr_core::labels::LABELS.iter().zip(facts.per_label).map(|(l, n)| (l.to_string(), n.into())).collect();
            print_json(&serde_json::json!({
                "images": facts.images,
                "patients": facts.patients,
                "no_finding": facts.no_finding,
                "per_label": per_label,
                "views": facts.views,
                "split": { "seed": split_seed, "train": split.train.len(), "val": split.val.len(), "test": split.test.len() },
            }));
        }
        DataCommand::Indiana { reports, metadata } => {
            let (_, counts) = indiana::derive(&indiana::read_reports(&reports)?, &indiana::read_metadata(&metadata)?);
            print_json(&counts);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `docs/configuration.md` holds exactly this binary's `--help`, every subcommand included (`make docs`
    /// regenerates it).
    #[test]
    fn the_configuration_reference_is_the_help() {
        let markdown = cxr_core::clidoc::help_markdown(<Cli as clap::CommandFactory>::command());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        cxr_core::clidoc::check_generated(&path, "cxr-train", &markdown).unwrap();
    }

    /// Each dataset's own files are required by clap (one check, before any code runs), and unset
    /// hyperparameters become the task's paper values.
    #[test]
    fn finetune_requires_each_datasets_files_and_fills_in_the_paper_values() {
        let missing = Cli::try_parse_from(["cxr-train", "finetune", "nih", "--images", "i", "--out", "o"]).unwrap_err();
        assert!(missing.to_string().contains("--csv"), "{missing}");
        let missing = Cli::try_parse_from(["cxr-train", "finetune", "indiana", "--reports", "r", "--images", "i"]);
        assert!(missing.unwrap_err().to_string().contains("--metadata"));
        let cli = Cli::try_parse_from([
            "cxr-train",
            "finetune",
            "nih",
            "--csv",
            "d.csv",
            "--images",
            "i",
            "--out",
            "o",
            "--device",
            "flex",
        ])
        .unwrap();
        let Command::Finetune(FinetuneCommand::Nih { common, .. }) = cli.command else { panic!("{cli:?}") };
        assert_eq!(common.split_seed, DEFAULT_SEED);
        assert_eq!(common.args.device, [DeviceSpec::FLEX]);
        let spec = DatasetSpec::Nih {
            csv: "d.csv".into(),
            images: "i".into(),
            split_seed: common.split_seed,
            train_val_list: None,
            test_list: None,
        };
        let config = common.args.into_config(Task::Nih, spec, None);
        let paper = Task::Nih.paper_defaults();
        assert_eq!((config.batch_size, config.learning_rate, config.patience), (32, 1e-4, 5));
        assert_eq!((config.lr_decay, config.num_classes, config.seed), (paper.lr_decay, 14, DEFAULT_SEED));
    }

    #[test]
    fn devices_and_precisions_are_parsed_by_clap() {
        let bad = Cli::try_parse_from(["cxr-train", "bench", "--device", "gpu"]).unwrap_err().to_string();
        assert!(bad.contains("flex, tch, tch-cuda, cuda, vulkan"), "{bad}");
        let bad = Cli::try_parse_from(["cxr-train", "bench", "--pytorch-precision", "int8"]).unwrap_err().to_string();
        assert!(bad.contains("fp32") && bad.contains("bf16"), "{bad}");
        let cli = Cli::try_parse_from([
            "cxr-train",
            "pretrain",
            "--train",
            "t",
            "--val",
            "v",
            "--out",
            "o",
            "--device",
            "flex,vulkan:1",
        ])
        .unwrap();
        let Command::Pretrain(PretrainArgs { args, .. }) = cli.command else { panic!("{cli:?}") };
        assert_eq!(args.device.iter().map(|d| d.to_string()).collect::<Vec<_>>(), ["flex", "vulkan:1"]);
    }
}
