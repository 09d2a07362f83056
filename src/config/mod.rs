//! The server's configuration: one [`Config`] parsed from command-line flags and `CXR_*` environment variables.
//!
//! Every field is documented here once; the doc comments double as `--help` text. [`Config`] is plain data: the
//! engine gets its own [`EngineSettings`] derived from it, so the inference layer does not depend on the command
//! line. Rules that involve several fields are checked by [`Config::validate`] at startup.
//!
//! Architecture invariant: this module is the bottom layer of the server. It imports nothing from the rest of the
//! crate; every other layer may use its plain types ([`ApiKeys`], [`Explain`]). The engine's settings types live in
//! `cxr-engine`, which parses nothing.

mod dicomweb;
mod keys;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cxr_core::card::{ModelSelection, ModelVariant};
use cxr_engine::{BatchSizes, ConvSearch, Device, EngineSettings, IoBindingMode, Precision};

pub use self::dicomweb::DicomWebPush;
pub use self::keys::{ApiKey, ApiKeys, InvalidKey, KeyFileError, KeyFileProblem, MIN_KEY_LEN};

/// What a prediction explains (`--explain`, `?explain=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Explain {
    /// Probabilities only (the fast path).
    #[default]
    None,
    /// Class activation maps: one grid per finding.
    Cam,
}

cxr_core::keywords!(clap Explain, "explanation", { None => "none", Cam => "cam" });

/// Where ONNX Runtime is looked for when neither `--ort-dylib` nor `ORT_DYLIB_PATH` is given; made by
/// `scripts/setup-ort.sh`.
pub const DEFAULT_ORT_DYLIB: &str = ".cache/ort/cpu/libonnxruntime.so.1.31.1";

/// Command-line and environment configuration of `cxr-serve`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cxr-serve",
    version,
    about = "HTTP inference server for color- vs grayscale-pretrained chest X-ray classifiers"
)]
pub struct Config {
    /// Socket address to listen on; port 0 picks a free port (the chosen address is printed as `listening on ADDR`).
    #[arg(long, env = "CXR_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Directory holding `cxr-inception-v3-{color,gray}.onnx` and their sidecar model cards (made by `make models`).
    #[arg(long, env = "CXR_MODELS", default_value = "models")]
    pub models: PathBuf,

    /// Execution device: `cpu`, `cuda` (fail at startup if CUDA cannot be used) or `auto` (CUDA, else CPU).
    #[arg(long, env = "CXR_DEVICE", default_value = "cpu")]
    pub device: Device,

    /// Threads of ONNX Runtime's intra-op pool, shared by both models (one global pool, default: the CPUs).
    #[arg(long, env = "CXR_INTRA_THREADS", default_value_t = default_intra_threads(), hide_default_value = true,
          value_parser = parse_positive)]
    pub intra_threads: usize,

    /// Whether idle intra-op threads spin before sleeping (`true`, ONNX Runtime's default: no wake-up cost between
    /// operators) or sleep at once (`false`: less CPU burnt while idle, slower inference).
    #[arg(long, env = "CXR_INTRA_OP_SPINNING", default_value_t = true, action = clap::ArgAction::Set)]
    pub intra_op_spinning: bool,

    /// Batch sizes the sessions run: `auto` (CUDA: padded to 1, 2, 4, … up to --max-batch, each warmed before
    /// ready, so cuDNN never tunes a new shape on the request path; CPU: exact sizes), `exact`, or a list such as
    /// `1,4,16,64` (padded to those sizes plus --max-batch; padding rows never reach a response).
    #[arg(long, env = "CXR_BATCH_SIZES", default_value = "auto")]
    pub batch_sizes: BatchSizes,

    /// cuDNN convolution algorithm search on CUDA: `exhaustive` (ONNX Runtime's default), `heuristic` or `default`.
    #[arg(long, env = "CXR_CUDNN_CONV_ALGO_SEARCH")]
    pub cudnn_conv_algo_search: Option<ConvSearch>,

    /// Which exported files to serve: `fp32` (`<name>.onnx`) or `fp16` (`<name>.fp16.onnx`, written by
    /// `cxr-train export --fp16`; for CUDA, where it halves weight traffic and uses Tensor Cores; slower on CPUs).
    #[arg(long, env = "CXR_PRECISION", default_value = "fp32")]
    pub precision: Precision,

    /// Whether batches go through an ONNX Runtime I/O binding: `auto` (with CUDA: page-locked host buffers the
    /// provider copies from directly; on the CPU: plain runs), `on` (also on the CPU, where it uses the session's
    /// allocator) or `off`.
    #[arg(long, env = "CXR_IO_BINDING", default_value = "auto")]
    pub io_binding: IoBindingMode,

    /// Keep the request path's multi-megabyte buffers in the heap instead of returning them to the kernel after every
    /// request (glibc mmap threshold 32 MiB, trim threshold 64 MiB, at most 2 arenas per CPU; see `src/malloc.rs`).
    /// Skipped when the environment sets glibc malloc options itself.
    #[arg(long, env = "CXR_TUNE_MALLOC", default_value_t = true, action = clap::ArgAction::Set)]
    pub tune_malloc: bool,

    /// Model(s) used by `POST /predict` when the request has no `model` parameter: `gray`, `color` or `both`.
    #[arg(long, env = "CXR_DEFAULT_MODEL", default_value = "gray")]
    pub default_model: ModelSelection,

    /// What `POST /predict` explains when the request has no `explain` parameter: `none`, or `cam` (per-finding class
    /// activation maps from the same forward pass, in the original image's coordinates; models without a `cam`
    /// output, such as adopted ones, answer without maps and a warning).
    #[arg(long, env = "CXR_EXPLAIN", value_enum, default_value = "none")]
    pub explain: Explain,

    /// Largest accepted request body in bytes (raw or multipart); larger bodies get 413.
    #[arg(long, env = "CXR_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = parse_positive)]
    pub max_body_bytes: usize,

    /// Largest accepted image in pixels (width × height), checked from the header before any pixel is allocated.
    #[arg(long, env = "CXR_MAX_PIXELS", default_value_t = 100_000_000)]
    pub max_pixels: u64,

    /// Most images one model runs in a single ONNX Runtime call. Default: 8 when the model runs on the CPU, 64 when
    /// it runs on CUDA (decided by the execution provider actually used, so `--device auto` gets the right one).
    #[arg(long, env = "CXR_MAX_BATCH", value_parser = parse_positive)]
    pub max_batch: Option<usize>,

    /// Longest a model worker waits for more requests to fill a batch, in milliseconds (0: never wait). It waits
    /// only while another request for the model is still being decoded or preprocessed; a lone request runs at once.
    #[arg(long, env = "CXR_MAX_BATCH_DELAY_MS", default_value_t = 2)]
    pub max_batch_delay_ms: u64,

    /// Shadow model (`color` or `gray`): it also runs, in the background, on the same preprocessed image as every
    /// prediction of the other model, feeding the A/B statistics (`GET /v1/ab`, `cxr_ab_*` metrics) without
    /// changing or delaying the response. Must differ from `--default-model` (which must then name one model).
    #[arg(long, env = "CXR_SHADOW")]
    pub shadow: Option<ModelVariant>,

    /// Requests that may wait for each model beyond the batch being run; a full queue answers 503. Default:
    /// 2 × the model's max batch, at least 64 (a closed loop of 2 × max-batch clients never fills it).
    #[arg(long, env = "CXR_QUEUE_CAPACITY", value_parser = parse_positive)]
    pub queue_capacity: Option<usize>,

    /// Prediction requests handled at once (from body upload to response); more get 503 at once. Default:
    /// 4 × the largest max batch of the loaded models, at least 128.
    #[arg(long, env = "CXR_MAX_CONCURRENT_REQUESTS", value_parser = parse_positive)]
    pub max_concurrent_requests: Option<usize>,

    /// Images decoded or preprocessed at once (default: the number of CPUs). Requests beyond it wait their turn, so
    /// under load decoding neither oversubscribes the cores that inference uses nor holds a decoded image per
    /// waiting request in memory.
    #[arg(long, env = "CXR_DECODE_THREADS", default_value_t = default_intra_threads(), hide_default_value = true,
          value_parser = parse_positive)]
    pub decode_threads: usize,

    /// Longest a request body may take to arrive, in seconds; slower uploads (stalled or slowloris-style clients)
    /// get 408 `request-timeout` and free their request slot.
    #[arg(long, env = "CXR_BODY_TIMEOUT_SECS", default_value_t = 60, value_parser = parse_positive)]
    pub body_timeout_secs: usize,

    /// Seconds to wait for in-flight requests after SIGTERM/SIGINT before exiting anyway.
    #[arg(long, env = "CXR_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Path of the ONNX Runtime shared library; a relative path is looked up from the working directory, then from
    /// the executable's directory and its ancestors (so `target/release/cxr-serve` finds the repository's `.cache`).
    #[arg(long, env = "ORT_DYLIB_PATH", default_value = DEFAULT_ORT_DYLIB)]
    pub ort_dylib: PathBuf,

    /// API key required on the inference and model routes (repeatable; `CXR_API_KEYS` takes a comma-separated list;
    /// at least 16 characters). Health, readiness, metrics and the OpenAPI document stay open. Default: no keys.
    #[arg(long = "api-key", env = "CXR_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<ApiKey>,

    /// A file of API keys, one per line (`#` comments), added to `--api-key`.
    #[arg(long, env = "CXR_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Serve `/metrics` on this address instead of the main one (e.g. a port only the scraper can reach).
    #[arg(long, env = "CXR_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Origin allowed to call the API from a browser (CORS; repeatable, `CXR_CORS_ORIGINS` comma-separated, `*` for
    /// any). Default: none, no CORS headers.
    #[arg(long = "cors-origin", env = "CXR_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Log format: `text` (human-readable) or `json` (one object per line).
    #[arg(long, env = "CXR_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub dicomweb: DicomWebPush,
}

impl Config {
    /// The configuration with every default, as if no flag or variable were set (for tests and embedding).
    pub fn defaults() -> Config {
        <Config as clap::Parser>::parse_from(["cxr-serve"])
    }

    /// Longest a worker waits to fill a batch.
    pub fn max_batch_delay(&self) -> Duration {
        Duration::from_millis(self.max_batch_delay_ms)
    }

    /// Checks the rules that involve several options; the server refuses to start when one is broken.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.dicomweb.check().map_err(ConfigError::DicomWebPush)?;
        match (self.shadow, self.default_model) {
            (Some(_), ModelSelection::Both) => Err(ConfigError::ShadowWithBoth),
            (Some(shadow), selection) if selection.single() == Some(shadow) => {
                Err(ConfigError::ShadowIsDefault { shadow })
            }
            _ => Ok(()),
        }
    }

    /// The API keys of `--api-key` and `--api-key-file`.
    pub fn api_keys(&self) -> Result<ApiKeys, KeyFileError> {
        ApiKeys::load(&self.api_keys, self.api_key_file.as_deref())
    }

    /// The shadow model of a valid configuration (`None` without `--shadow`, or when [`Config::validate`] fails).
    pub fn shadow_model(&self) -> Option<ModelVariant> {
        self.validate().ok().and(self.shadow)
    }

    /// Settings of the inference engine derived from this configuration.
    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            models_dir: self.models.clone(),
            device: self.device,
            precision: self.precision,
            io_binding: self.io_binding,
            intra_threads: self.intra_threads,
            spinning: self.intra_op_spinning,
            batch_sizes: self.batch_sizes.clone(),
            conv_search: self.cudnn_conv_algo_search,
            max_batch: self.max_batch,
            max_batch_delay: self.max_batch_delay(),
            queue_capacity: self.queue_capacity,
            ort_dylib: resolve_relative(&self.ort_dylib),
        }
    }
}

/// A configuration whose options contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--shadow {shadow} names the default model (--default-model {shadow}); the shadow must be the other model")]
    ShadowIsDefault { shadow: ModelVariant },
    #[error("--shadow cannot be combined with --default-model both, which already runs both models on every request")]
    ShadowWithBoth,
    #[error("{0}")]
    DicomWebPush(String),
}

/// Format of the log lines written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

cxr_core::keywords!(clap LogFormat, "log format", { Text => "text", Json => "json" });

fn default_intra_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Resolves a relative path against the working directory first, then against the executable's directory and each
/// of its ancestors; returns the path unchanged when no candidate exists (the caller reports the error).
fn resolve_relative(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    let exe = std::env::current_exe().ok();
    let candidates = exe.iter().flat_map(|exe| exe.ancestors().skip(1)).map(|dir| dir.join(path));
    for candidate in candidates {
        if candidate.exists() {
            return candidate;
        }
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/configuration.md` holds exactly this binary's `--help` (`make docs` regenerates it).
    #[test]
    fn the_configuration_reference_is_the_help() {
        let markdown = cxr_core::clidoc::help_markdown(<Config as clap::CommandFactory>::command());
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        cxr_core::clidoc::check_generated(&path, "cxr-serve", &markdown).unwrap();
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = Config::defaults();
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.models, PathBuf::from("models"));
        assert_eq!(config.device, Device::Cpu);
        assert_eq!(config.default_model, ModelSelection::Gray);
        assert_eq!(config.max_body_bytes, 64 * 1024 * 1024);
        assert_eq!(config.max_pixels, 100_000_000);
        assert_eq!(config.max_batch, None, "resolved from the execution provider: 8 on the CPU, 64 on CUDA");
        assert_eq!(config.max_batch_delay(), Duration::from_millis(2));
        assert_eq!(config.shadow, None);
        assert_eq!(config.queue_capacity, None, "derived from the batch size");
        assert_eq!(config.max_concurrent_requests, None, "derived from the batch size");
        assert!(config.intra_threads >= 1);
        assert!(config.intra_op_spinning);
        assert_eq!(config.batch_sizes, BatchSizes::Auto);
        assert_eq!(config.cudnn_conv_algo_search, None);
    }

    #[test]
    fn batch_sizes_parse() {
        assert!("1,0".parse::<BatchSizes>().is_err() && "x".parse::<BatchSizes>().is_err());
        assert_eq!("1,4,16".parse::<BatchSizes>(), Ok(BatchSizes::Buckets(vec![1, 4, 16])));
        assert_eq!("exact".parse::<BatchSizes>(), Ok(BatchSizes::Exact));
    }

    #[test]
    fn selections_parse_and_order_color_first() {
        assert_eq!("both".parse::<ModelSelection>().unwrap().variants(), &[ModelVariant::Color, ModelVariant::Gray]);
        assert_eq!("gray".parse::<ModelSelection>().unwrap().variants(), &[ModelVariant::Gray]);
        assert_eq!("color".parse::<ModelSelection>().unwrap().variants(), &[ModelVariant::Color]);
        assert!("nope".parse::<ModelSelection>().unwrap_err().to_string().starts_with("unknown model \"nope\""));
    }

    #[test]
    fn the_shadow_must_be_the_other_model() {
        let parse = |args: &[&str]| {
            let mut all = vec!["cxr-serve"];
            all.extend_from_slice(args);
            <Config as clap::Parser>::try_parse_from(all).unwrap()
        };
        let valid = parse(&["--shadow", "color"]);
        assert_eq!(valid.validate(), Ok(()));
        assert_eq!(valid.shadow_model(), Some(ModelVariant::Color));
        let same = parse(&["--shadow", "gray"]);
        assert_eq!(same.validate(), Err(ConfigError::ShadowIsDefault { shadow: ModelVariant::Gray }));
        assert_eq!(same.shadow_model(), None);
        assert_eq!(parse(&["--shadow", "gray", "--default-model", "color"]).validate(), Ok(()));
        assert_eq!(
            parse(&["--shadow", "gray", "--default-model", "both"]).validate(),
            Err(ConfigError::ShadowWithBoth)
        );
        assert!(<Config as clap::Parser>::try_parse_from(["cxr-serve", "--shadow", "both"]).is_err());
    }

    #[test]
    fn zero_is_rejected_where_a_count_is_expected() {
        let parsed = <Config as clap::Parser>::try_parse_from(["cxr-serve", "--max-batch", "0"]);
        assert!(parsed.is_err());
    }
}
