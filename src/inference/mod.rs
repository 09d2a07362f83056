//! The inference service: the one way the server takes an input to probabilities (and maps). Every way in is a
//! thin translator over it — `POST /predict` ([`classify`] on uploaded bytes), the Open Inference Protocol's
//! `/v2/models/{name}/infer` ([`infer_tensors`] on preprocessed tensors) and shadow runs ([`shadow`]) — and each
//! model run, whoever asked for it, goes through [`run_model`] (`run.rs`): preprocessing (for an image) on the image-work slots
//! of [`AppState::cpu_work`], then the engine's batcher through an [`Admission`].
//!
//! [`classify`] decodes the bytes once (sniffed by `cxr_core::decode`, on the image-work slots), admits the image
//! to each model it will run on before decoding starts (so each batcher knows one more image is coming), runs the
//! models (concurrently for `both`, whose pair joins the A/B window), builds the class activation explanation when
//! one was asked for ([`explain`]) and may start a shadow run of the other model, which never delays or changes the
//! answer.
//!
//! Architecture invariants: this layer sits above `state` and below `api`; it knows nothing of HTTP (no request,
//! response, header or status: its errors are [`InferenceError`]s, which the HTTP layer maps to problems), and all of
//! its CPU work goes through the image-work slots. Only the format, dimensions and timings are logged: DICOM headers
//! are PHI and never leave `cxr_core`.

pub mod explain;
pub mod run;
pub mod shadow;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxr_core::card::ModelSelection;
use cxr_core::decode::{self, DecodeError, InputInfo};
use cxr_core::image::GrayImage;
use cxr_engine::{Admission, Engine, MapShape, Maps, ModelHandle, Prediction};

use self::explain::{ExplainRequest, Explanation};
use self::run::{InferenceError, ModelInput, run_model};
use self::shadow::{PrimaryOutcome, ShadowRun};
use crate::state::{AppState, StateError};
use crate::telemetry::ab::{ModelSide, Source};
use crate::telemetry::metrics::{self, Metrics};
use crate::telemetry::millis;

/// The models of `selection`, or [`InferenceError::NotLoaded`] naming what is loaded.
pub fn models(engine: &Engine, selection: ModelSelection) -> Result<Vec<ModelHandle>, InferenceError> {
    selection
        .variants()
        .iter()
        .map(|&variant| {
            engine.model(variant).cloned().ok_or_else(|| InferenceError::NotLoaded {
                selection,
                missing: variant,
                loaded: engine.variants().iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}

/// One image to classify: the file's bytes and what to run on it.
pub struct ImageInput {
    pub bytes: Bytes,
    pub selection: ModelSelection,
    /// The explanation asked for, if any.
    pub explain: Option<ExplainRequest>,
}

/// The classification of one image.
pub struct Classification {
    /// Technical facts about the decoded input (no patient data).
    pub info: InputInfo,
    /// The decoded image (what the overlays of a DICOM result are drawn on).
    pub image: Arc<GrayImage>,
    /// Decoding took this long (once, for every model).
    pub decode: Duration,
    /// One run per model of the selection, color before gray.
    pub runs: Vec<ModelRun>,
    /// What the caller should tell its client (a multi-frame DICOM, a model without maps, an untrained model).
    pub warnings: Vec<String>,
}

/// One model's completed run on an image.
pub struct ModelRun {
    pub model: ModelHandle,
    pub prediction: Prediction,
    pub preprocess: Duration,
    /// The explanation and the time it took to build.
    pub explanation: Option<(Explanation, Duration)>,
    /// From the complete input to the result.
    pub total: Duration,
}

impl ModelRun {
    /// This run's side of an A/B comparison.
    fn side(&self) -> ModelSide<'_> {
        ModelSide {
            probabilities: &self.prediction.probabilities,
            model_latency: self.prediction.queue + self.prediction.inference,
            end_to_end: self.total,
        }
    }
}

/// Classifies one image file with every model of its selection.
pub async fn classify(state: &AppState, input: ImageInput) -> Result<Classification, InferenceError> {
    let received = Instant::now();
    let engine = Arc::clone(state.ready_engine()?);
    if input.bytes.is_empty() {
        return Err(InferenceError::Empty);
    }
    if decode::sniff(&input.bytes).is_none() {
        return Err(DecodeError::UnsupportedFormat.into());
    }
    let mut warnings = Vec::new();
    // From here until its tensor is queued, each model's batcher counts this image as on its way; a failure or a
    // departed client drops the admissions, which ends that at once.
    let models = models(&engine, input.selection)?;
    for model in models.iter().filter(|model| input.explain.is_some() && model.info().maps.is_none()) {
        warnings.push(format!(
            "model {} ({}) has no class activation maps (its graph has no \"cam\" output, as with adopted models): \
             its result carries no explanation",
            model.info().variant,
            model.info().card.version
        ));
    }
    let admissions: Vec<Admission> = models.iter().map(ModelHandle::admit).collect();
    let shadow = state.shadow_for(input.selection).and_then(|variant| engine.model(variant)).map(|model| {
        ShadowRun::new(model.clone(), state.cpu_slots(), Arc::clone(state.metrics()), Arc::clone(state.ab()))
    });

    let (image, info, decode_time) = decode_image(state, input.bytes, input.selection, &mut warnings).await?;
    let image = Arc::new(image);
    let job = Job { state, image: Arc::clone(&image), received, explain: input.explain, metrics: state.metrics() };
    let mut admissions = admissions.into_iter();
    let runs = match (admissions.next(), admissions.next()) {
        (Some(only), None) => vec![job.run(only, shadow).await?],
        (Some(first), Some(second)) => {
            let (a, b) = tokio::try_join!(job.run(first, None), job.run(second, None))?;
            vec![a, b]
        }
        // A selection always names one or two models.
        _ => Vec::new(),
    };
    if let [color, gray] = runs.as_slice() {
        metrics::record_pair(state.ab(), state.metrics(), Source::Both, &color.side(), &gray.side());
    }
    for run in runs.iter().filter(|run| !run.model.info().card.trained) {
        warnings.push(format!(
            "model {} ({}) is an untrained seeded initialisation: its probabilities carry no diagnostic meaning",
            run.model.info().variant,
            run.model.info().card.version
        ));
    }
    Ok(Classification { info, image, decode: decode_time, runs, warnings })
}

/// Decodes the file on the image-work slots and records the decode time for each model of `selection`.
async fn decode_image(
    state: &AppState,
    bytes: Bytes,
    selection: ModelSelection,
    warnings: &mut Vec<String>,
) -> Result<(GrayImage, InputInfo, Duration), InferenceError> {
    let limits = state.decode_limits();
    let (decoded, decode_time) = state.cpu_work(move || decode::decode(&bytes, &limits)).await?;
    let decoded = decoded?;
    let info = decoded.info;
    tracing::info!(
        format = info.format.as_str(),
        width = info.width,
        height = info.height,
        decode_ms = millis(decode_time),
        model = selection.as_str(),
        "image decoded"
    );
    if let Some(frames) = info.frames.filter(|&n| n > 1) {
        warnings.push(format!("multi-frame DICOM: first of {frames} frames used"));
    }
    for &variant in selection.variants() {
        state.metrics().observe_decode(variant, decode_time);
    }
    Ok((decoded.image, info, decode_time))
}

/// Runs `tensors` (each one image's preprocessed `[C, H, W]` input) through `model`, every image one job of its
/// batcher; all are admitted first, so the worker waits for the rest of the batch.
pub async fn infer_tensors(
    state: &AppState,
    model: &ModelHandle,
    tensors: Vec<Vec<f32>>,
    maps: Maps,
) -> Result<Vec<Prediction>, InferenceError> {
    let admissions: Vec<Admission> = tensors.iter().map(|_| model.admit()).collect();
    let cpu = state.cpu_slots();
    let jobs: Vec<_> = admissions
        .into_iter()
        .zip(tensors)
        .map(|(admission, tensor)| {
            let cpu = cpu.clone();
            tokio::spawn(async move { run_model(&cpu, admission, ModelInput::Tensor(tensor), maps, |_| ()).await })
        })
        .collect();
    let mut predictions = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (prediction, _) = job.await.map_err(StateError::from)??;
        predictions.push(prediction);
    }
    Ok(predictions)
}

/// What every model run of one image shares.
struct Job<'a> {
    state: &'a AppState,
    image: Arc<GrayImage>,
    received: Instant,
    explain: Option<ExplainRequest>,
    metrics: &'a Metrics,
}

impl Job<'_> {
    /// Runs the admitted model on the image (handing its tensor to the shadow run, if any) and explains the result.
    async fn run(&self, admission: Admission, shadow: Option<ShadowRun>) -> Result<ModelRun, InferenceError> {
        let model = admission.model().clone();
        let variant = model.info().variant;
        // Maps are fetched only for a request that asked and a model that has them (a warning covers the others).
        let explain = self.explain.zip(model.info().maps);
        let maps = if explain.is_some() { Maps::CAM } else { Maps::NONE };
        let mut shadow_outcome = None;
        let launch = |tensor: &[f32]| {
            shadow_outcome = shadow.and_then(|run| run.launch(&model, tensor, &self.image, self.received));
        };
        let input = ModelInput::Image(Arc::clone(&self.image));
        let (mut prediction, preprocess) = run_model(&self.state.cpu_slots(), admission, input, maps, launch).await?;
        self.metrics.observe_preprocess(variant, preprocess);
        let explanation = match (explain, prediction.cam.take()) {
            (Some((request, shape)), Some(cam)) => Some(self.explain(request, shape, cam, &prediction).await?),
            _ => None,
        };
        let total = self.received.elapsed();
        self.metrics.observe_end_to_end(variant, total);
        if let Some(outcome) = shadow_outcome {
            // The shadow task may have finished (or given up) already; then nobody listens, which is fine.
            let _ = outcome.send(PrimaryOutcome {
                probabilities: prediction.probabilities.clone(),
                model_latency: prediction.queue + prediction.inference,
                end_to_end: total,
            });
        }
        Ok(ModelRun { model, prediction, preprocess, explanation, total })
    }

    /// The explanation of one prediction; drawing overlays is image work, so it runs on the image-work slots.
    async fn explain(
        &self,
        request: ExplainRequest,
        shape: MapShape,
        cam: Vec<f32>,
        prediction: &Prediction,
    ) -> Result<(Explanation, Duration), InferenceError> {
        let (probabilities, logits) = (prediction.probabilities.clone(), prediction.logits.clone());
        let image = Arc::clone(&self.image);
        let build = move || explain::explain(request, shape, &cam, &probabilities, &logits, &image);
        if request.overlays == 0 {
            let started = Instant::now();
            let explanation = build();
            Ok((explanation, started.elapsed()))
        } else {
            Ok(self.state.cpu_work(build).await?)
        }
    }
}
