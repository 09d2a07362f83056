//! Dynamic batching: a lone request runs at once, concurrent ones share a session run, and batching never changes a
//! result.

use serde_json::Value;

use crate::helpers::{TestServer, client, config, expect_prediction, fixture, post_raw, probabilities};

/// Largest difference allowed between an image run alone and inside a batch.
const BATCH_TOLERANCE: f64 = 1e-5;

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// A server that waits long for batches to fill, so that concurrent requests reliably share a run.
fn patient_server() -> TestServer {
    TestServer::start(config(&["--max-batch", "8", "--max-batch-delay-ms", "300"]))
}

#[tokio::test]
async fn a_lone_request_does_not_wait_for_a_batch() {
    let server = patient_server();
    let png = fixture("images/nih_00000001_000.png");
    for _ in 0..3 {
        let body = expect_prediction(post_raw(&server, "", "image/png", png.bytes()).await, &["gray"], "alone").await;
        let result = &body["results"][0];
        assert_eq!(result["batch_size"], 1);
        // Nothing else was on its way, so the worker ran at once instead of waiting 300 ms for company.
        let queue = result["timing_ms"]["queue"].as_f64().unwrap();
        assert!(queue < 100.0, "a lone request waited {queue} ms in the queue");
    }
}

#[tokio::test]
async fn batched_and_lone_results_are_identical() {
    let server = patient_server();
    let images = ["images/nih_00000001_000.png", "dicom/cxr_explicit_le.dcm", "images/padchest_16747_3_1.jpg"];

    // Each image alone, through both models.
    let mut alone = Vec::new();
    for file in images {
        let image = fixture(file);
        let body = expect_prediction(
            post_raw(&server, "?model=both", image.media_type(), image.bytes()).await,
            &["color", "gray"],
            file,
        )
        .await;
        for result in body["results"].as_array().unwrap() {
            assert_eq!(result["batch_size"], 1, "{file} alone: {result}");
        }
        alone.push(body);
    }

    // Six concurrent requests (each image twice): the batcher sees the others on their way and groups them.
    let requests: Vec<_> = (0..6)
        .map(|i| {
            let image = fixture(images[i % images.len()]);
            let request = client()
                .post(server.url("/predict?model=both"))
                .header("content-type", image.media_type())
                .body(image.bytes());
            tokio::spawn(request.send())
        })
        .collect();
    let mut largest_batch = 0;
    for (i, request) in requests.into_iter().enumerate() {
        let file = images[i % images.len()];
        let body: Value = expect_prediction(request.await.unwrap().expect("answered"), &["color", "gray"], file).await;
        for (model, (batched, lone)) in ["color", "gray"]
            .iter()
            .zip(body["results"].as_array().unwrap().iter().zip(alone[i % 3]["results"].as_array().unwrap()))
        {
            let size = batched["batch_size"].as_u64().unwrap();
            largest_batch = largest_batch.max(size);
            let diff = max_abs_diff(&probabilities(batched), &probabilities(lone));
            assert!(diff <= BATCH_TOLERANCE, "{model}, {file}: batch of {size} differs from the lone run by {diff}");
        }
    }
    assert!(largest_batch > 1, "six concurrent requests with a 300 ms batching window never shared a run");
}
