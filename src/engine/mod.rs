//! The inference engine: one ONNX Runtime session per model variant, each owned by a dedicated OS thread that batches
//! requests.
//!
//! [`Engine::load`] opens both exported classifiers (`cxr-inception-v3-{color,gray}.onnx`), checks every session
//! against its model card ([`load`]), runs a warm-up inference and only then returns. Each [`ModelHandle`] feeds its
//! worker ([`worker`]) through a bounded channel: [`ModelHandle::infer`] never waits for queue space, a full queue is
//! [`InferError::Overloaded`] at once. The worker stacks up to `max_batch` queued tensors into one `[N, C, H, W]`
//! input, waiting at most `max_batch_delay` for more, and answers every job on its own oneshot channel.
//!
//! Architecture invariant: this module knows nothing about HTTP; it takes preprocessed tensors and returns
//! probabilities with timings.

mod load;
mod worker;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cxr_core::card::{ModelCard, ModelVariant};
use cxr_core::preprocess::Preprocessor;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use self::load::ort_environment;

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// The CUDA execution provider; loading fails when it cannot be registered (ONNX Runtime would otherwise fall
    /// back to the CPU without telling).
    Cuda,
    /// CUDA when it can be registered, else the CPU (logged as a warning).
    Auto,
}

impl Device {
    /// The device's name as used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Auto => "auto",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            other => Err(format!("unknown device {other:?} (expected \"cpu\", \"cuda\" or \"auto\")")),
        }
    }
}

/// Name of ONNX Runtime's CPU execution provider, as reported per model.
pub const CPU_PROVIDER: &str = "CPUExecutionProvider";
/// Name of ONNX Runtime's CUDA execution provider, as reported per model.
pub const CUDA_PROVIDER: &str = "CUDAExecutionProvider";

/// Everything the engine needs to load and run the models.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Directory holding `cxr-inception-v3-{color,gray}.onnx` (and optionally their sidecar cards).
    pub models_dir: PathBuf,
    pub device: Device,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Most jobs stacked into one session run (at least 1).
    pub max_batch: usize,
    /// Longest a worker waits for more jobs once it holds one.
    pub max_batch_delay: Duration,
    /// Jobs that may wait in each model's queue (at least 1).
    pub queue_capacity: usize,
    /// The ONNX Runtime shared library; only the first engine of a process loads it.
    pub ort_dylib: PathBuf,
}

impl EngineSettings {
    /// Path of a variant's ONNX file.
    pub fn model_path(&self, variant: ModelVariant) -> PathBuf {
        self.models_dir.join(format!("{}.onnx", variant.file_stem()))
    }

    /// Path of a variant's sidecar model card.
    pub fn card_path(&self, variant: ModelVariant) -> PathBuf {
        self.models_dir.join(format!("{}.json", variant.file_stem()))
    }
}

/// Name, element type and shape of a graph input or output; `-1` marks a dynamic dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// Where a model's card was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardSource {
    /// The ONNX `metadata_props` entry [`cxr_core::card::CARD_METADATA_KEY`] (matching the sidecar when both exist).
    Embedded,
    /// The sidecar JSON next to the ONNX file (the model has no embedded card).
    Sidecar,
}

/// A loaded, validated and warmed-up model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub variant: ModelVariant,
    pub card: ModelCard,
    pub card_source: CardSource,
    /// The ONNX file the session was created from.
    pub path: PathBuf,
    /// The execution provider the session was created with (`CPUExecutionProvider` or `CUDAExecutionProvider`).
    pub provider: &'static str,
    pub input: TensorInfo,
    pub outputs: Vec<TensorInfo>,
    /// Duration of the warm-up inference (batch of one).
    pub warm_up: Duration,
}

impl ModelInfo {
    /// Number of `f32` values of one image's input tensor (`C × H × W`).
    pub fn tensor_len(&self) -> usize {
        self.card.channels * self.card.input_size * self.card.input_size
    }
}

/// One image's result: probabilities in label order plus where its time went.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Sigmoid probabilities, one per label of [`cxr_core::labels::LABELS`].
    pub probabilities: Vec<f32>,
    /// From submission to the start of the batch that ran this job.
    pub queue: Duration,
    /// Wall time of the batch's session run (shared by every job of the batch).
    pub inference: Duration,
    /// Number of images in the batch.
    pub batch_size: usize,
}

/// Failures while loading the engine; every message names the file or library involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not load ONNX Runtime from {path}: {reason} (run scripts/setup-ort.sh, or set ORT_DYLIB_PATH)")]
    Runtime { path: PathBuf, reason: String },
    #[error("model file {path} does not exist (run `make models`, or point --models at the directory holding it)")]
    ModelMissing { path: PathBuf },
    #[error("{path}: {reason}")]
    Card { path: PathBuf, reason: String },
    #[error("{path}: model does not match its card: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error("{path}: CUDA execution provider unavailable: {reason}")]
    Cuda { path: PathBuf, reason: String },
    #[error("{path}: could not create an ONNX Runtime session: {reason}")]
    Session { path: PathBuf, reason: String },
    #[error("{path}: warm-up inference failed: {reason}")]
    WarmUp { path: PathBuf, reason: String },
    #[error("could not start the worker thread for {variant}: {reason}")]
    Worker { variant: ModelVariant, reason: String },
}

/// Failures of one inference job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferError {
    /// The model's queue is full; the caller should retry later.
    #[error("the {variant} model's queue is full ({capacity} waiting)")]
    Overloaded { variant: ModelVariant, capacity: usize },
    /// The worker has stopped (shutdown, or a crash logged by the worker).
    #[error("the {variant} model worker has stopped")]
    Stopped { variant: ModelVariant },
    /// The tensor does not have the model's input size (a caller bug).
    #[error("input tensor has {got} values, the {variant} model expects {expected}")]
    InputSize { variant: ModelVariant, got: usize, expected: usize },
    /// ONNX Runtime failed or returned something unexpected.
    #[error("{variant} inference failed: {reason}")]
    Run { variant: ModelVariant, reason: String },
}

/// A request waiting for its model's worker.
struct Job {
    tensor: Vec<f32>,
    submitted: Instant,
    reply: oneshot::Sender<Result<Prediction, InferError>>,
}

/// A loaded model: its description, its preprocessing and the queue to its worker.
pub struct ModelHandle {
    info: Arc<ModelInfo>,
    preprocessor: Arc<Preprocessor>,
    queue: mpsc::Sender<Job>,
    capacity: usize,
}

impl ModelHandle {
    /// The model's card, provider and graph signature.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The preprocessing the model was trained with (input size and normalisation from its card).
    pub fn preprocessor(&self) -> &Arc<Preprocessor> {
        &self.preprocessor
    }

    /// Whether the worker is still serving (it stops only when the engine is dropped, or after a crash).
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Queues one preprocessed `[C, H, W]` tensor and waits for its probabilities.
    ///
    /// Fails with [`InferError::Overloaded`] without waiting when the queue is full. Dropping the returned future
    /// (a client that went away) makes the worker skip the job if it has not started yet.
    pub async fn infer(&self, tensor: Vec<f32>) -> Result<Prediction, InferError> {
        let variant = self.info.variant;
        let expected = self.info.tensor_len();
        if tensor.len() != expected {
            return Err(InferError::InputSize { variant, got: tensor.len(), expected });
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { tensor, submitted: Instant::now(), reply };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InferError::Overloaded { variant, capacity: self.capacity },
            mpsc::error::TrySendError::Closed(_) => InferError::Stopped { variant },
        })?;
        answer.await.map_err(|_| InferError::Stopped { variant })?
    }
}

/// Both classifiers, loaded and warmed up.
pub struct Engine {
    models: Vec<ModelHandle>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Loads, validates and warms up every model variant, each on its own worker thread (in parallel).
    ///
    /// Blocks for as long as loading takes (seconds); call it from a blocking context.
    pub fn load(settings: &EngineSettings) -> Result<Engine, EngineError> {
        let environment = ort_environment(&settings.ort_dylib)?;
        for variant in ModelVariant::ALL {
            let path = settings.model_path(variant);
            if !path.is_file() {
                return Err(EngineError::ModelMissing { path });
            }
        }

        let mut starting = Vec::new();
        for variant in ModelVariant::ALL {
            starting.push(worker::spawn(variant, settings, environment.clone())?);
        }

        let mut models = Vec::new();
        let mut workers = Vec::new();
        let mut first_error = None;
        for start in starting {
            let (loaded, thread) = start.wait();
            workers.push(thread);
            match loaded {
                Ok(model) => models.push(model),
                Err(error) => {
                    tracing::error!(%error, "model failed to load");
                    first_error.get_or_insert(error);
                }
            }
        }
        let engine = Engine { models, workers };
        match first_error {
            // Dropping the engine closes the queues of the models that did load, so their workers exit.
            Some(error) => Err(error),
            None => Ok(engine),
        }
    }

    /// The handle of one variant.
    pub fn model(&self, variant: ModelVariant) -> Option<&ModelHandle> {
        self.models.iter().find(|m| m.info.variant == variant)
    }

    /// Every loaded model, in [`ModelVariant::ALL`] order.
    pub fn models(&self) -> impl Iterator<Item = &ModelHandle> {
        self.models.iter()
    }
}

impl Drop for Engine {
    /// Closes every queue and waits for the workers to finish the jobs already queued.
    fn drop(&mut self) {
        self.models.clear();
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a model worker thread panicked");
            }
        }
    }
}
