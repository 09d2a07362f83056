//! The per-model worker thread: it owns the ONNX Runtime session (`Session::run` needs `&mut`, so nothing else
//! touches it), forms batches from its queue and answers each job.
//!
//! # Batching
//!
//! The worker sleeps until a job arrives, then gathers more into the same batch, up to `max_batch` images:
//!
//! - Jobs already in the queue are always taken (no waiting involved).
//! - When the queue is empty, the worker waits for more only while some request has been *admitted* for this
//!   model but has not queued its job yet ([`ModelHandle::admit`](super::ModelHandle::admit): its image is still
//!   being decoded or preprocessed), and never longer than `max_batch_delay` after the first job was taken. It
//!   re-checks whenever that count drops, so a request that fails or whose client leaves ends the wait at once.
//! - Otherwise it runs at once. At concurrency 1 nothing else is ever on its way, so a lone request is never
//!   delayed by batching; under load, requests a few milliseconds apart share one session run.
//!
//! Jobs whose caller has gone away (the client disconnected) are dropped before they take a batch slot, and again
//! just before the run, and counted in `cxr_dropped_jobs_total`.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cxr_core::card::{CAM_NAME, ModelVariant, PRECISION_METADATA_KEY, PROBABILITIES_NAME};
use cxr_core::labels::NUM_LABELS;
use cxr_core::preprocess::Preprocessor;
use ort::environment::Environment;
use ort::session::Session;
use tokio::sync::mpsc;

use crate::load::{check_signature, open_session, read_card};
use crate::settings::{EngineSettings, IoBindingMode, Precision};
use crate::staging::{Staging, StagingKind};
use crate::{
    Arrivals, Cause, EngineError, Job, Maps, ModelHandle, ModelInfo, Prediction, Provider, WorkerObserver,
    default_max_batch, default_queue_capacity, padded_batch_sizes,
};

/// How a worker forms batches.
#[derive(Debug, Clone, Copy)]
struct Batching {
    max_batch: usize,
    max_delay: Duration,
}

/// A worker thread that is loading its model.
pub(crate) struct Starting {
    loaded: std_mpsc::Receiver<Result<ModelHandle, EngineError>>,
    thread: JoinHandle<()>,
    variant: ModelVariant,
}

impl Starting {
    /// Waits until the model is loaded and warmed up (or failed to).
    pub(crate) fn wait(self) -> (Result<ModelHandle, EngineError>, JoinHandle<()>) {
        let variant = self.variant;
        let loaded = self.loaded.recv().unwrap_or_else(|_| {
            Err(EngineError::Worker {
                variant,
                cause: Cause::Check("the worker thread died while loading (see the log)".into()),
            })
        });
        (loaded, self.thread)
    }
}

/// Starts the worker thread of one variant; it loads the model, reports through [`Starting::wait`], then serves.
pub(crate) fn spawn(
    variant: ModelVariant,
    settings: &EngineSettings,
    environment: Environment,
    observer: Box<dyn WorkerObserver>,
) -> Result<Starting, EngineError> {
    let (report, loaded) = std_mpsc::sync_channel(1);
    let settings = settings.clone();
    let thread = std::thread::Builder::new()
        .name(format!("cxr-{variant}"))
        .spawn(move || {
            let path = settings.model_path(variant);
            let (mut session, mut staging, info) = match open(&environment, variant, &settings, &path) {
                Ok(opened) => opened,
                Err(error) => {
                    let _ = report.send(Err(error));
                    return;
                }
            };
            // The queue is sized once the batch size is known (it depends on the provider the session runs on).
            let (queue, jobs) = mpsc::channel::<Job>(info.queue_capacity);
            let batching = Batching { max_batch: info.max_batch, max_delay: settings.max_batch_delay };
            let info = Arc::new(info);
            let arrivals = Arc::new(Arrivals::default());
            let handle = ModelHandle {
                preprocessor: Arc::new(Preprocessor::new(info.card.input_size, info.card.normalization)),
                info: Arc::clone(&info),
                queue,
                capacity: info.queue_capacity,
                arrivals: Arc::clone(&arrivals),
            };
            if report.send(Ok(handle)).is_err() {
                return;
            }
            let worker = Worker { info: &info, batching, arrivals: &arrivals, observer: &*observer };
            worker.serve(&mut session, &mut staging, jobs);
            tracing::debug!(model = %variant, "worker stopped");
        })
        .map_err(|e| EngineError::Worker { variant, cause: e.into() })?;
    Ok(Starting { loaded, thread, variant })
}

/// Opens, checks and warms up one model: one run at every padded batch size (or at 1 and `max_batch` when batches
/// run at their own size), so that no shape is first seen on the request path — on CUDA a new shape costs cuDNN's
/// algorithm search, seconds.
fn open(
    environment: &Environment,
    variant: ModelVariant,
    settings: &EngineSettings,
    path: &Path,
) -> Result<(Session, Staging, ModelInfo), EngineError> {
    let started = Instant::now();
    let (mut session, provider) = open_session(environment, path, settings)?;
    let (card, card_source) = read_card(&session, path, settings, variant)?;
    check_precision(&session, path, settings.precision)?;
    if settings.precision == Precision::Fp16 && provider == Provider::Cpu {
        tracing::warn!(
            model = %variant,
            "FP16 model on the CPU execution provider: x86 CPUs have no FP16 kernels here, so it runs slower than FP32 \
             (use --precision fp32 on CPU)"
        );
    }
    let (input, outputs, maps) = check_signature(&session, path, &card)?;
    let max_batch = settings.max_batch.unwrap_or_else(|| default_max_batch(provider)).max(1);
    let batch_sizes = padded_batch_sizes(&settings.batch_sizes, provider, max_batch);
    let mut warmed = if batch_sizes.is_empty() { vec![1, max_batch] } else { batch_sizes.clone() };
    warmed.dedup();
    let mut info = ModelInfo {
        variant,
        card,
        card_source,
        path: path.to_path_buf(),
        precision: settings.precision,
        io_binding: StagingKind::Off,
        provider,
        input,
        outputs,
        maps,
        warm_up: Duration::ZERO,
        max_batch,
        batch_sizes,
        warmed: Vec::new(),
        queue_capacity: settings.queue_capacity.unwrap_or_else(|| default_queue_capacity(max_batch)).max(1),
    };

    let mut staging = Staging::new(&session, settings.io_binding, &info)
        .map_err(|cause| EngineError::Session { path: path.to_path_buf(), cause })?;
    info.io_binding = staging.kind();

    let warm_started = Instant::now();
    if let Err(error) = warm_up(&mut session, &mut staging, &info, &warmed, path) {
        // `auto` chose the binding; a provider that cannot run it must not keep the model from serving. `on` was
        // asked for explicitly, so it fails.
        if settings.io_binding != IoBindingMode::Auto || staging.kind() == StagingKind::Off {
            return Err(error);
        }
        tracing::warn!(model = %variant, %error, "the I/O-bound warm-up failed: serving with plain runs instead");
        staging = Staging::plain(&info);
        info.io_binding = staging.kind();
        warm_up(&mut session, &mut staging, &info, &warmed, path)?;
    }
    info.warm_up = warm_started.elapsed();
    info.warmed = warmed;
    tracing::info!(
        model = %variant,
        file = %path.display(),
        version = %info.card.version,
        trained = info.card.trained,
        provider = info.provider.as_str(),
        precision = %info.precision,
        io_binding = ?info.io_binding,
        card = ?info.card_source,
        max_batch = info.max_batch,
        batch_sizes = ?info.batch_sizes,
        warmed = ?info.warmed,
        queue_capacity = info.queue_capacity,
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        warm_up_ms = info.warm_up.as_secs_f64() * 1e3,
        "model ready"
    );
    Ok((session, staging, info))
}

/// Checks that the file's [`PRECISION_METADATA_KEY`] metadata (written by `cxr-train export --fp16`; absent means FP32) is the
/// precision it was loaded as, so a copied or renamed file cannot serve under the wrong label.
fn check_precision(session: &Session, path: &Path, expected: Precision) -> Result<(), EngineError> {
    let declared = session
        .metadata()
        .map_err(|e| EngineError::Card { path: path.to_path_buf(), cause: Cause::during("cannot read metadata", e) })?
        .custom(PRECISION_METADATA_KEY)
        .unwrap_or_else(|| Precision::Fp32.to_string());
    if declared == expected.to_string() {
        Ok(())
    } else {
        Err(EngineError::Mismatch {
            path: path.to_path_buf(),
            problem: format!("the file declares precision {declared:?} but was loaded as {expected} (--precision)"),
        })
    }
}

/// Runs every size in `warmed` once on zero images and checks that the probabilities are probabilities; a model
/// with maps also runs them once (batch 1), and each class activation map must average to its logit.
fn warm_up(
    session: &mut Session,
    staging: &mut Staging,
    info: &ModelInfo,
    warmed: &[usize],
    path: &Path,
) -> Result<(), EngineError> {
    let failed = |cause: Cause| EngineError::WarmUp { path: path.to_path_buf(), cause };
    let zeros = vec![0.0; info.tensor_len()];
    for &n in warmed {
        let probabilities = staging
            .run(session, info, &vec![zeros.as_slice(); n], n, Maps::NONE)
            .map_err(|e| failed(Cause::during(format!("batch {n}"), e)))?
            .probabilities;
        if let Some(bad) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(failed(Cause::Check(format!(
                "probability {bad} outside [0, 1]: is {PROBABILITIES_NAME:?} a sigmoid output?"
            ))));
        }
    }
    if let Some(shape) = info.maps {
        let all = Maps { cam: true, features: true };
        let output =
            staging.run(session, info, &[zeros.as_slice()], 1, all).map_err(|e| failed(Cause::during("maps", e)))?;
        let cam = output.cam.unwrap_or_default();
        // FP16 arithmetic sums the 64 positions with about 3 significant digits.
        let tolerance = if info.precision == Precision::Fp16 { 2e-2 } else { 1e-3 };
        for (k, (map, logit)) in cam.chunks_exact(shape.grid * shape.grid).zip(&output.logits).enumerate() {
            let mean = map.iter().map(|v| f64::from(*v)).sum::<f64>() / map.len() as f64;
            if (mean - f64::from(*logit)).abs() > tolerance * f64::from(logit.abs()).max(1.0) {
                return Err(failed(Cause::Check(format!(
                    "class activation map {k} averages to {mean}, its logit is {logit}: {CAM_NAME:?} is not the \
                     classifier applied at every position"
                ))));
            }
        }
    }
    Ok(())
}

/// The size a batch of `n` jobs runs at: the smallest padded size that holds it, or `n` itself.
pub(crate) fn padded_size(n: usize, batch_sizes: &[usize]) -> usize {
    batch_sizes.iter().copied().find(|&b| b >= n).unwrap_or(n)
}

/// What the serving loop of one model needs besides its session and queue.
struct Worker<'a> {
    info: &'a ModelInfo,
    batching: Batching,
    arrivals: &'a Arrivals,
    observer: &'a dyn WorkerObserver,
}

impl Worker<'_> {
    /// Serves jobs until every sender is gone (the engine and all handle clones were dropped) and the queue is drained.
    fn serve(&self, session: &mut Session, staging: &mut Staging, mut jobs: mpsc::Receiver<Job>) {
        // The queue is a tokio channel (the async side never blocks); a small clock-only runtime lets this thread
        // wait on it with a deadline.
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(model = %self.info.variant, %error, "cannot start the worker's timer runtime");
                return;
            }
        };
        while let Some(batch) = runtime.block_on(next_batch(&mut jobs, self.batching, self.arrivals, self.observer)) {
            self.run_jobs(session, staging, batch);
        }
    }

    /// Runs one batch and answers each job.
    fn run_jobs(&self, session: &mut Session, staging: &mut Staging, mut batch: Vec<Job>) {
        let info = self.info;
        // A client may have gone away while the batch was filling.
        batch.retain(|job| keep_if_wanted(job, self.observer));
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let n = batch.len();
        let queues: Vec<Duration> = batch.iter().map(|job| started.saturating_duration_since(job.submitted)).collect();
        queues.iter().for_each(|queue| self.observer.queue_wait(*queue));
        let rows: Vec<&[f32]> = batch.iter().map(|job| job.tensor.as_slice()).collect();
        // One run serves every job: it fetches the maps any of them asked for, and each job gets only its own.
        let maps = batch.iter().fold(Maps::NONE, |maps, job| maps.union(job.maps));
        // Padding rows are zero images; their outputs are cut off in the staging run and never reach a response.
        let run_size = padded_size(n, &info.batch_sizes);
        if !info.batch_sizes.is_empty() && !info.warmed.contains(&run_size) {
            self.observer.cold_shape();
            tracing::warn!(model = %info.variant, batch = run_size, "running a batch size that was not warmed at startup");
        }
        let result = staging.run(session, info, &rows, run_size, maps);
        drop(rows);
        let replies: Vec<_> = batch.into_iter().map(|job| (job.reply, job.maps)).zip(queues).collect();
        let inference = started.elapsed();
        self.observer.batch(n, inference);
        tracing::debug!(model = %info.variant, batch = n, inference_ms = inference.as_secs_f64() * 1e3, "batch done");
        match result {
            Ok(output) => {
                let (cam_len, features_len) = info.maps.map_or((0, 0), |shape| (shape.cam_len(), shape.features_len()));
                // The row of job `i` of a map, when the job asked for it.
                let row = |values: &Option<Vec<f32>>, wanted: bool, len: usize, i: usize| {
                    values.as_ref().filter(|_| wanted).map(|v| v[i * len..(i + 1) * len].to_vec())
                };
                // `zip` stops at the last real job: padding rows are dropped here.
                let rows = output.probabilities.chunks_exact(NUM_LABELS).zip(output.logits.chunks_exact(NUM_LABELS));
                for (i, (((reply, wanted), queue), (probabilities, logits))) in
                    replies.into_iter().zip(rows).enumerate()
                {
                    let _ = reply.send(Ok(Prediction {
                        probabilities: probabilities.to_vec(),
                        logits: logits.to_vec(),
                        cam: row(&output.cam, wanted.cam, cam_len, i),
                        features: row(&output.features, wanted.features, features_len, i),
                        queue,
                        inference,
                        batch_size: n,
                    }));
                }
            }
            Err(error) => {
                tracing::error!(model = %info.variant, batch = n, %error, "inference failed");
                for ((reply, _), _) in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Waits for a job, then gathers more until the batch is full, or until nothing more is known to be coming, or
/// until `max_delay` has passed since the first (see the module documentation). Jobs whose caller has gone away are
/// dropped here, before they take a slot. Returns `None` once the queue is closed and empty.
async fn next_batch(
    jobs: &mut mpsc::Receiver<Job>,
    batching: Batching,
    arrivals: &Arrivals,
    observer: &dyn WorkerObserver,
) -> Option<Vec<Job>> {
    let mut batch = Vec::with_capacity(batching.max_batch);
    while batch.is_empty() {
        let job = jobs.recv().await?;
        if keep_if_wanted(&job, observer) {
            batch.push(job);
        }
    }
    let deadline = tokio::time::Instant::now() + batching.max_delay;
    while batch.len() < batching.max_batch {
        let job = match jobs.try_recv() {
            Ok(job) => job,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                if batching.max_delay.is_zero() || arrivals.pending() == 0 {
                    break;
                }
                // A request for this model is being decoded or preprocessed: wait for its job, but re-check when
                // the pending count drops (it may have failed instead) and give up at the deadline.
                tokio::select! {
                    received = jobs.recv() => match received {
                        Some(job) => job,
                        None => break,
                    },
                    () = arrivals.changed.notified() => continue,
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
        };
        if keep_if_wanted(&job, observer) {
            batch.push(job);
        }
    }
    Some(batch)
}

/// Whether a job's caller still waits for it; a job whose caller left is counted as dropped.
fn keep_if_wanted(job: &Job, observer: &dyn WorkerObserver) -> bool {
    if job.reply.is_closed() {
        tracing::debug!("dropping a job whose client went away");
        observer.job_dropped();
        false
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use crate::InferError;

    use super::*;

    fn job() -> (Job, oneshot::Receiver<Result<Prediction, InferError>>) {
        let (reply, answer) = oneshot::channel();
        (Job { tensor: vec![0.0], maps: Maps::NONE, submitted: Instant::now(), reply }, answer)
    }

    /// Counts the dropped jobs a worker reports.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicU64);

    impl Counting {
        fn dropped_jobs(&self) -> u64 {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    impl WorkerObserver for Counting {
        fn queue_wait(&self, _: Duration) {}
        fn batch(&self, _: usize, _: Duration) {}
        fn job_dropped(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn cold_shape(&self) {}
    }

    fn batching(max_batch: usize, max_delay_ms: u64) -> Batching {
        Batching { max_batch, max_delay: Duration::from_millis(max_delay_ms) }
    }

    #[test]
    fn batches_are_padded_to_the_smallest_size_that_holds_them() {
        let sizes = [1, 2, 4, 8];
        let padded: Vec<usize> = (1..=8).map(|n| padded_size(n, &sizes)).collect();
        assert_eq!(padded, [1, 2, 4, 4, 8, 8, 8, 8]);
        assert_eq!(padded_size(5, &[]), 5, "exact sizes");
    }

    #[tokio::test]
    async fn batches_fill_up_to_the_maximum() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (arrivals, metrics) = (Arrivals::default(), Counting::default());
        let mut answers = Vec::new();
        for _ in 0..5 {
            let (job, answer) = job();
            answers.push(answer);
            queue.try_send(job).unwrap();
        }
        let batching = batching(3, 1);
        assert_eq!(next_batch(&mut jobs, batching, &arrivals, &metrics).await.unwrap().len(), 3);
        assert_eq!(next_batch(&mut jobs, batching, &arrivals, &metrics).await.unwrap().len(), 2);
        drop(queue);
        assert!(next_batch(&mut jobs, batching, &arrivals, &metrics).await.is_none(), "closed and drained");
    }

    #[tokio::test]
    async fn jobs_of_departed_clients_are_skipped_and_counted() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (arrivals, metrics) = (Arrivals::default(), Counting::default());
        let (gone, answer) = job();
        drop(answer);
        queue.try_send(gone).unwrap();
        let (kept, _answer) = job();
        queue.try_send(kept).unwrap();
        assert_eq!(next_batch(&mut jobs, batching(8, 0), &arrivals, &metrics).await.unwrap().len(), 1);
        assert_eq!(metrics.dropped_jobs(), 1);
    }

    #[tokio::test]
    async fn a_lone_job_runs_at_once_when_nothing_else_is_coming() {
        // The latency fix: at concurrency 1 the batching delay must not be paid.
        let (queue, mut jobs) = mpsc::channel(16);
        let (arrivals, metrics) = (Arrivals::default(), Counting::default());
        let (lone, _answer) = job();
        queue.try_send(lone).unwrap();
        let started = Instant::now();
        assert_eq!(next_batch(&mut jobs, batching(8, 500), &arrivals, &metrics).await.unwrap().len(), 1);
        assert!(started.elapsed() < Duration::from_millis(250), "waited {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_job_on_its_way_waits_at_most_the_delay() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (arrivals, metrics) = (Arrivals::default(), Counting::default());
        let (lone, _answer) = job();
        queue.try_send(lone).unwrap();
        arrivals.enter(); // Admitted, but its job never comes within the delay.
        let started = Instant::now();
        assert_eq!(next_batch(&mut jobs, batching(8, 30), &arrivals, &metrics).await.unwrap().len(), 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_job_on_its_way_joins_the_batch() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (arrivals, metrics) = (Arc::new(Arrivals::default()), Counting::default());
        let (first, _first) = job();
        queue.try_send(first).unwrap();
        arrivals.enter();
        let (second, _second) = job();
        let late = {
            let (queue, arrivals) = (queue.clone(), Arc::clone(&arrivals));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                queue.try_send(second).unwrap();
                arrivals.leave();
            })
        };
        let batch = next_batch(&mut jobs, batching(8, 5_000), &arrivals, &metrics).await.unwrap();
        assert_eq!(batch.len(), 2);
        late.await.unwrap();
    }

    #[tokio::test]
    async fn the_wait_ends_when_the_announced_request_gives_up() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (arrivals, metrics) = (Arc::new(Arrivals::default()), Counting::default());
        let (first, _first) = job();
        queue.try_send(first).unwrap();
        arrivals.enter();
        let failing = {
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                arrivals.leave(); // e.g. its image failed to decode
            })
        };
        let started = Instant::now();
        assert_eq!(next_batch(&mut jobs, batching(8, 5_000), &arrivals, &metrics).await.unwrap().len(), 1);
        assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
        failing.await.unwrap();
    }
}
