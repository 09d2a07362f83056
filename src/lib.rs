//! `cxr-serve`: the HTTP inference server for the color- (3-channel) and grayscale-pretrained (1-channel)
//! Inception-V3 chest X-ray classifiers, run by ONNX Runtime.
//!
//! Codemap, by layer (a module uses only the layers below it; the table in `ARCHITECTURE.md` is checked against
//! the sources). The engine is its own crate, `cxr-engine`, below all of them:
//! - Layer 0: [`config`]: the one [`Config`] (flags and `CXR_*` environment variables); [`problem`]: the
//!   catalogue of problem types; [`malloc`]: glibc malloc thresholds.
//! - Layer 1: [`telemetry`]: the Prometheus registry, the live A/B window.
//! - Layer 2: [`delivery`]: the outbound queue of DICOM results to the PACS.
//! - Layer 3: [`state`]: [`AppState`], what every handler shares, and the image-work slots.
//! - Layers 4–6: [`inference`]: the inference service — the one way an input (image bytes or preprocessed
//!   tensors) becomes probabilities and maps; shadow runs and explanations.
//! - Layer 7: [`pacs`]: DICOM in, DICOM out — one STOW-RS instance to its SR and Secondary Capture, queued.
//! - Layer 8: [`api`]: the route table and router, the one body reader, `/predict`, `/v2` and `/dicomweb`
//!   (translators over the service), problem details, API keys, middleware.
//! - Layer 9: [`server`]: [`serve`]: binding, background model loading, graceful shutdown.
//!
//! Architecture invariants: the HTTP layer knows nothing about DICOM tags (`cxr_core::decode` and
//! `cxr_core::results` do) nor ONNX Runtime (`cxr_engine` does), and the inference service knows nothing about HTTP. Nothing logs DICOM header values: only
//! format, dimensions and timings.

pub mod api;
pub mod config;
pub mod delivery;
pub mod inference;
pub mod malloc;
pub mod pacs;
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
