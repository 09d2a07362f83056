//! Indiana fine-tuning end to end on a generated collection in the OpenI layout: report XML files (MeSH major
//! `normal` or a finding), a DICOM metadata table (imageid, View Position, Patient ID, filename) with frontal and
//! lateral views, and PNG images named `<imageid>.png`. Abnormal studies carry a drawn disk, normal ones do not,
//! so the 2-class softmax must separate them; lateral images and a second report of one patient must be left
//! out. Also checks that an unreadable image past `--max-bad-fraction` stops the run and names the file.

use std::fmt::Write as _;

use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;
use common::{cxr_train, json, radiograph, run, write_png};

#[test]
fn indiana_finetune_separates_normal_from_abnormal() {
    let root = std::env::temp_dir().join(format!("cxr-indiana-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (reports, images) = (root.join("reports"), root.join("images"));
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut table = String::from("imageid,Patient ID,View Position,filename\n");
    for n in 1..=120u32 {
        let abnormal = n % 2 == 0;
        let major = if abnormal { "Cardiomegaly/mild" } else { "normal" };
        let frontal = format!("CXR{n}_IM-{n:04}-1001");
        let lateral = format!("CXR{n}_IM-{n:04}-2001");
        let xml = format!(
            "<eCitation><MeSH><major>{major}</major></MeSH>\
             <parentImage id=\"CXR{n}_1_IM-{n:04}-1001\"></parentImage><parentImage id=\"CXR{n}_2_IM-{n:04}-2001\"></parentImage></eCitation>"
        );
        std::fs::write(reports.join(format!("{n}.xml")), xml).unwrap();
        writeln!(table, "{frontal},{n},PA,").unwrap();
        writeln!(table, "{lateral},{n},LL,").unwrap();
        write_png(&images.join(format!("{frontal}.png")), radiograph(&mut rng, abnormal, false));
        // Lateral views are never used: leave them unreadable to prove it.
        std::fs::write(images.join(format!("{lateral}.png")), b"not an image").unwrap();
    }
    // A second report of patient 1: one image per patient keeps the first.
    std::fs::write(
        reports.join("121.xml"),
        "<eCitation><MeSH><major>normal</major></MeSH><parentImage id=\"CXR121_1_IM-0121-1001\"></parentImage></eCitation>",
    )
    .unwrap();
    writeln!(table, "CXR121_IM-0121-1001,1,PA,").unwrap();
    let metadata = root.join("metadata.csv");
    std::fs::write(&metadata, &table).unwrap();

    let counts =
        json(&run(cxr_train().args(["data", "indiana", "--reports"]).arg(&reports).arg("--metadata").arg(&metadata)));
    assert_eq!(
        (counts["patients"].as_u64(), counts["normal"].as_u64(), counts["abnormal"].as_u64()),
        (Some(120), Some(60), Some(60))
    );

    let finetune = |out: &str, extra: &[&str]| {
        let mut cmd = cxr_train();
        cmd.args(["finetune", "indiana", "--reports"])
            .arg(&reports)
            .arg("--metadata")
            .arg(&metadata)
            .arg("--images")
            .arg(&images)
            .args([
                "--variant",
                "color",
                "--input-size",
                "80",
                "--batch-size",
                "8",
                "--optimizer",
                "adam",
                "--lr",
                "5e-4",
            ])
            .args(["--dropout", "0.2", "--patience", "0", "--out"])
            .arg(root.join(out))
            .args(extra);
        cmd
    };
    // Enough steps for BatchNorm's running statistics to settle (evaluation uses them): 11 batches × 8 epochs.
    run(&mut finetune("run", &["--epochs", "8"]));
    let evaluation = json(&run(cxr_train().arg("evaluate").arg("--run").arg(root.join("run"))));
    let auc = evaluation["test_auc"]["abnormal"]["auc"].as_f64().unwrap_or_else(|| panic!("{evaluation}"));
    let accuracy = evaluation["test_accuracy"].as_f64().unwrap();
    println!("Indiana (generated): test AUC {auc:.3}, accuracy {accuracy:.3}");
    assert!(auc >= 0.9 && accuracy >= 0.8, "{evaluation}");
    assert!(evaluation["test_auc"].get("normal").is_none(), "a 2-class softmax reports the positive class only");
    // An Indiana run has no 14-finding interface: exporting it for the server is refused with the reason.
    let export = cxr_train()
        .args(["export", "--run"])
        .arg(root.join("run"))
        .arg("--out")
        .arg(root.join("models"))
        .output()
        .unwrap();
    assert!(!export.status.success());
    assert!(
        String::from_utf8_lossy(&export.stderr).contains("only NIH"),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    // Break 5 of the 120 frontal images: with --max-bad-fraction 0.01 the run stops and names one of them.
    for n in [2u32, 4, 6, 8, 10] {
        std::fs::write(images.join(format!("CXR{n}_IM-{n:04}-1001.png")), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    }
    let failed = finetune("bad", &["--epochs", "1", "--max-bad-fraction", "0.01"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "the run must fail:\n{stderr}");
    assert!(stderr.contains("--max-bad-fraction") && stderr.contains("-1001.png"), "{stderr}");
    std::fs::remove_dir_all(&root).ok();
}
