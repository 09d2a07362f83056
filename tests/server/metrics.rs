//! `GET /metrics`: the series move with traffic, and the exposition passes `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{
    TestServer, client, config, expect_prediction, expect_problem, fixture, has_series, metric, post_raw, scrape,
};

#[tokio::test]
async fn series_move_with_traffic() {
    // A server of its own, so that no other test's traffic shows up in its counters.
    let server = TestServer::start(config(&[]));
    let before = scrape(&server).await;
    for series in ["cxr_end_to_end_duration_seconds_count", "cxr_queue_wait_seconds_count", "cxr_batch_size_count"] {
        assert_eq!(metric(&before, series, &[("model", "gray")]), 0.0, "{series} before any traffic");
    }
    assert_eq!(metric(&before, "cxr_errors_total", &[("type", "unsupported-media-type")]), 0.0);
    let info = [("model", "gray"), ("provider", "CPUExecutionProvider"), ("trained", "false")];
    assert_eq!(metric(&before, "cxr_model_info", &info), 1.0, "model info: {before}");
    assert_eq!(metric(&before, "cxr_model_info", &[("model", "color")]), 1.0);

    let png = fixture("images/nih_00000001_000.png");
    expect_prediction(post_raw(&server, "?model=gray", "image/png", png.bytes()).await, &["gray"], "gray").await;
    expect_prediction(post_raw(&server, "?model=both", "image/png", png.bytes()).await, &["color", "gray"], "both")
        .await;
    let garbage = b"definitely not an image".repeat(4);
    expect_problem(post_raw(&server, "", "image/png", garbage).await, 415, "unsupported-media-type").await;
    let response = client().get(server.url("/no/such/route/12345")).send().await.unwrap();
    expect_problem(response, 404, "not-found").await;

    let after = scrape(&server).await;
    let requests = |route: &str, method: &str, status: &str| {
        metric(&after, "cxr_http_requests_total", &[("route", route), ("method", method), ("status", status)])
    };
    assert_eq!(requests("/predict", "POST", "200"), 2.0, "{after}");
    assert_eq!(requests("/predict", "POST", "415"), 1.0);
    assert_eq!(requests("unmatched", "GET", "404"), 1.0, "unmatched routes share one label");
    assert!(!after.contains("/no/such/route"), "raw paths never become labels");
    assert_eq!(requests("/metrics", "GET", "200"), 1.0, "the first scrape");
    assert_eq!(metric(&after, "cxr_http_request_duration_seconds_count", &[("route", "/predict")]), 3.0);
    assert_eq!(metric(&after, "cxr_http_requests_in_flight", &[]), 1.0, "only the scrape itself");

    assert_eq!(metric(&after, "cxr_errors_total", &[("type", "unsupported-media-type")]), 1.0);
    assert_eq!(metric(&after, "cxr_errors_total", &[("type", "not-found")]), 1.0);
    assert_eq!(metric(&after, "cxr_errors_total", &[("type", "corrupt-image")]), 0.0);

    // Two gray runs and one color run, each through every stage.
    for (model, runs) in [("gray", 2.0), ("color", 1.0)] {
        let labels = [("model", model)];
        for series in [
            "cxr_decode_duration_seconds_count",
            "cxr_preprocess_duration_seconds_count",
            "cxr_queue_wait_seconds_count",
            "cxr_end_to_end_duration_seconds_count",
        ] {
            assert_eq!(metric(&after, series, &labels), runs, "{series}{{model={model}}}");
        }
        let batches = metric(&after, "cxr_batch_size_count", &labels);
        assert!(batches >= 1.0 && batches <= runs, "{model}: {batches} batches");
        assert_eq!(metric(&after, "cxr_inference_duration_seconds_count", &labels), batches);
        assert_eq!(metric(&after, "cxr_batch_size_sum", &labels), runs, "images run");
        assert!(metric(&after, "cxr_inference_duration_seconds_sum", &labels) > 0.0);
        let bucket = [("model", model), ("le", "+Inf")];
        assert_eq!(metric(&after, "cxr_end_to_end_duration_seconds_bucket", &bucket), runs);
        assert_eq!(metric(&after, "cxr_queue_depth", &labels), 0.0);
        assert_eq!(metric(&after, "cxr_pending_requests", &labels), 0.0);
    }
    assert!(has_series(&after, "cxr_end_to_end_duration_seconds_bucket", &[("le", "0.001")]), "1 ms bucket");
    assert!(has_series(&after, "cxr_end_to_end_duration_seconds_bucket", &[("le", "16.384")]), "16 s bucket");
    // The model=both request was one A/B pair.
    assert_eq!(metric(&after, "cxr_ab_top_finding_total", &[("source", "both")]), 1.0);
    assert_eq!(metric(&after, "cxr_ab_abs_diff_count", &[("label", "Effusion"), ("source", "both")]), 1.0);
    assert!(metric(&after, "cxr_process_resident_memory_bytes", &[]) > 50e6, "two Inception-V3 sessions are resident");
    assert!(metric(&after, "cxr_process_cpu_seconds_total", &[]) > 0.0);
}

/// The exposition of a server that has seen traffic, linted by Prometheus's own `promtool check metrics`.
#[tokio::test]
async fn the_exposition_passes_promtool() {
    let Some(promtool) = promtool() else { return };
    let server = TestServer::start(config(&["--shadow", "color"]));
    let png = fixture("images/nih_00000001_000.png");
    for query in ["", "?model=both", "?model=color"] {
        assert_eq!(post_raw(&server, query, "image/png", png.bytes()).await.status(), 200, "{query}");
    }
    assert_eq!(post_raw(&server, "", "image/png", b"garbage".to_vec()).await.status(), 415);
    let text = scrape(&server).await;

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).expect("pipe the scrape into promtool");
    let output = child.wait_with_output().expect("promtool finishes");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics found problems ({}):\n{}{}\n--- exposition ---\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// `promtool` from PATH. Without it the lint cannot run: in CI (`CI` set) that fails the test; elsewhere it is
/// skipped with a loud message (`scripts/setup-system.sh` installs it).
fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("promtool")).find(|p| p.is_file()));
    if found.is_none() {
        let message = "promtool not found: `promtool check metrics` cannot lint /metrics (scripts/setup-system.sh \
                       installs Debian's prometheus package, which provides it)";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("\n!!!!!!!!!! SKIPPED the_exposition_passes_promtool: {message} !!!!!!!!!!\n");
    }
    found
}

#[tokio::test]
async fn queued_jobs_of_departed_clients_are_dropped_and_counted() {
    // One image per session run and a queue long enough for everyone: the clients give up while their jobs wait.
    let server = TestServer::start(config(&["--max-batch", "1", "--queue-capacity", "16"]));
    let png = fixture("images/nih_00000001_000.png").bytes();
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(150)).build().unwrap();
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let request =
                impatient.post(server.url("/predict?model=gray")).header("content-type", "image/png").body(png.clone());
            tokio::spawn(request.send())
        })
        .collect();
    let mut gave_up = 0;
    for request in requests {
        if request.await.unwrap().is_err() {
            gave_up += 1;
        }
    }
    assert!(gave_up >= 1, "at least one client timed out while queued");

    // The worker finds the abandoned jobs when it reaches them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(&server).await;
        let dropped = metric(&text, "cxr_dropped_jobs_total", &[("model", "gray")]);
        let idle = metric(&text, "cxr_queue_depth", &[("model", "gray")]) == 0.0;
        if dropped >= 1.0 && idle {
            let ran = metric(&text, "cxr_batch_size_sum", &[("model", "gray")]);
            assert!(ran + dropped <= 6.0, "every job either ran or was dropped, once: {ran} + {dropped}");
            break;
        }
        assert!(Instant::now() < deadline, "no dropped job counted: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
