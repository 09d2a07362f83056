//! `cxr-core`: the domain shared by the server and the training pipeline.
//!
//! - [`labels`]: the 14 NIH findings in output order.
//! - [`card`]: model variants (`color` / `gray`) and the model card embedded in every export.
//! - [`image`]: the decoded gray image type every decoder produces.
//! - [`decode`]: DICOM, PNG and JPEG bytes → [`image::GrayImage`] in [0, 1].
//! - [`preprocess`]: [`image::GrayImage`] → the normalised `[C, 299, 299]` model input.
//! - [`keywords`](mod@keywords): the one way keyword enums are parsed and printed
//!   ([`keywords!`](macro@keywords)).
//! - `clidoc` (feature `clap`): `docs/configuration.md` generated from the binaries' `--help`.
//! - [`stats`]: the one percentile definition (linear between closest ranks).
//! - [`cam`]: class activation maps placed on the original image (the letterbox undone) and drawn over it.
//! - [`results`]: results as DICOM — the TID 1500 structured report, the overlay Secondary Capture, their UIDs and
//!   the STOW-RS answer.
//!
//! Architecture invariant: this crate knows nothing about HTTP, ONNX Runtime or Burn.

pub mod cam;
pub mod card;
#[cfg(feature = "clap")]
pub mod clidoc;
pub mod decode;
pub mod image;
pub mod keywords;
pub mod labels;
pub mod preprocess;
pub mod results;
pub mod stats;
