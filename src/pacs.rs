//! DICOM in, DICOM out: the DICOMweb intake of one instance and the result objects of a classification.
//!
//! [`intake`] takes one instance of a STOW-RS request: it reads the header (`cxr_core::results::source`), refuses
//! what this service does not process (not DICOM, no pixel data, one of its own results sent back, a study other
//! than the request's), classifies the image through the inference service with the default model selection and
//! its class activation maps, makes one SR and one Secondary Capture per model ([`result_objects`]) and queues
//! them for the PACS ([`crate::delivery`]). Every outcome is an [`InstanceOutcome`] — a refusal has a failure
//! reason and is never an error of the request, so one bad part never fails its neighbours and never yields a 5xx.
//! `POST /predict?format=sr|sc` uses [`result_objects`] to answer with the objects themselves.
//!
//! Architecture invariant: like the inference service below it, this layer knows nothing of HTTP; header values
//! stay inside `cxr_core::results` (only UIDs and outcomes are logged).

use bytes::Bytes;
use cxr_core::decode::DecodeError;
use cxr_core::results::sc::{self, Maps};
use cxr_core::results::source::SourceInstance;
use cxr_core::results::stow::{FailureReason, InstanceOutcome};
use cxr_core::results::{ModelResult, ResultObject, ResultsError, sr};
use cxr_engine::InferError;

use crate::delivery::Outbound;
use crate::inference::explain::ExplainRequest;
use crate::inference::run::InferenceError;
use crate::inference::{Classification, ImageInput, classify};
use crate::state::{AppState, StateError};

/// The kinds of result object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// The TID 1500 structured report.
    Sr,
    /// The Secondary Capture of the class activation overlays.
    Sc,
}

cxr_core::keywords!(ResultKind, "result kind", { Sr => "sr", Sc => "sc" });

/// Classifies one STOW-RS instance and queues its results; `study` is the request path's Study Instance UID.
pub async fn intake(state: &AppState, bytes: Bytes, study: Option<&str>) -> InstanceOutcome {
    let outcome = intake_checked(state, bytes, study).await;
    let label = match &outcome {
        InstanceOutcome::Accepted { sop_instance, .. } => {
            tracing::info!(%sop_instance, "DICOMweb instance accepted");
            "accepted"
        }
        InstanceOutcome::Failed { sop_instance, reason, .. } => {
            tracing::info!(sop_instance = sop_instance.as_deref().unwrap_or("-"), reason = ?reason, "DICOMweb instance refused");
            reason.as_str()
        }
    };
    state.metrics().dicomweb_instance(label);
    outcome
}

async fn intake_checked(state: &AppState, bytes: Bytes, study: Option<&str>) -> InstanceOutcome {
    let source = match read_source(state, &bytes).await {
        Ok(source) => source,
        Err(PacsError::Results(_)) => return refused(None, FailureReason::CannotUnderstand),
        Err(PacsError::State(_)) => return refused(None, FailureReason::OutOfResources),
    };
    let failed = |reason| refused(Some(&source), reason);
    if source.own_result || !source.has_pixels {
        return failed(FailureReason::SopClassNotSupported);
    }
    if study.is_some_and(|study| study != source.study_instance) {
        return failed(FailureReason::DataSetMismatch);
    }
    let Some(delivery) = state.delivery() else { return failed(FailureReason::ProcessingFailure) };
    let input = ImageInput { bytes, selection: state.default_model(), explain: Some(ExplainRequest { overlays: 0 }) };
    let classification = match classify(state, input).await {
        Ok(classification) => classification,
        Err(error) => return failed(inference_reason(&error)),
    };
    let kinds = [ResultKind::Sr, ResultKind::Sc];
    let objects = match make_objects(state, source.clone(), classification, &kinds).await {
        Ok(objects) => objects,
        Err(_) => return failed(FailureReason::ProcessingFailure),
    };
    let outbound = objects
        .into_iter()
        .map(|object| Outbound { sop_instance: object.sop_instance, bytes: Bytes::from(object.bytes) })
        .collect();
    match delivery.enqueue(outbound) {
        Ok(()) => InstanceOutcome::Accepted { sop_class: source.sop_class, sop_instance: source.sop_instance },
        Err(_) => failed(FailureReason::OutOfResources),
    }
}

/// The header of a DICOM file (what its results refer to and copy), read on the image-work slots.
pub async fn read_source(state: &AppState, bytes: &Bytes) -> Result<SourceInstance, PacsError> {
    let (limits, bytes) = (state.decode_limits(), bytes.clone());
    let (source, _) = state.cpu_work(move || SourceInstance::read(&bytes, &limits)).await?;
    Ok(source?)
}

/// The result objects of `kinds` for every model run of `classification` (color before gray, an SR before its
/// Secondary Capture), made on the image-work slots. A model without class activation maps (an adopted one) gets
/// no Secondary Capture.
pub async fn make_objects(
    state: &AppState,
    source: SourceInstance,
    classification: Classification,
    kinds: &[ResultKind],
) -> Result<Vec<ResultObject>, PacsError> {
    let kinds = kinds.to_vec();
    let (objects, _) = state.cpu_work(move || result_objects(&source, &classification, &kinds)).await?;
    objects
}

/// [`make_objects`]'s work, on the calling thread.
pub fn result_objects(
    source: &SourceInstance,
    classification: &Classification,
    kinds: &[ResultKind],
) -> Result<Vec<ResultObject>, PacsError> {
    let now = chrono::Utc::now();
    let mut objects = Vec::new();
    for run in &classification.runs {
        let card = &run.model.info().card;
        let result = ModelResult { card, probabilities: &run.prediction.probabilities };
        for kind in kinds {
            match kind {
                ResultKind::Sr => objects.push(sr::structured_report(source, &result, &now)?),
                ResultKind::Sc => {
                    let Some((explanation, _)) = &run.explanation else { continue };
                    let values: Vec<f32> =
                        explanation.maps.iter().flat_map(|m| m.values.iter().flatten().copied()).collect();
                    let maps = Maps { values: &values, grid: explanation.mapping.grid };
                    objects.push(sc::secondary_capture(source, &result, &classification.image, maps, &now)?);
                }
            }
        }
    }
    Ok(objects)
}

/// Why result objects could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// The failure reason of an instance the inference service could not classify.
fn inference_reason(error: &InferenceError) -> FailureReason {
    match error {
        InferenceError::Decode(DecodeError::UnsupportedTransferSyntax { .. }) => {
            FailureReason::TransferSyntaxNotSupported
        }
        InferenceError::Decode(DecodeError::UnsupportedPhotometric(_) | DecodeError::UnsupportedPixelData(_)) => {
            FailureReason::SopClassNotSupported
        }
        InferenceError::Decode(_) | InferenceError::Empty => FailureReason::CannotUnderstand,
        InferenceError::State(_)
        | InferenceError::Infer(InferError::Overloaded { .. } | InferError::Stopped { .. }) => {
            FailureReason::OutOfResources
        }
        InferenceError::Infer(_) | InferenceError::NotLoaded { .. } => FailureReason::ProcessingFailure,
    }
}

/// A refused instance, with the UIDs of its header when it could be read.
fn refused(source: Option<&SourceInstance>, reason: FailureReason) -> InstanceOutcome {
    InstanceOutcome::Failed {
        sop_class: source.map(|s| s.sop_class.clone()),
        sop_instance: source.map(|s| s.sop_instance.clone()),
        reason,
    }
}
