//! Dynamic batching: a lone request runs at once, concurrent ones share a session run, and batching never changes a
//! result.

use serde_json::Value;

use crate::helpers::{TestServer, client, config, expect_prediction, fixture, max_abs_diff, post_raw, probabilities};

/// Largest difference allowed between an image run alone and inside a batch.
const BATCH_TOLERANCE: f64 = 1e-5;

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

/// Padded batch sizes (the GPU default, forced here on the CPU): every size is warmed before ready, a batch of 3 runs
/// padded to 4 and answers exactly what the images answer alone, and no unwarmed shape is ever run.
#[tokio::test]
async fn padded_batches_answer_like_lone_runs_and_every_size_is_warmed_before_ready() {
    // `auto` (the default) runs plain on the CPU.
    padded_batches("auto", "off").await;
}

/// The same through an ONNX Runtime I/O binding (`--io-binding on`: the session's host allocator on the CPU; pinned
/// memory on CUDA, where `auto` turns it on): same answers as the plain runs of the default server.
#[tokio::test]
async fn io_bound_padded_batches_answer_like_plain_runs() {
    padded_batches("on", "host").await;
}

async fn padded_batches(io_binding: &str, reported: &str) {
    let server = TestServer::start(config(&[
        "--max-batch",
        "8",
        "--max-batch-delay-ms",
        "300",
        "--batch-sizes",
        "1,4",
        "--io-binding",
        io_binding,
    ]));
    let models: Value = client().get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    for model in models["models"].as_array().unwrap() {
        assert_eq!(model["batch_sizes"], serde_json::json!([1, 4, 8]), "{model}");
        assert_eq!(model["warmed_batch_sizes"], model["batch_sizes"], "warmed before /readyz");
        assert_eq!(model["io_binding"], reported, "{model}");
    }
    let images = ["images/nih_00000001_000.png", "dicom/cxr_explicit_le.dcm", "images/padchest_16747_3_1.jpg"];
    let mut alone = Vec::new();
    for file in images {
        let image = fixture(file);
        let body =
            expect_prediction(post_raw(&server, "", image.media_type(), image.bytes()).await, &["gray"], file).await;
        // A lone run here equals a lone run of the default server (plain run, no padding, no binding).
        let plain = post_raw(crate::helpers::default_server(), "", image.media_type(), image.bytes()).await;
        let plain = expect_prediction(plain, &["gray"], file).await;
        let diff = max_abs_diff(&probabilities(&body["results"][0]), &probabilities(&plain["results"][0]));
        assert!(diff <= BATCH_TOLERANCE, "{file}: --io-binding {io_binding} differs from the default server by {diff}");
        alone.push(body);
    }
    let mut largest = 0;
    for _attempt in 0..3 {
        let requests: Vec<_> = images
            .iter()
            .map(|file| {
                let image = fixture(file);
                tokio::spawn(
                    client()
                        .post(server.url("/predict"))
                        .header("content-type", image.media_type())
                        .body(image.bytes())
                        .send(),
                )
            })
            .collect();
        for (i, request) in requests.into_iter().enumerate() {
            let body = expect_prediction(request.await.unwrap().unwrap(), &["gray"], images[i]).await;
            let result = &body["results"][0];
            largest = largest.max(result["batch_size"].as_u64().unwrap());
            let diff = max_abs_diff(&probabilities(result), &probabilities(&alone[i]["results"][0]));
            assert!(diff <= BATCH_TOLERANCE, "{}: padded batch differs from the lone run by {diff}", images[i]);
        }
        if largest == 3 {
            break;
        }
    }
    assert!(largest >= 2, "three concurrent requests never shared a (padded) run");
    let text = crate::helpers::scrape(&server).await;
    for model in ["color", "gray"] {
        assert_eq!(crate::helpers::metric(&text, "cxr_cold_batch_shapes_total", &[("model", model)]), 0.0, "{model}");
    }
}

/// The default queue and request limit grow with --max-batch: a closed loop of 2 × max-batch clients gets no 503,
/// even when the first request runs alone and all the others queue behind it (the old fixed 64-job queue refused
/// them).
#[tokio::test]
async fn two_times_max_batch_clients_get_no_503_with_the_default_limits() {
    const MAX_BATCH: usize = 48;
    let server = TestServer::start(config(&["--max-batch", &MAX_BATCH.to_string()]));
    let models: Value = client().get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["models"][0]["queue_capacity"], 2 * MAX_BATCH);
    let image = fixture("dicom/cxr_explicit_le.dcm");
    let clients: Vec<_> = (0..2 * MAX_BATCH)
        .map(|_| {
            let (url, body, media) = (server.url("/predict"), image.bytes(), image.media_type());
            tokio::spawn(async move {
                let client = client();
                let mut statuses = Vec::new();
                for _ in 0..2 {
                    let response = client.post(&url).header("content-type", media).body(body.clone()).send().await;
                    statuses.push(response.expect("answered").status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in clients {
        statuses.extend(c.await.unwrap());
    }
    let refused = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(refused, 0, "{refused} of {} requests were not 200: {:?}", statuses.len(), statuses);
}
