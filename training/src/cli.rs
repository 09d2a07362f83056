//! The `cxr-train` command line: one [`Cli`] (clap derive + env) and [`run`], which dispatches to the library.

use std::path::PathBuf;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use cxr_core::card::{ModelSelection, ModelVariant};

use crate::data::{DataError, indiana, nih};
use crate::eval::{EvalError, delong};
use crate::export::{ExportError, export_untrained};

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
    Export {
        /// Which variant(s) to export.
        #[arg(long, env = "CXR_VARIANT", value_enum, default_value = "both")]
        variant: ModelSelection,
        /// Seed of the weight initialisation.
        #[arg(long, env = "CXR_SEED", default_value_t = 20180908)]
        seed: u64,
        /// Output directory for `<name>.onnx` and `<name>.json`.
        #[arg(long, env = "CXR_MODELS_DIR", default_value = "models")]
        out: PathBuf,
        /// Export this NIH fine-tuning run (after `evaluate`) instead of a seeded initialisation: the card says
        /// `trained: true` and carries the run's metrics and thresholds. `--variant` and `--seed` are ignored.
        #[arg(long)]
        run: Option<PathBuf>,
        /// Also write `<name>.fp16.onnx` beside each model: FP16 weights and arithmetic, FP32 input and outputs, for
        /// `cxr-serve --precision fp16` on a GPU (slower than FP32 on x86 CPUs, which lack FP16 kernels).
        #[arg(long, env = "CXR_EXPORT_FP16")]
        fp16: bool,
    },
    /// Pretrain on an ImageNet-layout folder (softmax over the class folders; Inception augmentation).
    Pretrain {
        /// `train/<class>/*.JPEG`.
        #[arg(long)]
        train: PathBuf,
        /// Validation: class folders, or a flat folder with `--val-ground-truth`.
        #[arg(long)]
        val: PathBuf,
        /// The devkit's `ILSVRC2012_validation_ground_truth.txt` for a flat validation folder (ids are taken as
        /// 1-based indices of the sorted training class folders).
        #[arg(long)]
        val_ground_truth: Option<PathBuf>,
        /// Train the gray model: Luma (0.299, 0.587, 0.114) after augmentation, 1 input channel. The same as
        /// `--variant gray` (the default; `--variant color` trains on RGB).
        #[arg(long, conflicts_with = "variant")]
        grayscale: bool,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Fine-tune on NIH ChestX-ray14 (14 sigmoid outputs) or Indiana (normal vs abnormal), usually from a
    /// pretraining run (`--init-from`), with a new head.
    Finetune {
        #[arg(long, value_enum)]
        task: FinetuneTask,
        /// The pretraining run directory whose kept model starts the weights (the head is replaced).
        #[arg(long)]
        init_from: Option<PathBuf>,
        /// NIH: `Data_Entry_2017*.csv[.gz]`.
        #[arg(long, required_if_eq("task", "nih"))]
        csv: Option<PathBuf>,
        /// NIH: the official `train_val_list.txt` (with `--test-list`); otherwise a seeded patient split.
        #[arg(long, requires = "test_list")]
        train_val_list: Option<PathBuf>,
        /// NIH: the official `test_list.txt`.
        #[arg(long, requires = "train_val_list")]
        test_list: Option<PathBuf>,
        /// Indiana: `NLMCXR_reports.tgz` or its folder of XML reports.
        #[arg(long, required_if_eq("task", "indiana"))]
        reports: Option<PathBuf>,
        /// Indiana: the DICOM metadata table.
        #[arg(long, required_if_eq("task", "indiana"))]
        metadata: Option<PathBuf>,
        /// The image folder (NIH PNGs by `Image Index`; Indiana DICOMs by the table's file name, or `<id>.png`).
        #[arg(long)]
        images: PathBuf,
        /// Seed of the patient-disjoint 70/10/20 split.
        #[arg(long, default_value_t = 20180908)]
        split_seed: u64,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Evaluate a finished fine-tuning run on its test split: per-class AUC with 95 % CI, mean AUC (and accuracy
    /// for Indiana), Youden thresholds on validation; writes evaluation.json and the prediction CSVs.
    Evaluate {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        #[arg(long, default_value = "flex")]
        device: String,
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
    Bench {
        #[arg(long, default_value = "flex")]
        device: String,
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        batch_sizes: Vec<usize>,
        #[arg(long, default_value_t = 299)]
        input_size: usize,
        /// Timed training steps per row (after one warm-up step).
        #[arg(long, default_value_t = 2)]
        steps: usize,
        /// Images for the loader rows (default: the repository's fixtures in tests/data).
        #[arg(long, default_value = "tests/data")]
        images: PathBuf,
        /// Decoding threads of the loader rows (default: CPUs).
        #[arg(long)]
        workers: Option<usize>,
        /// Also train the same Inception-V3 (torchvision's, same head, loss, RMSProp, batch and input) in PyTorch
        /// with this Python (it needs `torch` and `torchvision`), and print both images/s and the ratio.
        #[arg(long, value_name = "PYTHON")]
        compare_pytorch: Option<PathBuf>,
        /// PyTorch's device (default: `cuda:N` for a GPU `--device`, else `cpu`).
        #[arg(long)]
        pytorch_device: Option<String>,
        /// PyTorch's precision: `fp32`, `tf32` (CUDA), `bf16` or `fp16` (autocast).
        #[arg(long, default_value = "fp32", value_parser = ["fp32", "tf32", "bf16", "fp16"])]
        pytorch_precision: String,
        /// PyTorch in channels-last (NHWC) memory format.
        #[arg(long)]
        pytorch_channels_last: bool,
        /// PyTorch's intra-op CPU threads (default: the threads Burn's CPU backend uses, `RAYON_NUM_THREADS` or
        /// the CPUs).
        #[arg(long)]
        pytorch_threads: Option<usize>,
        /// Also write every row as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Time training only (no loader rows).
        #[arg(long, conflicts_with = "no_training")]
        no_loader: bool,
        /// Time the loader only (no training rows).
        #[arg(long)]
        no_training: bool,
    },
    /// Reads a dataset's metadata and prints what the pipeline derives from it (counts and split sizes) as JSON.
    #[command(subcommand)]
    Data(DataCommand),
    /// Import torchvision `inception_v3` weights (`.pth` / `.pt` / `.safetensors`) into a directory that
    /// `finetune --init-from` and `export --run` accept.
    ///
    /// Keys are torchvision's (`AuxLogits.*` optional, `num_batches_tracked` ignored); any head size. Missing,
    /// unexpected or mis-shaped keys end the import with one error that lists them.
    Import {
        /// The state dict file.
        #[arg(long)]
        from: PathBuf,
        #[arg(long, value_enum)]
        variant: ModelVariant,
        /// Build the gray model's 1-channel first convolution from the color file's: `sum` (exactly the color model
        /// on a gray image stacked three times) or `luma` (0.299/0.587/0.114 weighting). See README.
        #[arg(long, value_enum)]
        gray_from_color: Option<crate::import::GrayFromColor>,
        /// Check that the file's head has this many classes.
        #[arg(long, conflicts_with = "new_head")]
        num_classes: Option<usize>,
        /// Replace the head by a fresh (seeded) one with this many classes, e.g. 14 to export or fine-tune on NIH.
        #[arg(long)]
        new_head: Option<usize>,
        /// State that the file's 14-class head was trained for the NIH findings (the exported card says so).
        #[arg(long)]
        trained: bool,
        /// Seed of a fresh head.
        #[arg(long, default_value_t = 20180908)]
        seed: u64,
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

/// The fine-tuning datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinetuneTask {
    Nih,
    Indiana,
}

cxr_core::keywords!(clap FinetuneTask, "fine-tuning task", { Nih => "nih", Indiana => "indiana" });

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
    pub optimizer: crate::train::OptimizerKind,
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
    #[arg(long, default_value_t = 20180908)]
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
    #[arg(long, default_value = "flex")]
    pub device: String,
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
        #[arg(long, default_value_t = 20180908)]
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

/// Errors surfaced by the command line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Adopt(#[from] crate::adopt::AdoptError),
    #[error("{0}")]
    Input(String),
}

/// Writes the FP16 file beside an exported model and says where.
fn print_fp16(onnx_path: &std::path::Path) -> Result<(), CliError> {
    let (path, bytes) = crate::fp16::write_fp16(onnx_path)?;
    println!("  + FP16 -> {} ({:.1} MB)", path.display(), bytes as f64 / 1e6);
    Ok(())
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Export { run: Some(run), out, fp16, .. } => {
            let exported = crate::export::export_run(&run, &out, &Device::flex())?;
            println!(
                "exported {} (trained: {}, input {}², test mean AUC {:.4}) -> {}",
                exported.card.name,
                exported.card.trained,
                exported.card.input_size,
                exported.card.evaluation.as_ref().and_then(|e| e.test.get("mean_auc")).copied().unwrap_or(f64::NAN),
                exported.onnx_path.display()
            );
            if fp16 {
                print_fp16(&exported.onnx_path)?;
            }
            Ok(())
        }
        Command::Pretrain { train, val, val_ground_truth, grayscale, mut args } => {
            if grayscale {
                args.variant = ModelVariant::Gray;
            }
            let classes = crate::data::imagefolder::scan_class_folders(&train)?.classes;
            let spec = crate::train::DatasetSpec::ImageFolder { train, val, val_ground_truth, classes };
            run_training(crate::train::Task::Pretrain, spec, None, args)
        }
        Command::Finetune {
            task,
            init_from,
            csv,
            train_val_list,
            test_list,
            reports,
            metadata,
            images,
            split_seed,
            args,
        } => {
            let missing = |flag: &str| CliError::Input(format!("--{flag} is required for this task"));
            let (task, spec) = match task {
                FinetuneTask::Nih => (
                    crate::train::Task::Nih,
                    crate::train::DatasetSpec::Nih {
                        csv: csv.ok_or_else(|| missing("csv"))?,
                        images,
                        split_seed,
                        train_val_list,
                        test_list,
                    },
                ),
                FinetuneTask::Indiana => (
                    crate::train::Task::Indiana,
                    crate::train::DatasetSpec::Indiana {
                        reports: reports.ok_or_else(|| missing("reports"))?,
                        metadata: metadata.ok_or_else(|| missing("metadata"))?,
                        images,
                        split_seed,
                    },
                ),
            };
            run_training(task, spec, init_from, args)
        }
        Command::Evaluate { run, device } => {
            let evaluation = crate::train::evaluate::evaluate_run(&run, &crate::train::device(&device)?)?;
            println!("{}", serde_json::to_string_pretty(&evaluation).expect("JSON"));
            Ok(())
        }
        Command::Compare { a, b, out } => {
            let report = crate::train::compare::compare_runs(&a, &b, &out)?;
            println!("{report}");
            Ok(())
        }
        Command::Export { variant, seed, out, run: None, fp16 } => {
            let device = Device::default();
            for &variant in variant.variants() {
                let exported = export_untrained(variant, seed, &out, &device)?;
                println!(
                    "exported {} ({} channel(s), {} trainable parameters, trained: {}) -> {} ({:.1} MB) in {:.2} s",
                    exported.card.name,
                    exported.card.channels,
                    exported.card.parameters,
                    exported.card.trained,
                    exported.onnx_path.display(),
                    exported.bytes as f64 / 1e6,
                    exported.export_seconds,
                );
                if fp16 {
                    print_fp16(&exported.onnx_path)?;
                }
            }
            Ok(())
        }
        Command::Bench {
            device,
            batch_sizes,
            input_size,
            steps,
            images,
            workers,
            compare_pytorch,
            pytorch_device,
            pytorch_precision,
            pytorch_channels_last,
            pytorch_threads,
            json,
            no_loader,
            no_training,
        } => {
            use crate::train::bench::{BenchConfig, PyTorchSide, pytorch_device_for};
            let dev = crate::train::device(&device)?;
            let pytorch = compare_pytorch.map(|python| PyTorchSide {
                python,
                threads: pytorch_threads.unwrap_or_else(rayon::current_num_threads),
                device: pytorch_device.unwrap_or_else(|| pytorch_device_for(&device)),
                precision: pytorch_precision,
                channels_last: pytorch_channels_last,
            });
            let config = BenchConfig {
                workers: workers.unwrap_or_else(crate::train::default_workers),
                device_name: device,
                batch_sizes,
                input_size,
                steps,
                images,
                pytorch,
                json,
                no_loader,
                no_training,
            };
            crate::train::bench::print_table(&config, &dev)?;
            Ok(())
        }
        Command::Delong { csv, truth, a, b } => {
            let (truth, a, b) = read_delong_columns(&csv, &truth, &a, &b)?;
            let test = delong(&truth, &a, &b)?;
            println!("{}", serde_json::json!({ "auc_a": test.auc_a, "auc_b": test.auc_b, "z": test.z, "p": test.p }));
            Ok(())
        }
        Command::Data(DataCommand::Nih { csv, split_seed }) => {
            let records = nih::read_nih_csv(&csv)?;
            let facts = nih::facts(&records);
            let split = nih::split_by_patient(&records, (0.7, 0.1), split_seed);
            let per_label: serde_json::Map<String, serde_json::Value> =
                cxr_core::labels::LABELS.iter().zip(facts.per_label).map(|(l, n)| (l.to_string(), n.into())).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "images": facts.images,
                    "patients": facts.patients,
                    "no_finding": facts.no_finding,
                    "per_label": per_label,
                    "views": facts.views,
                    "split": { "seed": split_seed, "train": split.train.len(), "val": split.val.len(), "test": split.test.len() },
                }))
                .expect("JSON")
            );
            Ok(())
        }
        Command::Import { from, variant, gray_from_color, num_classes, new_head, trained, seed, out } => {
            let request =
                crate::import::ImportRequest { from, variant, gray_from_color, num_classes, new_head, seed, trained };
            let report = crate::import::import_to_dir(&request, &out, &Device::flex())?;
            println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
            Ok(())
        }
        Command::Adopt { request, out } => {
            let adopted = crate::adopt::adopt(&request, &out)?;
            println!(
                "adopted {} ({} channel(s), {}² input, trained: {}) -> {}",
                adopted.card.name,
                adopted.card.channels,
                adopted.card.input_size,
                adopted.card.trained,
                adopted.onnx_path.display()
            );
            Ok(())
        }
        Command::Data(DataCommand::Indiana { reports, metadata }) => {
            let (_, counts) = indiana::derive(&indiana::read_reports(&reports)?, &indiana::read_metadata(&metadata)?);
            println!("{}", serde_json::to_string_pretty(&counts).expect("JSON"));
            Ok(())
        }
    }
}

/// Builds the run's config from the flags (the paper's values where a flag is unset) and trains it.
fn run_training(
    task: crate::train::Task,
    dataset: crate::train::DatasetSpec,
    init_from: Option<PathBuf>,
    a: TrainArgs,
) -> Result<(), CliError> {
    use crate::train::{Task, TrainConfig, dataset::class_names, dataset::splits_for, describe, train};
    let pretrain = task == Task::Pretrain;
    let config = TrainConfig {
        task,
        variant: a.variant,
        num_classes: class_names(&dataset).len(),
        input_size: a.input_size,
        batch_size: a.batch_size.unwrap_or(if pretrain { 64 } else { 32 }),
        epochs: a.epochs,
        optimizer: a.optimizer,
        learning_rate: a.lr.unwrap_or(if pretrain { 0.01 } else { 1e-4 }),
        lr_decay: a.lr_decay.unwrap_or(if pretrain { 0.94 } else { 1.0 }),
        lr_decay_epochs: a.lr_decay_epochs,
        rmsprop_decay: a.rmsprop_decay,
        momentum: a.momentum,
        epsilon: a.epsilon,
        weight_decay: a.weight_decay,
        dropout: a.dropout,
        patience: a.patience.unwrap_or(if pretrain { 0 } else { 5 }),
        seed: a.seed,
        workers: a.workers.unwrap_or_else(crate::train::default_workers),
        max_bad_fraction: a.max_bad_fraction,
        init_from,
        dataset,
        fingerprints: Default::default(),
        git_commit: None,
        producer: String::new(),
    };
    let splits = splits_for(&config.dataset)?;
    eprintln!(
        "{:?} {}: {} train / {} val / {} test images, {} classes, input {}², batch {}",
        task,
        config.variant,
        splits.train.len(),
        splits.val.len(),
        splits.test.len(),
        config.num_classes,
        config.input_size,
        config.batch_size
    );
    let config = describe(config, &splits);
    let devices = crate::train::devices(&a.device)?;
    let best = train(config, &splits, &a.out, a.resume, &devices)?;
    println!("{}", serde_json::to_string_pretty(&best).expect("JSON"));
    Ok(())
}

/// Reads the truth and two score columns of a CSV; truth must be 0 or 1, scores finite numbers.
/// The truth column and the two score columns of a predictions file.
type DelongColumns = (Vec<bool>, Vec<f64>, Vec<f64>);

fn read_delong_columns(path: &std::path::Path, truth: &str, a: &str, b: &str) -> Result<DelongColumns, CliError> {
    let text = crate::data::read_text(path)?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
            CliError::Input(format!(
                "{}: no column `{name}` (columns: {})",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            ))
        })
    };
    let (t, ca, cb) = (column(truth)?, column(a)?, column(b)?);
    let (mut truths, mut xs, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let at = |i: usize| row.get(i).unwrap_or("").trim();
        let bad = |what: &str, v: &str| CliError::Input(format!("{} row {}: {what} `{v}`", path.display(), line + 2));
        truths.push(match at(t) {
            "1" | "1.0" => true,
            "0" | "0.0" => false,
            v => return Err(bad("truth must be 0 or 1, got", v)),
        });
        for (col, out) in [(ca, &mut xs), (cb, &mut ys)] {
            let v: f64 = at(col).parse().map_err(|_| bad("not a number:", at(col)))?;
            if !v.is_finite() {
                return Err(bad("not a finite number:", at(col)));
            }
            out.push(v);
        }
    }
    Ok((truths, xs, ys))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/configuration.md` holds exactly this binary's `--help`, every subcommand included (`make docs`
    /// regenerates it).
    #[test]
    fn the_configuration_reference_is_the_help() {
        let markdown = cxr_core::clidoc::help_markdown(<Cli as clap::CommandFactory>::command());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        cxr_core::clidoc::check_generated(&path, "cxr-train", &markdown).unwrap();
    }
}
