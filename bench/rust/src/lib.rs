//! `cxr-bench`: how much the server costs on top of ONNX Runtime, and what it buys over a Python server.
//!
//! One run, for both models on the same files and intra-op thread count, one measurement at a time so that nothing
//! else competes for the cores:
//! 1. **raw ONNX Runtime** in this process ([`raw`]): `Session::run` with ONNX Runtime's default session options
//!    (the anchors: as they come, and with one thread per CPU) and with the server's options, batch 1 latency and
//!    batch 1/2/4/8 throughput (the sweep);
//! 2. **`cxr-serve`** ([`process`], [`http`]): the real binary on `127.0.0.1:0` (or `--url`), latency at concurrency
//!    1 for a 1024² 16-bit PNG and a 1024² DICOM with the server's own `timing_ms` breakdown (the DICOM requests
//!    alternating with raw batch-1 runs), closed-loop throughput at saturation, optionally an RSS soak;
//! 3. **the Python reference** (`bench/python/reference_server.py`: FastAPI + uvicorn + onnxruntime + Pillow/numpy),
//!    one process per model started beside the idle cxr-serve, under the same client with the same PNG.
//!
//! Saturated throughput is measured in windows that alternate (`alternate`): cxr-serve with the PNG against the
//! Python reference, cxr-serve with the DICOM against raw ONNX Runtime at the sweep's best options and batch size, so
//! that the development VM's drifting speed (~10 % over tens of seconds) hits both sides of each ratio alike.
//!
//! [`report`] turns the measurements into ratios against the targets (BENCHMARKS.md "Targets"), a markdown table and JSON.
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
use cxr_core::image::GrayImage;

pub use self::config::BenchConfig;
use self::config::Plan;
use self::http::{Input, Saturation, Target};
use self::process::ServerProcess;
use self::report::{GrayOverColor, InputFile, Machine, PairedLatency, PythonModel, Report, ServerModel, ServerRun};
use cxr_engine::EngineSettings;
use cxr_engine::{EngineError, ort_environment};

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

    // 2. cxr-serve, with the Python reference servers and raw ONNX Runtime sessions it is compared with started
    // beside it, each measured in turn while the others sit idle.
    let python_ok = if config.no_python {
        notes.push("The Python reference server was not run (--no-python).".into());
        false
    } else if !config.python.exists() {
        notes.push(format!(
            "The Python reference server was skipped: {} does not exist (run scripts/setup-bench-python.sh, or `make \
             bench`).",
            config.python.display()
        ));
        false
    } else {
        true
    };
    let dicom_image = decode::decode(&dicom.bytes, &DecodeLimits::default())
        .map_err(|e| BenchError::Setup(format!("{}: {e}", dicom_file.path)))?
        .image;
    let phase = ServerPhase {
        config,
        plan: &plan,
        settings: &settings,
        args: &server_args,
        png: &png,
        dicom: &dicom,
        dicom_image: (!config.no_raw).then_some(&dicom_image),
        raw: &raw,
        python: python_ok,
        log_path: &log_path,
    };
    let (server, mut python, soak) = runtime.block_on(phase.run(&mut notes))?;
    for result in &mut python {
        let server_probs = server.models.iter().find(|m| m.model == result.model).and_then(|m| m.latency("png"));
        result.max_abs_diff_vs_server = server_probs.and_then(|l| {
            let (a, b) = (&l.probabilities, &result.latency.probabilities);
            (a.len() == b.len() && !a.is_empty())
                .then(|| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max))
        });
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

/// What the server phase needs: the run's settings, inputs and the raw sweep's results.
struct ServerPhase<'a> {
    config: &'a BenchConfig,
    plan: &'a Plan,
    settings: &'a EngineSettings,
    /// The server's flags.
    args: &'a [String],
    png: &'a Input,
    dicom: &'a Input,
    /// The decoded DICOM, for the raw sessions (`None` with `--no-raw`).
    dicom_image: Option<&'a GrayImage>,
    /// The raw sweep (empty with `--no-raw`): its best cell per model is the raw side of the DICOM saturation.
    raw: &'a [raw::RawModel],
    /// Whether the Python reference server runs.
    python: bool,
    log_path: &'a dyn Fn(&str) -> PathBuf,
}

/// What the server's saturation windows alternate with ([`alternate`]).
enum Partner<'a> {
    /// Nothing: the server's windows follow each other.
    Alone,
    /// The Python reference server with the same model, under the same client and input.
    Python(&'a Target),
    /// Raw ONNX Runtime with the sweep's best options at its best batch size.
    Raw(&'a mut raw::PairedRaw),
}

/// The partner's side of [`alternate`].
enum PartnerResult {
    Alone,
    Python(Box<Saturation>),
    Raw(raw::PairedThroughput),
}

/// Saturates the server with `input` in `plan.saturation_windows` windows that alternate with the partner's
/// (A B, B A, A B, …: a drift of the machine's speed — ~10 % over tens of seconds on the development VM, more than
/// the ratios being judged — hits both sides alike; only one side works at a time, the other sits idle).
async fn alternate(
    target: &Target,
    model: &str,
    input: &Input,
    plan: &Plan,
    mut partner: Partner<'_>,
) -> Result<(Saturation, PartnerResult), BenchError> {
    let (warmup, window) = (plan.saturation_warmup(), plan.window());
    let (mut server, mut python, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..plan.saturation_windows {
        let server_first = k % 2 == 0;
        for server_turn in [server_first, !server_first] {
            if server_turn {
                server.push(http::saturation_window(target, model, input, plan.concurrency, warmup, window).await);
                continue;
            }
            match &mut partner {
                Partner::Alone => {}
                Partner::Python(python_target) => python
                    .push(http::saturation_window(python_target, model, input, plan.concurrency, warmup, window).await),
                Partner::Raw(session) => raw.push(session.window(window)?),
            }
        }
    }
    let of = |windows: &[http::Window]| Saturation::of_windows(input, plan.concurrency, warmup, window, windows);
    let result = match &partner {
        Partner::Alone => PartnerResult::Alone,
        Partner::Python(_) => PartnerResult::Python(Box::new(of(&python))),
        Partner::Raw(session) => PartnerResult::Raw(session.summary(&raw)),
    };
    Ok((of(&server), result))
}

/// A running Python reference server with one model.
struct PythonServer {
    process: ServerProcess,
    target: Target,
    startup_s: f64,
}

impl ServerPhase<'_> {
    /// Starts (or targets) cxr-serve and measures it, with the Python reference and the raw sessions beside it;
    /// stops everything it started before returning.
    async fn run(
        &self,
        notes: &mut Vec<String>,
    ) -> Result<(ServerRun, Vec<PythonModel>, Option<http::Soak>), BenchError> {
        let (config, plan) = (self.config, self.plan);
        let log = (self.log_path)("cxr-serve");
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
                let process = ServerProcess::spawn("cxr-serve", &binary, self.args, &log, STARTUP_TIMEOUT)?;
                let target = Target::new(&format!("http://{}", process.addr()))?;
                (Some(process), target, "spawned".to_string(), Some(binary.display().to_string()))
            }
        };
        target.wait_ready(READY_TIMEOUT, || process.as_mut().is_none_or(|p| p.exited().is_none())).await.map_err(
            |e| match &process {
                Some(p) => p.failure(e),
                None => BenchError::Setup(format!("{}: {e}", target.base())),
            },
        )?;
        let startup_s = process.as_ref().map(|_| started.elapsed().as_secs_f64());

        // Latency at concurrency 1; the DICOM requests alternate with ORT-default batch-1 runs.
        let mut models = Vec::new();
        for variant in ModelVariant::ALL {
            let mut latency = Vec::new();
            eprintln!("cxr-bench: cxr-serve, {variant} model, png at concurrency 1");
            latency.push(http::latency(&target, variant.as_str(), self.png, plan.warmup, plan.requests).await?);
            let mut paired = None;
            match self.dicom_image {
                Some(image) => {
                    let mut raw = raw::PairedRaw::open(self.settings, variant, image, raw::RawOptions::OrtDefaults, 1)?;
                    eprintln!(
                        "cxr-bench: cxr-serve, {variant} model, dicom at concurrency 1, alternating with raw ORT"
                    );
                    let (l, raw_ms) = http::latency_paired(
                        &target,
                        variant.as_str(),
                        self.dicom,
                        plan.warmup,
                        plan.requests,
                        &mut raw,
                    )
                    .await?;
                    paired = Some(PairedLatency {
                        input: self.dicom.kind,
                        server_client_ms: l.client_ms,
                        raw_b1_ms: raw_ms,
                    });
                    latency.push(l);
                }
                None => {
                    eprintln!("cxr-bench: cxr-serve, {variant} model, dicom at concurrency 1");
                    latency
                        .push(http::latency(&target, variant.as_str(), self.dicom, plan.warmup, plan.requests).await?);
                }
            }
            eprintln!("cxr-bench: cxr-serve, {variant} model, png at concurrency 1 without and with explain=cam");
            let explain = http::explain_cost(&target, variant.as_str(), self.png, plan.warmup, plan.requests).await?;
            models.push((variant, latency, paired, explain));
        }

        // Saturation: the PNG alternating with the Python reference, the DICOM with raw ONNX Runtime.
        let mut server_models = Vec::new();
        let mut python_models = Vec::new();
        for (variant, latency, paired, explain) in models {
            let model = variant.as_str();
            let python = match self.python {
                true => match self.start_python(variant).await {
                    Ok(python) => Some(python),
                    Err(error) => {
                        notes.push(format!("The Python reference server failed for the {variant} model: {error}"));
                        None
                    }
                },
                false => None,
            };
            let mut python_latency = None;
            if let Some(p) = &python {
                eprintln!("cxr-bench: Python reference server, {variant} model, png at concurrency 1");
                match http::latency(&p.target, model, self.png, plan.warmup, plan.requests).await {
                    Ok(l) => python_latency = Some(l),
                    Err(error) => {
                        notes.push(format!("The Python reference server failed for the {variant} model: {error}"))
                    }
                }
            }
            let python = python.filter(|_| python_latency.is_some());
            eprintln!(
                "cxr-bench: cxr-serve, {variant} model, saturated with {} clients (png){}",
                plan.concurrency,
                if python.is_some() { ", alternating with the Python reference" } else { "" }
            );
            let partner = python.as_ref().map_or(Partner::Alone, |p| Partner::Python(&p.target));
            let (saturation, python_saturation) = alternate(&target, model, self.png, plan, partner).await?;
            if let (Some(p), Some(latency), PartnerResult::Python(saturation)) =
                (python, python_latency, python_saturation)
            {
                let rss_mib = p.process.rss_kib().map(|kib| kib as f64 / 1024.0);
                p.process.stop(Duration::from_secs(10));
                python_models.push(PythonModel {
                    model: variant,
                    startup_s: p.startup_s,
                    latency,
                    saturation: *saturation,
                    rss_mib,
                    max_abs_diff_vs_server: None,
                });
            }

            // DICOM too: the raw-ORT ratio is about what the server adds, and a 1024² PNG's decode (~6 ms of one
            // core on the development machine, in every server alike) would otherwise dominate it on a small CPU.
            let best = self
                .raw
                .iter()
                .filter(|r| r.model == variant)
                .max_by(|a, b| a.best.img_per_s.total_cmp(&b.best.img_per_s));
            let mut raw_session = match (best, self.dicom_image) {
                (Some(best), Some(image)) => {
                    Some(raw::PairedRaw::open(self.settings, variant, image, best.options, best.best.batch)?)
                }
                _ => None,
            };
            eprintln!(
                "cxr-bench: cxr-serve, {variant} model, saturated with {} clients (dicom){}",
                plan.concurrency,
                if raw_session.is_some() { ", alternating with raw ORT at its best batch" } else { "" }
            );
            let partner = raw_session.as_mut().map_or(Partner::Alone, Partner::Raw);
            let (saturation_dicom, raw_result) = alternate(&target, model, self.dicom, plan, partner).await?;
            server_models.push(ServerModel {
                model: variant,
                latency,
                saturation,
                saturation_dicom: Some(saturation_dicom),
                paired,
                paired_raw_tput: match raw_result {
                    PartnerResult::Raw(r) => Some(r),
                    _ => None,
                },
                explain: Some(explain),
            });
        }

        let soak = match plan.soak_minutes {
            Some(minutes) => {
                let pid = process.as_ref().and_then(ServerProcess::pid);
                if pid.is_none() {
                    notes.push("Soak with --url: the server's RSS cannot be sampled.".into());
                }
                eprintln!("cxr-bench: soak, {minutes} min saturated, sampling RSS every 10 s");
                Some(
                    http::soak(&target, self.png, plan.concurrency, minutes, move || pid.and_then(process::rss_kib))
                        .await,
                )
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
        let run = ServerRun { origin, binary, args: self.args.to_vec(), startup_s, models: server_models, rss_mib };
        Ok((run, python_models, soak))
    }

    /// Starts the Python reference server with one model and waits until it is ready.
    async fn start_python(&self, variant: ModelVariant) -> Result<PythonServer, BenchError> {
        let (config, settings) = (self.config, self.settings);
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
        eprintln!("cxr-bench: starting the Python reference server, {variant} model");
        let log = (self.log_path)(&format!("python-{variant}"));
        let mut process =
            ServerProcess::spawn(&format!("python-{variant}"), &config.python, &args, &log, READY_TIMEOUT)?;
        let target = Target::new(&format!("http://{}", process.addr()))?;
        target.wait_ready(READY_TIMEOUT, || process.exited().is_none()).await.map_err(|e| process.failure(e))?;
        Ok(PythonServer { process, target, startup_s: started.elapsed().as_secs_f64() })
    }
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
