//! Startup, readiness and shutdown: the in-process router before the models load, the engine's startup checks, and
//! the real binary under SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use cxr_engine::Device;
use cxr_engine::{Engine, EngineError, Provider};
use cxr_serve::{AppState, Config, app};
use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::{client, config, expect_prediction, fixture, models_dir, ort_dylib};

/// A scratch directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("cxr-serve-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn oneshot(state: &AppState, request: Request<Body>) -> (u16, Option<String>, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, retry_after, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn before_the_models_load_only_liveness_is_up() {
    let state = AppState::new(&Config::defaults());
    let (status, _, body) = oneshot(&state, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    for request in [
        Request::get("/readyz").body(Body::empty()).unwrap(),
        Request::get("/v1/models").body(Body::empty()).unwrap(),
        Request::post("/predict").body(Body::from("anything")).unwrap(),
    ] {
        let path = request.uri().path().to_string();
        let (status, retry_after, problem) = oneshot(&state, request).await;
        assert_eq!(status, 503, "{path}: {problem}");
        assert_eq!(problem["type"], "https://cxr.example/problems/not-ready", "{path}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{path}");
        assert!(problem["instance"].as_str().is_some_and(|id| id.len() == 36), "{path}: generated request id");
    }
}

#[test]
fn a_model_that_contradicts_its_file_name_is_a_startup_error_naming_the_file() {
    let models = models_dir();
    let scratch = ScratchDir::new("swapped");
    // The color export under the gray name and vice versa; no sidecars, so the embedded cards speak.
    symlink(models.join("cxr-inception-v3-color.onnx"), scratch.0.join("cxr-inception-v3-gray.onnx")).unwrap();
    symlink(models.join("cxr-inception-v3-gray.onnx"), scratch.0.join("cxr-inception-v3-color.onnx")).unwrap();
    let mut settings = config(&[]).engine_settings();
    settings.models_dir = scratch.0.clone();
    let error = Engine::load(&settings).err().expect("swapped models must not load");
    let message = error.to_string();
    assert!(matches!(error, EngineError::Mismatch { .. } | EngineError::Card { .. }), "{message}");
    assert!(message.contains(&scratch.0.display().to_string()), "the error names the file: {message}");
}

#[test]
fn missing_models_are_a_startup_error_saying_how_to_make_them() {
    let scratch = ScratchDir::new("empty");
    let mut settings = config(&[]).engine_settings();
    settings.models_dir = scratch.0.clone();
    let message = Engine::load(&settings).err().expect("no models, no engine").to_string();
    assert!(message.contains("make models") && message.contains("cxr-inception-v3-"), "{message}");
}

#[test]
fn device_cuda_fails_loudly_or_really_uses_cuda() {
    let mut settings = config(&[]).engine_settings();
    settings.device = Device::Cuda;
    match Engine::load(&settings) {
        Ok(engine) => assert!(engine.models().all(|m| m.info().provider == Provider::Cuda)),
        Err(error) => {
            assert!(matches!(error, EngineError::Cuda { .. }), "{error}");
            assert!(error.to_string().contains("CUDA"), "{error}");
        }
    }
}

#[test]
fn device_auto_falls_back_to_the_cpu() {
    let mut settings = config(&[]).engine_settings();
    settings.device = Device::Auto;
    let engine = Engine::load(&settings).expect("auto always loads");
    for model in engine.models() {
        assert!([Provider::Cpu, Provider::Cuda].contains(&model.info().provider));
    }
}

/// The real binary, killed on drop if still running.
struct ServerProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    fn start(args: &[&str]) -> (ServerProcess, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cxr-serve"))
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cxr-serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first stdout line is {line:?}; stderr: {}", stderr.lock().unwrap()))
            .parse()
            .expect("a socket address");
        (ServerProcess { child, stderr }, addr)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the pid of the child this test started.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
    }

    /// Waits for the exit code, at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "cxr-serve did not exit in {timeout:?}; stderr: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

async fn wait_until_ready(addr: SocketAddr, process: &ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(response) = client().get(format!("http://{addr}/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "cxr-serve never became ready; stderr: {}", process.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_in_flight_request_and_exits_0() {
    let models = path_arg(&models_dir());
    let ort = path_arg(&ort_dylib());
    let (mut process, addr) = ServerProcess::start(&["--models", &models, "--ort-dylib", &ort]);
    wait_until_ready(addr, &process).await;

    // JPEG 2000 decoding plus both models: long enough to still be running when the signal arrives.
    let j2k = fixture("dicom/cxr_j2k_lossless.dcm");
    let in_flight = tokio::spawn(
        client()
            .post(format!("http://{addr}/predict?model=both"))
            .header("content-type", "application/dicom")
            .body(j2k.bytes())
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    process.signal(libc::SIGTERM);

    let response = in_flight.await.unwrap().expect("the in-flight request is answered");
    expect_prediction(response, &["color", "gray"], "request in flight during SIGTERM").await;
    let code = tokio::task::block_in_place(|| process.wait(Duration::from_secs(60)));
    assert_eq!(code, Some(0), "exit code; stderr: {}", process.stderr());
    assert!(client().get(format!("http://{addr}/healthz")).send().await.is_err(), "no longer listening");
    let log = process.stderr();
    assert!(log.contains("shutdown requested") && log.contains("shut down cleanly"), "{log}");
}

#[test]
fn a_shadow_equal_to_the_default_model_is_refused_at_startup() {
    let models = path_arg(&models_dir());
    let ort = path_arg(&ort_dylib());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cxr-serve"))
        .args(["--bind", "127.0.0.1:0", "--models", &models, "--ort-dylib", &ort, "--shadow", "gray"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cxr-serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cxr-serve --shadow gray (the default model) kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stdout.contains("listening"), "it must not bind: {stdout}");
    assert!(stderr.contains("--shadow gray") && stderr.contains("default"), "{stderr}");
}

#[test]
fn a_missing_onnx_runtime_stops_the_binary_with_instructions() {
    let models = path_arg(&models_dir());
    let (mut process, _) =
        ServerProcess::start(&["--models", &models, "--ort-dylib", "/nonexistent/libonnxruntime.so"]);
    let code = process.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1));
    let log = process.stderr();
    assert!(log.contains("scripts/setup-ort.sh") && log.contains("/nonexistent/libonnxruntime.so"), "{log}");
}
