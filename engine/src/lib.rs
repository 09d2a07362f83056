//! `cxr-engine`: the inference engine. One ONNX Runtime session per model variant, each owned by a dedicated OS
//! thread that batches requests.
//!
//! [`Engine::load`] opens the exported classifiers the models directory holds (`cxr-inception-v3-{color,gray}.onnx`,
//! one or both), checks every session
//! against its model card (`load.rs`), runs a warm-up inference and only then returns. Each [`ModelHandle`] feeds its
//! worker (`worker.rs`) through a bounded channel: [`ModelHandle::infer`] never waits for queue space, a full queue is
//! [`InferError::Overloaded`] at once. The worker stacks up to `max_batch` queued tensors into one `[N, C, H, W]`
//! input and answers every job on its own oneshot channel.
//!
//! A caller that knows a tensor is coming (the image is still being decoded or preprocessed) takes an
//! [`Admission`] first ([`ModelHandle::admit`]) and submits through it. The worker waits up to `max_batch_delay`
//! for more jobs only while such admitted-but-not-yet-queued requests exist; otherwise it runs what it has at once,
//! so a lone request never pays the batching delay (see `worker.rs`).
//!
//! Each worker reports queue waits, batch sizes, inference times and dropped jobs to a [`WorkerObserver`] of its
//! model ([`Engine::load_observed`]); the telemetry layer implements it, so the engine knows nothing of Prometheus.
//!
//! A job may also ask for the per-position outputs of models that have them ([`Maps`]: the class activation maps and
//! the last feature map); a batch fetches them only when one of its jobs asked, so other jobs pay nothing.
//!
//! The settings it is built from ([`EngineSettings`] and its keyword types, `settings.rs`) are plain data; with the
//! `clap` feature their keyword enums are also `clap::ValueEnum`s, for the command lines that parse them.
//!
//! Architecture invariant: this crate knows nothing about HTTP or Prometheus — Cargo holds it, since neither axum,
//! tower, hyper nor prometheus is a dependency; it takes preprocessed tensors and returns probabilities (and the
//! maps asked for) with timings.

mod load;
mod settings;
mod staging;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cxr_core::card::{CAM_NAME, FEATURES_NAME, ModelCard, ModelSelection, ModelVariant};
use cxr_core::preprocess::Preprocessor;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};

pub use self::load::{ThreadPool, open_session, ort_environment};
pub use self::settings::{BatchSizes, ConvSearch, Device, EngineSettings, IoBindingMode, Precision};
pub use self::staging::StagingKind;

/// The ONNX Runtime execution provider a session runs on, named as ONNX Runtime names it (in `GET /v1/models`,
/// every result and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// The CUDA execution provider.
    Cuda,
}

cxr_core::keywords!(Provider, "execution provider", { Cpu => "CPUExecutionProvider", Cuda => "CUDAExecutionProvider" });

/// Largest batch on the CPU when `--max-batch` is not given: beyond this, a CPU batch only adds latency.
pub const DEFAULT_MAX_BATCH_CPU: usize = 8;
/// Largest batch on a GPU when `--max-batch` is not given: a GPU keeps gaining throughput up to large batches.
pub const DEFAULT_MAX_BATCH_CUDA: usize = 64;

/// The default largest batch for the execution provider a session actually runs on.
pub fn default_max_batch(provider: Provider) -> usize {
    match provider {
        Provider::Cuda => DEFAULT_MAX_BATCH_CUDA,
        Provider::Cpu => DEFAULT_MAX_BATCH_CPU,
    }
}

/// Smallest default queue per model; the default grows with the batch ([`default_queue_capacity`]).
pub const MIN_QUEUE_CAPACITY: usize = 64;

/// The default queue capacity of a model: room for two full batches beyond the one running (at least
/// [`MIN_QUEUE_CAPACITY`]), so that a closed loop of 2 × `max_batch` clients never finds the queue full.
pub fn default_queue_capacity(max_batch: usize) -> usize {
    (2 * max_batch).max(MIN_QUEUE_CAPACITY)
}

/// The padded batch sizes of `sizes` for a session on `provider` with `max_batch` (empty: exact sizes), sorted,
/// ending at `max_batch`. `auto` pads to powers of two on CUDA only: the CPU execution provider has no per-shape
/// tuning to pay, so padding there would only add work.
pub fn padded_batch_sizes(sizes: &BatchSizes, provider: Provider, max_batch: usize) -> Vec<usize> {
    let powers = || {
        let mut sizes: Vec<usize> =
            std::iter::successors(Some(1usize), |n| n.checked_mul(2)).take_while(|n| *n < max_batch).collect();
        sizes.push(max_batch);
        sizes
    };
    match sizes {
        BatchSizes::Exact => Vec::new(),
        BatchSizes::Auto if provider == Provider::Cuda => powers(),
        BatchSizes::Auto => Vec::new(),
        BatchSizes::Buckets(sizes) => {
            let mut sizes: Vec<usize> = sizes.iter().copied().filter(|n| *n >= 1 && *n < max_batch).collect();
            sizes.push(max_batch);
            sizes.sort_unstable();
            sizes.dedup();
            sizes
        }
    }
}

/// What a model's worker reports as it runs: the telemetry layer implements it with Prometheus series, so the
/// engine knows nothing of Prometheus. Calls are cheap and never block (they happen on the worker thread, between
/// session runs).
pub trait WorkerObserver: Send + Sync + 'static {
    /// A job waited `waited` in the queue before its batch started.
    fn queue_wait(&self, waited: Duration);
    /// A batch of `size` real jobs ran in `inference` (the session run alone).
    fn batch(&self, size: usize, inference: Duration);
    /// A job was dropped unrun because its caller had gone.
    fn job_dropped(&self);
    /// A batch ran at a shape that was not warmed up (a padded-bucket miss).
    fn cold_shape(&self);
}

/// The observer of an engine loaded with [`Engine::load`]: reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl WorkerObserver for Unobserved {
    fn queue_wait(&self, _: Duration) {}
    fn batch(&self, _: usize, _: Duration) {}
    fn job_dropped(&self) {}
    fn cold_shape(&self) {}
}

/// Name, element type and shape of a graph input or output; `-1` marks a dynamic dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// Where a model's card was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardSource {
    /// The ONNX `metadata_props` entry [`cxr_core::card::CARD_METADATA_KEY`] (matching the sidecar when both exist).
    Embedded,
    /// The sidecar JSON next to the ONNX file (the model has no embedded card).
    Sidecar,
}

cxr_core::keywords!(CardSource, "card source", { Embedded => "embedded", Sidecar => "sidecar" });

/// The per-position outputs a job may ask for beside the probabilities and logits. A run fetches only what one of
/// its jobs asked for: without maps, ONNX Runtime is asked for `probabilities` and `logits` alone, so the
/// half-megabyte feature map of each image is never copied out (ONNX Runtime's inference builds still run every
/// node of the graph, whatever is fetched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Maps {
    /// The class activation maps ([`CAM_NAME`], `[14, g, g]`).
    pub cam: bool,
    /// The last feature map before pooling ([`FEATURES_NAME`], `[C, g, g]`).
    pub features: bool,
}

impl Maps {
    /// Neither map: the fast path.
    pub const NONE: Maps = Maps { cam: false, features: false };
    /// The class activation maps only.
    pub const CAM: Maps = Maps { cam: true, features: false };

    /// Whether any map is asked for.
    pub fn any(self) -> bool {
        self.cam || self.features
    }

    /// Every map either asks for.
    pub fn union(self, other: Maps) -> Maps {
        Maps { cam: self.cam || other.cam, features: self.features || other.features }
    }

    /// The graph outputs to fetch, in a fixed order.
    pub(crate) fn output_names(self) -> impl Iterator<Item = &'static str> {
        [(self.cam, CAM_NAME), (self.features, FEATURES_NAME)].into_iter().filter(|(on, _)| *on).map(|(_, name)| name)
    }
}

/// The shape of a model's per-position outputs, read from its graph at load time: `features` `[N, channels, g, g]`
/// and `cam` `[N, 14, g, g]`, where `g` is the side of the last feature map (8 at 299 × 299).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MapShape {
    /// The side `g` of the square grid.
    pub grid: usize,
    /// Channels of the feature map (2048 for Inception-V3).
    pub channels: usize,
}

impl MapShape {
    /// Values of one image's class activation maps: `14 × g²`.
    pub fn cam_len(&self) -> usize {
        cxr_core::labels::NUM_LABELS * self.grid * self.grid
    }

    /// Values of one image's feature map: `channels × g²`.
    pub fn features_len(&self) -> usize {
        self.channels * self.grid * self.grid
    }
}

/// A loaded, validated and warmed-up model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub variant: ModelVariant,
    pub card: ModelCard,
    pub card_source: CardSource,
    /// The ONNX file the session was created from.
    pub path: PathBuf,
    /// The number format of that file (its `cxr.precision` metadata agrees, or loading failed).
    pub precision: Precision,
    /// What the batches go through: a plain run, or an I/O binding over host or pinned memory (`--io-binding`).
    pub io_binding: StagingKind,
    /// The execution provider the session was created with.
    pub provider: Provider,
    pub input: TensorInfo,
    pub outputs: Vec<TensorInfo>,
    /// The `features` and `cam` outputs, when the graph has both (every export of `cxr-train`; adopted models
    /// have neither, and then no heatmaps).
    pub maps: Option<MapShape>,
    /// Duration of the warm-up inference (batch of one).
    pub warm_up: Duration,
    /// Most images the worker stacks into one session run (resolved from the provider when not configured).
    pub max_batch: usize,
    /// The padded batch sizes (empty: every batch runs at its own size).
    pub batch_sizes: Vec<usize>,
    /// The batch sizes run once before the model became ready (every padded size; else 1 and `max_batch`).
    pub warmed: Vec<usize>,
    /// Jobs that may wait in the model's queue.
    pub queue_capacity: usize,
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
    /// The logits the probabilities are the sigmoid of, same order.
    pub logits: Vec<f32>,
    /// The class activation maps `[14, g, g]`, row-major, when the job asked for them ([`Maps::cam`]); the spatial
    /// mean of map `k` is `logits[k]`.
    pub cam: Option<Vec<f32>>,
    /// The last feature map `[C, g, g]`, when the job asked for it ([`Maps::features`]).
    pub features: Option<Vec<f32>>,
    /// From submission to the start of the batch that ran this job.
    pub queue: Duration,
    /// Wall time of the batch's session run (shared by every job of the batch).
    pub inference: Duration,
    /// Number of images in the batch.
    pub batch_size: usize,
}

/// Failures while loading the engine; every message names the file or library involved, and the underlying error
/// (ONNX Runtime's, the file system's, the card parser's) is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not load ONNX Runtime from {path}: {cause} (run scripts/setup-ort.sh, or set ORT_DYLIB_PATH)")]
    Runtime {
        path: PathBuf,
        #[source]
        cause: Cause,
    },
    /// The models directory holds neither variant's file (in the configured precision).
    #[error(
        "{dir} holds no model: expected {expected} (run `make models`, or point --models at the directory holding them)"
    )]
    NoModels { dir: PathBuf, expected: String },
    #[error("{path}: {cause}")]
    Card {
        path: PathBuf,
        #[source]
        cause: Cause,
    },
    /// The graph and its card disagree; `problem` says how (there is no underlying error).
    #[error("{path}: model does not match its card: {problem}")]
    Mismatch { path: PathBuf, problem: String },
    #[error("{path}: CUDA execution provider unavailable: {cause}")]
    Cuda {
        path: PathBuf,
        #[source]
        cause: Cause,
    },
    #[error("{path}: could not create an ONNX Runtime session: {cause}")]
    Session {
        path: PathBuf,
        #[source]
        cause: Cause,
    },
    #[error("{path}: warm-up inference failed: {cause}")]
    WarmUp {
        path: PathBuf,
        #[source]
        cause: Cause,
    },
    #[error("could not start the worker thread for {variant}: {cause}")]
    Worker {
        variant: ModelVariant,
        #[source]
        cause: Cause,
    },
}

/// The cause under an [`EngineError`] or [`InferError::Run`]: ONNX Runtime's error, a file system or card error,
/// a failed inference, or what the engine itself found wrong — each kept as an error, with the step it broke.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Ort(#[from] ort::Error),
    #[error(transparent)]
    Library(#[from] ort::LoadDynamicError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Card(#[from] cxr_core::card::CardError),
    #[error(transparent)]
    Infer(#[from] InferError),
    /// A check of the engine's own failed (a shape, a value range); there is no underlying error.
    #[error("{0}")]
    Check(String),
    /// `source` failed while the engine was doing `step`.
    #[error("{step}: {source}")]
    During { step: String, source: Box<Cause> },
}

impl Cause {
    /// `source`, which happened during `step` (e.g. "batch 8", "cannot read metadata").
    pub fn during(step: impl Into<String>, source: impl Into<Cause>) -> Cause {
        Cause::During { step: step.into(), source: Box::new(source.into()) }
    }
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
    /// The job asked for maps the model's graph does not output (an adopted model).
    #[error("the {variant} model has no {CAM_NAME:?} and {FEATURES_NAME:?} outputs")]
    NoMaps { variant: ModelVariant },
    /// ONNX Runtime failed or returned something unexpected (shared by every job of the failed batch).
    #[error("{variant} inference failed: {cause}")]
    Run {
        variant: ModelVariant,
        #[source]
        cause: Arc<Cause>,
    },
}

/// A request waiting for its model's worker.
struct Job {
    tensor: Vec<f32>,
    maps: Maps,
    submitted: Instant,
    reply: oneshot::Sender<Result<Prediction, InferError>>,
}

/// Requests admitted for one model that have not queued their job yet; shared by the handles and the worker.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    pending: AtomicUsize,
    /// Signalled whenever `pending` drops, so that a worker waiting for a batch can re-check it.
    changed: Notify,
}

impl Arrivals {
    /// How many admitted requests have not queued their job yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    fn enter(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
        // A stored permit makes the worker's next wait return at once, so a change between its check and its wait
        // is never missed; a stale permit costs one extra check.
        self.changed.notify_one();
    }
}

/// A loaded model: its description, its preprocessing and the queue to its worker. Cheap to clone; the worker
/// stops once the engine and every clone are gone.
#[derive(Clone)]
pub struct ModelHandle {
    info: Arc<ModelInfo>,
    preprocessor: Arc<Preprocessor>,
    queue: mpsc::Sender<Job>,
    capacity: usize,
    arrivals: Arc<Arrivals>,
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

    /// Jobs waiting in the queue (not counting the batch being run).
    pub fn queue_depth(&self) -> usize {
        self.capacity.saturating_sub(self.queue.capacity())
    }

    /// Whether a job submitted now would be refused as [`InferError::Overloaded`].
    pub fn queue_is_full(&self) -> bool {
        self.queue.capacity() == 0
    }

    /// Requests admitted with [`ModelHandle::admit`] that have not queued their job yet.
    pub fn pending(&self) -> usize {
        self.arrivals.pending()
    }

    /// Announces a job that will follow once its tensor is ready: until the [`Admission`] is used or dropped, the
    /// worker may wait (at most `max_batch_delay`) for it to join the current batch.
    pub fn admit(&self) -> Admission {
        self.arrivals.enter();
        Admission { model: self.clone(), active: true }
    }

    /// Queues one preprocessed `[C, H, W]` tensor and waits for its probabilities.
    ///
    /// Fails with [`InferError::Overloaded`] without waiting when the queue is full. Dropping the returned future
    /// (a client that went away) makes the worker skip the job if it has not started yet.
    pub async fn infer(&self, tensor: Vec<f32>) -> Result<Prediction, InferError> {
        let answer = self.submit(tensor, Maps::NONE)?;
        answer.await.map_err(|_| InferError::Stopped { variant: self.info.variant })?
    }

    /// Queues the job without waiting; the receiver yields its result.
    fn submit(
        &self,
        tensor: Vec<f32>,
        maps: Maps,
    ) -> Result<oneshot::Receiver<Result<Prediction, InferError>>, InferError> {
        let variant = self.info.variant;
        let expected = self.info.tensor_len();
        if tensor.len() != expected {
            return Err(InferError::InputSize { variant, got: tensor.len(), expected });
        }
        if maps.any() && self.info.maps.is_none() {
            return Err(InferError::NoMaps { variant });
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { tensor, maps, submitted: Instant::now(), reply };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InferError::Overloaded { variant, capacity: self.capacity },
            mpsc::error::TrySendError::Closed(_) => InferError::Stopped { variant },
        })?;
        Ok(answer)
    }
}

/// A request announced to a model's worker by [`ModelHandle::admit`]; it stops counting as pending when its job is
/// queued ([`Admission::infer`]) or when it is dropped (the request failed or its client left first).
pub struct Admission {
    model: ModelHandle,
    active: bool,
}

impl Admission {
    /// The model this request was admitted for.
    pub fn model(&self) -> &ModelHandle {
        &self.model
    }

    /// Queues the tensor (see [`ModelHandle::infer`]) and waits for its probabilities.
    pub async fn infer(self, tensor: Vec<f32>) -> Result<Prediction, InferError> {
        self.infer_with(tensor, Maps::NONE).await
    }

    /// [`Admission::infer`], with the per-position outputs `maps` in the prediction as well. Fails with
    /// [`InferError::NoMaps`] when the model has none ([`ModelInfo::maps`]).
    pub async fn infer_with(mut self, tensor: Vec<f32>, maps: Maps) -> Result<Prediction, InferError> {
        // The job is queued before the request stops counting as pending, so a worker deciding whether to wait sees
        // one or the other, never neither.
        let submitted = self.model.submit(tensor, maps);
        self.release();
        let answer = submitted?;
        answer.await.map_err(|_| InferError::Stopped { variant: self.model.info.variant })?
    }

    fn release(&mut self) {
        if std::mem::replace(&mut self.active, false) {
            self.model.arrivals.leave();
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

/// The classifiers the models directory holds (one or both variants), loaded and warmed up.
pub struct Engine {
    models: Vec<ModelHandle>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Loads, validates and warms up every model variant whose file the models directory holds (at least one), each
    /// on its own worker thread (in parallel). The workers report to nobody; a server uses [`Engine::load_observed`].
    ///
    /// Blocks for as long as loading takes (seconds); call it from a blocking context.
    pub fn load(settings: &EngineSettings) -> Result<Engine, EngineError> {
        Engine::load_observed(settings, |_| Box::new(Unobserved))
    }

    /// [`Engine::load`], with each worker reporting to the observer `observe` gives its model (queue wait, batch
    /// size, inference time, dropped jobs).
    pub fn load_observed(
        settings: &EngineSettings,
        observe: impl Fn(ModelVariant) -> Box<dyn WorkerObserver>,
    ) -> Result<Engine, EngineError> {
        let environment = ort_environment(
            &settings.ort_dylib,
            Some(ThreadPool { intra_threads: settings.intra_threads, spinning: settings.spinning }),
        )?;
        // The variants whose file the models directory holds: one alone is served alone.
        let present: Vec<ModelVariant> =
            ModelVariant::ALL.into_iter().filter(|&variant| settings.model_path(variant).is_file()).collect();
        if present.is_empty() {
            let expected = ModelVariant::ALL.map(|variant| settings.model_path(variant).display().to_string());
            return Err(EngineError::NoModels { dir: settings.models_dir.clone(), expected: expected.join(" or ") });
        }

        let mut starting = Vec::new();
        for variant in present {
            starting.push(worker::spawn(variant, settings, environment.clone(), observe(variant))?);
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

    /// The handle of one variant, when its file was present and it loaded.
    pub fn model(&self, variant: ModelVariant) -> Option<&ModelHandle> {
        self.models.iter().find(|m| m.info.variant == variant)
    }

    /// Every loaded model, in [`ModelVariant::ALL`] order.
    pub fn models(&self) -> impl Iterator<Item = &ModelHandle> {
        self.models.iter()
    }

    /// The variants loaded, in [`ModelVariant::ALL`] order.
    pub fn variants(&self) -> Vec<ModelVariant> {
        self.models.iter().map(|m| m.info.variant).collect()
    }

    /// Whether every model of `selection` is loaded.
    pub fn serves(&self, selection: ModelSelection) -> bool {
        selection.variants().iter().all(|&variant| self.model(variant).is_some())
    }
}

impl Drop for Engine {
    /// Closes every queue and waits for the workers to finish the jobs already queued (a worker whose handle was
    /// cloned, e.g. by a shadow run in flight, stops once that clone is gone too).
    fn drop(&mut self) {
        self.models.clear();
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a model worker thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_padded_sizes_follow_the_batch() {
        assert_eq!((default_queue_capacity(8), default_queue_capacity(64)), (64, 128));
        assert_eq!(padded_batch_sizes(&BatchSizes::Auto, Provider::Cuda, 64), [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(padded_batch_sizes(&BatchSizes::Auto, Provider::Cuda, 48), [1, 2, 4, 8, 16, 32, 48]);
        assert!(padded_batch_sizes(&BatchSizes::Auto, Provider::Cpu, 8).is_empty(), "exact sizes on the CPU");
        assert_eq!(padded_batch_sizes(&"1,4,16".parse().unwrap(), Provider::Cpu, 8), [1, 4, 8]);
        assert_eq!(padded_batch_sizes(&BatchSizes::Exact, Provider::Cuda, 64), Vec::<usize>::new());
    }

    #[test]
    fn the_default_batch_follows_the_provider_in_use() {
        assert_eq!(default_max_batch(Provider::Cpu), 8);
        assert_eq!(default_max_batch(Provider::Cuda), 64);
    }

    #[test]
    fn arrivals_count_admitted_requests_until_they_leave() {
        let arrivals = Arrivals::default();
        arrivals.enter();
        arrivals.enter();
        assert_eq!(arrivals.pending(), 2);
        arrivals.leave();
        assert_eq!(arrivals.pending(), 1);
    }
}
