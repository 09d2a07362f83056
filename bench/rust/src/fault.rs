//! `cxr-faultload`: a saturated closed loop with faulty clients mixed in, then SIGTERM under load.
//!
//! It starts the real `cxr-serve` (port 0, `--body-timeout-secs` short so that slow uploads are cut within the run),
//! and for `--duration-secs`:
//! - `--clients` well-behaved clients post the 1024² DICOM to `/predict` in a closed loop (keep-alive);
//! - `--fault-clients` clients cycle through faults, each on its own TCP connection or request: a client that
//!   disconnects mid-upload, a slowloris upload (100 bytes every 200 ms), a body declared far over the size
//!   limit, random bytes, a truncated DICOM, an unknown model, a malformed Open Inference Protocol request;
//! - the server's RSS is sampled every 5 s.
//!
//! Then SIGTERM while the good clients still have requests in flight: those must complete, the server must exit 0.
//! The verdict: every request was answered (or its connection closed by the client on purpose), no 5xx except 503
//! for overload, RSS bounded (last sample ≤ 1.25 × the sample at 1 minute), in-flight requests completed, exit 0. It prints a markdown
//! summary and writes JSON; the exit status is 1 when the verdict fails (this tool is a check, not a benchmark).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BenchError;
use crate::process::{ServerProcess, rss_kib};

/// The flags of `cxr-faultload`.
#[derive(Debug, clap::Parser)]
#[command(name = "cxr-faultload", about = "Saturated load with faulty clients mixed in, then SIGTERM under load")]
pub struct FaultConfig {
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    #[arg(long, env = "ORT_DYLIB_PATH", default_value = cxr_serve::config::DEFAULT_ORT_DYLIB)]
    pub ort_dylib: PathBuf,
    /// The `cxr-serve` binary (default: next to this one).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    #[arg(long, default_value = "tests/data")]
    pub testdata: PathBuf,
    #[arg(long, default_value_t = 300.0)]
    pub duration_secs: f64,
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    #[arg(long, default_value_t = 4)]
    pub fault_clients: usize,
    /// Passed to the server: slow uploads are cut after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub body_timeout_secs: u64,
    #[arg(long, default_value = "bench-results/faultload.json")]
    pub out: PathBuf,
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    DisconnectMidUpload,
    SlowUpload,
    OversizedBody,
    RandomBytes,
    TruncatedDicom,
    UnknownModel,
    MalformedV2,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::DisconnectMidUpload,
        Fault::SlowUpload,
        Fault::OversizedBody,
        Fault::RandomBytes,
        Fault::TruncatedDicom,
        Fault::UnknownModel,
        Fault::MalformedV2,
    ];

    /// The statuses the server may answer this fault with (`0`: the client closed the connection on purpose).
    fn allowed(self, status: u16) -> bool {
        match self {
            Fault::DisconnectMidUpload => status == 0,
            Fault::SlowUpload => status == 408,
            Fault::OversizedBody => status == 413,
            Fault::RandomBytes => status == 415,
            Fault::TruncatedDicom => status == 422,
            Fault::UnknownModel => status == 404,
            Fault::MalformedV2 => status == 400,
        }
    }
}

/// What happened, by request kind and outcome (`status` or `error: ...`).
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    pub good: BTreeMap<String, u64>,
    pub faults: BTreeMap<Fault, BTreeMap<String, u64>>,
    pub unexpected: Vec<String>,
}

/// The run's results.
#[derive(Debug, Serialize)]
pub struct FaultReport {
    pub duration_s: f64,
    pub tally: Tally,
    pub rss_mib: Vec<f64>,
    pub sigterm_in_flight: u64,
    pub sigterm_completed_ok: u64,
    pub sigterm_failed: Vec<String>,
    pub exit_code: Option<i32>,
    pub passed: bool,
    pub verdict: Vec<String>,
}

async fn raw_request(addr: std::net::SocketAddr, fault: Fault, dicom: &[u8], timeout: Duration) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return "error: connect".into() };
    let head = |len: usize, path: &str, ctype: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    match fault {
        Fault::DisconnectMidUpload => {
            let _ = stream.write_all(head(dicom.len(), "/predict", "application/dicom").as_bytes()).await;
            let _ = stream.write_all(&dicom[..dicom.len() / 8]).await;
            "0".into()
        }
        Fault::SlowUpload => {
            if stream.write_all(head(dicom.len(), "/predict", "application/dicom").as_bytes()).await.is_err() {
                return "error: write".into();
            }
            let started = Instant::now();
            let mut sent = 0;
            let mut buf = [0u8; 256];
            // Trickle until the server answers (it must, at its body timeout) or our patience ends.
            while started.elapsed() < timeout + Duration::from_secs(10) && sent < dicom.len() {
                let chunk = &dicom[sent..(sent + 100).min(dicom.len())];
                if stream.write_all(chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
                if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
                    return status_of(&buf[..n]);
                }
            }
            return read_status(&mut stream).await;
        }
        Fault::OversizedBody => {
            let _ = stream.write_all(head(200 * 1024 * 1024, "/predict", "application/dicom").as_bytes()).await;
            let _ = stream.write_all(&dicom[..64 * 1024]).await;
            return read_status(&mut stream).await;
        }
        _ => "error: not a raw fault".into(),
    }
}

fn status_of(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .map_or_else(|| "error: no status line".into(), |s| s.to_string())
}

async fn read_status(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 512];
    match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => status_of(&buf[..n]),
        Ok(_) => "error: closed by the server without an answer".into(),
        Err(_) => "error: no answer within 30 s".into(),
    }
}

/// Runs the check; the report says whether it passed.
pub fn run(config: &FaultConfig) -> Result<FaultReport, BenchError> {
    let dicom = std::fs::read(config.testdata.join("dicom/cxr_explicit_le.dcm"))
        .map_err(|e| BenchError::Setup(format!("fixture: {e}")))?;
    let server_bin = config.server_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("cxr-serve")))
            .unwrap_or_else(|| "cxr-serve".into())
    });
    if let Some(dir) = config.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
    }
    let args: Vec<String> = vec![
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--models".into(),
        config.models.display().to_string(),
        "--ort-dylib".into(),
        std::path::absolute(&config.ort_dylib).unwrap_or(config.ort_dylib.clone()).display().to_string(),
        "--body-timeout-secs".into(),
        config.body_timeout_secs.to_string(),
        "--shutdown-grace-secs".into(),
        "60".into(),
    ];
    let log = config.out.with_extension("cxr-serve.log");
    let server = ServerProcess::spawn("cxr-serve", &server_bin, &args, &log, Duration::from_secs(60))?;
    let addr = server.addr();
    let pid = server.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("tokio: {e}")))?;
    let target = crate::http::Target::new(&format!("http://{addr}"))?;
    runtime
        .block_on(target.wait_ready(Duration::from_secs(300), || true))
        .map_err(|e| BenchError::Setup(format!("cxr-serve not ready: {e}")))?;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let dicom = Arc::new(dicom);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(config.duration_secs);
    let stop_good = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let in_flight_at_sigterm = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sigterm_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let sigterm_results: Arc<Mutex<(u64, Vec<String>)>> = Arc::default();

    let report = runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(120)).build().expect("client");
        let mut tasks = Vec::new();
        let mut fault_tasks = Vec::new();
        for _ in 0..config.clients {
            let (client, dicom, tally, stop) =
                (client.clone(), Arc::clone(&dicom), Arc::clone(&tally), Arc::clone(&stop_good));
            let (sigterm_at, results, in_flight) =
                (Arc::clone(&sigterm_at), Arc::clone(&sigterm_results), Arc::clone(&in_flight_at_sigterm));
            let url = format!("http://{addr}/predict");
            tasks.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let sent_at = Instant::now();
                    let answer =
                        client.post(&url).header("content-type", "application/dicom").body(dicom.to_vec()).send().await;
                    let before_sigterm = sigterm_at.lock().unwrap().is_some_and(|t| sent_at < t);
                    let after_sigterm = sigterm_at.lock().unwrap().is_some();
                    let outcome = match &answer {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(e) => format!("error: {}", if e.is_connect() { "connect" } else { "transport" }),
                    };
                    if after_sigterm {
                        if before_sigterm {
                            in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let mut r = results.lock().unwrap();
                            if outcome == "200" { r.0 += 1 } else { r.1.push(outcome.clone()) }
                        }
                        // Requests sent after SIGTERM may find the listener closed: the loop ends.
                        break;
                    }
                    *tally.lock().unwrap().good.entry(outcome).or_default() += 1;
                }
            }));
        }
        for k in 0..config.fault_clients {
            let (client, dicom, tally) = (client.clone(), Arc::clone(&dicom), Arc::clone(&tally));
            let timeout = Duration::from_secs(config.body_timeout_secs);
            fault_tasks.push(tokio::spawn(async move {
                let mut i = k;
                while Instant::now() < deadline {
                    let fault = Fault::ALL[i % Fault::ALL.len()];
                    i += 1;
                    let outcome = match fault {
                        Fault::DisconnectMidUpload | Fault::SlowUpload | Fault::OversizedBody => {
                            raw_request(addr, fault, &dicom, timeout).await
                        }
                        _ => {
                            let (path, ctype, body): (String, &str, Vec<u8>) = match fault {
                                Fault::RandomBytes => (
                                    "/predict".into(),
                                    "application/octet-stream",
                                    (0..4096u32).map(|x| (x.wrapping_mul(2654435761) >> 13) as u8).collect(),
                                ),
                                Fault::TruncatedDicom => {
                                    ("/predict".into(), "application/dicom", dicom[..dicom.len() / 2].to_vec())
                                }
                                Fault::UnknownModel => {
                                    ("/predict?model=mri".into(), "application/dicom", dicom.to_vec())
                                }
                                _ => (
                                    "/v2/models/gray/infer".into(),
                                    "application/json",
                                    br#"{"inputs": [{"name": "image"}]}"#.to_vec(),
                                ),
                            };
                            match client
                                .post(format!("http://{addr}{path}"))
                                .header("content-type", ctype)
                                .body(body)
                                .send()
                                .await
                            {
                                Ok(r) => r.status().as_u16().to_string(),
                                Err(_) => "error: transport".into(),
                            }
                        }
                    };
                    *tally.lock().unwrap().faults.entry(fault).or_default().entry(outcome).or_default() += 1;
                }
            }));
        }
        // RSS every 5 s until the deadline.
        let mut rss = Vec::new();
        while Instant::now() < deadline {
            if let Some(kib) = pid.and_then(rss_kib) {
                rss.push(kib as f64 / 1024.0);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        // The faulty clients end at the deadline; then SIGTERM with the good clients mid-request.
        for task in fault_tasks {
            let _ = task.await;
        }
        *sigterm_at.lock().unwrap() = Some(Instant::now());
        stop_good.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(pid) = pid {
            // SAFETY: kill(2) on the child's pid with SIGTERM has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        for task in tasks {
            let _ = task.await;
        }
        rss
    });
    let exit = server.stop(Duration::from_secs(90));
    let tally = Arc::try_unwrap(tally).map(|m| m.into_inner().unwrap()).unwrap_or_default();
    let (completed, failed) = std::mem::take(&mut *sigterm_results.lock().unwrap());
    let mut verdict = Vec::new();
    let mut unexpected = Vec::new();
    for (outcome, n) in &tally.good {
        if outcome != "200" && outcome != "503" {
            unexpected.push(format!("good request: {outcome} × {n}"));
        }
    }
    for (fault, outcomes) in &tally.faults {
        for (outcome, n) in outcomes {
            let ok = outcome.parse::<u16>().is_ok_and(|s| fault.allowed(s) || s == 503);
            if !ok {
                unexpected.push(format!("{fault:?}: {outcome} × {n}"));
            }
        }
    }
    if !unexpected.is_empty() {
        verdict.push(format!("unexpected outcomes: {}", unexpected.join("; ")));
    }
    // Allocator arenas and ONNX Runtime's buffers grow during the first minute; bounded means flat after it.
    let baseline = report.get(12).or(report.first());
    if let (Some(base), Some(last)) = (baseline, report.last())
        && last / base > 1.25
    {
        verdict.push(format!("RSS grew from {base:.0} MiB (after 1 min) to {last:.0} MiB"));
    }
    if !failed.is_empty() {
        verdict.push(format!("requests in flight at SIGTERM that did not complete: {failed:?}"));
    }
    let exit_code = exit.and_then(|s| s.code());
    if exit_code != Some(0) {
        verdict.push(format!("exit status after SIGTERM: {exit:?}"));
    }
    let passed = verdict.is_empty();
    let result = FaultReport {
        duration_s: started.elapsed().as_secs_f64(),
        tally: Tally { unexpected, ..tally },
        rss_mib: report,
        sigterm_in_flight: in_flight_at_sigterm.load(std::sync::atomic::Ordering::SeqCst),
        sigterm_completed_ok: completed,
        sigterm_failed: failed,
        exit_code,
        passed,
        verdict,
    };
    let json = serde_json::to_string_pretty(&result).expect("JSON");
    std::fs::write(&config.out, json).map_err(|e| BenchError::Setup(format!("{}: {e}", config.out.display())))?;
    Ok(result)
}

impl FaultReport {
    /// The markdown summary.
    pub fn markdown(&self) -> String {
        let mut out =
            format!("### cxr-faultload ({:.0} s)\n\n| requests | outcome | count |\n|---|---|---|\n", self.duration_s);
        for (outcome, n) in &self.tally.good {
            out.push_str(&format!("| good (DICOM /predict) | {outcome} | {n} |\n"));
        }
        for (fault, outcomes) in &self.tally.faults {
            for (outcome, n) in outcomes {
                let shown = if outcome == "0" { "closed by the client (on purpose)" } else { outcome };
                out.push_str(&format!("| {fault:?} | {shown} | {n} |\n"));
            }
        }
        let (min, max) = self.rss_mib.iter().fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
        out.push_str(&format!(
            "\nRSS every 5 s: first {:.0} MiB, last {:.0} MiB, min {min:.0}, max {max:.0} ({} samples). SIGTERM under load: \
             {} requests in flight, {} completed with 200, exit code {:?}.\n\n{}\n",
            self.rss_mib.first().copied().unwrap_or(0.0),
            self.rss_mib.last().copied().unwrap_or(0.0),
            self.rss_mib.len(),
            self.sigterm_in_flight,
            self.sigterm_completed_ok,
            self.exit_code,
            if self.passed { "PASSED".to_string() } else { format!("FAILED: {}", self.verdict.join(" | ")) }
        ));
        out
    }
}
