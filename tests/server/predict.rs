//! Successful predictions: every fixture, both body forms, both models, and agreement across DICOM encodings.

use cxr_core::labels::LABELS;
use serde_json::Value;

use crate::helpers::{
    client, default_server, expect_prediction, fixture, manifest, max_abs_diff, post_multipart, post_raw, probabilities,
};

/// Largest difference allowed between two runs on identical pixels (ONNX Runtime on the CPU is deterministic for a
/// given batch size; this only absorbs a different batch composition).
const SAME_PIXELS_TOLERANCE: f64 = 1e-5;

#[tokio::test]
async fn every_fixture_is_classified_raw_and_multipart() {
    let server = default_server();
    for fixture in manifest() {
        let context = format!("{} (raw)", fixture.file);
        let raw = expect_prediction(
            post_raw(server, "?model=both", fixture.media_type(), fixture.bytes()).await,
            &["color", "gray"],
            &context,
        )
        .await;
        assert_eq!(raw["input"]["format"], fixture.format(), "{context}");
        assert_eq!(raw["input"]["width"], fixture.columns, "{context}");
        assert_eq!(raw["input"]["height"], fixture.rows, "{context}");

        let context = format!("{} (multipart)", fixture.file);
        let multipart =
            expect_prediction(post_multipart(server, "", &fixture.file, fixture.bytes()).await, &["gray"], &context)
                .await;
        assert_eq!(multipart["input"], raw["input"], "{context}: same input facts");
        let diff = max_abs_diff(&probabilities(&multipart["results"][0]), &probabilities(&raw["results"][1]));
        assert!(diff <= SAME_PIXELS_TOLERANCE, "{context}: raw and multipart differ by {diff}");
    }
}

#[tokio::test]
async fn both_models_answer_color_then_gray() {
    let server = default_server();
    let fixture = fixture("dicom/cxr_explicit_le.dcm");
    let response = client()
        .post(server.url("/predict?model=both"))
        .header("x-request-id", "test-both-123")
        .header("content-type", "application/dicom")
        .body(fixture.bytes())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.headers()["x-request-id"], "test-both-123");
    let body = expect_prediction(response, &["color", "gray"], "both").await;
    assert_eq!(body["request_id"], "test-both-123");
    assert_eq!(body["input"]["format"], "dicom");
    assert_eq!(body["input"]["photometric"], "MONOCHROME2");
    assert_eq!(body["input"]["transfer_syntax"], "Explicit VR Little Endian");
    for result in body["results"].as_array().unwrap() {
        assert_eq!(result["provider"], "CPUExecutionProvider");
        assert!(result["model_version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(result["batch_size"].as_u64().is_some_and(|n| n >= 1));
        assert!(result["trained"].is_boolean());
        let timing = &result["timing_ms"];
        assert!(timing["total"].as_f64().unwrap() >= timing["inference"].as_f64().unwrap());
    }
    // Both models saw the same decode.
    assert_eq!(body["results"][0]["timing_ms"]["decode"], body["results"][1]["timing_ms"]["decode"]);
}

#[tokio::test]
async fn model_parameter_selects_one_model_and_defaults_to_gray() {
    let server = default_server();
    let png = fixture("images/nih_00000001_000.png");
    expect_prediction(post_raw(server, "?model=color", "image/png", png.bytes()).await, &["color"], "color").await;
    expect_prediction(post_raw(server, "?model=gray", "image/png", png.bytes()).await, &["gray"], "gray").await;
    expect_prediction(post_raw(server, "", "application/octet-stream", png.bytes()).await, &["gray"], "default").await;
}

#[tokio::test]
async fn lossless_dicom_encodings_give_the_same_probabilities() {
    let server = default_server();
    // The lossless re-encodings of the original 8-bit image (the 12/16-bit files are derived images, not encodings).
    let encodings: Vec<_> = manifest()
        .into_iter()
        .filter(|f| f.file.starts_with("dicom/cxr_") && f.tolerance_max_abs <= 1e-5)
        .filter(|f| !f.file.contains("12bit") && !f.file.contains("16bit"))
        .collect();
    assert!(encodings.len() >= 8, "expected the 8 lossless encodings, found {}", encodings.len());
    let mut reference: Option<(String, Vec<Vec<f64>>)> = None;
    for fixture in encodings {
        let body = expect_prediction(
            post_raw(server, "?model=both", "application/dicom", fixture.bytes()).await,
            &["color", "gray"],
            &fixture.file,
        )
        .await;
        let results: Vec<Vec<f64>> = body["results"].as_array().unwrap().iter().map(probabilities).collect();
        match &reference {
            None => reference = Some((fixture.file.clone(), results)),
            Some((name, expected)) => {
                for (model, (got, want)) in ["color", "gray"].iter().zip(results.iter().zip(expected)) {
                    let diff = max_abs_diff(got, want);
                    assert!(diff <= SAME_PIXELS_TOLERANCE, "{model}: {} differs from {name} by {diff}", fixture.file);
                }
            }
        }
    }
}

#[tokio::test]
async fn a_contradicting_content_type_is_a_warning_not_an_error() {
    let server = default_server();
    let dicom = fixture("dicom/cxr_jpeg_baseline.dcm");
    let body =
        expect_prediction(post_raw(server, "", "image/png", dicom.bytes()).await, &["gray"], "mislabelled").await;
    assert_eq!(body["input"]["format"], "dicom");
    let warnings: Vec<&str> = body["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(warnings.iter().any(|w| w.contains("image/png") && w.contains("dicom")), "{warnings:?}");
}

#[tokio::test]
async fn models_endpoint_describes_both_models() {
    let server = default_server();
    let response = client().get(server.url("/v1/models")).send().await.expect("answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["default_model"], "gray");
    let models = body["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for (model, (name, channels)) in models.iter().zip([("color", 3), ("gray", 1)]) {
        assert_eq!(model["model"], name);
        assert_eq!(model["file"], format!("cxr-inception-v3-{name}.onnx"));
        assert_eq!(model["provider"], "CPUExecutionProvider");
        assert_eq!(model["card"]["variant"], name);
        assert_eq!(model["card"]["channels"], channels);
        assert_eq!(model["card"]["labels"].as_array().unwrap().len(), LABELS.len());
        assert_eq!(model["input"]["name"], "image");
        assert_eq!(model["input"]["shape"][1], channels);
        let outputs: Vec<&str> =
            model["outputs"].as_array().unwrap().iter().filter_map(|o| o["name"].as_str()).collect();
        assert!(outputs.contains(&"probabilities") && outputs.contains(&"logits"), "{outputs:?}");
    }
}

#[tokio::test]
async fn health_and_readiness_answer_once_loaded() {
    let server = default_server();
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["models"], serde_json::json!(["color", "gray"]));
}
