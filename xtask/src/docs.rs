//! The generated option reference, `docs/configuration.md`, is the binaries' current `--help`.
//!
//! Each binary renders its own clap `Command` into its block of the file in a unit test,
//! `the_configuration_reference_is_the_help` (through `cxr_core::clidoc`); the test fails when the block differs,
//! and rewrites it under `CXR_UPDATE_DOCS=1` (`make docs`). Only the binary's crate has its `Command`, so the
//! comparison stays there; this check runs those tests (`cargo test --release --workspace --lib NAME`, the
//! invocation `make docs` uses, so nothing is rebuilt) with `CXR_UPDATE_DOCS` removed, relays their failures,
//! and fails unless every `<!-- generated: BINARY -->` block of the file names a binary of the workspace and
//! each block had its test pass.

use std::path::Path;
use std::process::Command;

use crate::workspace::Workspace;

/// The generated file.
pub const REFERENCE: &str = "docs/configuration.md";
/// The unit test each documented binary's crate has.
pub const TEST_NAME: &str = "the_configuration_reference_is_the_help";

/// Each `<!-- generated: NAME -->` block of `text` as (name, line), or what is malformed.
pub fn blocks(text: &str) -> Result<Vec<(String, usize)>, Vec<String>> {
    let (mut found, mut problems) = (Vec::new(), Vec::new());
    for (index, row) in text.lines().enumerate() {
        let Some(name) = row.trim().strip_prefix("<!-- generated: ").and_then(|r| r.strip_suffix("-->")) else {
            continue;
        };
        let name = name.trim().to_string();
        if !text.contains(&format!("<!-- /generated: {name} -->")) {
            problems
                .push(format!("{REFERENCE}:{}: the `{name}` block has no `<!-- /generated: {name} -->`", index + 1));
        }
        found.push((name, index + 1));
    }
    if problems.is_empty() { Ok(found) } else { Err(problems) }
}

/// What the test run printed about the reference tests: how many passed, and each failure's message.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub passed: usize,
    pub failures: Vec<String>,
}

/// Reads libtest's output: the `test PATH ... ok` lines of tests named [`TEST_NAME`], and for each that failed
/// the text of its `---- PATH stdout ----` section (the panic message), on one line.
pub fn outcome(stdout: &str) -> Outcome {
    let mut outcome = Outcome::default();
    let mut lines = stdout.lines().peekable();
    while let Some(row) = lines.next() {
        if let Some(rest) = row.strip_prefix("test ") {
            if rest.split(" ... ").next().is_some_and(|name| name.ends_with(TEST_NAME)) && rest.ends_with(" ... ok") {
                outcome.passed += 1;
            }
        } else if let Some(name) = row.strip_prefix("---- ").and_then(|r| r.strip_suffix(" stdout ----")) {
            let mut message = Vec::new();
            let ends = |l: &str| l.starts_with("---- ") || l == "failures:" || l == "stack backtrace:";
            while let Some(next) = lines.next_if(|l| !ends(l)) {
                if !next.trim().is_empty() && !next.starts_with("note: ") {
                    message.push(next.trim());
                }
            }
            outcome.failures.push(format!("{name}: {}", message.join(" ")));
        }
    }
    outcome
}

/// The problems of a finished test run against the file's blocks.
fn judge(blocks: &[(String, usize)], run: &Outcome, succeeded: bool, stderr: &str) -> Vec<String> {
    let mut problems = run.failures.clone();
    if !succeeded && problems.is_empty() {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        problems.push(format!("`cargo test --lib {TEST_NAME}` failed:\n{}", tail.join("\n")));
    }
    if succeeded && run.passed != blocks.len() {
        let names: Vec<&str> = blocks.iter().map(|(name, _)| name.as_str()).collect();
        problems.push(format!(
            "{REFERENCE} has {} generated blocks ({}) but {} `{TEST_NAME}` tests passed: each documented binary's \
             crate needs one (core/src/clidoc.rs)",
            blocks.len(),
            names.join(", "),
            run.passed
        ));
    }
    problems
}

/// Checks the option reference of the repository at `root`, running the reference tests with `cargo` (`$CARGO`
/// when set).
pub fn check(root: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(root.join(REFERENCE)) {
        Ok(text) => text,
        Err(e) => return vec![format!("{REFERENCE}: {e}")],
    };
    let blocks = match blocks(&text) {
        Ok(blocks) => blocks,
        Err(problems) => return problems,
    };
    let workspace = match Workspace::load(root) {
        Ok(workspace) => workspace,
        Err(e) => return vec![e],
    };
    let mut problems: Vec<String> = blocks
        .iter()
        .filter(|(name, _)| !workspace.packages.iter().flat_map(|p| &p.bins).any(|(bin, _)| bin == name))
        .map(|(name, line)| format!("{REFERENCE}:{line}: the `{name}` block names no binary of the workspace"))
        .collect();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let run = Command::new(cargo)
        .args(["test", "--release", "--workspace", "--lib", "--no-fail-fast", TEST_NAME])
        .env_remove("CXR_UPDATE_DOCS")
        .env("RUST_BACKTRACE", "0")
        .current_dir(root)
        .output();
    match run {
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            problems.extend(judge(&blocks, &outcome(&stdout), output.status.success(), &stderr));
        }
        Err(e) => problems.push(format!("cannot run cargo: {e}")),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSED: &str = "running 1 test\ntest config::tests::the_configuration_reference_is_the_help ... ok\n\n\
                          test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 80 filtered out\n";
    const FAILED: &str = "running 1 test\ntest cli::tests::the_configuration_reference_is_the_help ... FAILED\n\n\
                          failures:\n\n---- cli::tests::the_configuration_reference_is_the_help stdout ----\n\n\
                          thread 'cli::tests::the_configuration_reference_is_the_help' panicked at src/cli.rs:9:5:\n\
                          docs/configuration.md is out of date for `cxr-train`: run `make docs`\n\
                          note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n\n\n\
                          failures:\n    cli::tests::the_configuration_reference_is_the_help\n";

    #[test]
    fn blocks_are_listed_and_an_unclosed_one_is_found() {
        let text = "# Options\n<!-- generated: a -->\nx\n<!-- /generated: a -->\n<!-- generated: b -->\n";
        assert_eq!(
            blocks(text).unwrap_err(),
            ["docs/configuration.md:5: the `b` block has no `<!-- /generated: b -->`"]
        );
        let closed = text.replace("<!-- generated: b -->\n", "");
        assert_eq!(blocks(&closed).unwrap(), [("a".to_string(), 2)]);
    }

    #[test]
    fn passes_and_failures_are_read_from_the_test_output() {
        assert_eq!(outcome(PASSED), Outcome { passed: 1, failures: Vec::new() });
        let failed = outcome(FAILED);
        assert_eq!(failed.passed, 0);
        assert_eq!(
            failed.failures,
            [
                "cli::tests::the_configuration_reference_is_the_help: thread 'cli::tests::the_configuration_reference_is_the_help' \
              panicked at src/cli.rs:9:5: docs/configuration.md is out of date for `cxr-train`: run `make docs`"
            ]
        );
    }

    #[test]
    fn a_stale_block_or_a_block_without_its_test_fails() {
        let two = [("cxr-serve".to_string(), 3), ("cxr-train".to_string(), 40)];
        assert_eq!(judge(&two[..1], &outcome(PASSED), true, ""), Vec::<String>::new());
        let stale = judge(&two, &outcome(&format!("{PASSED}{FAILED}")), false, "");
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert!(stale[0].contains("out of date for `cxr-train`"), "{stale:?}");
        let untested = judge(&two, &outcome(PASSED), true, "");
        assert_eq!(
            untested,
            [
                "docs/configuration.md has 2 generated blocks (cxr-serve, cxr-train) but 1 `the_configuration_reference_is_the_help` \
              tests passed: each documented binary's crate needs one (core/src/clidoc.rs)"
            ]
        );
    }
}
