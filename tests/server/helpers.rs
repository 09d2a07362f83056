//! Shared fixtures: paths, the test data manifest, servers on ephemeral ports and response checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use cxr_core::labels::LABELS;
use cxr_serve::{AppState, Config, app};
use serde::Deserialize;
use serde_json::Value;

/// The repository root (the `cxr-serve` crate).
pub const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// The repository's read-only test data (`tests/data/`, described in its README).
pub const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// The directory with the exported models; fails the test with instructions when they are missing.
pub fn models_dir() -> PathBuf {
    // CXR_TEST_MODELS_DIR exists for development against other exports; the suite's default is models/.
    let dir =
        std::env::var_os("CXR_TEST_MODELS_DIR").map_or_else(|| Path::new(CRATE_DIR).join("models"), PathBuf::from);
    for variant in ["color", "gray"] {
        let file = dir.join(format!("cxr-inception-v3-{variant}.onnx"));
        assert!(file.is_file(), "{} is missing: run `make models` first", file.display());
    }
    dir
}

/// `cxr-train`, built beside this test binary by `cargo test --workspace`.
pub fn cxr_train() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("cxr-train");
    assert!(bin.is_file(), "{} is missing: build the workspace (`make build`)", bin.display());
    bin
}

/// The ONNX Runtime library; fails the test with instructions when it is missing.
pub fn ort_dylib() -> PathBuf {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        // The server's own default, made by `scripts/setup-ort.sh`, resolved against the repository root.
        .map_or_else(|| Path::new(CRATE_DIR).join(cxr_serve::config::DEFAULT_ORT_DYLIB), PathBuf::from);
    assert!(path.is_file(), "ONNX Runtime library {} is missing: run scripts/setup-ort.sh", path.display());
    path
}

/// A configuration for tests: real models, port 0, plus `extra` flags.
pub fn config(extra: &[&str]) -> Config {
    let models = models_dir();
    let ort = ort_dylib();
    let mut args: Vec<String> = vec![
        "cxr-serve".into(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--models".into(),
        models.display().to_string(),
        "--ort-dylib".into(),
        ort.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::try_parse_from(args).expect("test configuration parses")
}

/// A server running on its own thread and runtime for the rest of the test process.
pub struct TestServer {
    pub addr: SocketAddr,
}

impl TestServer {
    /// Loads the models with `config` and serves the router on an ephemeral port.
    pub fn start(config: Config) -> TestServer {
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test runtime");
            runtime.block_on(async move {
                let state = match AppState::load(&config).await {
                    Ok(state) => state,
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                        return;
                    }
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
                let _ = ready.send(Ok(listener.local_addr().expect("bound address")));
                axum::serve(listener, app(state)).await.expect("test server runs");
            });
        });
        match started.recv().expect("test server thread reports") {
            Ok(addr) => TestServer { addr },
            Err(error) => panic!("test server failed to start: {error}"),
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The server with the default configuration, shared by every test that needs nothing special.
pub fn default_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(config(&[])))
}

/// A fresh HTTP client (connection pools are tied to the runtime that made them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build().expect("HTTP client")
}

/// One entry of `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    pub file: String,
    pub rows: u32,
    pub columns: u32,
    pub tolerance_max_abs: f64,
}

impl Fixture {
    pub fn path(&self) -> PathBuf {
        Path::new(TESTDATA).join(&self.file)
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.path()).unwrap_or_else(|e| panic!("cannot read {}: {e}", self.path().display()))
    }

    /// The media type a client would declare for the file.
    pub fn media_type(&self) -> &'static str {
        media_type(&self.file)
    }

    /// The `format` the server must report.
    pub fn format(&self) -> &'static str {
        match self.media_type() {
            "application/dicom" => "dicom",
            "image/png" => "png",
            _ => "jpeg",
        }
    }
}

pub fn media_type(file: &str) -> &'static str {
    match Path::new(file).extension().and_then(|e| e.to_str()) {
        Some("dcm") => "application/dicom",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// Every image of the test data manifest.
pub fn manifest() -> Vec<Fixture> {
    let path = Path::new(TESTDATA).join("manifest.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&json).expect("manifest.json parses")
}

/// The manifest entry of `file`.
pub fn fixture(file: &str) -> Fixture {
    manifest().into_iter().find(|f| f.file == file).unwrap_or_else(|| panic!("{file} is not in manifest.json"))
}

/// Sends `bytes` as the raw body of `POST /predict{query}`.
pub async fn post_raw(server: &TestServer, query: &str, media_type: &str, bytes: Vec<u8>) -> reqwest::Response {
    client()
        .post(server.url(&format!("/predict{query}")))
        .header(reqwest::header::CONTENT_TYPE, media_type)
        .body(bytes)
        .send()
        .await
        .expect("request is answered")
}

/// Sends `bytes` as the `file` field of a multipart `POST /predict{query}`.
pub async fn post_multipart(server: &TestServer, query: &str, file: &str, bytes: Vec<u8>) -> reqwest::Response {
    let part =
        reqwest::multipart::Part::bytes(bytes).file_name(file.to_string()).mime_str(media_type(file)).expect("mime");
    let form = reqwest::multipart::Form::new().text("note", "ignored").part("file", part);
    client().post(server.url(&format!("/predict{query}"))).multipart(form).send().await.expect("request is answered")
}

/// Asserts a 200 prediction with the given models, each with 14 valid findings in label order; returns the body.
pub async fn expect_prediction(response: reqwest::Response, models: &[&str], context: &str) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{context}: body is not JSON: {e}"));
    assert_eq!(status, 200, "{context}: {body}");
    let results = body["results"].as_array().unwrap_or_else(|| panic!("{context}: no results: {body}"));
    let names: Vec<&str> = results.iter().map(|r| r["model"].as_str().unwrap_or("?")).collect();
    assert_eq!(names, models, "{context}: models in order");
    for result in results {
        let findings = result["findings"].as_array().expect("findings array");
        assert_eq!(findings.len(), LABELS.len(), "{context}: 14 findings");
        for (finding, label) in findings.iter().zip(LABELS) {
            assert_eq!(finding["label"], label, "{context}: label order");
            let p = finding["probability"].as_f64().expect("numeric probability");
            assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{context}: probability {p} for {label}");
        }
        for key in ["decode", "preprocess", "queue", "inference", "total"] {
            let ms = result["timing_ms"][key].as_f64().unwrap_or_else(|| panic!("{context}: timing_ms.{key}"));
            assert!(ms >= 0.0, "{context}: timing_ms.{key} = {ms}");
        }
    }
    body
}

/// Largest absolute difference between two equally long lists of probabilities.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The probabilities of one result, in label order.
pub fn probabilities(result: &Value) -> Vec<f64> {
    result["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["probability"].as_f64().expect("number"))
        .collect()
}

/// Asserts a problem response of `status` and `slug`; returns the problem.
pub async fn expect_problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(
        response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "problem content type for {slug}"
    );
    let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let actual = response.status().as_u16();
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(actual, status, "status of {problem}");
    assert_eq!(problem["type"], format!("https://cxr.example/problems/{slug}"), "{problem}");
    assert_eq!(problem["status"], status, "{problem}");
    assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()), "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|t| !t.is_empty()), "{problem}");
    assert_eq!(problem["instance"].as_str(), request_id.as_deref(), "instance is the request id: {problem}");
    problem
}

/// `GET /metrics`: asserts the status and content type; returns the exposition text.
pub async fn scrape(server: &TestServer) -> String {
    let response = client().get(server.url("/metrics")).send().await.expect("metrics are answered");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4"),
        "metrics content type"
    );
    response.text().await.expect("metrics text")
}

/// The sum of every sample of `name` whose labels include all of `labels` (0 when there is none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .filter(|(have, _)| labels.iter().all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, value)| value)
        .sum()
}

/// Whether the exposition has at least one sample of `name` with all of `labels`.
pub fn has_series(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    samples(text, name).any(|(have, _)| labels.iter().all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v)))
}

/// The samples of `name` as (labels, value), parsed from the text exposition format.
fn samples<'a>(
    text: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (std::collections::BTreeMap<String, String>, f64)> + 'a {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(move |line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if series_name != name {
            return None;
        }
        let mut parsed = std::collections::BTreeMap::new();
        // Label values here never contain `",` (model names, versions, routes, slugs).
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once("=\"")?;
            parsed.insert(key.to_string(), value.trim_end_matches('"').to_string());
        }
        Some((parsed, value.parse().ok()?))
    })
}

/// `GET /v1/ab` as JSON.
pub async fn ab_summary(server: &TestServer) -> Value {
    let response = client().get(server.url("/v1/ab")).send().await.expect("A/B summary is answered");
    assert_eq!(response.status(), 200);
    response.json().await.expect("A/B summary JSON")
}
