//! The `cxr-faultload` binary: parses [`FaultConfig`], runs [`cxr_bench::fault::run`], prints the summary; exits 1
//! when the verdict fails.

use std::process::ExitCode;

use clap::Parser;
use cxr_bench::fault::{FaultConfig, run};

fn main() -> ExitCode {
    let config = FaultConfig::parse();
    match run(&config) {
        Ok(report) => {
            println!("{}", report.markdown());
            eprintln!("cxr-faultload: results written to {}", config.out.display());
            if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("cxr-faultload: {error}");
            ExitCode::FAILURE
        }
    }
}
