//! Optional API keys for the inference and model routes.
//!
//! With `--api-key KEY` (repeatable; `CXR_API_KEYS`, comma-separated) and/or `--api-key-file FILE` (one key per
//! line, `#` comments), every request to `/predict`, `/v1/models`, `/v1/ab` and the `/v2/models/...` routes must
//! present one of the keys as `Authorization: Bearer KEY` or `X-API-Key: KEY`; otherwise it gets 401
//! `unauthorized` with `WWW-Authenticate: Bearer`, whatever was wrong (missing header, bad scheme, unknown key).
//! Health, readiness, `/metrics` (which can move to its own listener with `--metrics-bind`) and `/openapi.yaml`
//! stay open. Without keys nothing is checked.
//!
//! Keys are kept only as SHA-256 digests; a presented key is hashed and compared with every digest in constant time
//! (no early exit on the first differing byte or the first matching key), so response times do not reveal how much
//! of a key was right ([`ApiKeys::accepts`](crate::config::ApiKeys::accepts)). Keys never appear in logs.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::body;
use super::error::ApiError;
use crate::state::AppState;

/// The key a request presents: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
fn presented(request: &Request) -> Option<&str> {
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, key) = value.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(key.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Middleware of the protected routes: 401 unless the request presents an accepted key (or no keys are configured).
pub async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let keys = state.api_keys();
    if !keys.required() || presented(&request).is_some_and(|key| keys.accepts(key)) {
        return next.run(request).await;
    }
    // As for every other refusal, the upload is read first (and thrown away, within the body size and time limits):
    // an HTTP/1.1 client still sending its file would otherwise get a broken pipe instead of the 401.
    body::discard(request.into_body(), &state).await;
    axum::response::IntoResponse::into_response(ApiError::Unauthorized)
}
