//! The `cxr-bench` binary: parses [`BenchConfig`], runs [`cxr_bench::run`], prints the markdown summary on
//! stdout and says where the JSON went. A missed target is reported, not an error: this is a benchmark.

use std::process::ExitCode;

use clap::Parser;
use cxr_bench::{self, BenchConfig};

fn main() -> ExitCode {
    let config = BenchConfig::parse();
    match cxr_bench::run(&config) {
        Ok((report, out)) => {
            println!("{}", report.markdown());
            eprintln!("cxr-bench: results written to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cxr-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
