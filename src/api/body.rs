//! The one body reader of the HTTP layer: every route that takes a body reads it here, within `--max-body-bytes`
//! and `--body-timeout-secs`, and every refusal that comes before the body is read (401, the concurrency limit's
//! 503) drains it here first.
//!
//! - [`read_upload`]: `POST /predict`'s file — the raw body (any `Content-Type`), or the `file` field of a
//!   `multipart/form-data` body.
//! - [`read_bytes`]: a whole body as bytes (`/v2` inference requests).
//! - [`RelatedParts`]: the parts of a `multipart/related` body one at a time, as they arrive (STOW-RS).
//! - [`discard`]: reads and drops a body, frame by frame: an HTTP/1.1 client still sending its file would otherwise
//!   get a broken pipe instead of the answer.

use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

use super::error::ApiError;
use crate::state::AppState;

/// The uploaded file and the media type the client declared for it.
pub struct Upload {
    pub bytes: Bytes,
    pub declared_type: Option<String>,
}

/// Reads the image from a raw body or from the `file` field of a multipart body, within the body size and time
/// limits. Public for the multipart fuzz target (`fuzz/fuzz_targets/multipart.rs`).
pub async fn read_upload(request: Request, state: &AppState) -> Result<Upload, ApiError> {
    within_time(state, read_upload_untimed(request, state)).await
}

/// Reads the whole body, within the body size and time limits.
pub async fn read_bytes(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    within_time(state, async {
        refuse_declared_excess(&request, state)?;
        Bytes::from_request(request, state).await.map_err(|e| too_large(state, e.into()))
    })
    .await
}

/// Reads and drops a request body, frame by frame (nothing is buffered), until it ends, fails, exceeds the body
/// size limit or takes longer than the body timeout.
pub async fn discard(mut body: Body, state: &AppState) {
    let limit = state.max_body_bytes();
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            seen += frame.data_ref().map_or(0, |data| data.len());
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(state.body_timeout(), drain).await;
}

/// `read` under `--body-timeout-secs`.
async fn within_time<T>(state: &AppState, read: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
    let timeout: Duration = state.body_timeout();
    tokio::time::timeout(timeout, read).await.map_err(|_| ApiError::RequestTimeout(timeout.as_secs()))?
}

/// A body-limit error from axum, restated with the configured limit.
fn too_large(state: &AppState, error: ApiError) -> ApiError {
    match error {
        ApiError::PayloadTooLarge(_) => ApiError::payload_too_large(Some(state.max_body_bytes())),
        other => other,
    }
}

/// A declared length over the limit is refused before a byte is read.
fn refuse_declared_excess(request: &Request, state: &AppState) -> Result<(), ApiError> {
    let limit = state.max_body_bytes();
    let declared_length =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::payload_too_large(Some(limit)));
    }
    Ok(())
}

async fn read_upload_untimed(request: Request, state: &AppState) -> Result<Upload, ApiError> {
    refuse_declared_excess(&request, state)?;
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(essence);
    if content_type.as_deref() == Some("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state).await?;
        while let Some(field) = multipart.next_field().await.map_err(|e| too_large(state, e.into()))? {
            if field.name() == Some("file") {
                let declared_type = field.content_type().map(essence);
                let bytes = field.bytes().await.map_err(|e| too_large(state, e.into()))?;
                return Ok(Upload { bytes, declared_type });
            }
        }
        Err(ApiError::InvalidMultipart("the multipart body has no `file` field".into()))
    } else {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| too_large(state, e.into()))?;
        Ok(Upload { bytes, declared_type: content_type })
    }
}

/// The parts of a `multipart/related; type="application/dicom"` body (a STOW-RS request), read one at a time as
/// they arrive, within the body size limit and the body timeout (counted from the start of the request).
pub struct RelatedParts {
    multipart: multer::Multipart<'static>,
    deadline: tokio::time::Instant,
    timeout: Duration,
    limit: usize,
}

/// One part of a `multipart/related` body.
pub struct RelatedPart {
    /// Its `Content-Type`, lower case, without parameters.
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl RelatedParts {
    /// Checks the request's media type (`multipart/related` with a boundary, and a `type` parameter, if any, of
    /// `application/dicom`) and declared length; a refused request's body is drained first.
    pub async fn new(request: Request, state: &AppState) -> Result<RelatedParts, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let checked = refuse_declared_excess(&request, state).and_then(|()| related_boundary(content_type));
        let boundary = match checked {
            Ok(boundary) => boundary,
            Err(error) => {
                discard(request.into_body(), state).await;
                return Err(error);
            }
        };
        let limit = state.max_body_bytes();
        let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
        let stream = request.into_body().into_data_stream();
        let timeout = state.body_timeout();
        Ok(RelatedParts {
            multipart: multer::Multipart::with_constraints(stream, boundary, constraints),
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            limit,
        })
    }

    /// The next part, or `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<RelatedPart>, ApiError> {
        let (deadline, timeout) = (self.deadline, self.timeout);
        let read = async {
            let Some(field) = self.multipart.next_field().await.map_err(|e| self.multipart_error(e))? else {
                return Ok(None);
            };
            let content_type = field.content_type().map(|m| essence(m.as_ref()));
            let bytes = field.bytes().await.map_err(|e| self.multipart_error(e))?;
            Ok(Some(RelatedPart { content_type, bytes }))
        };
        match tokio::time::timeout_at(deadline, read).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::RequestTimeout(timeout.as_secs())),
        }
    }

    fn multipart_error(&self, error: multer::Error) -> ApiError {
        match error {
            multer::Error::StreamSizeExceeded { .. } => ApiError::payload_too_large(Some(self.limit)),
            other => ApiError::InvalidMultipart(format!("malformed multipart/related body: {other}")),
        }
    }
}

/// The boundary of a `multipart/related` media type whose `type` parameter, when present, is `application/dicom`.
/// multer's own `parse_boundary` accepts only `multipart/form-data`, so the parameters are read here.
fn related_boundary(content_type: &str) -> Result<String, ApiError> {
    let refuse = |why: &str| {
        ApiError::UnsupportedMediaType(format!(
            "{why}: STOW-RS takes Content-Type: multipart/related; type=\"application/dicom\"; boundary=…"
        ))
    };
    if essence(content_type) != "multipart/related" {
        return Err(refuse("not a multipart/related body"));
    }
    if let Some(kind) = media_type_parameter(content_type, "type")
        && !kind.eq_ignore_ascii_case("application/dicom")
    {
        return Err(refuse(&format!("parts of type {kind} are not stored here (only application/dicom)")));
    }
    media_type_parameter(content_type, "boundary").filter(|b| !b.is_empty()).ok_or_else(|| refuse("no boundary"))
}

/// The value of parameter `name` of a media type (case-insensitive name; a quoted value unquoted).
fn media_type_parameter(media_type: &str, name: &str) -> Option<String> {
    media_type.split(';').skip(1).find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| {
            let value = value.trim();
            value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_string()
        })
    })
}

/// The `type/subtype` of a media type, lower case, without parameters.
pub fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_essence_drops_parameters() {
        assert_eq!(essence("Multipart/Form-Data; boundary=x"), "multipart/form-data");
    }

    #[test]
    fn stow_bodies_need_multipart_related_of_dicom_with_a_boundary() {
        let ok = |ct: &str| related_boundary(ct).unwrap();
        assert_eq!(ok("multipart/related; type=\"application/dicom\"; boundary=abc"), "abc");
        assert_eq!(ok("Multipart/Related; Boundary=\"a b\"; type=application/dicom"), "a b");
        assert_eq!(ok("multipart/related; boundary=x"), "x");
        for bad in [
            "application/dicom",
            "multipart/form-data; boundary=x",
            "multipart/related; type=\"application/dicom+xml\"; boundary=x",
            "multipart/related; type=\"application/dicom\"",
            "multipart/related; boundary=",
        ] {
            let error = related_boundary(bad).unwrap_err();
            assert!(matches!(error, ApiError::UnsupportedMediaType(_)), "{bad}: {error:?}");
        }
    }
}
