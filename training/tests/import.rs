//! `cxr-train import`: torchvision `inception_v3` weights (`.safetensors` and `.pth`) against torchvision itself,
//! the color → gray conversions, the error paths, and the import directory as a fine-tuning start and an export.
//!
//! Expected values: `tests/data/torchvision/inception_v3_seeded.json`, recorded once by
//! `tests/python/record_torchvision.py` with torch 2.15.0 / torchvision 0.29.2 from PyPI (see
//! `common/torchvision.rs` for the weight generator). The inputs are real X-rays from `tests/data` decoded and
//! preprocessed by `cxr-core` (the server's code); torchvision's `inception_v3(transform_input=False)` in eval mode
//! computed the recorded logits from exactly those tensors (`CXR_RECORD_INPUTS=<file>` makes
//! `safetensors_import_matches_torchvision` write them for the recording).

mod common;
#[path = "common/torchvision.rs"]
mod torchvision;

use std::path::{Path, PathBuf};

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use cxr_core::card::ModelVariant;
use cxr_core::decode::LUMA;
use cxr_train::import::{ImportRequest, gray_from_color, load_torchvision};
use cxr_train::model::{INPUT_SIZE, InceptionV3};
use cxr_train::run::GrayFromColor;
use sha2::Digest;

use common::{cxr_train, fixture_batch, json, max_abs_diff, ort_probabilities, ort_session, run};

/// Logits agreement with torchvision (absolute).
const TOLERANCE: f32 = 1e-4;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cxr-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn forward(model: &InceptionV3, shape: &[usize], data: Vec<f32>) -> Vec<f32> {
    let x = Tensor::<4>::from_data(TensorData::new(data, shape.to_vec()), &Device::flex());
    model.forward(x).into_data().try_to_vec::<f32>().unwrap()
}

fn request(from: &Path, variant: ModelVariant) -> ImportRequest {
    ImportRequest {
        from: from.into(),
        variant,
        gray_from_color: None,
        num_classes: None,
        new_head: None,
        seed: 1,
        trained: false,
    }
}

/// The seeded torchvision weights as a safetensors file in `dir`.
fn safetensors_file(dir: &Path) -> PathBuf {
    let recorded = torchvision::recorded();
    let path = dir.join("inception_v3_seeded.safetensors");
    torchvision::write_safetensors(&path, &recorded, &torchvision::unchanged(recorded.seed));
    path
}

/// Imports `file` as a color model and compares its logits with torchvision's.
fn matches_torchvision(file: &Path) -> f32 {
    let recorded = torchvision::recorded();
    let (shape, data) = fixture_batch(&recorded.fixtures, 3);
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    if let Some(path) = std::env::var_os("CXR_RECORD_INPUTS") {
        std::fs::write(path, &bytes).unwrap();
    }
    assert_eq!(
        format!("{:x}", sha2::Sha256::digest(&bytes)),
        recorded.inputs_sha256,
        "the preprocessed inputs differ from the recording's: cxr-core preprocessing changed (re-record)"
    );
    let (model, report) = load_torchvision(&request(file, ModelVariant::Color), &Device::flex()).expect("import");
    assert_eq!((report.source_channels, report.source_classes, report.num_classes), (3, 1000, 1000));
    // 580 torchvision keys: 96 BasicConv2d × 6 (conv weight, bn weight/bias/mean/var/counter) + 2 linear layers × 2,
    // 2 of the BasicConv2d and one linear layer in AuxLogits. Loaded: the main network's 94 × 5 + 2; ignored: the 96
    // counters and AuxLogits' 2 × 5 + 2 parameters (checked, then dropped).
    assert_eq!(report.applied, 94 * 5 + 2, "every inference parameter loaded");
    assert_eq!(report.ignored.len(), 96 + 12, "counters and AuxLogits ignored: {:?}", report.ignored);
    let burn = forward(&model, &shape, data);
    let expected: Vec<f32> = recorded.logits.concat();
    let diff = max_abs_diff(&burn, &expected);
    let spread = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("{}: max |Δ logit| vs torchvision {diff:.2e} (max |logit| {spread:.2})", file.display());
    assert!(spread > 0.1, "the recorded logits are not degenerate");
    assert!(diff <= TOLERANCE, "max |Δ logit| {diff} > {TOLERANCE}");
    diff
}

#[test]
fn safetensors_import_matches_torchvision() {
    let dir = tempdir("st");
    matches_torchvision(&safetensors_file(&dir));
}

#[test]
fn pth_import_matches_torchvision() {
    let dir = tempdir("pth");
    let recorded = torchvision::recorded();
    let path = dir.join("inception_v3_seeded.pth");
    torchvision::write_pth(&path, &recorded);
    matches_torchvision(&path);
}

#[test]
fn gray_from_color_sum_is_exact_and_luma_is_the_luma_weighted_color_model() {
    let dir = tempdir("gray");
    let file = safetensors_file(&dir);
    let recorded = torchvision::recorded();
    let (color, _) = load_torchvision(&request(&file, ModelVariant::Color), &Device::flex()).unwrap();
    let mut gray_request = request(&file, ModelVariant::Gray);
    gray_request.gray_from_color = Some(GrayFromColor::Sum);
    let (gray, report) = load_torchvision(&gray_request, &Device::flex()).unwrap();
    assert_eq!((gray.in_channels(), report.gray_from_color), (1, Some(GrayFromColor::Sum)));

    // sum: the gray model on the X-rays = the color model on the same X-rays stacked three times (cxr-core's color
    // preprocessing of a gray image), in probabilities.
    let (shape1, gray_input) = fixture_batch(&recorded.fixtures, 1);
    let (shape3, color_input) = fixture_batch(&recorded.fixtures, 3);
    let p_gray = sigmoid_vec(forward(&gray, &shape1, gray_input.clone()));
    let p_color = sigmoid_vec(forward(&color, &shape3, color_input));
    let diff = max_abs_diff(&p_gray, &p_color);
    println!("gray-from-color sum: max |Δp| gray vs color-on-stacked {diff:.2e}");
    assert!(diff <= 1e-5, "sum: max |Δp| {diff} > 1e-5");

    // luma: the gray model on g = the color model on (0.299 g, 0.587 g, 0.114 g) (normalised values).
    let luma = gray_from_color(color.clone(), GrayFromColor::Luma);
    let plane = INPUT_SIZE * INPUT_SIZE;
    let weighted: Vec<f32> =
        gray_input.chunks(plane).flat_map(|g| LUMA.iter().flat_map(move |w| g.iter().map(move |v| w * v))).collect();
    let p_luma = sigmoid_vec(forward(&luma, &shape1, gray_input));
    let p_weighted = sigmoid_vec(forward(&color, &shape3, weighted));
    let diff_luma = max_abs_diff(&p_luma, &p_weighted);
    println!("gray-from-color luma: max |Δp| vs color on Luma-weighted planes {diff_luma:.2e}");
    assert!(diff_luma <= 1e-5, "luma: max |Δp| {diff_luma} > 1e-5");
    assert!(max_abs_diff(&p_luma, &p_gray) > 1e-4, "luma and sum are different models");
}

fn sigmoid_vec(logits: Vec<f32>) -> Vec<f32> {
    let n = logits.len();
    sigmoid(Tensor::<1>::from_data(TensorData::new(logits, [n]), &Device::flex()))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Runs `cxr-train import` expecting failure; returns stderr.
fn import_fails(args: &[&str]) -> String {
    let out = cxr_train().arg("import").args(args).output().unwrap();
    assert!(!out.status.success(), "import {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_files_and_requests_are_clear_errors() {
    let dir = tempdir("errors");
    let recorded = torchvision::recorded();
    let seed = recorded.seed;
    let out = dir.join("out");
    let out = out.to_str().unwrap();

    // Missing, unexpected and mis-shaped keys: one error listing each.
    let broken = dir.join("broken.safetensors");
    torchvision::write_safetensors(&broken, &recorded, &|e| {
        let mut kept = torchvision::unchanged(seed)(e);
        match e.key.as_str() {
            "Mixed_5b.branch1x1.conv.weight" | "Mixed_7c.branch_pool.bn.running_var" => kept.clear(),
            "fc.bias" => kept[0] = ("fc.bias".into(), vec![999], "float32".into(), vec![0; 4 * 999]),
            "fc.weight" => kept.push(("head.extra.weight".into(), vec![2], "float32".into(), vec![0; 8])),
            _ => {}
        }
        kept
    });
    let err = import_fails(&["--from", broken.to_str().unwrap(), "--variant", "color", "--out", out]);
    for needle in [
        "not a torchvision inception_v3 state dict",
        "missing (2)",
        "mixed_5b.branch1x1.conv.weight",
        "mixed_7c.branch_pool.bn.running_var",
        "unexpected (1)",
        "head.extra.weight",
        "mis-shaped",
        "fc.bias",
    ] {
        assert!(err.contains(needle), "error lacks `{needle}`:\n{err}");
    }
    assert!(!Path::new(out).join("config.json").exists(), "nothing written on failure");

    // Not an Inception-V3 at all.
    let other = dir.join("other.safetensors");
    torchvision::write_safetensors(&other, &recorded, &|e| {
        if e.key == "fc.weight" {
            vec![("linear.weight".into(), vec![2, 2], "float32".into(), vec![0; 16])]
        } else {
            vec![]
        }
    });
    let err = import_fails(&["--from", other.to_str().unwrap(), "--variant", "color", "--out", out]);
    assert!(err.contains("no `Conv2d_1a_3x3.conv.weight` and `fc.weight`") && err.contains("linear.weight"), "{err}");

    // Garbage bytes, unknown extension, missing file.
    let garbage = dir.join("garbage.pth");
    std::fs::write(&garbage, b"not a zip at all").unwrap();
    assert!(
        import_fails(&["--from", garbage.to_str().unwrap(), "--variant", "color", "--out", out])
            .contains("cannot read")
    );
    let onnx = dir.join("model.onnx");
    std::fs::write(&onnx, b"x").unwrap();
    assert!(
        import_fails(&["--from", onnx.to_str().unwrap(), "--variant", "color", "--out", out])
            .contains("unknown weight format")
    );
    assert!(import_fails(&["--from", "/nonexistent.pth", "--variant", "color", "--out", out]).contains("cannot read"));

    // Variant and head requests that do not fit the file.
    let good = safetensors_file(&dir);
    let good = good.to_str().unwrap();
    assert!(import_fails(&["--from", good, "--variant", "gray", "--out", out]).contains("--gray-from-color"));
    assert!(
        import_fails(&["--from", good, "--variant", "color", "--gray-from-color", "sum", "--out", out])
            .contains("only to a color file imported as --variant gray")
    );
    let err = import_fails(&["--from", good, "--variant", "color", "--num-classes", "14", "--out", out]);
    assert!(err.contains("1000 classes, not --num-classes 14") && err.contains("--new-head 14"), "{err}");
    // A gray file cannot become color.
    let gray_file = dir.join("gray.safetensors");
    torchvision::write_safetensors(&gray_file, &recorded, &|e| {
        let mut kept = torchvision::unchanged(seed)(e);
        if e.key == "Conv2d_1a_3x3.conv.weight" {
            kept[0] = (e.key.clone(), vec![32, 1, 3, 3], "float32".into(), vec![0; 4 * 288]);
        }
        kept
    });
    assert!(
        import_fails(&["--from", gray_file.to_str().unwrap(), "--variant", "color", "--out", out])
            .contains("gray model")
    );
}

#[test]
fn import_directory_starts_finetuning_and_exports_to_the_served_interface() {
    let dir = tempdir("cli");
    let file = safetensors_file(&dir);
    let out = dir.join("imported");
    // A gray model with a fresh 14-finding head, through the command line.
    let report = json(&run(cxr_train().args([
        "import",
        "--from",
        file.to_str().unwrap(),
        "--variant",
        "gray",
        "--gray-from-color",
        "sum",
        "--new-head",
        "14",
        "--out",
        out.to_str().unwrap(),
    ])));
    assert_eq!(report["num_classes"], 14);
    assert_eq!(report["trained"], false, "a fresh head is not trained, whatever was stated");
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    for f in ["config.json", "best.bpk", "import.json"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    // A second import into the same directory is refused.
    assert!(
        import_fails(&["--from", file.to_str().unwrap(), "--variant", "color", "--out", out.to_str().unwrap()])
            .contains("already holds")
    );

    // Fine-tuning from it keeps every backbone weight and replaces the head.
    let (_, imported) = cxr_train::run::load_best(&out, &Device::flex()).unwrap();
    let mut config = cxr_train::run::TrainConfig::read(&out).unwrap();
    config.task = cxr_train::run::Task::Nih;
    config.init_from = Some(out.clone());
    config.seed = 99;
    let start = config.build_model(&Device::flex()).unwrap();
    let w = |m: &InceptionV3| m.mixed_7c.branch_pool.conv.weight.val().into_data().try_to_vec::<f32>().unwrap();
    let h = |m: &InceptionV3| m.fc.weight.val().into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(w(&start), w(&imported), "backbone kept");
    assert_ne!(h(&start), h(&imported), "head replaced");

    // Export: the served interface, the card naming the source file, and Burn = ONNX Runtime.
    let models = dir.join("models");
    run(cxr_train().args(["export", "--run", out.to_str().unwrap(), "--out", models.to_str().unwrap()]));
    let card = json(&std::fs::read_to_string(models.join("cxr-inception-v3-gray.json")).unwrap());
    assert_eq!(card["trained"], false);
    assert_eq!(card["provenance"]["source"]["kind"], "imported");
    assert_eq!(card["provenance"]["source"]["sha256"], report["sha256"]);
    assert_eq!(card["provenance"]["source"]["file"], "inception_v3_seeded.safetensors");
    let onnx = std::fs::read(models.join("cxr-inception-v3-gray.onnx")).unwrap();
    let recorded = torchvision::recorded();
    let (shape, data) = fixture_batch(&recorded.fixtures, 1);
    let burn = sigmoid_vec(forward(&imported, &shape, data.clone()));
    let ort = ort_probabilities(&mut ort_session(&onnx), &shape, data);
    let diff = max_abs_diff(&burn, &ort);
    println!("imported gray export: Burn vs ONNX Runtime max |Δp| {diff:.2e}");
    assert!(diff <= 1e-4, "Burn vs ORT {diff}");

    // A 1000-class import cannot be exported to the 14-finding interface.
    let imagenet = dir.join("imagenet");
    run(cxr_train().args([
        "import",
        "--from",
        file.to_str().unwrap(),
        "--variant",
        "color",
        "--out",
        imagenet.to_str().unwrap(),
    ]));
    let out = cxr_train()
        .args(["export", "--run", imagenet.to_str().unwrap(), "--out", models.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("1000-class head") && err.contains("--new-head 14"), "{err}");
}
