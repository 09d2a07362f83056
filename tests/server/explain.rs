//! `?explain=cam`: class activation maps from the same forward pass, on the real exported models.
//!
//! The identity test cannot pass by accident: each returned map's plain mean (nothing added, nothing scaled) must be
//! the logit that the same response's probability is the sigmoid of, to 1e-4, for both variants. The maps must also
//! be what ONNX Runtime's `cam` output is for the same pixels (through `/v2` on the tensor `cxr-core` builds), on a
//! non-square image whose letterbox the mapping must undo. Where the smoke-trained model looks is tested in
//! `training/tests/smoke.rs` (the disk it learned, and its mirror image).

use base64::Engine as _;
use cxr_core::card::Normalization;
use cxr_core::decode::{DecodeLimits, decode};
use cxr_core::labels::LABELS;
use cxr_core::preprocess::Preprocessor;
use serde_json::{Value, json};

use crate::helpers::{
    TestServer, client, config, default_server, expect_prediction, expect_problem, fixture, post_raw, probabilities,
};

/// A non-square fixture (1036 × 885): the letterbox pads 75 rows above the image.
const LANDSCAPE: &str = "images/padchest_16747_3_1.jpg";

/// The `g × g` values of a map, row-major.
fn values(map: &Value) -> Vec<f64> {
    map["values"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect()
}

#[tokio::test]
async fn the_mean_of_each_map_is_the_logit_of_its_finding() {
    let server = default_server();
    for file in [LANDSCAPE, "dicom/cxr_explicit_le.dcm"] {
        let image = fixture(file);
        let body = expect_prediction(
            post_raw(server, "?model=both&explain=cam", image.media_type(), image.bytes()).await,
            &["color", "gray"],
            file,
        )
        .await;
        for result in body["results"].as_array().unwrap() {
            let explanation = &result["explanation"];
            assert_eq!(explanation["method"], "cam", "{file}");
            let g = explanation["grid"].as_u64().unwrap() as usize;
            assert_eq!(g, 8, "Inception-V3 at 299² ends in an 8 × 8 map");
            let maps = explanation["maps"].as_array().unwrap();
            assert_eq!(maps.iter().map(|m| m["label"].as_str().unwrap()).collect::<Vec<_>>(), LABELS);
            let mut spread = 0f64;
            for (map, p) in maps.iter().zip(probabilities(result)) {
                let v = values(map);
                assert_eq!(v.len(), g * g);
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                // The logit of the served probability, not a number the server put beside the map.
                let logit = (p / (1.0 - p)).ln();
                assert!(
                    (mean - logit).abs() <= 1e-4,
                    "{file} {} {}: mean {mean} vs logit {logit}",
                    result["model"],
                    map["label"]
                );
                assert!((map["logit"].as_f64().unwrap() - logit).abs() <= 1e-4);
                spread =
                    spread.max(v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min));
            }
            assert!(spread > 1e-3, "{file}: the maps vary over the image");
            assert!(result["timing_ms"]["explain"].as_f64().is_some());
        }
    }
}

#[tokio::test]
async fn the_maps_are_the_models_cam_output_placed_on_the_original_image() {
    let server = default_server();
    let image = fixture(LANDSCAPE);
    let body = expect_prediction(
        post_raw(server, "?model=gray&explain=cam", image.media_type(), image.bytes()).await,
        &["gray"],
        LANDSCAPE,
    )
    .await;
    let explanation = &body["results"][0]["explanation"];
    // 1036 × 885 letterboxed to a 1036 square: the image starts (1036 − 885) / 2 = 75 rows down.
    assert_eq!(explanation["image"], json!([1036, 885]));
    assert_eq!(explanation["origin"], json!([0.0, -75.0]));
    assert_eq!(explanation["cell"], json!(1036.0 / 8.0));

    // The same pixels through `/v2`, asking for the raw `cam` output.
    let decoded = decode(&image.bytes(), &DecodeLimits::default()).unwrap();
    let tensor = Preprocessor::new(299, Normalization::INCEPTION).tensor(&decoded.image, 1);
    let request = json!({
        "inputs": [{ "name": "image", "shape": [1, 1, 299, 299], "datatype": "FP32", "data": tensor }],
        "outputs": [{ "name": "cam" }, { "name": "logits" }],
    });
    let response = client().post(server.url("/v2/models/gray/infer")).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let v2: Value = response.json().await.unwrap();
    assert_eq!(v2["outputs"][0]["shape"], json!([1, 14, 8, 8]));
    let raw: Vec<f64> = v2["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let served: Vec<f64> = explanation["maps"].as_array().unwrap().iter().flat_map(values).collect();
    let diff = raw.iter().zip(&served).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff <= 1e-5, "/predict maps vs the model's cam output: max |Δ| {diff}");
}

#[tokio::test]
async fn without_explain_the_response_is_unchanged() {
    let server = default_server();
    let image = fixture("images/nih_00000001_000.png");
    let plain =
        expect_prediction(post_raw(server, "", image.media_type(), image.bytes()).await, &["gray"], "plain").await;
    assert!(plain["results"][0].get("explanation").is_none());
    assert!(plain["results"][0]["timing_ms"].get("explain").is_none());
    let explained =
        expect_prediction(post_raw(server, "?explain=cam", image.media_type(), image.bytes()).await, &["gray"], "cam")
            .await;
    assert_eq!(
        probabilities(&plain["results"][0]),
        probabilities(&explained["results"][0]),
        "fetching the maps changes nothing"
    );
}

#[tokio::test]
async fn overlays_draw_the_top_findings_over_the_xray() {
    let server = default_server();
    let image = fixture(LANDSCAPE);
    let body = expect_prediction(
        post_raw(server, "?model=color&explain=cam&overlay=png&top=2", image.media_type(), image.bytes()).await,
        &["color"],
        "overlay",
    )
    .await;
    let result = &body["results"][0];
    let mut ranked: Vec<(f64, &str)> = probabilities(result).into_iter().zip(LABELS).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let maps = result["explanation"]["maps"].as_array().unwrap();
    let drawn: Vec<&str> =
        maps.iter().filter(|m| m.get("overlay_png").is_some()).map(|m| m["label"].as_str().unwrap()).collect();
    let mut top: Vec<&str> = ranked[..2].iter().map(|(_, l)| *l).collect();
    top.sort_by_key(|l| LABELS.iter().position(|x| x == l));
    assert_eq!(drawn, top, "the two most probable findings, in label order");
    for map in maps.iter().filter(|m| m.get("overlay_png").is_some()) {
        let png = base64::engine::general_purpose::STANDARD.decode(map["overlay_png"].as_str().unwrap()).unwrap();
        let picture = image::load_from_memory_with_format(&png, image::ImageFormat::Png).expect("a PNG").to_rgb8();
        // 1036 × 885 shrunk to 512 on the longer side.
        assert_eq!(picture.dimensions(), (512, 437));
        assert!(picture.pixels().any(|p| p.0[0] != p.0[2]), "a coloured heatmap over the gray film");
    }
}

#[tokio::test]
async fn bad_explain_parameters_are_400_problems() {
    let server = default_server();
    let image = fixture("images/nih_00000001_000.png");
    for query in [
        "?explain=gradcam",
        "?explain=",
        "?overlay=png",
        "?explain=cam&overlay=jpeg",
        "?explain=cam&overlay=png&top=0",
        "?explain=cam&overlay=png&top=15",
        "?explain=cam&overlay=png&top=two",
        "?explain=cam&top=2",
    ] {
        let problem =
            expect_problem(post_raw(server, query, image.media_type(), image.bytes()).await, 400, "bad-request").await;
        println!("{query}: {}", problem["detail"]);
    }
}

#[tokio::test]
async fn the_server_default_explains_and_a_request_can_opt_out() {
    let server = TestServer::start(config(&["--explain", "cam"]));
    let image = fixture("images/nih_00000001_000.png");
    let explained =
        expect_prediction(post_raw(&server, "", image.media_type(), image.bytes()).await, &["gray"], "default").await;
    assert_eq!(explained["results"][0]["explanation"]["maps"].as_array().unwrap().len(), 14);
    let plain = expect_prediction(
        post_raw(&server, "?explain=none", image.media_type(), image.bytes()).await,
        &["gray"],
        "opt out",
    )
    .await;
    assert!(plain["results"][0].get("explanation").is_none());
}

#[tokio::test]
async fn v2_offers_the_feature_map_and_the_maps_on_request() {
    let server = default_server();
    let metadata: Value = client().get(server.url("/v2/models/color")).send().await.unwrap().json().await.unwrap();
    let outputs: Vec<(&str, Value)> = metadata["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["shape"].clone()))
        .collect();
    assert_eq!(
        outputs,
        [
            ("probabilities", json!([-1, 14])),
            ("logits", json!([-1, 14])),
            ("features", json!([-1, 2048, 8, 8])),
            ("cam", json!([-1, 14, 8, 8])),
        ]
    );
    // Two images, features as binary data: the cam of each is its features through the classifier, so the mean of
    // the cam equals the logits, and the features are post-ReLU activations (non-negative, not all zero).
    let tensor: Vec<f32> = (0..2 * 3 * 299 * 299).map(|i| ((i % 997) as f32 / 498.0) - 1.0).collect();
    let request = json!({
        "inputs": [{ "name": "image", "shape": [2, 3, 299, 299], "datatype": "FP32", "data": tensor }],
        "outputs": [{ "name": "features", "parameters": { "binary_data": true } }, { "name": "cam" }, { "name": "logits" }],
    });
    let response = client().post(server.url("/v2/models/color/infer")).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header_len: usize = response.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let body = response.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&body[..header_len]).unwrap();
    assert_eq!(head["outputs"][0]["shape"], json!([2, 2048, 8, 8]));
    let features: Vec<f32> =
        body[header_len..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(features.len(), 2 * 2048 * 64);
    assert!(features.iter().all(|v| *v >= 0.0) && features.iter().any(|v| *v > 0.0));
    let cam: Vec<f64> = head["outputs"][1]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let logits: Vec<f64> = head["outputs"][2]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (map, logit) in cam.chunks_exact(64).zip(&logits) {
        let mean = map.iter().sum::<f64>() / 64.0;
        assert!((mean - logit).abs() <= 1e-4, "mean {mean} vs logit {logit}");
    }
    let unknown = json!({
        "inputs": [{ "name": "image", "shape": [1, 3, 299, 299], "datatype": "FP32", "data": vec![0.0f32; 3 * 299 * 299] }],
        "outputs": [{ "name": "heatmap" }],
    });
    let response = client().post(server.url("/v2/models/color/infer")).json(&unknown).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("features, cam"), "{error}");
}

#[tokio::test]
async fn maps_through_an_io_binding_are_the_maps_of_a_plain_run() {
    // The bound path rebinds its outputs at every run: a plain run after an explained one fetches no maps, and an
    // explained one after a plain one gets them back, equal to what the default (unbound) server returns.
    let bound = TestServer::start(config(&["--io-binding", "on"]));
    let image = fixture("images/nih_00000001_000.png");
    let reference = expect_prediction(
        post_raw(default_server(), "?explain=cam", image.media_type(), image.bytes()).await,
        &["gray"],
        "plain",
    )
    .await;
    let reference: Vec<f64> =
        reference["results"][0]["explanation"]["maps"].as_array().unwrap().iter().flat_map(values).collect();
    for query in ["", "?explain=cam", "", "?explain=cam"] {
        let body =
            expect_prediction(post_raw(&bound, query, image.media_type(), image.bytes()).await, &["gray"], query).await;
        let explanation = body["results"][0].get("explanation");
        assert_eq!(explanation.is_some(), !query.is_empty(), "{query}");
        if let Some(explanation) = explanation {
            let maps: Vec<f64> = explanation["maps"].as_array().unwrap().iter().flat_map(values).collect();
            let diff = maps.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff <= 1e-5, "bound vs plain maps: max |Δ| {diff}");
        }
    }
}
