//! `POST /dicomweb/studies` and `POST /dicomweb/studies/{study}`: STOW-RS intake (PS3.18 §10.5), a translator over
//! [`crate::pacs::intake`].
//!
//! The body is `multipart/related; type="application/dicom"`, read part by part as it arrives
//! ([`super::body::RelatedParts`], within `--max-body-bytes` and `--body-timeout-secs`); each instance is handed to
//! the intake as soon as it is complete (a few at a time, so a study's images overlap with the upload of the
//! rest), and the answer lists every instance in order — accepted ones in Referenced SOP Sequence, refused ones in
//! Failed SOP Sequence with their reason — as `application/dicom+json`, with 200 (all accepted), 202 (some) or
//! 409 (none). A refused instance is never a 5xx. Without `--dicomweb-push` the route answers 503
//! `dicomweb-not-configured` (after draining the upload).

use std::collections::VecDeque;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cxr_core::results::stow::{self, FailureReason, InstanceOutcome};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::body::{RelatedParts, discard};
use super::error::ApiError;
use crate::state::AppState;

/// Instances of one request classified at the same time (the engine batches across requests as well).
const IN_FLIGHT: usize = 4;

/// `POST /dicomweb/studies`: instances of any study.
pub async fn store(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    store_instances(state, None, request).await
}

/// `POST /dicomweb/studies/{study}`: instances of one study; others are refused (failure reason A900).
pub async fn store_in_study(
    State(state): State<AppState>,
    Path(study): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    store_instances(state, Some(study), request).await
}

async fn store_instances(state: AppState, study: Option<String>, request: Request) -> Result<Response, ApiError> {
    let refusal = if state.delivery().is_none() {
        Some(ApiError::DicomWebNotConfigured)
    } else {
        state.ready_engine().err().map(ApiError::from)
    };
    if let Some(error) = refusal {
        discard(request.into_body(), &state).await;
        return Err(error);
    }
    let mut parts = RelatedParts::new(request, &state).await?;
    let mut running: VecDeque<JoinHandle<InstanceOutcome>> = VecDeque::new();
    let mut outcomes = Vec::new();
    while let Some(part) = parts.next().await? {
        if running.len() >= IN_FLIGHT
            && let Some(first) = running.pop_front()
        {
            outcomes.push(joined(first.await));
        }
        if part.content_type.as_deref().is_some_and(|t| t != "application/dicom") {
            let refused = InstanceOutcome::Failed {
                sop_class: None,
                sop_instance: None,
                reason: FailureReason::CannotUnderstand,
            };
            running.push_back(tokio::spawn(async move { refused }));
            continue;
        }
        let (state, study) = (state.clone(), study.clone());
        // The intake runs in the request's span, so its log lines carry the request id.
        let intake = async move { crate::pacs::intake(&state, part.bytes, study.as_deref()).await };
        running.push_back(tokio::spawn(intake.in_current_span()));
    }
    for task in running {
        outcomes.push(joined(task.await));
    }
    if outcomes.is_empty() {
        return Err(ApiError::InvalidMultipart("the multipart/related body has no parts".into()));
    }
    let status = StatusCode::from_u16(stow::status(&outcomes)).unwrap_or(StatusCode::OK);
    let body = stow::response(&outcomes).to_string();
    Ok((status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/dicom+json"))], body).into_response())
}

/// An intake task's outcome; a task that panicked (a bug, logged by the runtime) refuses its instance.
fn joined(result: Result<InstanceOutcome, tokio::task::JoinError>) -> InstanceOutcome {
    result.unwrap_or(InstanceOutcome::Failed {
        sop_class: None,
        sop_instance: None,
        reason: FailureReason::ProcessingFailure,
    })
}
