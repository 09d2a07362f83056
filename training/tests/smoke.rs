//! The CI proof that the training pipeline learns, end to end, through the real binaries:
//! `cxr-train pretrain` → `finetune nih` → `evaluate`, for the gray and the color variant, then `compare`
//! (the Table-2 DeLong table) and `export --run` of both → `cxr-serve` on the two exports.
//!
//! How the data is made (no real images can be downloaded here):
//! - ImageNet stand-in: an ImageFolder with two classes of 64×64 RGB PNGs — a colored ring, or a colored bar — on
//!   noisy colored backgrounds. Pretraining runs a few steps on it; its only job is to hand fine-tuning a backbone.
//! - NIH stand-in: real label rows of `tests/data/metadata/Data_Entry_2017_v2020.csv.gz` (real image names,
//!   patients and finding lists), chosen so that every combination of Cardiomegaly, Effusion and Infiltration is
//!   equally frequent. Each image is a synthetic 64×64 "radiograph" (smooth random background plus noise) on which
//!   the test draws a bright disk in the centre when the row has **Cardiomegaly** and a bright band across the
//!   bottom when it has **Effusion**; **Infiltration** is drawn nowhere (the control label). Half the images are
//!   written as 8-bit PNG, half as DICOM (explicit VR little endian), so both decoders feed training.
//!
//! Asserted: test AUC ≥ 0.9 for the two drawn labels, the control within 0.5 ± 3.29 DeLong standard errors (99.9 %); the export is served with
//! `trained: true` and thresholds; the served Cardiomegaly probability of both models follows the drawn disk; and
//! the served Cardiomegaly class activation map (`?explain=cam`) follows the disk: between a probe with the disk on
//! the left and its mirror image, the map's difference peaks in the disk's column.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;
use common::{
    CARDIOMEGALY, CONTROL, EFFUSION, SIDE, cxr_train, imagefolder, json, nih_subset, radiograph, radiograph_at, run,
    write_png,
};

/// The smallest input whose last feature map is 2 × 2 rather than 1 × 1 (`feature_grid(107)`): the cheapest steps
/// for which a class activation map can say left from right.
const INPUT: &str = "107";
/// 80 rows per label combination: 640 images, so the patient split gives ~128 test images and the control's DeLong
/// interval is ±0.17 at 99.9 %, not ±0.24 as with 320.
const PER_COMBINATION: usize = 80;
const EPOCHS: usize = 4;

/// The test's seed (`CXR_SMOKE_SEED`, default the paper's date): it makes the data and seeds both training runs,
/// so the flake-rate measurement can run the scenario on other draws.
fn seed() -> u64 {
    std::env::var("CXR_SMOKE_SEED").map_or(20180908, |s| s.parse().expect("CXR_SMOKE_SEED is an integer"))
}

/// One HTTP/1.1 exchange with `Connection: close`; returns (status, body).
fn http(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Each model's Cardiomegaly class activation map (2 × 2, row-major) from a `/predict?explain=cam` response.
fn cardiomegaly_maps(response: &serde_json::Value) -> Vec<(String, Vec<f64>)> {
    let results = response["results"].as_array().unwrap();
    results
        .iter()
        .map(|result| {
            let explanation = &result["explanation"];
            assert_eq!(explanation["grid"], 2, "a 107² input ends in a 2 × 2 map: {explanation}");
            let map = explanation["maps"].as_array().unwrap().iter().find(|m| m["label"] == CARDIOMEGALY).unwrap();
            let values = map["values"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()));
            (result["model"].as_str().unwrap().to_string(), values.collect())
        })
        .collect()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(models: &Path) -> (Server, u16) {
    let bin = Path::new(env!("CARGO_BIN_EXE_cxr-train")).with_file_name("cxr-serve");
    assert!(bin.exists(), "{} is missing: build the workspace (`cargo test --workspace`)", bin.display());
    let ort = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/ort/cpu/libonnxruntime.so.1.31.1"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["--models", &models.display().to_string(), "--bind", &format!("127.0.0.1:{port}")])
        .env("ORT_DYLIB_PATH", ort)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cxr-serve starts");
    let server = Server(child);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && http(port, "GET", "/readyz", "text/plain", b"").0 == 200 {
            return (server, port);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("cxr-serve did not become ready");
}

#[test]
fn the_pipeline_learns_and_the_export_is_served() {
    let started = Instant::now();
    let root = std::env::temp_dir().join(format!("cxr-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    imagefolder(&root.join("imagenet"), &mut rng);
    let csv = nih_subset(&root.join("nih"), &mut rng, PER_COMBINATION);
    let seed_arg = seed.to_string();
    let common = ["--input-size", INPUT, "--optimizer", "adam", "--workers", "2", "--seed", &seed_arg];
    let mut evaluations = HashMap::new();
    for variant in ["gray", "color"] {
        let t0 = Instant::now();
        let pretrain = root.join(format!("runs/pretrain-{variant}"));
        run(cxr_train()
            .args(["pretrain", "--variant", variant, "--train"])
            .arg(root.join("imagenet/train"))
            .arg("--val")
            .arg(root.join("imagenet/val"))
            .args(common)
            .args(["--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--out"])
            .arg(&pretrain));
        let pretrain_took = t0.elapsed();
        let finetune = root.join(format!("runs/nih-{variant}"));
        run(cxr_train()
            .args(["finetune", "nih", "--variant", variant, "--csv"])
            .arg(&csv)
            .arg("--images")
            .arg(root.join("nih/images"))
            .arg("--init-from")
            .arg(&pretrain)
            .args(common)
            // The rate halves every epoch so the last epochs settle instead of bouncing between minibatches.
            .args(["--epochs", &EPOCHS.to_string(), "--batch-size", "16", "--lr", "1e-3", "--lr-decay", "0.5"])
            .args(["--lr-decay-epochs", "1", "--dropout", "0.2", "--patience", "0", "--out"])
            .arg(&finetune));
        let finetune_took = t0.elapsed() - pretrain_took;
        let metrics = std::fs::read_to_string(finetune.join("metrics.csv")).expect("metrics.csv");
        assert_eq!(metrics.lines().count(), 1 + EPOCHS, "a header and one row per epoch:\n{metrics}");
        let config = json(&std::fs::read_to_string(finetune.join("config.json")).unwrap());
        assert_eq!((config["task"].as_str(), config["variant"].as_str()), (Some("nih"), Some(variant)));
        assert!(config["fingerprints"]["train"].as_str().unwrap().starts_with("fnv1a64:"));
        assert!(finetune.join("best.bpk").exists() && finetune.join("best.json").exists());

        let evaluation = json(&run(cxr_train().arg("evaluate").arg("--run").arg(&finetune)));
        let estimate = |label: &str, key: &str| {
            evaluation["test_auc"][label][key].as_f64().unwrap_or_else(|| panic!("{label} {key}: {evaluation}"))
        };
        let auc = |label: &str| estimate(label, "auc");
        // Chance for the control, as wide as its test set makes it: 3.29 DeLong standard errors is the two-sided
        // 99.9 % interval around 0.5 (a fixed interval would fail by chance on small test sets, or pass anything
        // on large ones).
        let control_half_width = 3.29 * estimate(CONTROL, "variance").sqrt();
        println!(
            "{variant}: test AUC {CARDIOMEGALY} {:.3}, {EFFUSION} {:.3}, {CONTROL} (control) {:.3} (chance: 0.5 ± {:.3}, \
             {} test images); pretrain {:.0} s, finetune {:.0} s",
            auc(CARDIOMEGALY),
            auc(EFFUSION),
            auc(CONTROL),
            control_half_width,
            evaluation["test_images"],
            pretrain_took.as_secs_f64(),
            finetune_took.as_secs_f64()
        );
        assert!(auc(CARDIOMEGALY) >= 0.9, "{variant}: {CARDIOMEGALY} was drawn: AUC {}", auc(CARDIOMEGALY));
        assert!(auc(EFFUSION) >= 0.9, "{variant}: {EFFUSION} was drawn: AUC {}", auc(EFFUSION));
        assert!(
            (auc(CONTROL) - 0.5).abs() <= control_half_width,
            "{variant}: {CONTROL} carries no signal: AUC {} outside 0.5 ± {control_half_width}",
            auc(CONTROL)
        );
        evaluations.insert(variant, finetune);
    }

    // Table 2 for the two runs: same test images, DeLong per label, an Average row.
    let table = run(cxr_train()
        .arg("compare")
        .arg("--a")
        .arg(&evaluations["color"])
        .arg("--b")
        .arg(&evaluations["gray"])
        .arg("--out")
        .arg(root.join("table2")));
    println!("{table}");
    assert!(table.starts_with("| disease | AUC nih-color | AUC nih-gray | z | p |"), "{table}");
    for row in ["| Average |", "| Cardiomegaly |", "| Effusion |", "| Infiltration |"] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    assert!(root.join("table2/compare.json").exists());
    let charts: Vec<_> = std::fs::read_dir(root.join("table2"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("roc-") && n.ends_with(".png"))
        .collect();
    assert!(charts.iter().any(|n| n.ends_with("-Cardiomegaly.png")), "ROC charts: {charts:?}");
    let png =
        std::fs::read(root.join("table2").join(charts.iter().find(|n| n.ends_with("-Cardiomegaly.png")).unwrap()))
            .unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "a drawn PNG");

    let models = root.join("models");
    for run_dir in evaluations.values() {
        run(cxr_train().args(["export", "--run"]).arg(run_dir).arg("--out").arg(&models));
    }
    let (_server, port) = serve(&models);
    let (status, body) = http(port, "GET", "/v1/models", "text/plain", b"");
    assert_eq!(status, 200, "{body}");
    let listed = json(&body);
    for variant in ["color", "gray"] {
        let model = listed["models"].as_array().unwrap().iter().find(|m| m["model"] == variant).expect("model listed");
        assert_eq!(model["card"]["trained"], true, "{variant}");
        assert_eq!(model["card"]["input_size"], INPUT.parse::<u64>().unwrap(), "{variant}");
        assert_eq!(model["card"]["evaluation"]["thresholds"].as_array().unwrap().len(), 14, "{variant}");
    }

    // Burn vs ONNX Runtime on the trained exports: the server's probabilities for test images equal the ones
    // `evaluate` computed with Burn (same cxr-core decoding and preprocessing on both sides).
    for (variant, run_dir) in &evaluations {
        let csv = std::fs::read_to_string(run_dir.join("test_predictions.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let score_col = header.iter().position(|h| *h == format!("score_{CARDIOMEGALY}")).unwrap();
        let mut max_delta: f64 = 0.0;
        for line in csv.lines().skip(1).take(6) {
            let fields: Vec<&str> = line.split(',').collect();
            let burn_p: f64 = fields[score_col].parse().unwrap();
            let image = root.join("nih/images").join(fields[0]);
            let media = if fields[0].ends_with(".dcm") { "application/dicom" } else { "image/png" };
            let (status, body) =
                http(port, "POST", &format!("/predict?model={variant}"), media, &std::fs::read(&image).unwrap());
            assert_eq!(status, 200, "{body}");
            let response = json(&body);
            let served = response["results"][0]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["label"] == CARDIOMEGALY)
                .unwrap()["probability"]
                .as_f64()
                .unwrap();
            max_delta = max_delta.max((served - burn_p).abs());
        }
        println!("{variant}: served (ONNX Runtime) vs Burn, max |Δp| = {max_delta:.2e}");
        assert!(max_delta <= 1e-4, "{variant}: the export disagrees with Burn by {max_delta}");
    }

    // The served probability of Cardiomegaly follows the drawn disk, on fresh images.
    let mut with_disk = Vec::new();
    let mut without = Vec::new();
    for k in 0..12 {
        let disk = k % 2 == 0;
        let path = root.join(format!("probe{k}.png"));
        write_png(&path, radiograph(&mut rng, disk, false));
        let (status, body) = http(port, "POST", "/predict?model=both", "image/png", &std::fs::read(&path).unwrap());
        assert_eq!(status, 200, "{body}");
        let response = json(&body);
        for result in response["results"].as_array().unwrap() {
            assert_eq!(result["trained"], true);
            let finding =
                result["findings"].as_array().unwrap().iter().find(|f| f["label"] == CARDIOMEGALY).unwrap().clone();
            assert!(finding["positive"].is_boolean(), "thresholded findings carry `positive`: {finding}");
            let p = finding["probability"].as_f64().unwrap();
            if disk { with_disk.push(p) } else { without.push(p) }
        }
    }
    let lowest_with = with_disk.iter().copied().fold(f64::INFINITY, f64::min);
    let highest_without = without.iter().copied().fold(0.0, f64::max);
    println!("served P({CARDIOMEGALY}): with disk ≥ {lowest_with:.3}, without ≤ {highest_without:.3}");
    assert!(lowest_with > highest_without, "disk {with_disk:?} vs none {without:?}");

    // Where it looked: fresh probes with the disk in the left half (training only ever drew it near the centre), each
    // beside its mirror image. At this input the map is 2 × 2 and every cell sees the whole image, so a model's raw
    // map carries a tilt of its own that every image shares (measured up to ~2 logits between the columns); the
    // mirrored probe cancels it. What moved with the disk must be where the disk went: in map(probe) −
    // map(mirrored), the hottest cell is in the disk's column and that column holds more of the difference.
    let mut margins = Vec::new();
    for k in 0..4 {
        let pixels = radiograph_at(&mut rng, true, false, Some((16.0 + k as f64, 32.0)));
        let mirrored: Vec<u8> = pixels.chunks_exact(SIDE as usize).flat_map(|row| row.iter().rev().copied()).collect();
        let mut maps = Vec::new();
        for (side, pixels) in [("left", pixels), ("mirrored", mirrored)] {
            let path = root.join(format!("where{k}-{side}.png"));
            write_png(&path, pixels);
            let (status, body) =
                http(port, "POST", "/predict?model=both&explain=cam", "image/png", &std::fs::read(&path).unwrap());
            assert_eq!(status, 200, "{body}");
            maps.push(cardiomegaly_maps(&json(&body)));
        }
        for ((model, left), (_, mirrored)) in maps[0].iter().zip(&maps[1]) {
            let d: Vec<f64> = left.iter().zip(mirrored).map(|(a, b)| a - b).collect();
            let peak = (0..4).max_by(|a, b| d[*a].total_cmp(&d[*b])).unwrap();
            let margin = (d[0] + d[2]) - (d[1] + d[3]);
            println!("{model} probe {k}: Cardiomegaly map {left:.2?}, mirrored {mirrored:.2?}, difference {d:.2?}");
            assert_eq!(peak % 2, 0, "{model}: the map moved away from the disk: {d:?}");
            assert!(margin > 0.0, "{model}: the disk's column did not gain: {d:?}");
            margins.push(margin);
        }
    }
    println!(
        "class activation maps: the disk's column gains ≥ {:.3} logits",
        margins.iter().copied().fold(f64::MAX, f64::min)
    );
    println!("smoke pipeline: {:.0} s", started.elapsed().as_secs_f64());
    // CXR_SMOKE_KEEP=1 keeps the generated data and runs for inspection.
    if std::env::var_os("CXR_SMOKE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("kept {}", root.display());
    }
}
