//! `--precision fp16`: the server loads the `<name>.fp16.onnx` files that `cxr-train export --fp16` writes, says so
//! in `/v1/models`, and answers within a measured distance of the FP32 files; a file that is not what its name
//! says is refused at startup.
//!
//! The models are exported here (seeded, as `make models` does) into a temporary directory, so the test also
//! covers the export command end to end. On this CPU-only suite FP16 runs on the CPU execution provider; the GPU
//! numbers come from `scripts/gpu-check.sh`.

use cxr_engine::Precision;
use serde_json::Value;

use crate::helpers::{
    TestServer, client, config, cxr_train, expect_prediction, fixture, max_abs_diff, post_raw, probabilities,
};

/// Largest |Δp| allowed between the FP16 and FP32 files of the seeded models on the fixtures. Measured on these two
/// fixtures: 1.1e-3–1.6e-3 (FP16 keeps ~11 significant bits; the seeded head's logits are O(1)).
const TOLERANCE: f64 = 1e-2;

#[tokio::test]
async fn fp16_files_are_served_close_to_fp32_and_mislabelled_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("cxr-serve-fp16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(cxr_train())
        .args(["export", "--variant", "both", "--fp16", "--out"])
        .arg(&dir)
        .output()
        .expect("cxr-train runs");
    assert!(out.status.success(), "export --fp16: {}", String::from_utf8_lossy(&out.stderr));

    let mut fp32 = config(&[]);
    fp32.models = dir.clone();
    let mut fp16 = fp32.clone();
    fp16.precision = Precision::Fp16;
    let (fp32, fp16) = (TestServer::start(fp32), TestServer::start(fp16));

    let models: Value = client().get(fp16.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    for model in models["models"].as_array().unwrap() {
        assert_eq!(model["precision"], "fp16", "{model}");
        assert!(model["file"].as_str().unwrap().ends_with(".fp16.onnx"), "{model}");
        assert_eq!(model["input"]["dtype"], "float32", "the interface stays FP32: {model}");
    }
    let models: Value = client().get(fp32.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert!(models["models"].as_array().unwrap().iter().all(|m| m["precision"] == "fp32"), "{models}");

    let mut worst: f64 = 0.0;
    for file in ["dicom/cxr_explicit_le.dcm", "images/nih_00000001_000.png"] {
        let image = fixture(file);
        let a = post_raw(&fp32, "?model=both", image.media_type(), image.bytes()).await;
        let a = expect_prediction(a, &["color", "gray"], file).await;
        let b = post_raw(&fp16, "?model=both", image.media_type(), image.bytes()).await;
        let b = expect_prediction(b, &["color", "gray"], file).await;
        for k in 0..2 {
            let diff = max_abs_diff(&probabilities(&a["results"][k]), &probabilities(&b["results"][k]));
            println!("fp16 vs fp32, {file}, {}: max |Δp| {diff:.2e}", a["results"][k]["model"]);
            worst = worst.max(diff);
        }
    }
    assert!(worst > 0.0, "the FP16 files compute exactly what the FP32 ones do: were they converted at all?");
    assert!(worst <= TOLERANCE, "FP16 vs FP32: max |Δp| {worst} > {TOLERANCE}");

    // An FP32 file under the FP16 name is refused, naming the mismatch.
    for variant in ["color", "gray"] {
        let stem = dir.join(format!("cxr-inception-v3-{variant}"));
        std::fs::copy(stem.with_extension("onnx"), stem.with_extension("fp16.onnx")).unwrap();
    }
    let mut wrong = config(&[]);
    wrong.models = dir.clone();
    wrong.precision = Precision::Fp16;
    let error =
        cxr_serve::AppState::load(&wrong).await.err().expect("a mislabelled FP16 file must not load").to_string();
    assert!(error.contains("declares precision \"fp32\""), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
