//! Cross-cutting request handling: request ids, the problem `instance`, the concurrency limit and panics.
//!
//! - [`request_id`] gives every request an id (the client's `x-request-id` when it is sane, else a new UUID v4),
//!   stores it as a [`RequestId`] extension, echoes it in the response and writes it into the `instance` member
//!   of every problem response.
//! - [`limit_concurrency`] admits at most `--max-concurrent-requests` inference requests at once; the next one gets
//!   503 `overloaded` (once its upload is drained) instead of queueing inside the server.
//! - [`track_requests`] counts every response by route template and status (`cxr_http_requests_total`), times it,
//!   tracks requests in flight and counts problem responses by type (`cxr_errors_total`).
//! - [`panic_response`] turns a handler panic (a bug) into a 500 problem and logs it.

use std::any::Any;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;

use super::error::{ApiError, Problem};
use crate::state::AppState;
use crate::telemetry::metrics::UNMATCHED_ROUTE;

/// The request id header, read from clients and always set on responses.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept; longer or non-printable ids are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of the current request, as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh UUID v4.
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    /// The client's id when it is 1..=128 visible ASCII characters, else a fresh one.
    fn from_header(value: Option<&HeaderValue>) -> RequestId {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(|v| RequestId(v.to_string()))
            .unwrap_or_else(RequestId::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Assigns the request id, echoes it, and completes problem responses with it.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_header(request.headers().get(&X_REQUEST_ID));
    let value = HeaderValue::from_str(id.as_str()).expect("request ids are visible ASCII");
    request.headers_mut().insert(X_REQUEST_ID.clone(), value.clone());
    request.extensions_mut().insert(id.clone());

    let mut response = next.run(request).await;
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        response = with_instance(response, problem, &id);
    }
    response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    response
}

/// Replaces a problem response's body by the same problem with `instance` set.
fn with_instance(response: Response, mut problem: Problem, id: &RequestId) -> Response {
    problem.instance = Some(id.0.clone());
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    parts.extensions.insert(problem);
    Response::from_parts(parts, Body::from(body))
}

/// Holds one of the `--max-concurrent-requests` permits for the whole request (`/predict`; the `/v2` inference route
/// has the same limit in its protocol's error shape, `v2::limit_concurrency`), or answers 503 once the refused
/// upload has been drained.
pub async fn limit_concurrency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match permit_or_drain(&state, request).await {
        Ok((permit, request)) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(error) => error.into_response(),
    }
}

/// One of the `--max-concurrent-requests` permits — the one limit of every inference route, with one message — or,
/// when none is free, [`ApiError::Overloaded`] once the refused upload has been read and dropped: as for every
/// other refusal, an HTTP/1.1 client still sending its file would otherwise get a broken pipe instead of the 503.
pub async fn permit_or_drain(state: &AppState, request: Request) -> Result<(OwnedSemaphorePermit, Request), ApiError> {
    match state.permits().try_acquire_owned() {
        Ok(permit) => Ok((permit, request)),
        Err(_) => {
            super::body::discard(request.into_body(), state).await;
            Err(ApiError::Overloaded(format!(
                "{} inference requests are already in progress; retry later",
                state.max_concurrent_requests()
            )))
        }
    }
}

/// Records the request in the metrics: its route template (never the raw path, which would make the label
/// unbounded), method, status, duration and, for problem responses, the problem type.
pub async fn track_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let metrics = state.metrics();
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let in_flight = metrics.in_flight();
    let response = next.run(request).await;
    drop(in_flight);
    metrics.observe_request(route.as_deref().unwrap_or(UNMATCHED_ROUTE), &method, response.status(), started.elapsed());
    if let Some(problem) = response.extensions().get::<Problem>() {
        metrics.count_problem(problem.slug());
    }
    response
}

/// The response to a panic inside a handler: a 500 problem; the panic message goes to the log only.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_client_ids_are_kept_and_others_replaced() {
        let kept = RequestId::from_header(Some(&HeaderValue::from_static("abc-123")));
        assert_eq!(kept.as_str(), "abc-123");
        let spaced = RequestId::from_header(Some(&HeaderValue::from_static("a b")));
        assert_ne!(spaced.as_str(), "a b");
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        assert_ne!(RequestId::from_header(Some(&HeaderValue::from_str(&long).unwrap())).0, long);
        assert_eq!(RequestId::from_header(None).0.len(), 36);
    }

    #[test]
    fn a_panic_becomes_an_opaque_500_problem() {
        let response = panic_response(Box::new("index out of bounds"));
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[header::CONTENT_TYPE], crate::problem::PROBLEM_CONTENT_TYPE);
        let problem = response.extensions().get::<Problem>().unwrap();
        assert!(!problem.detail.contains("index"), "{problem:?}");
    }
}
