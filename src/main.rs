//! The `cxr-serve` binary: parses the configuration and runs [`cxr_serve::serve`].

use std::process::ExitCode;

use clap::Parser;
use cxr_serve::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    cxr_serve::init_tracing(config.log_format);
    match cxr_serve::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "cxr-serve stopped");
            eprintln!("cxr-serve: {error}");
            ExitCode::FAILURE
        }
    }
}
