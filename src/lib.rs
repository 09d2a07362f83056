//! `cxr-serve`: the HTTP inference server for the color- (3-channel) and grayscale-pretrained (1-channel)
//! Inception-V3 chest X-ray classifiers, run by ONNX Runtime.
//!
//! Codemap, by layer (a module uses only the layers below it; `tests/server/layers.rs` checks it against the table
//! in `ARCHITECTURE.md`):
//! 0. [`config`]: the one [`Config`] (flags and `CXR_*` environment variables) and the plain settings types it
//!    produces; [`problem`]: the catalogue of problem types; [`malloc`]: glibc malloc thresholds.
//! 1. [`engine`]: ONNX Runtime sessions, one worker thread per model variant, request batching.
//! 2. [`telemetry`]: the Prometheus registry, the live A/B window, shadow runs.
//! 3. [`state`]: [`AppState`], what every handler shares.
//! 4. [`api`]: the route table and router, `/predict` (with `?explain=cam`), `/v2`, problem details, API keys,
//!    middleware.
//! 5. [`server`]: [`serve`]: binding, background model loading, graceful shutdown.
//!
//! Architecture invariants: the HTTP layer knows nothing about DICOM tags (`cxr_core::decode` does) and the engine
//! knows nothing about HTTP or Prometheus. Nothing logs DICOM header values: only format, dimensions and timings.

pub mod api;
pub mod config;
pub mod inference;
pub mod malloc;
pub mod problem;
pub mod server;
pub mod state;
pub mod telemetry;

pub use api::error::{ApiError, Problem};
pub use api::{Endpoint, app};
pub use config::Config;
pub use problem::ProblemKind;
pub use server::{ServeError, init_tracing, serve};
pub use state::AppState;
