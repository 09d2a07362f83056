//! The `cxr-train` command line: one [`Cli`] (clap derive + env) and [`run`], which dispatches to the library.

use std::path::PathBuf;

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use cxr_core::card::ModelVariant;

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
}

/// Errors surfaced by the command line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Export(#[from] ExportError),
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
    }
}
