//! Raw ONNX Runtime in this process: the anchors the server is compared with.
//!
//! Three session constructions ([`RawOptions`]) on the same file and execution provider:
//! - **ONNX Runtime's defaults** (`Session::builder().commit_from_file()`, nothing set: ORT picks the intra-op
//!   threads — one per physical core — and spins), what a user gets without tuning;
//! - **defaults with one intra-op thread per logical CPU**, in case that is the better setting on the machine;
//! - **the server's options**, built by the server's own [`open_session`] from
//!   the [`EngineSettings`] its command line gives (kept to show what the server's settings cost or gain).
//!
//! The bench process's ONNX Runtime environment has no global thread pool, so every session here owns its threads.
//! The input is the real benchmark image, decoded and preprocessed by `cxr-core` exactly as the server does, and
//! built into an ORT tensor once: only `Session::run` is timed.

use std::time::{Duration, Instant};

use cxr_core::card::{INPUT_NAME, ModelCard, ModelVariant, PROBABILITIES_NAME};
use cxr_core::image::GrayImage;
use cxr_core::preprocess::Preprocessor;
use ort::session::Session;
use ort::value::Tensor;
use serde::Serialize;

use super::BenchError;
use super::config::Plan;
use super::stats::{Summary, ms};
use cxr_engine::{Device, EngineSettings};
use cxr_engine::{open_session, ort_environment};

/// Most timed runs of one batch size, whatever the time budget.
const MAX_RUNS: usize = 1000;

/// How a raw session is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawOptions {
    /// ONNX Runtime's default session options.
    OrtDefaults,
    /// The defaults with `intra_op_num_threads` = the logical CPUs.
    OrtDefaultsAllThreads,
    /// The server's session options (threads, spinning) from its flags.
    ServerOptions,
}

impl RawOptions {
    pub const ALL: [RawOptions; 3] =
        [RawOptions::OrtDefaults, RawOptions::OrtDefaultsAllThreads, RawOptions::ServerOptions];

    pub fn label(self) -> &'static str {
        match self {
            RawOptions::OrtDefaults => "ORT defaults",
            RawOptions::OrtDefaultsAllThreads => "ORT defaults, 1 thread/CPU",
            RawOptions::ServerOptions => "server's options",
        }
    }

    /// Whether this is one of ONNX Runtime's own settings (the anchors), not the server's.
    pub fn is_ort_default(self) -> bool {
        self != RawOptions::ServerOptions
    }
}

/// Raw ONNX Runtime results of one model with one session construction.
#[derive(Debug, Clone, Serialize)]
pub struct RawModel {
    pub model: ModelVariant,
    pub options: RawOptions,
    pub provider: String,
    pub session_load_ms: f64,
    /// `Session::run` at batch 1, per call.
    pub batch1_ms: Summary,
    /// Every batch size measured, batch 1 first.
    pub points: Vec<BatchPoint>,
    /// The batch size with the highest images per second (batch 1 included: on a CPU, batching need not help).
    pub best: BatchPoint,
}

/// Throughput at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BatchPoint {
    pub batch: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// `batch × runs / total time of the runs`.
    pub img_per_s: f64,
}

/// Measures one model: batch 1 latency, then throughput at every batch size of the plan.
pub fn measure(
    settings: &EngineSettings,
    variant: ModelVariant,
    image: &GrayImage,
    plan: &Plan,
    options: RawOptions,
) -> Result<RawModel, BenchError> {
    let path = settings.model_path(variant);
    let card = read_card(settings, variant)?;
    let plane = Preprocessor::new(card.input_size, card.normalization).tensor(image, card.channels);
    let shape = |n: usize| [n, card.channels, card.input_size, card.input_size];

    let environment = ort_environment(&settings.ort_dylib, None)?;
    let loading = Instant::now();
    let (mut session, provider) = session_for(&environment, settings, &path, options)?;
    let session_load_ms = ms(loading.elapsed());
    let run_error = |e: ort::Error| BenchError::Setup(format!("{variant}: raw ONNX Runtime run failed: {e}"));

    // Batch 1: warm-up, then a fixed number of timed runs.
    let one = Tensor::from_array((shape(1), plane.clone())).map_err(run_error)?;
    for _ in 0..plan.raw_warmup.max(1) {
        check_output(&mut session, &one, 1).map_err(|e| BenchError::Setup(format!("{variant}: {e}")))?;
    }
    let mut times = Vec::with_capacity(plan.raw_iters);
    for _ in 0..plan.raw_iters {
        times.push(timed_run(&mut session, &one).map_err(run_error)?);
    }
    let batch1_ms = Summary::of_durations(&times).expect("at least one run");
    let total: Duration = times.iter().sum();
    let mut points = vec![BatchPoint {
        batch: 1,
        runs: times.len(),
        median_ms: batch1_ms.p50,
        p95_ms: batch1_ms.p95,
        img_per_s: times.len() as f64 / total.as_secs_f64(),
    }];
    drop(one);

    // Larger batches: one untimed run (new shapes allocate), then runs for the time budget (at least 3).
    for &n in &plan.batch_sizes {
        let mut data = Vec::with_capacity(n * plane.len());
        for _ in 0..n {
            data.extend_from_slice(&plane);
        }
        let tensor = Tensor::from_array((shape(n), data)).map_err(run_error)?;
        check_output(&mut session, &tensor, n).map_err(|e| BenchError::Setup(format!("{variant}: {e}")))?;
        let mut times = Vec::new();
        let started = Instant::now();
        while times.len() < 3 || (started.elapsed() < plan.raw_batch_time() && times.len() < MAX_RUNS) {
            times.push(timed_run(&mut session, &tensor).map_err(run_error)?);
        }
        let summary = Summary::of_durations(&times).expect("at least one run");
        let total: Duration = times.iter().sum();
        points.push(BatchPoint {
            batch: n,
            runs: times.len(),
            median_ms: summary.p50,
            p95_ms: summary.p95,
            img_per_s: (n * times.len()) as f64 / total.as_secs_f64(),
        });
    }
    let best = points.iter().max_by(|a, b| a.img_per_s.total_cmp(&b.img_per_s)).cloned().expect("batch 1 measured");
    Ok(RawModel { model: variant, options, provider: provider.to_string(), session_load_ms, batch1_ms, points, best })
}

/// A session built as `options`.
fn session_for(
    environment: &ort::environment::Environment,
    settings: &EngineSettings,
    path: &std::path::Path,
    options: RawOptions,
) -> Result<(Session, cxr_engine::Provider), BenchError> {
    match options {
        RawOptions::ServerOptions => Ok(open_session(environment, path, settings)?),
        RawOptions::OrtDefaults => default_session(environment, settings, path, false),
        RawOptions::OrtDefaultsAllThreads => default_session(environment, settings, path, true),
    }
}

/// A session with ONNX Runtime's default options (plus the CUDA provider when the device is not the CPU; with
/// `all_threads`, one intra-op thread per logical CPU).
fn default_session(
    environment: &ort::environment::Environment,
    settings: &EngineSettings,
    path: &std::path::Path,
    all_threads: bool,
) -> Result<(Session, cxr_engine::Provider), BenchError> {
    let failed = |e: ort::Error| BenchError::Setup(format!("{}: raw session: {e}", path.display()));
    let mut builder = Session::builder(environment).map_err(failed)?;
    let mut provider = cxr_engine::Provider::Cpu;
    if settings.device != Device::Cpu {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| failed(e.into()))?;
        provider = cxr_engine::Provider::Cuda;
    }
    if all_threads {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder = builder.with_intra_threads(cpus).map_err(|e| failed(e.into()))?;
    }
    Ok((builder.commit_from_file(path).map_err(failed)?, provider))
}

/// A raw session kept open while the server is measured, so that raw runs alternate with the server's work and
/// both see the same machine state (this VM's speed drifts by ~10 % over tens of seconds, more than the ratios being
/// measured): at concurrency 1 an ONNX-Runtime-default batch-1 session, one run before each request; at saturation
/// the sweep's best options at its best batch size, in windows between the server's (also a fresh measurement of the
/// best sweep cell, which as the maximum of a dozen noisy cells reads high).
pub struct PairedRaw {
    session: Session,
    input: Tensor<f32>,
    options: RawOptions,
    batch: usize,
}

/// The raw throughput windows of one model, all together.
#[derive(Debug, Clone, Serialize)]
pub struct PairedThroughput {
    pub options: RawOptions,
    pub batch: usize,
    pub windows: usize,
    /// Images and the time of the `Session::run` calls that processed them.
    pub images: usize,
    pub run_s: f64,
    pub img_per_s: f64,
}

impl PairedRaw {
    /// Opens a session built as `options` with a `batch`-image input of `image`.
    pub fn open(
        settings: &EngineSettings,
        variant: ModelVariant,
        image: &GrayImage,
        options: RawOptions,
        batch: usize,
    ) -> Result<PairedRaw, BenchError> {
        let path = settings.model_path(variant);
        let card = read_card(settings, variant)?;
        let plane = Preprocessor::new(card.input_size, card.normalization).tensor(image, card.channels);
        let environment = ort_environment(&settings.ort_dylib, None)?;
        let (session, _) = session_for(&environment, settings, &path, options)?;
        let data: Vec<f32> = std::iter::repeat_n(plane.as_slice(), batch.max(1)).flatten().copied().collect();
        let input = Tensor::from_array(([batch.max(1), card.channels, card.input_size, card.input_size], data))
            .map_err(|e| BenchError::Setup(format!("{variant}: {e}")))?;
        Ok(PairedRaw { session, input, options, batch: batch.max(1) })
    }

    /// One timed `Session::run`.
    pub fn run(&mut self) -> Result<Duration, BenchError> {
        timed_run(&mut self.session, &self.input).map_err(|e| BenchError::Setup(format!("raw run: {e}")))
    }

    /// One untimed run (the server's pool threads may still be spinning down), then runs for `window` (at least
    /// one): the images processed and the time of the runs.
    pub fn window(&mut self, window: Duration) -> Result<(usize, Duration), BenchError> {
        let fail = |e: ort::Error| BenchError::Setup(format!("raw run: {e}"));
        timed_run(&mut self.session, &self.input).map_err(fail)?;
        let started = Instant::now();
        let (mut runs, mut busy) = (0, Duration::ZERO);
        while runs == 0 || started.elapsed() < window {
            busy += timed_run(&mut self.session, &self.input).map_err(fail)?;
            runs += 1;
        }
        Ok((runs * self.batch, busy))
    }

    /// The summary of `windows` results of [`PairedRaw::window`].
    pub fn summary(&self, windows: &[(usize, Duration)]) -> PairedThroughput {
        let images: usize = windows.iter().map(|w| w.0).sum();
        let run_s: f64 = windows.iter().map(|w| w.1.as_secs_f64()).sum();
        PairedThroughput {
            options: self.options,
            batch: self.batch,
            windows: windows.len(),
            images,
            run_s,
            img_per_s: if run_s > 0.0 { images as f64 / run_s } else { 0.0 },
        }
    }
}

fn read_card(settings: &EngineSettings, variant: ModelVariant) -> Result<ModelCard, BenchError> {
    let card_path = settings.card_path(variant);
    std::fs::read_to_string(&card_path)
        .map_err(|e| e.to_string())
        .and_then(|json| ModelCard::from_json(&json).map_err(|e| e.to_string()))
        .map_err(|e| BenchError::Setup(format!("{}: {e}", card_path.display())))
}

/// One `Session::run`, timed; the outputs are dropped after the clock stops.
fn timed_run(session: &mut Session, input: &Tensor<f32>) -> Result<Duration, ort::Error> {
    let started = Instant::now();
    let outputs = session.run(ort::inputs![INPUT_NAME => input])?;
    let elapsed = started.elapsed();
    drop(outputs);
    Ok(elapsed)
}

/// One untimed run that checks the probabilities' shape and range.
fn check_output(session: &mut Session, input: &Tensor<f32>, n: usize) -> Result<(), String> {
    let outputs = session.run(ort::inputs![INPUT_NAME => input]).map_err(|e| e.to_string())?;
    let output = outputs.get(PROBABILITIES_NAME).ok_or_else(|| format!("no {PROBABILITIES_NAME:?} output"))?;
    let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
    if shape[0] != n as i64 || values.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return Err(format!("unexpected {PROBABILITIES_NAME:?} output of shape {:?}", &**shape));
    }
    Ok(())
}
