//! `POST /predict`: one uploaded image through decoding, per-model preprocessing and the engine.
//!
//! The body is either the raw file (any `Content-Type`; `application/dicom`, `image/png`, `image/jpeg` and
//! `application/octet-stream` are the documented ones) or `multipart/form-data` with a `file` field. The format is
//! sniffed from magic bytes by `cxr_core::decode`; a declared type that disagrees only earns a warning. The image is
//! decoded once on the blocking pool; with `?model=both` the color and gray models then run concurrently on it, and
//! the pair joins the A/B window ([`crate::telemetry::ab`]). A single-model prediction may also start a shadow run of the other
//! model ([`crate::telemetry::shadow`]), which never delays or changes the response.
//!
//! Once the body is complete, the request is admitted to each model it will run on
//! ([`ModelHandle::admit`]): until its tensor is queued, the model's batcher knows one more image is coming.
//!
//! With `?explain=cam` (or `--explain cam`) each model's result also carries its class activation maps
//! ([`super::explain`]), fetched from the same session run; `&overlay=png` adds pictures of the top findings.
//!
//! Only the format, dimensions and timings are logged: DICOM headers are PHI and never leave `cxr_core`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::header;
use cxr_core::card::{ModelCard, ModelSelection, ModelVariant};
use cxr_core::decode::{self, DecodeError, ImageFormat, InputInfo};
use cxr_core::image::GrayImage;
use cxr_core::labels::LABELS;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::explain::{self, ExplainRequest, Explanation, Overlay};
use super::middleware::RequestId;
use crate::config::Explain;
use crate::engine::{Admission, Maps, ModelHandle, Prediction};
use crate::state::AppState;
use crate::telemetry::ab::{ModelSide, Source};
use crate::telemetry::metrics::{self, Metrics};
use crate::telemetry::millis;
use crate::telemetry::shadow::{PrimaryOutcome, ShadowRun};

/// Query parameters of `POST /predict`.
#[derive(Debug, Deserialize)]
pub struct PredictParams {
    /// `gray`, `color` or `both`; the server's `--default-model` when absent.
    pub model: Option<String>,
    /// `none` or `cam`; the server's `--explain` when absent.
    pub explain: Option<Explain>,
    /// `none` or `png`: draw the top findings' maps over the X-ray (needs `explain=cam`).
    pub overlay: Option<Overlay>,
    /// How many findings `overlay=png` draws, the most probable first (1 to 14, default 3).
    pub top: Option<usize>,
}

/// Body of a successful prediction.
#[derive(Debug, Serialize)]
pub struct PredictResponse {
    pub request_id: String,
    /// Technical facts about the decoded input (no patient data).
    pub input: InputInfo,
    /// One entry per model, color before gray.
    pub results: Vec<ModelResult>,
    /// Things the client should know, e.g. that only the first frame of a multi-frame DICOM was used.
    pub warnings: Vec<String>,
}

/// One model's answer.
#[derive(Debug, Serialize)]
pub struct ModelResult {
    pub model: ModelVariant,
    pub model_version: String,
    /// `false` for a seeded initialisation whose probabilities mean nothing.
    pub trained: bool,
    /// The ONNX Runtime execution provider that ran the model.
    pub provider: &'static str,
    /// One finding per label, in the fixed NIH label order.
    pub findings: Vec<Finding>,
    pub timing_ms: TimingMs,
    /// Images in the batch this one ran in.
    pub batch_size: usize,
    /// The class activation maps, when the request asked for them and the model has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// The probability of one finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub label: &'static str,
    pub probability: f32,
    /// `probability ≥ threshold` for the card's operating threshold of this label (Youden's J on the validation
    /// split); absent when the card has no threshold for it (untrained models have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive: Option<bool>,
}

/// The findings of one probability row, in label order, with `positive` where the card has a threshold.
pub fn findings(probabilities: &[f32], card: &ModelCard) -> Vec<Finding> {
    LABELS
        .iter()
        .zip(probabilities)
        .enumerate()
        .map(|(i, (label, &probability))| Finding {
            label,
            probability,
            positive: card.threshold(i).map(|t| probability >= t),
        })
        .collect()
}

/// Where the time went, in milliseconds. `total` runs from the complete request body to this model's result.
#[derive(Debug, Serialize)]
pub struct TimingMs {
    pub decode: f64,
    pub preprocess: f64,
    pub queue: f64,
    pub inference: f64,
    /// Building the explanation (maps in image coordinates, overlays), when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<f64>,
    pub total: f64,
}

/// The handler of `POST /predict`.
pub async fn predict(
    State(state): State<AppState>,
    query: Result<Query<PredictParams>, QueryRejection>,
    request: Request,
) -> Result<Json<PredictResponse>, ApiError> {
    let request_id = request.extensions().get::<RequestId>().cloned().unwrap_or_else(RequestId::generate);
    // The body is read (within its size and time limits) before any other check can refuse the request: an HTTP/1.1
    // client still uploading would otherwise see the connection reset instead of the answer.
    let upload = read_upload(request, &state).await?;
    let Query(params) = query?;
    let selection = match params.model.as_deref() {
        Some(name) => name.parse::<ModelSelection>()?,
        None => state.default_model(),
    };
    let explain = ExplainRequest::resolve(params.explain, params.overlay, params.top, state.default_explain())
        .map_err(ApiError::BadRequest)?;
    let engine = Arc::clone(state.ready_engine()?);
    let received = Instant::now();
    if upload.bytes.is_empty() {
        return Err(ApiError::BadRequest("the request body is empty; send a DICOM, PNG or JPEG file".into()));
    }
    let Some(format) = decode::sniff(&upload.bytes) else {
        return Err(DecodeError::UnsupportedFormat.into());
    };
    let mut warnings = Vec::new();
    if let Some(warning) = declared_type_warning(upload.declared_type.as_deref(), format) {
        warnings.push(warning);
    }

    // From here until its tensor is queued, each model's batcher counts this request as on its way; a failure or a
    // departed client drops the admissions, which ends that at once.
    let mut admissions = Vec::with_capacity(2);
    for &variant in selection.variants() {
        let model =
            engine.model(variant).ok_or_else(|| ApiError::Internal(format!("the {variant} model is not loaded")))?;
        if explain.is_some() && model.info().maps.is_none() {
            warnings.push(format!(
                "model {variant} ({}) has no class activation maps (its graph has no \"cam\" output, as with adopted \
                 models): its result carries no explanation",
                model.info().card.version
            ));
        }
        admissions.push(model.admit());
    }
    let metrics = Arc::clone(state.metrics());
    let shadow = state
        .shadow_for(selection)
        .and_then(|variant| engine.model(variant))
        .map(|model| ShadowRun::new(model.clone(), Arc::clone(&metrics), Arc::clone(state.ab())));

    let limits = state.decode_limits();
    let bytes = upload.bytes;
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
        metrics.observe_decode(variant, decode_time);
    }

    let image = Arc::new(decoded.image);
    let job = Job { image, received, explain, metrics: &metrics, state: &state };
    let mut admissions = admissions.into_iter();
    let runs = match (admissions.next(), admissions.next()) {
        (Some(only), None) => vec![job.run(only, shadow).await?],
        (Some(first), Some(second)) => {
            let (a, b) = tokio::try_join!(job.run(first, None), job.run(second, None))?;
            vec![a, b]
        }
        _ => return Err(ApiError::Internal("a model selection without models".into())),
    };
    if let [color, gray] = runs.as_slice() {
        metrics::record_pair(state.ab(), &metrics, Source::Both, &color.side(), &gray.side());
    }

    let results: Vec<ModelResult> = runs.into_iter().map(|run| run.into_result(decode_time)).collect();
    for result in results.iter().filter(|r| !r.trained) {
        warnings.push(format!(
            "model {} ({}) is an untrained seeded initialisation: its probabilities carry no diagnostic meaning",
            result.model, result.model_version
        ));
    }
    for result in &results {
        let t = &result.timing_ms;
        tracing::info!(
            model = result.model.as_str(),
            batch = result.batch_size,
            preprocess_ms = t.preprocess,
            queue_ms = t.queue,
            inference_ms = t.inference,
            total_ms = t.total,
            "prediction done"
        );
    }
    Ok(Json(PredictResponse { request_id: request_id.0, input: info, results, warnings }))
}

/// What every model run of one request shares.
struct Job<'a> {
    state: &'a AppState,
    image: Arc<GrayImage>,
    received: Instant,
    explain: Option<ExplainRequest>,
    metrics: &'a Metrics,
}

/// One model's completed run.
struct ModelRun {
    model: ModelHandle,
    prediction: Prediction,
    preprocess: Duration,
    /// The explanation and the time it took to build.
    explanation: Option<(Explanation, Duration)>,
    /// From the complete request body to the result.
    total: Duration,
}

impl Job<'_> {
    /// Preprocesses the image for the admitted model (and hands it to the shadow run, if any) and runs the model.
    async fn run(&self, admission: Admission, shadow: Option<ShadowRun>) -> Result<ModelRun, ApiError> {
        let model = admission.model().clone();
        let variant = model.info().variant;
        let preprocessor = Arc::clone(model.preprocessor());
        let channels = model.info().card.channels;
        let image = Arc::clone(&self.image);
        let (tensor, preprocess) = self.state.cpu_work(move || preprocessor.tensor(&image, channels)).await?;
        self.metrics.observe_preprocess(variant, preprocess);
        let shadow_outcome = shadow.and_then(|run| run.launch(&model, &tensor, &self.image, self.received));

        // Maps are fetched only for a request that asked and a model that has them (a warning covers the others).
        let explain = self.explain.zip(model.info().maps);
        let maps = if explain.is_some() { Maps::CAM } else { Maps::NONE };
        let mut prediction = admission.infer_with(tensor, maps).await?;
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

    /// The explanation of one prediction; drawing overlays is image work, so it runs on the blocking pool.
    async fn explain(
        &self,
        request: ExplainRequest,
        shape: crate::engine::MapShape,
        cam: Vec<f32>,
        prediction: &Prediction,
    ) -> Result<(Explanation, Duration), ApiError> {
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

impl ModelRun {
    /// This run's side of an A/B comparison.
    fn side(&self) -> ModelSide<'_> {
        ModelSide {
            probabilities: &self.prediction.probabilities,
            model_latency: self.prediction.queue + self.prediction.inference,
            end_to_end: self.total,
        }
    }

    fn into_result(self, decode: Duration) -> ModelResult {
        let info = self.model.info();
        let findings = findings(&self.prediction.probabilities, &info.card);
        ModelResult {
            model: info.variant,
            model_version: info.card.version.clone(),
            trained: info.card.trained,
            provider: info.provider,
            findings,
            timing_ms: TimingMs {
                decode: millis(decode),
                preprocess: millis(self.preprocess),
                queue: millis(self.prediction.queue),
                inference: millis(self.prediction.inference),
                explain: self.explanation.as_ref().map(|(_, took)| millis(*took)),
                total: millis(self.total),
            },
            batch_size: self.prediction.batch_size,
            explanation: self.explanation.map(|(explanation, _)| explanation),
        }
    }
}

/// The uploaded file and the media type the client declared for it.
pub struct Upload {
    pub bytes: Bytes,
    pub declared_type: Option<String>,
}

/// Reads the image from a raw body or from the `file` field of a multipart body, within the body size limit.
/// Public for the multipart fuzz target (`fuzz/fuzz_targets/multipart.rs`).
pub async fn read_upload(request: Request, state: &AppState) -> Result<Upload, ApiError> {
    let timeout = state.body_timeout();
    tokio::time::timeout(timeout, read_upload_untimed(request, state))
        .await
        .map_err(|_| ApiError::RequestTimeout(timeout.as_secs()))?
}

async fn read_upload_untimed(request: Request, state: &AppState) -> Result<Upload, ApiError> {
    let limit = state.max_body_bytes();
    let too_large = |error: ApiError| match error {
        ApiError::PayloadTooLarge(_) => ApiError::payload_too_large(Some(limit)),
        other => other,
    };
    // A declared length over the limit is refused before a byte is read.
    let declared_length =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::payload_too_large(Some(limit)));
    }
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(essence);

    if content_type.as_deref() == Some("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state).await?;
        while let Some(field) = multipart.next_field().await.map_err(|e| too_large(e.into()))? {
            if field.name() == Some("file") {
                let declared_type = field.content_type().map(essence);
                let bytes = field.bytes().await.map_err(|e| too_large(e.into()))?;
                return Ok(Upload { bytes, declared_type });
            }
        }
        Err(ApiError::InvalidMultipart("the multipart body has no `file` field".into()))
    } else {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| too_large(e.into()))?;
        Ok(Upload { bytes, declared_type: content_type })
    }
}

/// The `type/subtype` of a media type, lower case, without parameters.
fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// A warning when the client declared a specific image type that is not what the bytes are.
fn declared_type_warning(declared: Option<&str>, actual: ImageFormat) -> Option<String> {
    let expected = match actual {
        ImageFormat::Dicom => "application/dicom",
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
    };
    let declared = declared?;
    let specific = matches!(declared, "application/dicom" | "image/png" | "image/jpeg" | "image/jpg");
    let agrees = declared == expected || (declared == "image/jpg" && actual == ImageFormat::Jpeg);
    (specific && !agrees).then(|| {
        format!(
            "Content-Type {declared} was declared but the body is a {} file; it was decoded as {}",
            actual.as_str(),
            actual.as_str()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contradicting_specific_types_warn() {
        assert!(declared_type_warning(Some("image/png"), ImageFormat::Dicom).is_some());
        assert!(declared_type_warning(Some("application/dicom"), ImageFormat::Dicom).is_none());
        assert!(declared_type_warning(Some("application/octet-stream"), ImageFormat::Png).is_none());
        assert!(declared_type_warning(None, ImageFormat::Jpeg).is_none());
        assert!(declared_type_warning(Some("image/jpg"), ImageFormat::Jpeg).is_none());
    }

    #[test]
    fn findings_are_positive_only_where_the_card_has_a_threshold() {
        let mut card: ModelCard =
            serde_json::from_str(include_str!("../../tests/data/cards/gray-untrained.json")).expect("card");
        let probabilities: Vec<f32> = (0..LABELS.len()).map(|i| i as f32 / 20.0).collect();
        let untrained = findings(&probabilities, &card);
        assert!(untrained.iter().all(|f| f.positive.is_none()));
        assert!(!serde_json::to_string(&untrained[0]).unwrap().contains("positive"));
        card.trained = true;
        card.provenance.trained = true;
        let mut thresholds = vec![Some(0.3); LABELS.len()];
        thresholds[2] = None;
        card.evaluation = Some(cxr_core::card::Evaluation {
            dataset: "test".into(),
            split_seed: 1,
            epochs: 1,
            validation: Default::default(),
            test: Default::default(),
            thresholds,
        });
        card.validate().expect("valid card");
        let trained = findings(&probabilities, &card);
        assert_eq!(trained[0].positive, Some(false)); // 0.0 < 0.3
        assert_eq!(trained[2].positive, None);
        assert_eq!(trained[6].positive, Some(true)); // 0.3 ≥ 0.3
        assert_eq!(trained.iter().map(|f| f.label).collect::<Vec<_>>(), LABELS);
    }

    #[test]
    fn media_type_essence_drops_parameters() {
        assert_eq!(essence("Multipart/Form-Data; boundary=x"), "multipart/form-data");
    }
}
