//! The Open Inference Protocol routes on the real server: a fixture preprocessed by `cxr-core` sent as JSON and as
//! binary tensor data answers what `/predict` answers for the image itself, and every malformed request is a
//! `{"error": ...}` with the protocol's status. (tests/python/oip_tritonclient.py drives the same routes with
//! NVIDIA's `tritonclient`.)

use cxr_core::card::Normalization;
use cxr_core::decode::{DecodeLimits, decode};
use cxr_core::preprocess::Preprocessor;
use serde_json::{Value, json};

use crate::helpers::{client, default_server, expect_prediction, fixture, max_abs_diff, post_raw, probabilities};

fn tensor(file: &str, channels: usize) -> Vec<f32> {
    let decoded = decode(&fixture(file).bytes(), &DecodeLimits::default()).unwrap();
    Preprocessor::new(299, Normalization::INCEPTION).tensor(&decoded.image, channels)
}

async fn post(path: &str, headers: &[(&str, String)], body: Vec<u8>) -> reqwest::Response {
    let mut request = client().post(default_server().url(path)).body(body);
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    request.send().await.expect("answered")
}

fn output<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap()
}

#[tokio::test]
async fn json_and_binary_inference_answer_what_predict_answers() {
    let server = default_server();
    let file = "dicom/cxr_explicit_le.dcm";
    let image = fixture(file);
    let predicted = expect_prediction(
        post_raw(server, "?model=both", image.media_type(), image.bytes()).await,
        &["color", "gray"],
        file,
    )
    .await;
    for (i, (model, channels)) in [("color", 3usize), ("gray", 1)].into_iter().enumerate() {
        let want = probabilities(&predicted["results"][i]);
        let x = tensor(file, channels);
        // JSON in, JSON out.
        let request = json!({
            "id": "t1",
            "inputs": [{ "name": "image", "shape": [1, channels, 299, 299], "datatype": "FP32", "data": x }],
        });
        let response = post(&format!("/v2/models/{model}/infer"), &[], serde_json::to_vec(&request).unwrap()).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!((body["model_name"].as_str(), body["id"].as_str()), (Some(model), Some("t1")));
        let p: Vec<f64> =
            output(&body, "probabilities")["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let l: Vec<f64> =
            output(&body, "logits")["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let diff = max_abs_diff(&p, &want);
        assert!(diff <= 1e-5, "{model}: v2 JSON vs /predict {diff}");
        for (p, l) in p.iter().zip(&l) {
            assert!((p - 1.0 / (1.0 + (-l).exp())).abs() < 1e-5, "logits are the probabilities' logits");
        }

        // Binary in (no Content-Type, as the Python client sends it), binary probabilities out.
        let header = serde_json::to_vec(&json!({
            "inputs": [{ "name": "image", "shape": [1, channels, 299, 299], "datatype": "FP32",
                         "parameters": { "binary_data_size": x.len() * 4 } }],
            "outputs": [{ "name": "probabilities", "parameters": { "binary_data": true } }],
        }))
        .unwrap();
        let mut body = header.clone();
        body.extend(x.iter().flat_map(|v| v.to_le_bytes()));
        let response = post(
            &format!("/v2/models/{model}/infer"),
            &[("inference-header-content-length", header.len().to_string())],
            body,
        )
        .await;
        assert_eq!(response.status(), 200);
        let json_len: usize = response.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
        let bytes = response.bytes().await.unwrap();
        let head: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
        assert_eq!(output(&head, "probabilities")["parameters"]["binary_data_size"], 14 * 4);
        assert!(head["outputs"].as_array().unwrap().len() == 1, "only the requested output");
        let p: Vec<f64> = bytes[json_len..]
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect();
        let diff = max_abs_diff(&p, &want);
        assert!(diff <= 1e-5, "{model}: v2 binary vs /predict {diff}");
    }
}

#[tokio::test]
async fn metadata_and_health_follow_the_protocol() {
    let server = default_server();
    let get = |path: &str| client().get(server.url(path)).send();
    let meta: Value = get("/v2").await.unwrap().json().await.unwrap();
    assert_eq!(meta["name"], "cxr-serve");
    assert_eq!(get("/v2/health/live").await.unwrap().status(), 200);
    assert_eq!(get("/v2/health/ready").await.unwrap().status(), 200);
    assert_eq!(get("/v2/models/gray/ready").await.unwrap().status(), 200);
    let model: Value = get("/v2/models/gray").await.unwrap().json().await.unwrap();
    assert_eq!(model["inputs"][0], json!({ "name": "image", "datatype": "FP32", "shape": [-1, 1, 299, 299] }));
    assert_eq!(model["outputs"][1]["name"], "logits");
    let missing = get("/v2/models/resnet/ready").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("unknown model"));
}

#[tokio::test]
async fn malformed_requests_are_protocol_errors() {
    let x = vec![0.0f32; 299 * 299];
    let ok_input = json!({ "name": "image", "shape": [1, 1, 299, 299], "datatype": "FP32", "data": x });
    // (path, headers, body, status, what the error says)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("/v2/models/gray/infer", vec![], b"{not json".to_vec(), 400, "not valid JSON"),
        ("/v2/models/mri/infer", vec![], serde_json::to_vec(&json!({ "inputs": [ok_input] })).unwrap(), 404, "unknown model"),
        (
            "/v2/models/gray/infer",
            vec![],
            serde_json::to_vec(&json!({ "inputs": [{ "name": "image", "shape": [1, 3, 299, 299], "datatype": "FP32", "data": [0.0] }] })).unwrap(),
            400,
            "does not match",
        ),
        (
            "/v2/models/gray/infer",
            vec![],
            serde_json::to_vec(&json!({ "inputs": [{ "name": "image", "shape": [1, 1, 299, 299], "datatype": "INT8", "data": [0] }] })).unwrap(),
            400,
            "not FP32",
        ),
        (
            "/v2/models/gray/infer",
            vec![],
            serde_json::to_vec(&json!({ "inputs": [{ "name": "image", "shape": [1, 1, 299, 299], "datatype": "FP32", "data": [1.0, 2.0] }] })).unwrap(),
            400,
            "values",
        ),
        (
            "/v2/models/gray/infer",
            vec![],
            serde_json::to_vec(&json!({ "inputs": [ok_input], "outputs": [{ "name": "embedding" }] })).unwrap(),
            400,
            "unknown output",
        ),
        (
            "/v2/models/gray/infer",
            vec![("inference-header-content-length", "999999999".into())],
            b"{}".to_vec(),
            400,
            "the body has only",
        ),
        (
            "/v2/models/gray/infer",
            vec![("inference-header-content-length", "12".into())],
            // The header length cuts the JSON short.
            [serde_json::to_vec(&json!({ "inputs": [ok_input] })).unwrap(), vec![0u8; 8]].concat(),
            400,
            "not valid JSON",
        ),
        (
            "/v2/models/gray/infer",
            vec![],
            serde_json::to_vec(&json!({ "inputs": [{ "name": "image", "shape": [1, 1, 299, 299], "datatype": "FP32", "parameters": { "binary_data_size": 8 } }] })).unwrap(),
            400,
            "binary_data_size is 8",
        ),
    ];
    for (path, headers, body, status, needle) in cases {
        let response = post(path, &headers, body).await;
        assert_eq!(response.status().as_u16(), status, "{path} {needle}");
        assert_eq!(response.headers()["content-type"], "application/json", "{needle}");
        let error = response.json::<Value>().await.unwrap()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(needle), "{needle}: {error}");
    }
}
