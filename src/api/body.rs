//! The one body reader of the HTTP layer: every route that takes a body reads it here, within `--max-body-bytes`
//! and `--body-timeout-secs`, and every refusal that comes before the body is read (401, the concurrency limit's
//! 503) drains it here first.
//!
//! - [`read_upload`]: `POST /predict`'s file — the raw body (any `Content-Type`), or the `file` field of a
//!   `multipart/form-data` body.
//! - [`read_bytes`]: a whole body as bytes (`/v2` inference requests).
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
}
