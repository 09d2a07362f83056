//! `cxr-train`: command-line entry point of the training crate. Parses flags and calls into the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Logs go to stderr: stdout carries the commands' results (JSON, tables). OpenJPEG's per-file chatter is muted.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,jpeg2k=warn,burn_train=warn".into()),
        )
        .init();
    match cxr_train::cli::run(cxr_train::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cxr-train: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
