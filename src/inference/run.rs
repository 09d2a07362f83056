//! The one model run of the inference service ([`run_model`]) and the service's error ([`InferenceError`]): what
//! `/predict`, `/v2` and shadow runs all go through, below both the service (`mod.rs`) and shadow runs
//! (`shadow.rs`).

use std::sync::Arc;
use std::time::Duration;

use cxr_core::card::{ModelSelection, ModelVariant};
use cxr_core::decode::DecodeError;
use cxr_core::image::GrayImage;
use cxr_engine::{Admission, InferError, Maps, Prediction};

use crate::state::{CpuWork, StateError};

/// Why an input could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The models are still loading, or the image-work slots failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The bytes are not an image the decoder can read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The engine refused or failed the job.
    #[error(transparent)]
    Infer(#[from] InferError),
    /// Nothing was sent.
    #[error("the request body is empty; send a DICOM, PNG or JPEG file")]
    Empty,
    /// The selection names a model the models directory did not hold.
    #[error("model={selection} needs the {missing} model, which is not loaded (loaded: {loaded})")]
    NotLoaded { selection: ModelSelection, missing: ModelVariant, loaded: String },
}

/// What a model runs on.
pub enum ModelInput {
    /// A decoded image, preprocessed with the model's own preprocessing (on the image-work slots).
    Image(Arc<GrayImage>),
    /// A tensor of the model's input size, already preprocessed.
    Tensor(Vec<f32>),
}

/// The one way a model runs: `input` preprocessed for the admitted model when it is an image (on the image-work
/// slots), `queued` called with the tensor just before it is queued, then the engine. Returns the prediction (with
/// the `maps` asked for) and how long preprocessing took (zero for a tensor).
pub async fn run_model(
    cpu: &CpuWork,
    admission: Admission,
    input: ModelInput,
    maps: Maps,
    queued: impl FnOnce(&[f32]),
) -> Result<(Prediction, Duration), InferenceError> {
    let (tensor, preprocess) = match input {
        ModelInput::Tensor(tensor) => (tensor, Duration::ZERO),
        ModelInput::Image(image) => {
            let model = admission.model();
            let preprocessor = Arc::clone(model.preprocessor());
            let channels = model.info().card.channels;
            cpu.run(move || preprocessor.tensor(&image, channels)).await?
        }
    };
    queued(&tensor);
    Ok((admission.infer_with(tensor, maps).await?, preprocess))
}
