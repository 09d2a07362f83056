//! The `cxr-train` command line: one [`Cli`] (clap derive + env) and [`run`], which dispatches to the library.

use std::path::PathBuf;

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use cxr_core::card::ModelVariant;

use crate::data::{DataError, indiana, nih};
use crate::eval::{EvalError, delong};
use crate::export::{ExportError, export_untrained};

/// Which variants a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VariantChoice {
    Color,
    Gray,
    Both,
}

impl VariantChoice {
    /// The variants selected, in the project's order (color, then gray).
    pub fn variants(self) -> Vec<ModelVariant> {
        match self {
            VariantChoice::Color => vec![ModelVariant::Color],
            VariantChoice::Gray => vec![ModelVariant::Gray],
            VariantChoice::Both => ModelVariant::ALL.to_vec(),
        }
    }
}

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
        variant: VariantChoice,
        /// Seed of the weight initialisation.
        #[arg(long, env = "CXR_SEED", default_value_t = 20180908)]
        seed: u64,
        /// Output directory for `<name>.onnx` and `<name>.json`.
        #[arg(long, env = "CXR_MODELS_DIR", default_value = "models")]
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
    /// Reads a dataset's metadata and prints what the pipeline derives from it (counts and split sizes) as JSON.
    #[command(subcommand)]
    Data(DataCommand),
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
    #[error("{0}")]
    Input(String),
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Export { variant, seed, out } => {
            let device = Device::default();
            for variant in variant.variants() {
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
            }
            Ok(())
        }
        Command::Delong { csv, truth, a, b } => {
            let (truth, a, b) = read_delong_columns(&csv, &truth, &a, &b)?;
            let test = delong(&truth, &a, &b)?;
            println!(
                "{}",
                serde_json::json!({ "auc_a": test.auc_a, "auc_b": test.auc_b, "z": test.z, "p": test.p })
            );
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
        Command::Data(DataCommand::Indiana { reports, metadata }) => {
            let (_, counts) = indiana::derive(&indiana::read_reports(&reports)?, &indiana::read_metadata(&metadata)?);
            println!("{}", serde_json::to_string_pretty(&counts).expect("JSON"));
            Ok(())
        }
    }
}

/// Reads the truth and two score columns of a CSV; truth must be 0 or 1, scores finite numbers.
fn read_delong_columns(path: &std::path::Path, truth: &str, a: &str, b: &str) -> Result<(Vec<bool>, Vec<f64>, Vec<f64>), CliError> {
    let text = crate::data::read_text(path)?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
            CliError::Input(format!("{}: no column `{name}` (columns: {})", path.display(), headers.iter().collect::<Vec<_>>().join(", ")))
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
