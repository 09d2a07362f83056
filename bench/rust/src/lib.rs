//! `cxr-bench`: how much the server costs on top of ONNX Runtime, and what it buys over a Python server.
//!
//! One run, for both models on the same files and intra-op thread count, one phase at a time so that nothing else
//! competes for the cores:
//! 1. **raw ONNX Runtime** in this process ([`raw`]): `Session::run` with ONNX Runtime's default session options
//!    (the anchors: as they come, and with one thread per CPU) and with the server's options, batch 1 latency and
//!    batch 1/2/4/8 throughput;
//! 2. **`cxr-serve`** ([`process`], [`http`]): the real binary on `127.0.0.1:0` (or `--url`), latency at concurrency
//!    1 for a 1024² 16-bit PNG and a 1024² DICOM with the server's own `timing_ms` breakdown, closed-loop
//!    throughput at saturation, optionally an RSS soak;
//! 3. **the Python reference** (`bench/python/reference_server.py`: FastAPI + uvicorn + onnxruntime + Pillow/numpy),
//!    one process per model, under the same client with the same PNG.
//!
//! [`report`] turns the measurements into ratios against the targets of issue 10, a markdown table and JSON.
//! This is a benchmark, not a test: it reports whatever it measures and never fails on a missed target.

pub mod config;
pub mod fault;
pub mod http;
pub mod process;
pub mod raw;
pub mod report;
pub mod stats;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use cxr_core::card::ModelVariant;
use cxr_core::decode::{self, DecodeLimits};

pub use self::config::BenchConfig;
use self::config::Plan;
use self::http::{Input, Target};
use self::process::ServerProcess;
use self::report::{GrayOverColor, InputFile, Machine, PairedLatency, PythonModel, Report, ServerModel, ServerRun};
use cxr_serve::engine::{EngineError, EngineSettings, ort_environment};

/// How long a server may take to print its address, and then to become ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a stopped server may take to drain and exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Why a benchmark run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io { path: path.to_path_buf(), source }
}

/// Runs every phase, writes the JSON report and returns it with the JSON's path.
pub fn run(config: &BenchConfig) -> Result<(Report, PathBuf), BenchError> {
    let wall = Instant::now();
    let plan = config.plan();
    let stamp = utc_stamp(SystemTime::now());
    let out = config.out.clone().unwrap_or_else(|| PathBuf::from("bench-results").join(format!("{stamp}.json")));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let log_path = |name: &str| out.with_extension(format!("{name}.log"));
    let mut notes = Vec::new();
    if let Some(url) = &config.url {
        Target::new(url)?;
        notes.push(format!(
            "cxr-serve was not started by the benchmark but reached at {url}: its own flags (threads, --max-batch, \
             device) are whatever it was started with, and its RSS was not sampled."
        ));
    }

    // The server's flags; the raw sessions use the EngineSettings the server derives from the very same flags.
    let mut server_args = vec![
        "--bind".to_string(),
        "127.0.0.1:0".into(),
        "--models".into(),
        config.models.display().to_string(),
        "--device".into(),
        config.device.to_string(),
        "--precision".into(),
        config.precision.to_string(),
        "--io-binding".into(),
        config.io_binding.to_string(),
        "--intra-threads".into(),
        plan.intra_threads.to_string(),
        "--max-batch".into(),
        plan.max_batch.to_string(),
    ];
    let server_config = cxr_serve::Config::try_parse_from(
        std::iter::once("cxr-serve".to_string())
            .chain(server_args.iter().cloned())
            .chain(["--ort-dylib".to_string(), config.ort_dylib.display().to_string()]),
    )
    .map_err(|e| BenchError::Setup(format!("server flags: {e}")))?;
    let settings = server_config.engine_settings();
    let ort_dylib = std::path::absolute(&settings.ort_dylib).unwrap_or_else(|_| settings.ort_dylib.clone());
    server_args.extend(["--ort-dylib".to_string(), ort_dylib.display().to_string()]);
    for variant in ModelVariant::ALL {
        let path = settings.model_path(variant);
        if !path.is_file() {
            return Err(BenchError::Setup(format!("{} does not exist (run `make models`)", path.display())));
        }
    }

    let read =
        |kind: &'static str, content_type: &'static str, path: PathBuf| -> Result<(Input, InputFile), BenchError> {
            let bytes = std::fs::read(&path).map_err(io_error(&path))?;
            let file = InputFile { kind, path: path.display().to_string(), bytes: bytes.len() };
            Ok((Input { kind, content_type, bytes: bytes.into() }, file))
        };
    let (png, png_file) = read("png", "image/png", config.png_path())?;
    let (dicom, dicom_file) = read("dicom", "application/dicom", config.dicom_path())?;

    let _environment = ort_environment(&settings.ort_dylib, None)?;
    let cpu_start = report::CpuSnapshot::take();
    let mut machine = Machine::probe(&ort_dylib.display().to_string(), ort::info(), plan.intra_threads);
    eprintln!(
        "cxr-bench: {} CPUs ({}), ONNX Runtime {}, device {}, {} intra-op threads, {}",
        machine.nproc,
        machine.cpu_model,
        machine.ort_version,
        config.device,
        plan.intra_threads,
        if plan.quick { "quick run" } else { "full run" }
    );
    if let Some(busy) = machine.busy_before_pct.filter(|busy| *busy > 10.0) {
        notes.push(format!(
            "The machine was not idle: {busy:.0} % of the CPU time was busy in the second before the run (load \
             average {}); other work competed for the cores.",
            machine.loadavg_start
        ));
    }

    // 1. Raw ONNX Runtime; no server is running yet.
    let mut raw = Vec::new();
    if config.no_raw {
        notes.push("Raw ONNX Runtime was not measured (--no-raw).".into());
    } else {
        let image = decode::decode(&png.bytes, &DecodeLimits::default())
            .map_err(|e| BenchError::Setup(format!("{}: {e}", png_file.path)))?
            .image;
        if config.url.is_some() {
            notes.push("Raw ONNX Runtime ran while the --url server was (presumably) idle.".into());
        }
        for variant in ModelVariant::ALL {
            for options in raw::RawOptions::ALL {
                eprintln!("cxr-bench: raw ONNX Runtime ({}), {variant} model", options.label());
                raw.push(raw::measure(&settings, variant, &image, &plan, options)?);
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("tokio runtime: {e}")))?;

    // 2. cxr-serve (its process is stopped before the Python reference starts). One ORT-default session per model
    // stays open for the paired c=1 DICOM measurement.
    let paired_raw = if config.no_raw {
        None
    } else {
        let image = decode::decode(&dicom.bytes, &DecodeLimits::default())
            .map_err(|e| BenchError::Setup(format!("{}: {e}", dicom_file.path)))?
            .image;
        let mut sessions = Vec::new();
        for variant in ModelVariant::ALL {
            sessions.push((variant, raw::PairedRaw::open(&settings, variant, &image)?));
        }
        Some(sessions)
    };
    let (server, soak) = runtime.block_on(server_phase(
        config,
        &plan,
        &server_args,
        &png,
        &dicom,
        &log_path("cxr-serve"),
        &mut notes,
        paired_raw,
    ))?;

    // 3. The Python reference server, one model per process.
    let mut python = Vec::new();
    if config.no_python {
        notes.push("The Python reference server was not run (--no-python).".into());
    } else if !config.python.exists() {
        notes.push(format!(
            "The Python reference server was skipped: {} does not exist (run scripts/setup-bench-python.sh, or `make \
             bench`).",
            config.python.display()
        ));
    } else {
        for variant in ModelVariant::ALL {
            eprintln!("cxr-bench: Python reference server, {variant} model");
            let log = log_path(&format!("python-{variant}"));
            match runtime.block_on(python_phase(config, &plan, &settings, variant, &png, &log)) {
                Ok(mut result) => {
                    let server_probs = server.models.iter().find(|m| m.model == variant).and_then(|m| m.latency("png"));
                    result.max_abs_diff_vs_server = server_probs.and_then(|l| {
                        let (a, b) = (&l.probabilities, &result.latency.probabilities);
                        (a.len() == b.len() && !a.is_empty())
                            .then(|| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max))
                    });
                    python.push(result);
                }
                Err(error) => {
                    notes.push(format!("The Python reference server failed for the {variant} model: {error}"))
                }
            }
        }
    }

    machine.loadavg_end = report::loadavg();
    machine.other_work_during_run_pct = cpu_start.zip(report::CpuSnapshot::take()).and_then(|(a, b)| a.others_pct(&b));
    if let Some(others) = machine.other_work_during_run_pct.filter(|p| *p > 5.0) {
        notes.push(format!(
            "Other processes used {others:.0} % of the machine's CPU time during the run: the numbers are disturbed."
        ));
    }
    let mut report = Report {
        started_utc: stamp,
        wall_s: wall.elapsed().as_secs_f64(),
        machine,
        plan,
        device: config.device.to_string(),
        models_dir: config.models.display().to_string(),
        inputs: vec![png_file, dicom_file],
        raw,
        server: Some(server),
        python,
        soak,
        ratios: Vec::new(),
        gray_over_color: GrayOverColor {
            raw_b1_latency: None,
            raw_best_tput: None,
            server_p50_png: None,
            server_p50_dicom: None,
            server_inference_png: None,
            server_tput: None,
            python_p50: None,
            python_tput: None,
            paper_latency: report::PAPER_GRAY_MS / report::PAPER_COLOR_MS,
        },
        targets: Vec::new(),
        notes,
    };
    report.derive();
    let json = serde_json::to_string_pretty(&report).map_err(|e| BenchError::Setup(format!("JSON: {e}")))?;
    std::fs::write(&out, json + "\n").map_err(io_error(&out))?;
    Ok((report, out))
}

/// Starts (or targets) cxr-serve and measures it; stops it before returning.
async fn server_phase(
    config: &BenchConfig,
    plan: &Plan,
    args: &[String],
    png: &Input,
    dicom: &Input,
    log: &Path,
    notes: &mut Vec<String>,
    mut paired_raw: Option<Vec<(ModelVariant, raw::PairedRaw)>>,
) -> Result<(ServerRun, Option<http::Soak>), BenchError> {
    let started = Instant::now();
    let (mut process, target, origin, binary) = match &config.url {
        Some(url) => (None, Target::new(url)?, url.clone(), None),
        None => {
            let binary = config.server_bin();
            if !binary.is_file() {
                return Err(BenchError::Setup(format!(
                    "{} does not exist (build it: cargo build --release, or pass --server-bin)",
                    binary.display()
                )));
            }
            eprintln!("cxr-bench: starting {} (log: {})", binary.display(), log.display());
            let process = ServerProcess::spawn("cxr-serve", &binary, args, log, STARTUP_TIMEOUT)?;
            let target = Target::new(&format!("http://{}", process.addr()))?;
            (Some(process), target, "spawned".to_string(), Some(binary.display().to_string()))
        }
    };
    target.wait_ready(READY_TIMEOUT, || process.as_mut().is_none_or(|p| p.exited().is_none())).await.map_err(|e| {
        match &process {
            Some(p) => p.failure(e),
            None => BenchError::Setup(format!("{}: {e}", target.base())),
        }
    })?;
    let startup_s = process.as_ref().map(|_| started.elapsed().as_secs_f64());

    let mut models = Vec::new();
    for variant in ModelVariant::ALL {
        let mut latency = Vec::new();
        eprintln!("cxr-bench: cxr-serve, {variant} model, png at concurrency 1");
        latency.push(http::latency(&target, variant.as_str(), png, plan.warmup, plan.requests).await?);
        let mut paired = None;
        match paired_raw.as_mut().and_then(|p| p.iter_mut().find(|(v, _)| *v == variant)) {
            Some((_, raw)) => {
                eprintln!("cxr-bench: cxr-serve, {variant} model, dicom at concurrency 1, alternating with raw ORT");
                let (l, raw_ms) =
                    http::latency_paired(&target, variant.as_str(), dicom, plan.warmup, plan.requests, raw).await?;
                paired = Some(PairedLatency { input: dicom.kind, server_client_ms: l.client_ms.clone(), raw_b1_ms: raw_ms });
                latency.push(l);
            }
            None => {
                eprintln!("cxr-bench: cxr-serve, {variant} model, dicom at concurrency 1");
                latency.push(http::latency(&target, variant.as_str(), dicom, plan.warmup, plan.requests).await?);
            }
        }
        models.push((variant, latency, paired));
    }
    let mut server_models = Vec::new();
    for (variant, latency, paired) in models {
        eprintln!("cxr-bench: cxr-serve, {variant} model, saturated with {} clients", plan.concurrency);
        let saturation =
            http::saturate(&target, variant.as_str(), png, plan.concurrency, plan.saturation_warmup(), plan.duration())
                .await;
        // DICOM too: the raw-ORT ratio is about what the server adds, and a 1024² PNG's decode (~6 ms of one core on
        // the development machine, in every server alike) would otherwise dominate it on a small CPU.
        eprintln!("cxr-bench: cxr-serve, {variant} model, saturated with {} clients (DICOM)", plan.concurrency);
        let saturation_dicom =
            http::saturate(&target, variant.as_str(), dicom, plan.concurrency, plan.saturation_warmup(), plan.duration())
                .await;
        server_models.push(ServerModel {
            model: variant,
            latency,
            saturation,
            saturation_dicom: Some(saturation_dicom),
            paired,
        });
    }

    let soak = match plan.soak_minutes {
        Some(minutes) => {
            let pid = process.as_ref().and_then(ServerProcess::pid);
            if pid.is_none() {
                notes.push("Soak with --url: the server's RSS cannot be sampled.".into());
            }
            eprintln!("cxr-bench: soak, {minutes} min saturated, sampling RSS every 10 s");
            Some(http::soak(&target, png, plan.concurrency, minutes, move || pid.and_then(process::rss_kib)).await)
        }
        None => None,
    };

    let rss_mib = process.as_ref().and_then(ServerProcess::rss_kib).map(|kib| kib as f64 / 1024.0);
    if let Some(process) = process {
        match process.stop(STOP_GRACE) {
            Some(status) if status.success() => {}
            other => {
                notes.push(format!("cxr-serve did not exit cleanly on SIGTERM ({other:?}); see {}", log.display()))
            }
        }
    }
    Ok((ServerRun { origin, binary, args: args.to_vec(), startup_s, models: server_models, rss_mib }, soak))
}

/// Starts the Python reference server with one model, measures it with the PNG and stops it.
async fn python_phase(
    config: &BenchConfig,
    plan: &Plan,
    settings: &EngineSettings,
    variant: ModelVariant,
    png: &Input,
    log: &Path,
) -> Result<PythonModel, BenchError> {
    let started = Instant::now();
    let args = vec![
        config.python_script.display().to_string(),
        "--model".into(),
        settings.model_path(variant).display().to_string(),
        "--card".into(),
        settings.card_path(variant).display().to_string(),
        // No --intra-threads: the reference keeps ONNX Runtime's default session options, as a user's code would.
        "--device".into(),
        config.device.to_string(),
        "--bind".into(),
        "127.0.0.1:0".into(),
    ];
    let mut process = ServerProcess::spawn(&format!("python-{variant}"), &config.python, &args, log, READY_TIMEOUT)?;
    let target = Target::new(&format!("http://{}", process.addr()))?;
    target.wait_ready(READY_TIMEOUT, || process.exited().is_none()).await.map_err(|e| process.failure(e))?;
    let startup_s = started.elapsed().as_secs_f64();
    let latency = http::latency(&target, variant.as_str(), png, plan.warmup, plan.requests).await?;
    let saturation =
        http::saturate(&target, variant.as_str(), png, plan.concurrency, plan.saturation_warmup(), plan.duration())
            .await;
    let rss_mib = process.rss_kib().map(|kib| kib as f64 / 1024.0);
    process.stop(Duration::from_secs(10));
    Ok(PythonModel { model: variant, startup_s, latency, saturation, rss_mib, max_abs_diff_vs_server: None })
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of a time.
pub fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661)), "20000229T010101Z");
    }
}
