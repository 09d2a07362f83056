//! `cxr-serve`: the HTTP inference server for the color- (3-channel) and grayscale-pretrained (1-channel)
//! Inception-V3 chest X-ray classifiers, run by ONNX Runtime.
//!
//! Codemap:
//! - [`config`]: the one [`Config`] (flags and `CXR_*` environment variables).
//! - [`engine`]: ONNX Runtime sessions, one worker thread per model variant, request batching.
//! - [`api`]: shared state, the route table ([`api::Endpoint`]) and [`app`], the router.
//! - [`predict`]: `POST /predict`: upload → decode → preprocess → engine → findings.
//! - [`explain`]: `?explain=cam`: per-finding class activation maps in image coordinates, and their overlays.
//! - [`shadow`]: shadow mode, the other model run off the request path on the same preprocessed image.
//! - [`ab`]: the live A/B window of paired color/gray results and its statistics (`GET /v1/ab`).
//! - [`metrics`]: the Prometheus registry of one server (`GET /metrics`).
//! - [`error`]: [`ApiError`] and RFC 9457 problem details with stable `type` URIs.
//! - [`middleware`]: request ids, the concurrency limit, request metrics, panic handling.
//! - [`server`]: [`serve`]: binding, background model loading, graceful shutdown.
//! - [`malloc`]: glibc malloc thresholds that keep the per-request megabyte buffers out of page-fault churn.
//!
//! Architecture invariants: the HTTP layer knows nothing about DICOM tags (`cxr_core::decode` does) and the engine
//! knows nothing about HTTP. Nothing logs DICOM header values: only format, dimensions and timings.

pub mod ab;
pub mod api;
pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod explain;
pub mod malloc;
pub mod metrics;
pub mod middleware;
pub mod predict;
pub mod server;
pub mod shadow;
pub mod v2;

pub use api::{AppState, Endpoint, app};
pub use config::Config;
pub use error::{ApiError, Problem, ProblemKind};
pub use server::{ServeError, init_tracing, serve};
