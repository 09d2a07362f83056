//! `xtask`: the repository checks. `xtask check` runs the default set (what `make test` runs) and exits 1 with
//! every problem when one fails; `xtask layers`, `xtask codemap`, `xtask docs` and `xtask functions` run one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{CHECKS, Check, workspace_root};

/// Repository checks of the cxr workspace.
#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    /// The repository root; by default the nearest folder at or above the current one with a workspace
    /// `Cargo.toml`.
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every check: layers, codemap, docs, functions.
    Check,
    /// Each crate's modules import only their own layer and those below, without cycles (ARCHITECTURE.md).
    Layers,
    /// ARCHITECTURE.md names every source file, script and Python check, and only existing files.
    Codemap,
    /// docs/configuration.md is the binaries' --help (runs their reference tests through cargo).
    Docs,
    /// No function is longer than 100 lines, except the benchmark's allow-listed ones.
    Functions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = match cli.root {
        Some(root) => root,
        None => {
            let here = std::env::current_dir().expect("the current directory");
            match workspace_root(&here) {
                Some(root) => root.to_path_buf(),
                None => {
                    eprintln!("xtask: no workspace Cargo.toml at or above {}", here.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let named = |name: &str| -> Vec<&Check> { CHECKS.iter().filter(|c| c.name == name).collect() };
    let checks = match cli.command {
        Command::Check => CHECKS.iter().collect(),
        Command::Layers => named("layers"),
        Command::Codemap => named("codemap"),
        Command::Docs => named("docs"),
        Command::Functions => named("functions"),
    };
    let mut failed = false;
    for check in checks {
        let problems = (check.run)(&root);
        if problems.is_empty() {
            println!("xtask {}: ok", check.name);
        } else {
            failed = true;
            eprintln!("xtask {}: {} problem(s)", check.name, problems.len());
            for problem in &problems {
                eprintln!("  {problem}");
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
