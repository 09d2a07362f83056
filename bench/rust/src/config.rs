//! The benchmark's one configuration, [`BenchConfig`] (clap derive), and [`Plan`], the request counts and durations
//! it resolves to (`--quick` or the full defaults, each overridable).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cxr_engine::Device;

/// Command-line configuration of `cxr-bench`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cxr-bench",
    version,
    about = "Benchmark cxr-serve against raw ONNX Runtime and a Python (FastAPI + onnxruntime) reference server",
    long_about = "Benchmark cxr-serve against raw ONNX Runtime and a Python (FastAPI + onnxruntime) reference server.\n\n\
        For each model (color, gray), on the same model files and intra-op thread count: raw ONNX Runtime in this \
        process (batch 1 latency, batch 1/2/4/8 throughput), then the real cxr-serve binary (latency at concurrency 1 \
        for a 1024x1024 16-bit PNG and DICOM), and the Python reference server. Saturated closed-loop throughput \
        alternates windows of cxr-serve with windows of the Python reference (PNG) and of raw ONNX Runtime at its \
        best batch (DICOM). Only one of them works at a time. Prints a markdown table and writes the same as JSON. \
        Loopback only."
)]
pub struct BenchConfig {
    /// Short smoke run (about 1-2 minutes): fewer requests and shorter phases. Explicit counts still win.
    #[arg(long)]
    pub quick: bool,

    /// Directory holding `cxr-inception-v3-{color,gray}.onnx` and their cards (made by `make models`).
    #[arg(long, env = "CXR_MODELS", default_value = "models")]
    pub models: PathBuf,

    /// Execution device for the server, the raw sessions and the Python reference: `cpu` or `cuda`.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: Device,

    /// Model files for the server, the raw sessions and the Python reference alike: `fp32` (`<name>.onnx`) or
    /// `fp16` (`<name>.fp16.onnx`, from `cxr-train export --fp16`).
    #[arg(long, default_value = "fp32")]
    pub precision: cxr_engine::Precision,

    /// The server's `--io-binding` (`auto`: pinned host buffers bound with an `IoBinding` on CUDA, plain runs on the
    /// CPU; `on`; `off`), to compare the two input paths.
    #[arg(long, default_value = "auto")]
    pub io_binding: cxr_engine::IoBindingMode,

    /// ONNX Runtime intra-op threads per session, the same for the server, raw ORT and the Python reference
    /// (default: the number of CPUs, as the server's default).
    #[arg(long)]
    pub intra_threads: Option<usize>,

    /// The server's `--max-batch`; the saturation phase uses 2 x this many concurrent clients unless `--concurrency`.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,

    /// Concurrent clients of the closed-loop saturation phase (default 2 x `--max-batch`).
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// ONNX Runtime shared library (the one the server is given too).
    #[arg(long, env = "ORT_DYLIB_PATH", default_value = cxr_serve::config::DEFAULT_ORT_DYLIB)]
    pub ort_dylib: PathBuf,

    /// The `cxr-serve` binary to start (default: `cxr-serve` next to this binary, i.e. target/release/cxr-serve).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Benchmark an already running server at this base URL (loopback only, e.g. http://127.0.0.1:8080) instead of
    /// starting one. Its RSS can then not be sampled.
    #[arg(long)]
    pub url: Option<String>,

    /// The test data directory (the repository's `tests/data`).
    #[arg(long, env = "CXR_TESTDATA", default_value = "tests/data")]
    pub testdata: PathBuf,

    /// The PNG input (default: `<testdata>/reference/cxr_lossless.png`, 1024x1024, 16-bit gray).
    #[arg(long)]
    pub png: Option<PathBuf>,

    /// The DICOM input (default: `<testdata>/dicom/cxr_explicit_le.dcm`, 1024x1024, explicit VR little endian).
    #[arg(long)]
    pub dicom: Option<PathBuf>,

    /// Timed requests per (model, input) at concurrency 1 [full: 100, quick: 20].
    #[arg(long)]
    pub requests: Option<usize>,

    /// Untimed warm-up requests before each latency series [full: 10, quick: 3].
    #[arg(long)]
    pub warmup: Option<usize>,

    /// Seconds of saturated closed-loop throughput measured per (server, model, input) [full: 30, quick: 5], split
    /// into `--saturation-windows` windows that alternate with the compared measurement (the Python reference for
    /// the PNG, raw ONNX Runtime at its best batch for the DICOM), each window after its own warm-up.
    #[arg(long)]
    pub duration_secs: Option<f64>,

    /// Windows the saturation time is split into [full: 4, quick: 2]. They alternate A B B A A B …, so that a drift
    /// of the machine's speed hits both sides alike.
    #[arg(long)]
    pub saturation_windows: Option<usize>,

    /// Timed raw `Session::run` calls at batch 1 [full: 50, quick: 10].
    #[arg(long)]
    pub raw_iters: Option<usize>,

    /// Seconds spent on each raw batch size (at least 3 runs) [full: 4, quick: 1.5].
    #[arg(long)]
    pub raw_batch_secs: Option<f64>,

    /// Raw batch sizes measured besides 1.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 4, 8])]
    pub batch_sizes: Vec<usize>,

    /// Python interpreter of the reference server's venv (made by scripts/setup-bench-python.sh).
    #[arg(long, default_value = ".cache/bench-venv/bin/python")]
    pub python: PathBuf,

    /// The Python reference server script.
    #[arg(long, default_value = "bench/python/reference_server.py")]
    pub python_script: PathBuf,

    /// Skip the Python reference server.
    #[arg(long)]
    pub no_python: bool,

    /// Skip the raw ONNX Runtime measurements.
    #[arg(long)]
    pub no_raw: bool,

    /// After the other phases, saturate the server for this many minutes, sampling its RSS every 10 s.
    #[arg(long)]
    pub soak_minutes: Option<f64>,

    /// Where to write the JSON results (default: `bench-results/<UTC timestamp>.json`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The counts and durations of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub quick: bool,
    pub intra_threads: usize,
    pub max_batch: usize,
    pub concurrency: usize,
    pub requests: usize,
    pub warmup: usize,
    /// Saturation time per (server, model, input), all windows together.
    pub duration_secs: f64,
    /// How many windows `duration_secs` is split into.
    pub saturation_windows: usize,
    /// Untimed closed-loop seconds before each saturation window.
    pub saturation_warmup_secs: f64,
    pub raw_iters: usize,
    pub raw_warmup: usize,
    pub raw_batch_secs: f64,
    pub batch_sizes: Vec<usize>,
    pub soak_minutes: Option<f64>,
}

impl BenchConfig {
    /// Resolves `--quick` and the explicit overrides into the numbers of this run.
    pub fn plan(&self) -> Plan {
        let quick = self.quick;
        let pick =
            |explicit: Option<usize>, full: usize, short: usize| explicit.unwrap_or(if quick { short } else { full });
        let pick_f =
            |explicit: Option<f64>, full: f64, short: f64| explicit.unwrap_or(if quick { short } else { full });
        let max_batch = self.max_batch.max(1);
        let mut batch_sizes: Vec<usize> = self.batch_sizes.iter().copied().filter(|&n| n > 1).collect();
        batch_sizes.sort_unstable();
        batch_sizes.dedup();
        Plan {
            quick,
            intra_threads: self.intra_threads.unwrap_or_else(default_threads).max(1),
            max_batch,
            concurrency: self.concurrency.unwrap_or(2 * max_batch).max(1),
            requests: pick(self.requests, 100, 20).max(1),
            warmup: pick(self.warmup, 10, 3),
            duration_secs: pick_f(self.duration_secs, 30.0, 5.0).max(0.5),
            saturation_windows: pick(self.saturation_windows, 4, 2).max(1),
            saturation_warmup_secs: if quick { 1.0 } else { 2.0 },
            raw_iters: pick(self.raw_iters, 50, 10).max(1),
            raw_warmup: if quick { 2 } else { 5 },
            raw_batch_secs: pick_f(self.raw_batch_secs, 4.0, 1.5).max(0.1),
            batch_sizes,
            soak_minutes: self.soak_minutes.filter(|m| *m > 0.0),
        }
    }

    pub fn png_path(&self) -> PathBuf {
        self.png.clone().unwrap_or_else(|| self.testdata.join("reference/cxr_lossless.png"))
    }

    pub fn dicom_path(&self) -> PathBuf {
        self.dicom.clone().unwrap_or_else(|| self.testdata.join("dicom/cxr_explicit_le.dcm"))
    }

    /// The server binary: `--server-bin`, else `cxr-serve` next to the running executable.
    pub fn server_bin(&self) -> PathBuf {
        if let Some(path) = &self.server_bin {
            return path.clone();
        }
        let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("cxr-serve")));
        sibling.unwrap_or_else(|| Path::new("target/release/cxr-serve").to_path_buf())
    }
}

impl Plan {
    /// The length of one saturation window.
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs / self.saturation_windows as f64)
    }

    pub fn saturation_warmup(&self) -> Duration {
        Duration::from_secs_f64(self.saturation_warmup_secs)
    }

    pub fn raw_batch_time(&self) -> Duration {
        Duration::from_secs_f64(self.raw_batch_secs)
    }
}

/// The server's own default: one intra-op thread per CPU.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_device(s: &str) -> Result<Device, String> {
    match s.parse::<Device>().map_err(|e| e.to_string())? {
        Device::Auto => Err("the benchmark needs a definite device: \"cpu\" or \"cuda\"".into()),
        device => Ok(device),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn quick_shrinks_and_explicit_counts_win() {
        let full = BenchConfig::parse_from(["cxr-bench"]).plan();
        let quick = BenchConfig::parse_from(["cxr-bench", "--quick", "--requests", "7"]).plan();
        assert_eq!(full.requests, 100);
        assert_eq!(quick.requests, 7);
        assert!(quick.duration_secs < full.duration_secs);
        assert_eq!(full.concurrency, 16);
        assert_eq!(full.batch_sizes, vec![2, 4, 8]);
        assert_eq!(full.window(), Duration::from_secs_f64(7.5));
        assert_eq!(quick.saturation_windows, 2);
        assert!(BenchConfig::try_parse_from(["cxr-bench", "--device", "auto"]).is_err());
    }
}
