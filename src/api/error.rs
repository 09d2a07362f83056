//! API errors as RFC 9457 problem details (`application/problem+json`).
//!
//! [`ApiError`] is the one error type of the HTTP layer; every cause has a [`ProblemKind`] (the catalogue in
//! [`crate::problem`]) with a stable `type` URI (`https://cxr.example/problems/<slug>`, each documented in
//! `openapi.yaml`). [`ProblemKind::status`] is the single place that maps a cause to an HTTP status. Axum's extractor rejections convert into [`ApiError`] too, so no
//! error leaves the server as plain text. The `instance` member is the request id; the request-id middleware fills
//! it in (see [`crate::api::middleware`]).
//!
//! 5xx bodies never carry internals: the full error is logged with the request id, the client gets a generic
//! detail.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cxr_core::decode::DecodeError;
use cxr_core::keywords::UnknownKeyword;
use serde::{Deserialize, Serialize};

use cxr_engine::InferError;

use crate::inference::run::InferenceError;
use crate::problem::{PROBLEM_BASE, PROBLEM_CONTENT_TYPE, ProblemKind, RETRY_AFTER_SECS};
use crate::state::StateError;

/// What a client reads when the server failed, on `/predict` (the problem's `detail`) and `/v2` alike: the error
/// itself goes to the log, under the request id.
pub const INTERNAL_DETAIL: &str =
    "the server failed to handle the request; the request id identifies it in the server log";

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request id (`x-request-id`) of the failed request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    /// A problem of `kind` with a human-readable `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: kind.type_uri(),
            title: kind.title().to_string(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            instance: None,
        }
    }

    /// The last segment of the `type` URI (the [`ProblemKind::slug`]).
    pub fn slug(&self) -> &str {
        self.type_uri.strip_prefix(PROBLEM_BASE).unwrap_or(&self.type_uri)
    }

    /// Renders the problem as a response: status, `application/problem+json`, and `Retry-After` for 503s. The
    /// problem also travels in the response extensions so that middleware can set `instance`.
    pub fn into_response_with(self, retry_after: bool) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE))], body).into_response();
        if retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The image could not be decoded (format, corruption, DICOM support, pixel limits).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error(transparent)]
    UnknownModel(#[from] UnknownKeyword),
    /// A model this server knows but did not load (its models directory holds only the other).
    #[error("{0}")]
    ModelNotLoaded(String),
    #[error("{0}")]
    InvalidMultipart(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid API key is required (Authorization: Bearer KEY, or X-API-Key: KEY)")]
    Unauthorized,
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    NotReady(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method {method} is not allowed for {path}")]
    MethodNotAllowed { method: String, path: String },
    /// A bug; the message is logged but never sent.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "DICOMweb intake needs a PACS to send its results to: start the server with --dicomweb-push URL \
         (CXR_DICOMWEB_PUSH)"
    )]
    DicomWebNotConfigured,
    #[error("{0}")]
    DicomRequired(String),
    /// A body of a media type the route does not take (STOW-RS: anything but `multipart/related` of DICOM).
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl ApiError {
    /// The cause's kind; exhaustive over every variant and every decode failure.
    pub fn kind(&self) -> ProblemKind {
        match self {
            ApiError::Decode(error) => match error {
                DecodeError::UnsupportedFormat => ProblemKind::UnsupportedMediaType,
                DecodeError::Corrupt { .. } => ProblemKind::CorruptImage,
                DecodeError::UnsupportedTransferSyntax { .. } => ProblemKind::UnsupportedTransferSyntax,
                DecodeError::UnsupportedPhotometric(_) => ProblemKind::UnsupportedPhotometric,
                DecodeError::UnsupportedPixelData(_) => ProblemKind::UnsupportedPixelData,
                DecodeError::TooManyPixels { .. } => ProblemKind::TooManyPixels,
                DecodeError::EmptyImage => ProblemKind::EmptyImage,
            },
            ApiError::PayloadTooLarge(_) => ProblemKind::PayloadTooLarge,
            ApiError::RequestTimeout(_) => ProblemKind::RequestTimeout,
            ApiError::UnknownModel(_) => ProblemKind::UnknownModel,
            ApiError::ModelNotLoaded(_) => ProblemKind::ModelNotLoaded,
            ApiError::InvalidMultipart(_) => ProblemKind::InvalidMultipart,
            ApiError::BadRequest(_) => ProblemKind::BadRequest,
            ApiError::Unauthorized => ProblemKind::Unauthorized,
            ApiError::Overloaded(_) => ProblemKind::Overloaded,
            ApiError::NotReady(_) => ProblemKind::NotReady,
            ApiError::NotFound(_) => ProblemKind::NotFound,
            ApiError::MethodNotAllowed { .. } => ProblemKind::MethodNotAllowed,
            ApiError::Internal(_) => ProblemKind::Internal,
            ApiError::DicomWebNotConfigured => ProblemKind::DicomWebNotConfigured,
            ApiError::DicomRequired(_) => ProblemKind::DicomRequired,
            ApiError::UnsupportedMediaType(_) => ProblemKind::UnsupportedMediaType,
        }
    }

    /// A body over the size limit (`limit` when the caller knows it).
    pub fn payload_too_large(limit: Option<usize>) -> ApiError {
        ApiError::PayloadTooLarge(match limit {
            Some(limit) => format!("request body exceeds the limit of {limit} bytes"),
            None => "request body exceeds the configured size limit".to_string(),
        })
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.kind().status()
    }

    /// The problem sent to the client; internal errors get a generic detail.
    pub fn problem(&self) -> Problem {
        let kind = self.kind();
        let detail = match self {
            ApiError::Internal(_) => INTERNAL_DETAIL.to_string(),
            other => other.to_string(),
        };
        Problem::new(kind, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        // Request-scoped fields (the request id) come from the enclosing span.
        match kind {
            ProblemKind::Internal => tracing::error!(error = %self, "request failed"),
            ProblemKind::Overloaded => tracing::warn!(error = %self, problem = kind.slug(), "request refused"),
            ProblemKind::NotReady => tracing::debug!(error = %self, problem = kind.slug(), "request refused"),
            _ => tracing::info!(error = %self, problem = kind.slug(), "request rejected"),
        }
        let mut response = self.problem().into_response_with(kind.retry_after());
        if kind == ProblemKind::Unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<InferError> for ApiError {
    fn from(error: InferError) -> Self {
        match error {
            InferError::Overloaded { .. } => ApiError::Overloaded(error.to_string()),
            InferError::Stopped { .. } => ApiError::NotReady(error.to_string()),
            // `/predict` asks for maps only from models that have them, so these are bugs.
            InferError::InputSize { .. } | InferError::NoMaps { .. } | InferError::Run { .. } => {
                ApiError::Internal(error.to_string())
            }
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(error: InferenceError) -> Self {
        match error {
            InferenceError::State(error) => error.into(),
            InferenceError::Decode(error) => error.into(),
            InferenceError::Infer(error) => error.into(),
            InferenceError::Empty => ApiError::BadRequest(error.to_string()),
            InferenceError::NotLoaded { .. } => ApiError::ModelNotLoaded(error.to_string()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(None),
            _ => ApiError::BadRequest(format!("could not read the request body: {}", rejection.body_text())),
        }
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        ApiError::InvalidMultipart(rejection.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(error: MultipartError) -> Self {
        match error.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(None),
            _ => ApiError::InvalidMultipart(format!("malformed multipart/form-data body: {}", error.body_text())),
        }
    }
}

impl From<StateError> for ApiError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::NotReady => ApiError::NotReady(error.to_string()),
            StateError::WorkPoolClosed => ApiError::Internal(error.to_string()),
            StateError::Blocking(join) => ApiError::from(join),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("a blocking task failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_statuses_are_errors() {
        let mut slugs: Vec<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
        for kind in ProblemKind::ALL {
            assert!(kind.status().is_client_error() || kind.status().is_server_error(), "{kind:?}");
        }
    }

    #[test]
    fn internal_details_stay_in_the_log() {
        let problem = ApiError::Internal("secret stack".into()).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("secret"));
        assert_eq!(problem.type_uri, "https://cxr.example/problems/internal");
    }

    #[test]
    fn overload_carries_retry_after() {
        let response = ApiError::Overloaded("full".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
    }
}
