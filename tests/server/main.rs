//! Integration tests of `cxr-serve`: the real router with the real models from `models/` on ephemeral ports, plus
//! the real binary for startup and shutdown behaviour.
//!
//! Needs `make models` (the exported ONNX files) and `scripts/setup-ort.sh` (the ONNX Runtime library); each test
//! fails with a message naming the missing step.

mod helpers;

mod ab;
mod adopted;
mod auth;
mod batching;
mod docs;
mod errors;
mod explain;
mod fp16;
mod lifecycle;
mod metrics;
mod mutations;
mod predict;
mod v2;
mod variants;
