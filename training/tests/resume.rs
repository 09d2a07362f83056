//! `--resume` continues a run from its last checkpoint (one more epoch, the same dataset fingerprint), a run
//! directory is never silently overwritten, and resuming needs a checkpoint. Data: the generated two-class
//! ImageFolder of `common` (colored rings vs bars), pretraining at the minimum input size, so each epoch takes
//! seconds.

use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;
use common::{cxr_train, imagefolder, json, run};

#[test]
fn resume_continues_from_the_last_checkpoint() {
    let root = std::env::temp_dir().join(format!("cxr-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    imagefolder(&root.join("data"), &mut StdRng::seed_from_u64(3));
    let out = root.join("run");
    let pretrain = |epochs: &str, extra: &[&str]| {
        let mut cmd = cxr_train();
        cmd.arg("pretrain")
            .arg("--train")
            .arg(root.join("data/train"))
            .arg("--val")
            .arg(root.join("data/val"))
            .args([
                "--variant",
                "gray",
                "--input-size",
                "75",
                "--batch-size",
                "16",
                "--optimizer",
                "adam",
                "--lr",
                "1e-3",
            ])
            .args(["--epochs", epochs, "--out"])
            .arg(&out)
            .args(extra);
        cmd
    };

    // Resuming a run that does not exist is an error that says so.
    let missing = pretrain("1", &["--resume"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("config.json"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let first = json(&run(&mut pretrain("1", &[])));
    assert_eq!(first["epochs_run"], 1);
    assert!(out.join("checkpoint/model-1.bpk").exists());

    // Starting again in the same directory without --resume is refused.
    let again = pretrain("1", &[]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"), "{}", String::from_utf8_lossy(&again.stderr));

    let second = json(&run(&mut pretrain("2", &["--resume"])));
    assert_eq!(second["epochs_run"], 2, "{second}");
    assert!(out.join("checkpoint/model-2.bpk").exists());
    let config = json(&std::fs::read_to_string(out.join("config.json")).unwrap());
    assert_eq!(config["epochs"], 2);
    // metrics.csv: a header, then epochs 1 and 2, each once.
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = metrics.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(epochs, ["1", "2"], "{metrics}");
    assert!(metrics.lines().next().unwrap().contains("valid/Loss"), "{metrics}");
    std::fs::remove_dir_all(&root).ok();
}
