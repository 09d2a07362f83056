//! The per-model worker thread: it owns the ONNX Runtime session (`Session::run` needs `&mut`, so nothing else
//! touches it), forms batches from its queue and answers each job.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cxr_core::card::{INPUT_NAME, ModelVariant, PROBABILITIES_NAME};
use cxr_core::labels::NUM_LABELS;
use cxr_core::preprocess::Preprocessor;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use tokio::sync::mpsc;

use super::load::{check_signature, open_session, read_card};
use super::{EngineError, EngineSettings, InferError, Job, ModelHandle, ModelInfo, Prediction};

/// How a worker forms batches.
#[derive(Debug, Clone, Copy)]
struct Batching {
    max_batch: usize,
    max_delay: Duration,
}

/// A worker thread that is loading its model.
pub(super) struct Starting {
    loaded: std_mpsc::Receiver<Result<ModelHandle, EngineError>>,
    thread: JoinHandle<()>,
    variant: ModelVariant,
}

impl Starting {
    /// Waits until the model is loaded and warmed up (or failed to).
    pub(super) fn wait(self) -> (Result<ModelHandle, EngineError>, JoinHandle<()>) {
        let variant = self.variant;
        let loaded = self.loaded.recv().unwrap_or_else(|_| {
            Err(EngineError::Worker { variant, reason: "the worker thread died while loading (see the log)".into() })
        });
        (loaded, self.thread)
    }
}

/// Starts the worker thread of one variant; it loads the model, reports through [`Starting::wait`], then serves.
pub(super) fn spawn(
    variant: ModelVariant,
    settings: &EngineSettings,
    environment: Environment,
) -> Result<Starting, EngineError> {
    let (queue, jobs) = mpsc::channel::<Job>(settings.queue_capacity.max(1));
    let (report, loaded) = std_mpsc::sync_channel(1);
    let settings = settings.clone();
    let thread = std::thread::Builder::new()
        .name(format!("cxr-{variant}"))
        .spawn(move || {
            let batching = Batching { max_batch: settings.max_batch.max(1), max_delay: settings.max_batch_delay };
            let path = settings.model_path(variant);
            let (mut session, info) = match open(&environment, variant, &settings, &path) {
                Ok(opened) => opened,
                Err(error) => {
                    let _ = report.send(Err(error));
                    return;
                }
            };
            let info = Arc::new(info);
            let handle = ModelHandle {
                preprocessor: Arc::new(Preprocessor::new(info.card.input_size, info.card.normalization)),
                info: Arc::clone(&info),
                queue,
                capacity: settings.queue_capacity,
            };
            if report.send(Ok(handle)).is_err() {
                return;
            }
            serve(&mut session, &info, jobs, batching);
            tracing::debug!(model = %variant, "worker stopped");
        })
        .map_err(|e| EngineError::Worker { variant, reason: e.to_string() })?;
    Ok(Starting { loaded, thread, variant })
}

/// Opens, checks and warms up one model.
fn open(
    environment: &Environment,
    variant: ModelVariant,
    settings: &EngineSettings,
    path: &Path,
) -> Result<(Session, ModelInfo), EngineError> {
    let started = Instant::now();
    let (mut session, provider) = open_session(environment, path, settings)?;
    let (card, card_source) = read_card(&session, path, settings, variant)?;
    let (input, outputs) = check_signature(&session, path, &card)?;
    let mut info = ModelInfo {
        variant,
        card,
        card_source,
        path: path.to_path_buf(),
        provider,
        input,
        outputs,
        warm_up: Duration::ZERO,
    };

    // The first run allocates ONNX Runtime's buffers and picks kernels; do it before declaring the model ready.
    let warm_started = Instant::now();
    let probabilities = run_batch(&mut session, &info, vec![0.0; info.tensor_len()], 1)
        .map_err(|e| EngineError::WarmUp { path: path.to_path_buf(), reason: e.to_string() })?;
    if let Some(bad) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(EngineError::WarmUp {
            path: path.to_path_buf(),
            reason: format!("probability {bad} outside [0, 1]: is {PROBABILITIES_NAME:?} a sigmoid output?"),
        });
    }
    info.warm_up = warm_started.elapsed();
    tracing::info!(
        model = %variant,
        file = %path.display(),
        version = %info.card.version,
        trained = info.card.trained,
        provider = info.provider,
        card = ?info.card_source,
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        warm_up_ms = info.warm_up.as_secs_f64() * 1e3,
        "model ready"
    );
    Ok((session, info))
}

/// Serves jobs until every sender is gone (the engine was dropped) and the queue is drained.
fn serve(session: &mut Session, info: &ModelInfo, mut jobs: mpsc::Receiver<Job>, batching: Batching) {
    // The queue is a tokio channel (the async side never blocks); a small clock-only runtime lets this thread wait
    // on it with a deadline.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(model = %info.variant, %error, "cannot start the worker's timer runtime");
            return;
        }
    };
    while let Some(batch) = runtime.block_on(next_batch(&mut jobs, batching)) {
        run_jobs(session, info, batch);
    }
}

/// Waits for a job, then gathers more until the batch is full or `max_delay` has passed since the first. Jobs whose
/// caller has gone away are dropped here, before they take a slot. Returns `None` once the queue is closed and empty.
async fn next_batch(jobs: &mut mpsc::Receiver<Job>, batching: Batching) -> Option<Vec<Job>> {
    let mut batch = Vec::with_capacity(batching.max_batch);
    while batch.is_empty() {
        let job = jobs.recv().await?;
        keep_if_wanted(&mut batch, job);
    }
    let deadline = tokio::time::Instant::now() + batching.max_delay;
    while batch.len() < batching.max_batch {
        let job = match jobs.try_recv() {
            Ok(job) => job,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if batching.max_delay.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => match tokio::time::timeout_at(deadline, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) | Err(_) => break,
            },
        };
        keep_if_wanted(&mut batch, job);
    }
    Some(batch)
}

fn keep_if_wanted(batch: &mut Vec<Job>, job: Job) {
    if job.reply.is_closed() {
        tracing::debug!("skipping a job whose client went away");
    } else {
        batch.push(job);
    }
}

/// Runs one batch and answers each job.
fn run_jobs(session: &mut Session, info: &ModelInfo, mut batch: Vec<Job>) {
    // A client may have gone away while the batch was filling.
    batch.retain(|job| !job.reply.is_closed());
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let n = batch.len();
    let mut replies = Vec::with_capacity(n);
    let mut input = Vec::new();
    for (i, job) in batch.into_iter().enumerate() {
        if n == 1 {
            input = job.tensor;
        } else {
            if i == 0 {
                input.reserve_exact(n * info.tensor_len());
            }
            input.extend_from_slice(&job.tensor);
        }
        replies.push((job.reply, started.saturating_duration_since(job.submitted)));
    }
    let result = run_batch(session, info, input, n);
    let inference = started.elapsed();
    tracing::debug!(model = %info.variant, batch = n, inference_ms = inference.as_secs_f64() * 1e3, "batch done");
    match result {
        Ok(probabilities) => {
            for ((reply, queue), row) in replies.into_iter().zip(probabilities.chunks_exact(NUM_LABELS)) {
                let _ = reply.send(Ok(Prediction { probabilities: row.to_vec(), queue, inference, batch_size: n }));
            }
        }
        Err(error) => {
            tracing::error!(model = %info.variant, batch = n, %error, "inference failed");
            for (reply, _) in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// One session run on `n` stacked images; returns the `n × 14` probabilities, row-major.
fn run_batch(session: &mut Session, info: &ModelInfo, input: Vec<f32>, n: usize) -> Result<Vec<f32>, InferError> {
    let variant = info.variant;
    let failed = |reason: String| InferError::Run { variant, reason };
    let size = info.card.input_size;
    let shape = [n, info.card.channels, size, size];
    let tensor = Tensor::from_array((shape, input)).map_err(|e| failed(e.to_string()))?;
    let outputs = session.run(ort::inputs![INPUT_NAME => tensor]).map_err(|e| failed(e.to_string()))?;
    let output = outputs.get(PROBABILITIES_NAME).ok_or_else(|| failed(format!("no {PROBABILITIES_NAME:?} output")))?;
    let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| failed(e.to_string()))?;
    if **shape != [n as i64, NUM_LABELS as i64] {
        return Err(failed(format!("{PROBABILITIES_NAME:?} has shape {:?}, expected [{n}, {NUM_LABELS}]", &**shape)));
    }
    if let Some(bad) = values.iter().find(|p| !p.is_finite()) {
        return Err(failed(format!("non-finite probability {bad}")));
    }
    Ok(values.to_vec())
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    fn job() -> (Job, oneshot::Receiver<Result<Prediction, InferError>>) {
        let (reply, answer) = oneshot::channel();
        (Job { tensor: vec![0.0], submitted: Instant::now(), reply }, answer)
    }

    #[tokio::test]
    async fn batches_fill_up_to_the_maximum() {
        let (queue, mut jobs) = mpsc::channel(16);
        let mut answers = Vec::new();
        for _ in 0..5 {
            let (job, answer) = job();
            answers.push(answer);
            queue.try_send(job).unwrap();
        }
        let batching = Batching { max_batch: 3, max_delay: Duration::from_millis(1) };
        assert_eq!(next_batch(&mut jobs, batching).await.unwrap().len(), 3);
        assert_eq!(next_batch(&mut jobs, batching).await.unwrap().len(), 2);
        drop(queue);
        assert!(next_batch(&mut jobs, batching).await.is_none(), "closed and drained");
    }

    #[tokio::test]
    async fn jobs_of_departed_clients_are_skipped() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (gone, answer) = job();
        drop(answer);
        queue.try_send(gone).unwrap();
        let (kept, _answer) = job();
        queue.try_send(kept).unwrap();
        let batching = Batching { max_batch: 8, max_delay: Duration::ZERO };
        assert_eq!(next_batch(&mut jobs, batching).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_lone_job_waits_at_most_the_delay() {
        let (queue, mut jobs) = mpsc::channel(16);
        let (lone, _answer) = job();
        queue.try_send(lone).unwrap();
        let batching = Batching { max_batch: 8, max_delay: Duration::from_millis(30) };
        let started = Instant::now();
        assert_eq!(next_batch(&mut jobs, batching).await.unwrap().len(), 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(2), "{waited:?}");
    }
}
