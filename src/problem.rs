//! The catalogue of problem types: every cause a client can tell apart ([`ProblemKind`]), with its stable `type`
//! URI slug, title and HTTP status. [`ProblemKind::status`] is the single place that maps a cause to a status.
//!
//! It sits in the bottom layer, beside the configuration, because two layers need the list: the HTTP layer
//! (`api::error`) answers with these problems and the telemetry layer counts them (`cxr_errors_total{type}`, every
//! series created at zero). It imports nothing from the rest of the crate.

use axum::http::StatusCode;

/// Prefix of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://cxr.example/problems/";
/// Media type of problem responses.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The causes a client can tell apart, each with a stable problem `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The body is not a DICOM Part 10, PNG or JPEG file (judged from its magic bytes).
    UnsupportedMediaType,
    /// The body claims a supported format but is truncated or malformed.
    CorruptImage,
    /// A DICOM transfer syntax the decoder does not handle.
    UnsupportedTransferSyntax,
    /// A DICOM photometric interpretation without a gray rendering (e.g. PALETTE COLOR).
    UnsupportedPhotometric,
    /// DICOM pixel data the decoder does not handle (float data, unusual bit layouts, no Pixel Data).
    UnsupportedPixelData,
    /// The image has more pixels than `--max-pixels`.
    TooManyPixels,
    /// The image has zero rows or columns.
    EmptyImage,
    /// The body is larger than `--max-body-bytes`.
    PayloadTooLarge,
    /// The body did not arrive within `--body-timeout-secs` (a stalled or deliberately slow upload).
    RequestTimeout,
    /// `?model=` names no model.
    UnknownModel,
    /// A multipart body that cannot be parsed or has no `file` field.
    InvalidMultipart,
    /// Any other malformed request (bad query string, empty body).
    BadRequest,
    /// An API key is required and the request presented none that is accepted.
    Unauthorized,
    /// A queue or the concurrency limit is full; retry after `Retry-After` seconds.
    Overloaded,
    /// The models are still loading (or the server is shutting down).
    NotReady,
    /// No route has this path.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// A bug; details are in the server log under the request id.
    Internal,
}

impl ProblemKind {
    /// Every kind, for documentation checks.
    pub const ALL: [ProblemKind; 18] = [
        ProblemKind::UnsupportedMediaType,
        ProblemKind::CorruptImage,
        ProblemKind::UnsupportedTransferSyntax,
        ProblemKind::UnsupportedPhotometric,
        ProblemKind::UnsupportedPixelData,
        ProblemKind::TooManyPixels,
        ProblemKind::EmptyImage,
        ProblemKind::PayloadTooLarge,
        ProblemKind::RequestTimeout,
        ProblemKind::UnknownModel,
        ProblemKind::InvalidMultipart,
        ProblemKind::BadRequest,
        ProblemKind::Unauthorized,
        ProblemKind::Overloaded,
        ProblemKind::NotReady,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::Internal,
    ];

    /// The HTTP status of each kind: the one place where causes map to statuses.
    pub const fn status(self) -> StatusCode {
        match self {
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::CorruptImage
            | ProblemKind::UnsupportedTransferSyntax
            | ProblemKind::UnsupportedPhotometric
            | ProblemKind::UnsupportedPixelData
            | ProblemKind::TooManyPixels
            | ProblemKind::EmptyImage => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemKind::UnknownModel | ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::InvalidMultipart | ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
            ProblemKind::Overloaded | ProblemKind::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The last segment of the `type` URI.
    pub const fn slug(self) -> &'static str {
        match self {
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::CorruptImage => "corrupt-image",
            ProblemKind::UnsupportedTransferSyntax => "unsupported-transfer-syntax",
            ProblemKind::UnsupportedPhotometric => "unsupported-photometric",
            ProblemKind::UnsupportedPixelData => "unsupported-pixel-data",
            ProblemKind::TooManyPixels => "too-many-pixels",
            ProblemKind::EmptyImage => "empty-image",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::UnknownModel => "unknown-model",
            ProblemKind::InvalidMultipart => "invalid-multipart",
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Overloaded => "overloaded",
            ProblemKind::NotReady => "not-ready",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::Internal => "internal",
        }
    }

    /// A short, fixed summary of the kind (RFC 9457 `title`).
    pub const fn title(self) -> &'static str {
        match self {
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::CorruptImage => "Corrupt or truncated image",
            ProblemKind::UnsupportedTransferSyntax => "Unsupported DICOM transfer syntax",
            ProblemKind::UnsupportedPhotometric => "Unsupported DICOM photometric interpretation",
            ProblemKind::UnsupportedPixelData => "Unsupported DICOM pixel data",
            ProblemKind::TooManyPixels => "Image has too many pixels",
            ProblemKind::EmptyImage => "Image has no pixels",
            ProblemKind::PayloadTooLarge => "Payload too large",
            ProblemKind::RequestTimeout => "Request body timed out",
            ProblemKind::UnknownModel => "Unknown model",
            ProblemKind::InvalidMultipart => "Invalid multipart body",
            ProblemKind::BadRequest => "Bad request",
            ProblemKind::Unauthorized => "Unauthorized",
            ProblemKind::Overloaded => "Server overloaded",
            ProblemKind::NotReady => "Not ready",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::Internal => "Internal server error",
        }
    }

    /// The stable `type` URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }

    /// Whether a response of this kind carries `Retry-After`.
    pub const fn retry_after(self) -> bool {
        matches!(self, ProblemKind::Overloaded | ProblemKind::NotReady)
    }
}
