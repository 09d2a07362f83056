//! A/B: `GET /v1/ab` over `model=both` requests and shadow runs (`--shadow`), and the shadow's metrics.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    TestServer, ab_summary, client, config, expect_prediction, expect_problem, fixture, metric, post_raw, scrape,
};

/// Polls `GET /v1/ab` until `count` reaches `expected` (shadow runs finish after their responses).
async fn wait_for_pairs(server: &TestServer, expected: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary = ab_summary(server).await;
        if summary["count"].as_u64() == Some(expected) {
            return summary;
        }
        assert!(Instant::now() < deadline, "expected {expected} pairs: {summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_ordered_percentiles(p: &Value, context: &str) {
    let (p50, p95, p99) = (p["p50"].as_f64().unwrap(), p["p95"].as_f64().unwrap(), p["p99"].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{context}: {p}");
}

#[tokio::test]
async fn both_requests_feed_the_ab_summary() {
    let server = TestServer::start(config(&[]));
    let empty = ab_summary(&server).await;
    assert_eq!(empty["count"], 0, "{empty}");
    assert_eq!(empty["window"], 10_000);
    assert_eq!(empty["sources"], serde_json::json!({"both": 0, "shadow": 0}));
    for key in ["latency_ms", "gray_color_latency_ratio", "mean_abs_diff", "max_abs_diff", "top_finding_agreement"] {
        assert!(empty[key].is_null(), "{key} before any pair: {empty}");
    }

    let images = ["images/nih_00000001_000.png", "dicom/cxr_explicit_le.dcm", "images/padchest_16747_3_1.jpg"];
    for file in images {
        let image = fixture(file);
        let response = post_raw(&server, "?model=both", image.media_type(), image.bytes()).await;
        expect_prediction(response, &["color", "gray"], file).await;
    }
    // Single-model requests are no pairs without --shadow.
    let png = fixture("images/nih_00000001_000.png");
    expect_prediction(post_raw(&server, "", "image/png", png.bytes()).await, &["gray"], "gray only").await;

    let summary = ab_summary(&server).await;
    println!("GET /v1/ab after {} model=both requests: {summary:#}", images.len());
    assert_eq!(summary["count"], 3, "{summary}");
    assert_eq!(summary["recorded_total"], 3);
    assert_eq!(summary["sources"], serde_json::json!({"both": 3, "shadow": 0}));
    for model in ["color", "gray"] {
        for kind in ["model", "end_to_end"] {
            assert_ordered_percentiles(&summary["latency_ms"][model][kind], &format!("{model}.{kind}"));
        }
        let model_p50 = summary["latency_ms"][model]["model"]["p50"].as_f64().unwrap();
        let e2e_p50 = summary["latency_ms"][model]["end_to_end"]["p50"].as_f64().unwrap();
        assert!(model_p50 <= e2e_p50, "{model}: queue + inference is part of end to end");
    }
    let ratios = &summary["gray_color_latency_ratio"];
    assert_eq!(ratios["resamples"], 1000);
    for kind in ["model", "end_to_end"] {
        let estimate = ratios[kind]["estimate"].as_f64().unwrap();
        let (low, high) = (ratios[kind]["ci95"][0].as_f64().unwrap(), ratios[kind]["ci95"][1].as_f64().unwrap());
        assert!(estimate > 0.0 && low <= estimate && estimate <= high, "{kind}: {ratios}");
    }
    let mean = summary["mean_abs_diff"].as_f64().unwrap();
    let max = summary["max_abs_diff"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&mean) && mean <= max && max <= 1.0, "{summary}");
    let agreement = summary["top_finding_agreement"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&agreement), "{summary}");

    // The same samples give the same (cached or recomputed) answer, bootstrap interval included.
    assert_eq!(ab_summary(&server).await, summary);
}

#[tokio::test]
async fn the_shadow_model_runs_off_the_request_path() {
    let server = TestServer::start(config(&["--shadow", "color"]));
    let png = fixture("images/nih_00000001_000.png");
    for i in 0..3 {
        let response = post_raw(&server, "", "image/png", png.bytes()).await;
        // The response is the primary's alone.
        expect_prediction(response, &["gray"], &format!("primary {i}")).await;
    }
    // A request for the shadow model itself is not shadowed, and model=both is a pair of its own kind.
    expect_prediction(post_raw(&server, "?model=color", "image/png", png.bytes()).await, &["color"], "color").await;
    expect_prediction(post_raw(&server, "?model=both", "image/png", png.bytes()).await, &["color", "gray"], "both")
        .await;
    // A request that fails before inference starts no shadow run.
    expect_problem(post_raw(&server, "", "image/png", b"garbage".to_vec()).await, 415, "unsupported-media-type").await;

    let summary = wait_for_pairs(&server, 4).await;
    println!("GET /v1/ab with --shadow color: {summary:#}");
    assert_eq!(summary["sources"], serde_json::json!({"both": 1, "shadow": 3}), "{summary}");
    let text = scrape(&server).await;
    // The shadow ran on the same preprocessed image as the primary: each shadow pair differs per finding exactly as
    // the model=both pair on the same file does.
    for label in cxr_core::labels::LABELS {
        let mean_diff = |source: &str, pairs: f64| {
            metric(&text, "cxr_ab_abs_diff_sum", &[("label", label), ("source", source)]) / pairs
        };
        let (shadow, both) = (mean_diff("shadow", 3.0), mean_diff("both", 1.0));
        assert!((shadow - both).abs() <= 1e-5, "{label}: shadow pairs differ by {shadow}, the both pair by {both}");
    }
    let color = [("model", "color")];
    assert_eq!(metric(&text, "cxr_shadow_duration_seconds_count", &color), 3.0, "{text}");
    assert_eq!(metric(&text, "cxr_shadow_skipped_total", &color), 0.0);
    assert_eq!(metric(&text, "cxr_shadow_failures_total", &color), 0.0);
    assert_eq!(metric(&text, "cxr_ab_top_finding_total", &[("source", "shadow")]), 3.0);
    assert_eq!(metric(&text, "cxr_ab_top_finding_total", &[("source", "both")]), 1.0);
    // Shadow runs are model runs (queue, batch) but not responses (end to end).
    assert_eq!(metric(&text, "cxr_end_to_end_duration_seconds_count", &color), 2.0, "the color and both requests");
    assert_eq!(metric(&text, "cxr_queue_wait_seconds_count", &color), 5.0, "3 shadow + 2 requested runs");
}

#[tokio::test]
async fn a_full_shadow_queue_skips_the_shadow_not_the_request() {
    // One queue slot and one image per run for each model: under a burst the color (shadow) queue is often full.
    let server = TestServer::start(config(&[
        "--shadow",
        "color",
        "--queue-capacity",
        "1",
        "--max-batch",
        "1",
        "--max-concurrent-requests",
        "64",
    ]));
    let png = fixture("images/nih_00000001_000.png").bytes();
    let requests: Vec<_> = (0..12)
        .map(|_| {
            let request = client().post(server.url("/predict")).header("content-type", "image/png").body(png.clone());
            tokio::spawn(request.send())
        })
        .collect();
    let mut served = 0;
    for request in requests {
        let response = request.await.unwrap().expect("answered");
        if response.status() == 200 {
            expect_prediction(response, &["gray"], "primary under load").await;
            served += 1;
        } else {
            // Only the primary's own queue may refuse a request.
            let problem = expect_problem(response, 503, "overloaded").await;
            assert!(problem["detail"].as_str().unwrap().contains("gray"), "{problem}");
        }
    }
    assert!(served >= 1);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(&server).await;
        let color = [("model", "color")];
        let skipped = metric(&text, "cxr_shadow_skipped_total", &color);
        let ran = metric(&text, "cxr_shadow_duration_seconds_count", &color);
        let paired = metric(&text, "cxr_ab_top_finding_total", &[("source", "shadow")]);
        // Every served request's shadow either ran or was skipped (a refused request may have started one too).
        if skipped + ran >= f64::from(served) && metric(&text, "cxr_queue_depth", &color) == 0.0 {
            assert!(skipped >= 1.0, "a burst of 12 against one slot skips shadows: {text}");
            assert!(paired <= ran, "{paired} pairs from {ran} shadow runs");
            break;
        }
        assert!(Instant::now() < deadline, "shadow runs never settled: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
