//! `cxr-train`: the Burn side of the chest X-ray classifier project.
//!
//! Inception-V3 in two variants that differ only in the first convolution's input channels — colour (3 channels,
//! the gray X-ray stacked three times) and gray (1 channel) — together with the tooling to train, evaluate and
//! export them to ONNX for the `cxr-serve` inference server.
//!
//! # Modules
//!
//! - [`model`]: the Inception-V3 network (torchvision layout), its configuration per
//!   [`ModelVariant`](cxr_core::card::ModelVariant), seeded initialisation and parameter counting.
//! - [`export`]: ONNX export (`burn-onnx`) rewritten to the project's stable interface, with the model card.
//! - [`fp16`]: the FP16 variant of an exported model (FP16 weights and arithmetic, FP32 interface) for GPUs.
//! - [`data`]: ImageNet (ImageFolder), NIH ChestX-ray14 and Indiana datasets, decoded and preprocessed by
//!   `cxr-core`, score tables, and the seeded multi-threaded batch loader.
//! - [`hash`]: FNV-1a and SplitMix64, the portable hashes behind fingerprints and seeded weights.
//! - [`cause`]: the error under the crate's errors, foreign errors kept as errors.
//! - [`roc`]: ROC AUC with confidence intervals, DeLong's test (fast and brute force), ROC curves, thresholds.
//! - [`import`]: torchvision `inception_v3` weights (`.pth` / `.safetensors`, through burn-store) into an import
//!   directory, and the gray first convolution derived from a color one.
//! - [`adopt`]: ONNX classifiers exported elsewhere wrapped into the served interface with a card.
//! - [`run`]: the run directory format (`config.json`, `best.bpk`, `best.json`) that training, import, evaluation
//!   and export share, the task's paper defaults and the default seed.
//! - [`device`]: the Burn devices of `--device` (`flex`, `tch`, `tch-cuda`, `cuda`, `vulkan`), opened and probed.
//! - [`train`]: pretraining and fine-tuning on burn-train (loop, metrics, checkpoints, early stopping, resume).
//! - [`report`]: a finished run's evaluation, the comparison of two runs (the paper's Table 2) and ROC plots.
//! - [`bench`](mod@bench): `cxr-train bench`, training and loader throughput beside PyTorch's.
//! - [`cli`]: the `cxr-train` command line.
//!
//! Architecture invariant: this crate never depends on the server's HTTP code; what it shares with the server
//! (labels, cards, decoding, preprocessing) lives in `cxr-core`.

pub mod adopt;
pub mod bench;
pub mod cause;
pub mod cli;
pub mod data;
pub mod device;
pub mod export;
pub mod fp16;
pub mod hash;
pub mod import;
pub mod model;
pub mod report;
pub mod roc;
pub mod run;
pub mod train;
