//! `POST /predict`: one uploaded image, translated to the inference service ([`crate::inference::classify`]) and
//! its classification back into JSON.
//!
//! The body is either the raw file (any `Content-Type`; `application/dicom`, `image/png`, `image/jpeg` and
//! `application/octet-stream` are the documented ones) or `multipart/form-data` with a `file` field
//! ([`super::body::read_upload`]). The format is sniffed from magic bytes by `cxr_core::decode`; a declared type that
//! disagrees only earns a warning. With `?model=both` the color and gray models run concurrently on the one decoded
//! image and the pair joins the A/B window; a single-model prediction may also start a shadow run of the other model
//! (both in the service).
//!
//! With `?explain=cam` (or `--explain cam`) each model's result also carries its class activation maps
//! ([`crate::inference::explain`]), fetched from the same session run; `&overlay=png` adds pictures of the top
//! findings.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use cxr_core::card::{ModelCard, ModelSelection, ModelVariant};
use cxr_core::decode::{self, ImageFormat, InputInfo};
use cxr_core::keywords::UnknownKeyword;
use cxr_core::labels::LABELS;
use cxr_engine::Provider;
use serde::{Deserialize, Deserializer, Serialize};

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cxr_core::results::ResultsError;
use cxr_core::results::stow::multipart_related;

use super::body::read_upload;
use super::error::ApiError;
use super::middleware::RequestId;
use crate::config::Explain;
use crate::inference::explain::{ExplainRequest, Explanation, Overlay};
use crate::inference::{self, ImageInput, ModelRun};
use crate::pacs::{PacsError, ResultKind, make_objects, read_source};
use crate::state::AppState;
use crate::telemetry::millis;

/// Query parameters of `POST /predict`.
#[derive(Debug, Deserialize)]
pub struct PredictParams {
    /// `gray`, `color` or `both`; the server's `--default-model` when absent.
    pub model: Option<ModelParam>,
    /// `none` or `cam`; the server's `--explain` when absent.
    pub explain: Option<Explain>,
    /// `none` or `png`: draw the top findings' maps over the X-ray (needs `explain=cam`).
    pub overlay: Option<Overlay>,
    /// How many findings `overlay=png` draws, the most probable first (1 to 14, default 3).
    pub top: Option<usize>,
    /// `json` (the default), or for a DICOM input the result as DICOM: `sr` (the TID 1500 structured report) or
    /// `sc` (the Secondary Capture of the class activation overlays), one per model.
    pub format: Option<ResultFormat>,
}

/// What `POST /predict` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    Json,
    Sr,
    Sc,
}

cxr_core::keywords!(ResultFormat, "result format", { Json => "json", Sr => "sr", Sc => "sc" });

/// `?model=`, parsed by the keyword table with its failure kept: an unknown model is a 404 `unknown-model`, not a
/// malformed query string.
#[derive(Debug)]
pub struct ModelParam(pub Result<ModelSelection, UnknownKeyword>);

impl<'de> Deserialize<'de> for ModelParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ModelParam(String::deserialize(deserializer)?.parse()))
    }
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
    pub provider: Provider,
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
) -> Result<Response, ApiError> {
    let request_id = request.extensions().get::<RequestId>().cloned().unwrap_or_else(RequestId::generate);
    // The body is read (within its size and time limits) before any other check can refuse the request: an HTTP/1.1
    // client still uploading would otherwise see the connection reset instead of the answer.
    let upload = read_upload(request, &state).await?;
    let Query(params) = query?;
    let selection = match params.model {
        Some(ModelParam(parsed)) => parsed?,
        None => state.default_model(),
    };
    let explain = ExplainRequest::resolve(params.explain, params.overlay, params.top, state.default_explain())
        .map_err(ApiError::BadRequest)?;
    let kind = match params.format.unwrap_or(ResultFormat::Json) {
        ResultFormat::Json => None,
        ResultFormat::Sr => Some(ResultKind::Sr),
        ResultFormat::Sc => Some(ResultKind::Sc),
    };
    if let Some(kind) = kind {
        return dicom_results(&state, upload.bytes, selection, kind).await;
    }
    let declared = declared_type_warning(upload.declared_type.as_deref(), decode::sniff(&upload.bytes));
    let input = ImageInput { bytes: upload.bytes, selection, explain };
    let classification = inference::classify(&state, input).await?;
    let warnings = declared.into_iter().chain(classification.warnings).collect();
    let decode = classification.decode;
    let results: Vec<ModelResult> = classification.runs.into_iter().map(|run| model_result(run, decode)).collect();
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
    Ok(Json(PredictResponse { request_id: request_id.0, input: classification.info, results, warnings })
        .into_response())
}

/// `?format=sr|sc`: the result objects of a DICOM input, `application/dicom` for one model and
/// `multipart/related; type="application/dicom"` (one part per model) for `model=both`.
async fn dicom_results(
    state: &AppState,
    bytes: Bytes,
    selection: ModelSelection,
    kind: ResultKind,
) -> Result<Response, ApiError> {
    if decode::sniff(&bytes).is_some_and(|format| format != ImageFormat::Dicom) {
        return Err(ApiError::DicomRequired(format!(
            "format={kind} makes a DICOM object in the input's study and series: send a DICOM file (a PNG or JPEG \
             has no study to report into)"
        )));
    }
    let source = match read_source(state, &bytes).await {
        Ok(source) => source,
        Err(PacsError::State(error)) => return Err(error.into()),
        Err(PacsError::Results(ResultsError::Decode(error))) => return Err(error.into()),
        Err(PacsError::Results(error)) => return Err(ApiError::BadRequest(error.to_string())),
    };
    if !source.has_pixels {
        return Err(ApiError::DicomRequired("the DICOM object has no pixel data: send an image".into()));
    }
    // The overlays need the class activation maps of the same run.
    let explain = (kind == ResultKind::Sc).then_some(ExplainRequest { overlays: 0 });
    let classification = inference::classify(state, ImageInput { bytes, selection, explain }).await?;
    let mut objects = make_objects(state, source, classification, &[kind]).await.map_err(|error| match error {
        PacsError::State(error) => ApiError::from(error),
        PacsError::Results(error) => ApiError::Internal(error.to_string()),
    })?;
    let dicom = HeaderValue::from_static("application/dicom");
    match objects.len() {
        0 => Err(ApiError::BadRequest(format!(
            "format={kind}: the model has no class activation maps to draw (an adopted model); ask for format=sr"
        ))),
        1 => Ok(([(header::CONTENT_TYPE, dicom)], objects.remove(0).bytes).into_response()),
        _ => {
            let parts: Vec<&[u8]> = objects.iter().map(|object| object.bytes.as_slice()).collect();
            let (content_type, body) = multipart_related(&parts);
            let content_type = HeaderValue::from_str(&content_type).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
        }
    }
}

/// One model's run as the response shows it.
fn model_result(run: ModelRun, decode: Duration) -> ModelResult {
    let info = run.model.info();
    ModelResult {
        model: info.variant,
        model_version: info.card.version.clone(),
        trained: info.card.trained,
        provider: info.provider,
        findings: findings(&run.prediction.probabilities, &info.card),
        timing_ms: TimingMs {
            decode: millis(decode),
            preprocess: millis(run.preprocess),
            queue: millis(run.prediction.queue),
            inference: millis(run.prediction.inference),
            explain: run.explanation.as_ref().map(|(_, took)| millis(*took)),
            total: millis(run.total),
        },
        batch_size: run.prediction.batch_size,
        explanation: run.explanation.map(|(explanation, _)| explanation),
    }
}

/// A warning when the client declared a specific image type that is not what the bytes are.
fn declared_type_warning(declared: Option<&str>, actual: Option<ImageFormat>) -> Option<String> {
    let actual = actual?;
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
        assert!(declared_type_warning(Some("image/png"), Some(ImageFormat::Dicom)).is_some());
        assert!(declared_type_warning(Some("application/dicom"), Some(ImageFormat::Dicom)).is_none());
        assert!(declared_type_warning(Some("application/octet-stream"), Some(ImageFormat::Png)).is_none());
        assert!(declared_type_warning(None, Some(ImageFormat::Jpeg)).is_none());
        assert!(declared_type_warning(Some("image/jpg"), Some(ImageFormat::Jpeg)).is_none());
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
}
