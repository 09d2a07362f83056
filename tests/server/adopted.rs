//! The server serves models that `cxr-train adopt` wrapped, unchanged: a torch.onnx-style color classifier and a
//! tf2onnx-style (NHWC, sigmoid, extra label) gray one from `tests/data/onnx`. What `/predict` answers equals ONNX
//! Runtime on the original torch-style file (the source framework's graph) for the same decoded, preprocessed
//! X-ray, reordered by the file's label list.

use cxr_core::card::Normalization;
use cxr_core::decode::{DecodeLimits, decode};
use cxr_core::labels::LABELS;
use cxr_core::preprocess::Preprocessor;
use serde_json::Value;

use crate::helpers::{
    TESTDATA, TestServer, client, config, cxr_train, expect_prediction, fixture, max_abs_diff, ort_dylib, post_raw,
    probabilities,
};

fn adopt(args: &[&str]) {
    let out = std::process::Command::new(cxr_train()).arg("adopt").args(args).output().expect("cxr-train runs");
    assert!(out.status.success(), "adopt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn adopted_models_are_served_and_match_the_original_graph() {
    let dir = std::env::temp_dir().join(format!("cxr-serve-adopted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let onnx = |f: &str| format!("{TESTDATA}/onnx/{f}");
    let out = dir.to_str().unwrap();
    adopt(&[
        "--onnx",
        &onnx("torch_style.onnx"),
        "--variant",
        "color",
        "--labels",
        &onnx("torch_style.labels.txt"),
        "--out",
        out,
    ]);
    adopt(&[
        "--onnx",
        &onnx("tf_style.onnx"),
        "--variant",
        "gray",
        "--labels",
        &onnx("tf_style.labels.txt"),
        "--layout",
        "nhwc",
        "--input-mean",
        "0",
        "--input-std",
        "1",
        "--drop-extra-labels",
        "--out",
        out,
    ]);
    let mut cfg = config(&[]);
    cfg.models = dir.clone();
    let server = TestServer::start(cfg);

    let models: Value = client().get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    for model in models["models"].as_array().unwrap() {
        assert_eq!(model["card"]["provenance"]["source"]["kind"], "adopted", "{model}");
        assert_eq!(model["card"]["trained"], false);
    }

    let image = fixture("dicom/cxr_explicit_le.dcm");
    let body = expect_prediction(
        post_raw(&server, "?model=both", image.media_type(), image.bytes()).await,
        &["color", "gray"],
        "adopted",
    )
    .await;
    let served = probabilities(&body["results"][0]);

    // The original torch-style graph on the same preprocessed pixels, through ONNX Runtime directly.
    let decoded = decode(&image.bytes(), &DecodeLimits::default()).unwrap();
    let input = Preprocessor::new(299, Normalization::INCEPTION).tensor(&decoded.image, 3);
    let environment = cxr_engine::ort_environment(&ort_dylib(), None).unwrap();
    let mut session =
        ort::session::Session::builder(&environment).unwrap().commit_from_file(onnx("torch_style.onnx")).unwrap();
    let tensor = ort::value::Tensor::from_array((vec![1usize, 3, 299, 299], input)).unwrap();
    let outputs = session.run(ort::inputs!["image" => tensor]).unwrap();
    let logits = outputs["logits"].try_extract_tensor::<f32>().unwrap().1.to_vec();
    let labels: Vec<String> =
        std::fs::read_to_string(onnx("torch_style.labels.txt")).unwrap().lines().map(String::from).collect();
    let expected: Vec<f64> = LABELS
        .iter()
        .map(|l| 1.0 / (1.0 + (-f64::from(logits[labels.iter().position(|x| x == l).unwrap()])).exp()))
        .collect();
    let diff = max_abs_diff(&served, &expected);
    assert!(diff <= 1e-5, "served vs original graph: max |Δp| {diff}");

    // An adopted graph has no class activation maps: a request for them is still answered, with the same
    // probabilities, no explanation and a warning per model that says why.
    let explained = expect_prediction(
        post_raw(&server, "?model=both&explain=cam", image.media_type(), image.bytes()).await,
        &["color", "gray"],
        "adopted cam",
    )
    .await;
    assert_eq!(probabilities(&explained["results"][0]), served);
    for result in explained["results"].as_array().unwrap() {
        assert!(result.get("explanation").is_none(), "{result}");
    }
    let warnings: Vec<&str> = explained["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    assert_eq!(warnings.iter().filter(|w| w.contains("no class activation maps")).count(), 2, "{warnings:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
