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
    /// `?model=` names a model the server did not load (its models directory holds only the other).
    ModelNotLoaded,
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
    /// `POST /dicomweb/studies` without `--dicomweb-push`: the results would have nowhere to go.
    DicomWebNotConfigured,
    /// `?format=sr|sc` on an input that is not DICOM (a PNG or JPEG has no study to report into).
    DicomRequired,
}

/// One row of the catalogue.
struct Row {
    kind: ProblemKind,
    slug: &'static str,
    title: &'static str,
    status: StatusCode,
}

/// The catalogue: each kind's slug, title and status, in declaration order (row `i` is the kind whose discriminant
/// is `i`, checked by a test), so a kind is added in two places — its variant and its row.
const TABLE: [Row; 21] = [
    Row {
        kind: ProblemKind::UnsupportedMediaType,
        slug: "unsupported-media-type",
        title: "Unsupported media type",
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
    },
    Row {
        kind: ProblemKind::CorruptImage,
        slug: "corrupt-image",
        title: "Corrupt or truncated image",
        status: StatusCode::UNPROCESSABLE_ENTITY,
    },
    Row {
        kind: ProblemKind::UnsupportedTransferSyntax,
        slug: "unsupported-transfer-syntax",
        title: "Unsupported DICOM transfer syntax",
        status: StatusCode::UNPROCESSABLE_ENTITY,
    },
    Row {
        kind: ProblemKind::UnsupportedPhotometric,
        slug: "unsupported-photometric",
        title: "Unsupported DICOM photometric interpretation",
        status: StatusCode::UNPROCESSABLE_ENTITY,
    },
    Row {
        kind: ProblemKind::UnsupportedPixelData,
        slug: "unsupported-pixel-data",
        title: "Unsupported DICOM pixel data",
        status: StatusCode::UNPROCESSABLE_ENTITY,
    },
    Row {
        kind: ProblemKind::TooManyPixels,
        slug: "too-many-pixels",
        title: "Image has too many pixels",
        status: StatusCode::UNPROCESSABLE_ENTITY,
    },
    Row {
        kind: ProblemKind::EmptyImage,
        slug: "empty-image",
        title: "Image has no pixels",
        status: StatusCode::UNPROCESSABLE_ENTITY,
    },
    Row {
        kind: ProblemKind::PayloadTooLarge,
        slug: "payload-too-large",
        title: "Payload too large",
        status: StatusCode::PAYLOAD_TOO_LARGE,
    },
    Row {
        kind: ProblemKind::RequestTimeout,
        slug: "request-timeout",
        title: "Request body timed out",
        status: StatusCode::REQUEST_TIMEOUT,
    },
    Row {
        kind: ProblemKind::UnknownModel,
        slug: "unknown-model",
        title: "Unknown model",
        status: StatusCode::NOT_FOUND,
    },
    Row {
        kind: ProblemKind::ModelNotLoaded,
        slug: "model-not-loaded",
        title: "Model not loaded",
        status: StatusCode::BAD_REQUEST,
    },
    Row {
        kind: ProblemKind::InvalidMultipart,
        slug: "invalid-multipart",
        title: "Invalid multipart body",
        status: StatusCode::BAD_REQUEST,
    },
    Row { kind: ProblemKind::BadRequest, slug: "bad-request", title: "Bad request", status: StatusCode::BAD_REQUEST },
    Row {
        kind: ProblemKind::Unauthorized,
        slug: "unauthorized",
        title: "Unauthorized",
        status: StatusCode::UNAUTHORIZED,
    },
    Row {
        kind: ProblemKind::Overloaded,
        slug: "overloaded",
        title: "Server overloaded",
        status: StatusCode::SERVICE_UNAVAILABLE,
    },
    Row { kind: ProblemKind::NotReady, slug: "not-ready", title: "Not ready", status: StatusCode::SERVICE_UNAVAILABLE },
    Row { kind: ProblemKind::NotFound, slug: "not-found", title: "Not found", status: StatusCode::NOT_FOUND },
    Row {
        kind: ProblemKind::MethodNotAllowed,
        slug: "method-not-allowed",
        title: "Method not allowed",
        status: StatusCode::METHOD_NOT_ALLOWED,
    },
    Row {
        kind: ProblemKind::Internal,
        slug: "internal",
        title: "Internal server error",
        status: StatusCode::INTERNAL_SERVER_ERROR,
    },
    Row {
        kind: ProblemKind::DicomWebNotConfigured,
        slug: "dicomweb-not-configured",
        title: "DICOMweb intake is not configured",
        status: StatusCode::SERVICE_UNAVAILABLE,
    },
    Row {
        kind: ProblemKind::DicomRequired,
        slug: "dicom-required",
        title: "A DICOM input is required",
        status: StatusCode::BAD_REQUEST,
    },
];

impl ProblemKind {
    /// Every kind, in declaration order.
    pub const ALL: [ProblemKind; TABLE.len()] = {
        let mut all = [ProblemKind::Internal; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].kind;
            i += 1;
        }
        all
    };

    const fn row(self) -> &'static Row {
        &TABLE[self as usize]
    }

    /// The HTTP status of each kind: the one place where causes map to statuses.
    pub const fn status(self) -> StatusCode {
        self.row().status
    }

    /// The last segment of the `type` URI.
    pub const fn slug(self) -> &'static str {
        self.row().slug
    }

    /// A short, fixed summary of the kind (RFC 9457 `title`).
    pub const fn title(self) -> &'static str {
        self.row().title
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_its_kind() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.kind as usize, i, "row {i} ({}) is out of declaration order", row.slug);
        }
    }
}
