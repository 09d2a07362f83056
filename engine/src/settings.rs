//! The plain settings types the engine is built from: where the models run, in which precision, how batches are
//! sized and staged. The server's `Config` parses them from flags and environment variables (with this crate's
//! `clap` feature, each keyword enum is a `clap::ValueEnum`) and derives one [`EngineSettings`]; the engine reads
//! them and never sees a command line.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use cxr_core::card::{FP16_PRECISION, ModelVariant};

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// The CUDA execution provider; loading fails when it cannot be registered (ONNX Runtime would otherwise fall
    /// back to the CPU without telling).
    Cuda,
    /// CUDA when it can be registered, else the CPU (logged as a warning).
    Auto,
}

cxr_core::keywords!(Device, "device", { Cpu => "cpu", Cuda => "cuda", Auto => "auto" });
#[cfg(feature = "clap")]
cxr_core::keywords!(@value_enum Device);

/// Which batch sizes a model's session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSizes {
    /// Padded buckets on CUDA (powers of two up to `max_batch`, and `max_batch`), exact sizes on the CPU.
    Auto,
    /// Every batch runs at its own size (the CPU execution provider has no per-shape tuning to pay).
    Exact,
    /// Batches are padded with zero images to the smallest of these sizes that holds them; padding rows never reach
    /// a response. Every size is warmed before the model is ready, so no shape is ever tuned on the request path.
    Buckets(Vec<usize>),
}

impl FromStr for BatchSizes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BatchSizes::Auto),
            "exact" => Ok(BatchSizes::Exact),
            list => list
                .split(',')
                .map(|n| match n.trim().parse::<usize>() {
                    Ok(0) | Err(_) => {
                        Err(format!("{n:?} is not a batch size ≥ 1 (expected auto, exact or e.g. 1,2,4,8)"))
                    }
                    Ok(n) => Ok(n),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(BatchSizes::Buckets),
        }
    }
}

/// cuDNN's convolution algorithm search of the CUDA execution provider (`cudnn_conv_algo_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvSearch {
    /// Benchmark every algorithm once per input shape (ONNX Runtime's default; fastest kernels, slow first run).
    Exhaustive,
    /// cuDNN's heuristics, no benchmarking.
    Heuristic,
    /// The default algorithm.
    Default,
}

cxr_core::keywords!(ConvSearch, "search", { Exhaustive => "exhaustive", Heuristic => "heuristic", Default => "default" });
#[cfg(feature = "clap")]
cxr_core::keywords!(@value_enum ConvSearch);

/// The number format of the model files the engine loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// `<stem>.onnx`, the exported FP32 model.
    #[default]
    Fp32,
    /// `<stem>.fp16.onnx` (`cxr-train export --fp16`): FP16 weights and arithmetic behind the same FP32 input and
    /// outputs. For GPUs (half the weight bytes, Tensor Core convolutions); slower on x86 CPUs, which lack FP16 kernels.
    Fp16,
}

cxr_core::keywords!(Precision, "precision", { Fp32 => "fp32", Fp16 => "fp16" });
#[cfg(feature = "clap")]
cxr_core::keywords!(@value_enum Precision);

/// `--io-binding`: whether batches go through an `IoBinding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBindingMode {
    /// Bound through pinned host memory on CUDA; plain runs on the CPU.
    #[default]
    Auto,
    /// Always bound (pinned memory on CUDA, the session's allocator on the CPU).
    On,
    /// Never bound.
    Off,
}

cxr_core::keywords!(IoBindingMode, "I/O binding mode", { Auto => "auto", On => "on", Off => "off" });
#[cfg(feature = "clap")]
cxr_core::keywords!(@value_enum IoBindingMode);

/// Everything the engine needs to load and run the models.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Directory holding `cxr-inception-v3-{color,gray}.onnx` (and optionally their sidecar cards).
    pub models_dir: PathBuf,
    pub device: Device,
    /// Which of the exported files to load: FP32 `<stem>.onnx` or FP16 `<stem>.fp16.onnx`.
    pub precision: Precision,
    /// Whether batches go through an `IoBinding` (auto: with pinned host memory on CUDA only).
    pub io_binding: IoBindingMode,
    /// Threads of ONNX Runtime's intra-op pool, shared by both sessions (the environment's global thread pool).
    pub intra_threads: usize,
    /// Whether idle pool threads spin before sleeping (ONNX Runtime's default). Off saves CPU when idle but makes
    /// every operator wake sleeping threads.
    pub spinning: bool,
    /// Padded batch sizes, or exact ones.
    pub batch_sizes: BatchSizes,
    /// cuDNN convolution algorithm search on CUDA (`None`: ONNX Runtime's default, exhaustive).
    pub conv_search: Option<ConvSearch>,
    /// Most jobs stacked into one session run (at least 1); `None` picks the default of the execution provider
    /// the session actually runs on ([`default_max_batch`](crate::default_max_batch): 8 on the CPU, 64 with CUDA).
    pub max_batch: Option<usize>,
    /// Longest a worker waits for more jobs once it holds one, and only while more are known to be coming.
    pub max_batch_delay: Duration,
    /// Jobs that may wait in each model's queue (at least 1); `None`:
    /// [`default_queue_capacity`](crate::default_queue_capacity) of the model's
    /// batch size.
    pub queue_capacity: Option<usize>,
    /// The ONNX Runtime shared library; only the first engine of a process loads it.
    pub ort_dylib: PathBuf,
}

impl EngineSettings {
    /// Path of a variant's ONNX file in the configured precision.
    pub fn model_path(&self, variant: ModelVariant) -> PathBuf {
        match self.precision {
            Precision::Fp32 => self.models_dir.join(format!("{}.onnx", variant.file_stem())),
            Precision::Fp16 => self.models_dir.join(format!("{}.{FP16_PRECISION}.onnx", variant.file_stem())),
        }
    }

    /// Path of a variant's sidecar model card (one card for both precisions: it describes the model).
    pub fn card_path(&self, variant: ModelVariant) -> PathBuf {
        self.models_dir.join(format!("{}.json", variant.file_stem()))
    }
}
