//! `cxr-bench` fails with a clear message, not a panic, when what it measures is not there.

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cxr-bench")).args(args).output().expect("cxr-bench runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn missing_models_are_named() {
    let (ok, err) = bench(&["--quick", "--no-python", "--models", "/nonexistent/models"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/models") && err.contains("make models"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_url_is_refused_before_anything_runs() {
    let (ok, err) = bench(&["--quick", "--no-python", "--url", "not a url"]);
    assert!(!ok);
    assert!(err.starts_with("cxr-bench: ") && !err.contains("panicked"), "{err}");
}
