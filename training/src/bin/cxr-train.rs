//! `cxr-train`: command-line entry point of the training crate. Parses flags and calls into the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
    ).init();
    match cxr_train::cli::run(cxr_train::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cxr-train: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
