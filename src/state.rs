//! [`AppState`]: what every request handler shares — the engine once loaded, the request limits, the metrics and
//! the A/B window — built from one [`Config`].
//!
//! Architecture invariant: this layer sits above the engine and the telemetry and below the HTTP layer; it knows
//! nothing of routes, responses or problem details. Its failures are [`StateError`]s, which the HTTP layer maps to
//! problems.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cxr_core::card::{ModelSelection, ModelVariant};
use cxr_core::decode::DecodeLimits;
use tokio::sync::Semaphore;

use crate::config::{ApiKeys, Config, Explain};
use crate::delivery::Delivery;
use crate::telemetry::ab::AbStats;
use crate::telemetry::metrics::Metrics;
use cxr_engine::EngineSettings;
use cxr_engine::{Engine, EngineError};

/// Why the state could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The engine is still loading (503 `not-ready`).
    #[error("the models are still loading")]
    NotReady,
    /// The semaphore of the image work slots was closed (only while shutting down).
    #[error("the image work semaphore was closed")]
    WorkPoolClosed,
    /// Image work on the blocking pool panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// Why the configured models cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A model the configuration names (`--default-model`, `--shadow`) has no file in the models directory: the
    /// server serves what the directory holds, but never silently drops a model it was told to use.
    #[error(
        "{flag} {value} needs the {missing} model, but {dir} holds only {loaded} ({file} is missing): add it, or set \
         {flag} to a model the directory holds"
    )]
    Absent { flag: &'static str, value: String, missing: ModelVariant, loaded: String, dir: PathBuf, file: PathBuf },
}

/// Smallest default of `--max-concurrent-requests`.
pub const MIN_CONCURRENT_REQUESTS: usize = 128;

/// The default request limit for models whose largest batch is `max_batch`: 4 × `max_batch` (at least
/// [`MIN_CONCURRENT_REQUESTS`]), so that 2 × `max_batch` closed-loop clients — a full batch running, a full batch
/// queued — never meet the limit, even while one response is still being written when its client's next request
/// arrives.
pub fn default_concurrency(max_batch: usize) -> usize {
    (4 * max_batch).max(MIN_CONCURRENT_REQUESTS)
}

/// The one door of CPU-bound image work: `--decode-threads` slots on the blocking pool. Cheap to clone.
#[derive(Clone)]
pub struct CpuWork(Arc<Semaphore>);

impl CpuWork {
    /// Runs `work` on the blocking pool once a slot is free. Returns the closure's result and how long it ran
    /// (waiting for the slot excluded).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(T, Duration), StateError> {
        let permit = Arc::clone(&self.0).acquire_owned().await.map_err(|_| StateError::WorkPoolClosed)?;
        let (result, elapsed) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = work();
            drop(permit);
            (result, started.elapsed())
        })
        .await?;
        Ok((result, elapsed))
    }
}

/// State shared by every handler: the engine once loaded, the request limits, the metrics and the A/B window.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    engine: OnceLock<Arc<Engine>>,
    draining: AtomicBool,
    permits: Arc<Semaphore>,
    /// Slots for CPU-bound image work (decode, preprocess): `--decode-threads`.
    cpu_work: CpuWork,
    /// The permits of `permits`: `--max-concurrent-requests`, or derived from the models' batch size once loaded.
    max_concurrent_requests: AtomicUsize,
    concurrency_configured: bool,
    max_body_bytes: usize,
    decode_limits: DecodeLimits,
    default_model: ModelSelection,
    explain: Explain,
    shadow: Option<ModelVariant>,
    api_keys: ApiKeys,
    body_timeout: Duration,
    /// `/metrics` is served on `--metrics-bind` instead of the main listener.
    metrics_elsewhere: bool,
    cors_origins: Vec<String>,
    metrics: Arc<Metrics>,
    ab: Arc<AbStats>,
    /// The outbound queue of DICOM results (`--dicomweb-push`).
    delivery: Option<Delivery>,
}

impl AppState {
    /// State without models: `/healthz` answers, `/readyz` and `/predict` say 503 until [`AppState::set_engine`].
    /// Every state has its own metrics registry and A/B window. With `--dicomweb-push`, starts the delivery task:
    /// call it inside a Tokio runtime then.
    pub fn new(config: &Config) -> AppState {
        if let Err(error) = config.validate() {
            tracing::error!(%error, "invalid configuration: shadow runs are disabled");
        }
        let metrics = Arc::new(Metrics::new());
        let delivery = config.dicomweb.url.as_ref().map(|_| Delivery::start(&config.dicomweb, Arc::clone(&metrics)));
        AppState {
            shared: Arc::new(Shared {
                engine: OnceLock::new(),
                draining: AtomicBool::new(false),
                permits: Arc::new(Semaphore::new(config.max_concurrent_requests.unwrap_or(MIN_CONCURRENT_REQUESTS))),
                cpu_work: CpuWork(Arc::new(Semaphore::new(config.decode_threads))),
                max_concurrent_requests: AtomicUsize::new(
                    config.max_concurrent_requests.unwrap_or(MIN_CONCURRENT_REQUESTS),
                ),
                concurrency_configured: config.max_concurrent_requests.is_some(),
                max_body_bytes: config.max_body_bytes,
                decode_limits: DecodeLimits::new(config.max_pixels),
                default_model: config.default_model,
                explain: config.explain,
                shadow: config.shadow_model(),
                // Fails closed: keys that cannot be loaded refuse every protected request (`serve` refuses to start).
                api_keys: config.api_keys().unwrap_or_else(|error| {
                    tracing::error!(%error, "API keys could not be loaded: refusing every protected request");
                    ApiKeys::deny_all()
                }),
                metrics_elsewhere: config.metrics_bind.is_some(),
                body_timeout: Duration::from_secs(config.body_timeout_secs as u64),
                cors_origins: config.cors_origins.clone(),
                metrics,
                ab: Arc::new(AbStats::default()),
                delivery,
            }),
        }
    }

    /// State with the engine loaded and warmed up (loading runs on the blocking pool).
    pub async fn load(config: &Config) -> Result<AppState, LoadError> {
        let state = AppState::new(config);
        let settings = config.engine_settings();
        let loading = state.clone();
        let engine = match tokio::task::spawn_blocking(move || loading.load_engine(&settings)).await {
            Ok(loaded) => loaded?,
            // A panic while loading is a bug: let it surface as one.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        state.set_engine(engine);
        Ok(state)
    }

    /// Loads and warms up the engine on the models the directory holds, its workers reporting to this state's
    /// metrics, and checks that the models the configuration names (`--default-model`, `--shadow`) are among them;
    /// it does not make the state ready ([`AppState::set_engine`] does). Blocks for as long as loading takes; call
    /// it from a blocking context.
    pub fn load_engine(&self, settings: &EngineSettings) -> Result<Engine, LoadError> {
        let metrics = self.metrics();
        let engine = Engine::load_observed(settings, |variant| Box::new(metrics.model(variant)))?;
        let named = [("--default-model", self.default_model())]
            .into_iter()
            .chain(self.shadow().map(|shadow| ("--shadow", ModelSelection::from(shadow))));
        for (flag, selection) in named {
            if let Some(&missing) = selection.variants().iter().find(|&&variant| engine.model(variant).is_none()) {
                let loaded = engine.variants().iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" and ");
                return Err(LoadError::Absent {
                    flag,
                    value: selection.to_string(),
                    missing,
                    loaded,
                    dir: settings.models_dir.clone(),
                    file: settings.model_path(missing),
                });
            }
        }
        Ok(engine)
    }

    /// Makes the server ready; a second call is ignored. Without `--max-concurrent-requests`, the request limit
    /// grows to [`default_concurrency`] of the loaded models' batch size first.
    pub fn set_engine(&self, engine: Engine) {
        self.shared.metrics.describe_models(&engine);
        if !self.shared.concurrency_configured && self.shared.engine.get().is_none() {
            let max_batch = engine.models().map(|m| m.info().max_batch).max().unwrap_or(1);
            let target = default_concurrency(max_batch);
            let current = self.shared.max_concurrent_requests.load(Ordering::SeqCst);
            if target > current {
                self.shared.permits.add_permits(target - current);
                self.shared.max_concurrent_requests.store(target, Ordering::SeqCst);
            }
        }
        if self.shared.engine.set(Arc::new(engine)).is_err() {
            tracing::warn!("engine already set; ignoring the second one");
        }
    }

    /// The engine, once loaded.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.shared.engine.get()
    }

    /// Takes the engine out of a state that is no longer served, so that it can be dropped (joining the workers)
    /// off the async runtime. `None` when other clones of the state still hold it.
    pub fn into_engine(self) -> Option<Engine> {
        let shared = Arc::try_unwrap(self.shared).ok()?;
        Arc::into_inner(shared.engine.into_inner()?)
    }

    /// Marks the server as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
    }

    /// Models loaded, warmed up and their workers running, and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.engine().is_some_and(|engine| engine.models().all(|m| m.is_running()))
            && !self.shared.draining.load(Ordering::SeqCst)
    }

    /// The engine, or [`StateError::NotReady`] (503 `not-ready`) while it loads.
    pub fn ready_engine(&self) -> Result<&Arc<Engine>, StateError> {
        self.engine().ok_or(StateError::NotReady)
    }

    pub(crate) fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.shared.permits)
    }

    /// Runs CPU-bound image work (decoding, preprocessing, overlays) on the blocking pool once one of the
    /// `--decode-threads` slots is free; see [`CpuWork::run`].
    pub async fn cpu_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(T, Duration), StateError> {
        self.shared.cpu_work.run(work).await
    }

    /// The image-work slots themselves, for work that outlives the request (a shadow run must not hold the state,
    /// which holds the engine, or shutting down would wait for it).
    pub fn cpu_slots(&self) -> CpuWork {
        self.shared.cpu_work.clone()
    }

    pub fn max_concurrent_requests(&self) -> usize {
        self.shared.max_concurrent_requests.load(Ordering::SeqCst)
    }

    /// Longest a request body may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        self.shared.body_timeout
    }

    /// The accepted API keys (none: nothing is checked).
    pub fn api_keys(&self) -> &ApiKeys {
        &self.shared.api_keys
    }

    pub fn max_body_bytes(&self) -> usize {
        self.shared.max_body_bytes
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        self.shared.decode_limits
    }

    pub fn default_model(&self) -> ModelSelection {
        self.shared.default_model
    }

    /// What `POST /predict` explains when the request does not say (`--explain`).
    pub fn default_explain(&self) -> Explain {
        self.shared.explain
    }

    /// The configured shadow model (`--shadow`).
    pub fn shadow(&self) -> Option<ModelVariant> {
        self.shared.shadow
    }

    /// The model to shadow a prediction of `selection` with: the configured shadow model, for a single-model
    /// prediction of the other model.
    pub fn shadow_for(&self, selection: ModelSelection) -> Option<ModelVariant> {
        self.shared.shadow.filter(|shadow| selection.single().is_some_and(|primary| primary != *shadow))
    }

    /// This server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The outbound queue of DICOM results, when `--dicomweb-push` is set.
    pub fn delivery(&self) -> Option<&Delivery> {
        self.shared.delivery.as_ref()
    }

    /// This server's A/B window.
    pub fn ab(&self) -> &Arc<AbStats> {
        &self.shared.ab
    }

    /// Whether `/metrics` is served on its own listener (`--metrics-bind`) instead of the main one.
    pub fn metrics_elsewhere(&self) -> bool {
        self.shared.metrics_elsewhere
    }

    /// The origins allowed to call the API from a browser (`--cors-origin`).
    pub fn cors_origins(&self) -> &[String] {
        &self.shared.cors_origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_limit_follows_the_batch() {
        assert_eq!((default_concurrency(8), default_concurrency(64)), (128, 256));
    }
}
