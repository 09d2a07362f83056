//! Training is reproducible: the same seed and data give bit-identical losses and weights whatever the thread
//! count, on the CPU backend (`flex`).
//!
//! Three short fine-tuning runs of `cxr-train finetune nih` (seeded initialisation, dropout, flip
//! augmentation, Adam) on the same generated NIH stand-in ([`common::nih_subset`]: real label rows, synthetic
//! images with a drawn disk for Cardiomegaly and a band for Effusion): one with 1 compute thread and 1 decoding
//! thread, one with every CPU, and one oversubscribed (more compute threads than CPUs, so rayon splits and steals
//! work differently again). They must agree exactly: every per-iteration training loss burn-train logged, the
//! validation loss, the loss columns of `metrics.csv` (its images/s columns are timings and differ) and the bytes
//! of the kept model `best.bpk`. No tolerance: any reduction whose order depended on the threads would change the
//! low bits of some loss within the first steps.
//!
//! What this does not cover (README "Reproducibility"): Burn's CPU kernels pick their SIMD width and their GEMM
//! blocking from the CPU (AVX-512 or AVX2, cache sizes), so two machines with different CPUs may differ in the
//! low bits; GPU backends are not bit-reproducible.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;
use common::{cxr_train, nih_subset, run};

/// One run's observable results.
#[derive(Debug, PartialEq)]
struct Outcome {
    train_losses: String,
    valid_losses: String,
    metrics_losses: Vec<Vec<String>>,
    best: Vec<u8>,
}

fn finetune(csv: &Path, images: &Path, out: &Path, compute_threads: usize, workers: usize) -> Outcome {
    run(cxr_train()
        .env("RAYON_NUM_THREADS", compute_threads.to_string())
        .args(["finetune", "nih", "--variant", "gray", "--csv"])
        .arg(csv)
        .arg("--images")
        .arg(images)
        .args(["--input-size", "75", "--batch-size", "8", "--epochs", "1", "--optimizer", "adam", "--lr", "1e-3"])
        .args(["--dropout", "0.5", "--patience", "0", "--workers", &workers.to_string(), "--out"])
        .arg(out));
    let read = |rel: &str| std::fs::read_to_string(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let metrics = read("metrics.csv");
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let loss_columns: Vec<usize> = (0..header.len()).filter(|&i| header[i].contains("Loss")).collect();
    assert!(loss_columns.len() >= 2, "train and valid loss columns: {header:?}");
    Outcome {
        train_losses: read("train/epoch-1/Loss.log"),
        valid_losses: read("valid/epoch-1/Loss.log"),
        metrics_losses: metrics
            .lines()
            .map(|l| {
                let fields: Vec<&str> = l.split(',').collect();
                loss_columns.iter().map(|&i| fields[i].to_string()).collect()
            })
            .collect(),
        best: std::fs::read(out.join("best.bpk")).expect("best.bpk"),
    }
}

#[test]
fn training_is_bit_identical_across_thread_counts() {
    let root: PathBuf = std::env::temp_dir().join(format!("cxr-determinism-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let csv = nih_subset(&root.join("nih"), &mut StdRng::seed_from_u64(5), 6);
    let images = root.join("nih/images");
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runs = [(1, 1), (cpus, 2), (2 * cpus + 1, 3)];
    let outcomes: Vec<Outcome> = runs
        .iter()
        .map(|&(threads, workers)| {
            finetune(&csv, &images, &root.join(format!("run-{threads}-{workers}")), threads, workers)
        })
        .collect();
    let steps = outcomes[0].train_losses.lines().count();
    assert!(steps >= 4, "several training steps were logged:\n{}", outcomes[0].train_losses);
    for (outcome, (threads, workers)) in outcomes.iter().zip(runs).skip(1) {
        let label = format!("{threads} compute / {workers} decoding threads vs 1 / 1");
        assert_eq!(outcome.train_losses, outcomes[0].train_losses, "per-step training losses, {label}");
        assert_eq!(outcome.valid_losses, outcomes[0].valid_losses, "validation loss, {label}");
        assert_eq!(outcome.metrics_losses, outcomes[0].metrics_losses, "metrics.csv losses, {label}");
        assert!(outcome.best == outcomes[0].best, "best.bpk bytes differ, {label}");
    }
    println!("{steps} steps, identical across {runs:?} (compute, decoding) threads");
    std::fs::remove_dir_all(&root).ok();
}
