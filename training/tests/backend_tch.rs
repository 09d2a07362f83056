//! The LibTorch backend (`--features tch`, `--device tch`) trains the same model as `flex` and learns.
//!
//! Built and run only with the `tch` feature (`make test` does: `make test-tch`, with PyTorch 2.9.0 from PyPI).
//! Data: the smoke test's generated NIH stand-in ([`common::nih_subset`]: real label rows, synthetic 64×64
//! radiographs with a bright disk for Cardiomegaly and a bright band for Effusion, Infiltration drawn nowhere),
//! at 75² input.
//!
//! 1. Same weights, same model: one epoch of `finetune` on `flex` and on `tch` from the same seed with dropout 0
//!    (dropout masks come from each backend's own RNG; everything else — the seeded initialisation, the loader's
//!    order and flips — is computed on the host). The first step's loss is a pure function of the initial weights
//!    and the first batch, so the two must agree to float rounding (1e-4 relative: convolutions accumulate in
//!    another order in oneDNN than in Burn's kernels). Later steps only drift apart through that rounding, which
//!    Adam amplifies, so the epoch's mean loss must agree to 5 %.
//! 2. It learns: four epochs on `tch`, then `evaluate --device tch`: both drawn labels reach test AUC ≥ 0.9, and
//!    `export --run` turns the run into a served model as it does for a `flex` run.
#![cfg(feature = "tch")]

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;
use common::{CARDIOMEGALY, EFFUSION, cxr_train, json, nih_subset, run};

fn finetune(device: &str, csv: &Path, images: &Path, out: &Path, epochs: usize, dropout: &str) {
    run(cxr_train()
        .args(["finetune", "nih", "--variant", "gray", "--device", device, "--csv"])
        .arg(csv)
        .arg("--images")
        .arg(images)
        .args(["--input-size", "75", "--batch-size", "16", "--optimizer", "adam", "--lr", "1e-3", "--seed", "7"])
        .args(["--epochs", &epochs.to_string(), "--lr-decay", "0.5", "--lr-decay-epochs", "1"])
        .args(["--dropout", dropout, "--patience", "0", "--workers", "2", "--out"])
        .arg(out));
}

/// The per-iteration training losses burn-train logged for epoch 1 (one `value,count` line per step).
fn step_losses(run_dir: &Path) -> Vec<f64> {
    let log = std::fs::read_to_string(run_dir.join("train/epoch-1/Loss.log")).expect("Loss.log");
    log.lines().map(|l| l.split(',').next().unwrap().trim().parse().unwrap_or_else(|_| panic!("{l}"))).collect()
}

#[test]
fn libtorch_trains_the_same_model_as_flex_and_learns() {
    let root = std::env::temp_dir().join(format!("cxr-tch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let csv = nih_subset(&root.join("nih"), &mut StdRng::seed_from_u64(20180908), 80);
    let images = root.join("nih/images");

    finetune("flex", &csv, &images, &root.join("flex"), 1, "0");
    finetune("tch", &csv, &images, &root.join("tch"), 1, "0");
    let (flex, tch) = (step_losses(&root.join("flex")), step_losses(&root.join("tch")));
    assert_eq!(flex.len(), tch.len(), "same steps");
    let relative = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-12);
    println!(
        "first-step loss flex {:.6} tch {:.6}; last flex {:.4} tch {:.4}",
        flex[0],
        tch[0],
        flex[flex.len() - 1],
        tch[tch.len() - 1]
    );
    assert!(relative(flex[0], tch[0]) <= 1e-4, "first step: flex {} vs tch {}", flex[0], tch[0]);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(relative(mean(&flex), mean(&tch)) <= 0.05, "epoch mean: flex {} vs tch {}", mean(&flex), mean(&tch));

    let learned = root.join("tch-learns");
    finetune("tch", &csv, &images, &learned, 4, "0.2");
    let evaluation = json(&run(cxr_train().args(["evaluate", "--device", "tch", "--run"]).arg(&learned)));
    let auc = |label: &str| evaluation["test_auc"][label]["auc"].as_f64().unwrap_or_else(|| panic!("{evaluation}"));
    println!("tch: test AUC {CARDIOMEGALY} {:.3}, {EFFUSION} {:.3}", auc(CARDIOMEGALY), auc(EFFUSION));
    assert!(auc(CARDIOMEGALY) >= 0.9, "{CARDIOMEGALY} was drawn: AUC {}", auc(CARDIOMEGALY));
    assert!(auc(EFFUSION) >= 0.9, "{EFFUSION} was drawn: AUC {}", auc(EFFUSION));

    // The run directory is backend-independent: `export` (which loads best.bpk on flex) writes the served model.
    let models = root.join("models");
    run(cxr_train().args(["export", "--run"]).arg(&learned).arg("--out").arg(&models));
    let card = json(&std::fs::read_to_string(models.join("cxr-inception-v3-gray.json")).expect("the card"));
    assert_eq!(card["trained"], true, "{card}");
    assert!(models.join("cxr-inception-v3-gray.onnx").exists());
    let _ = std::fs::remove_dir_all(&root);
}
