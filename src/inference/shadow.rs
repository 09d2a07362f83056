//! Shadow mode (`--shadow color|gray`): the other model runs in the background on every single-model prediction.
//!
//! The response comes from the requested (primary) model exactly as without shadowing. Once the primary's tensor is
//! preprocessed, [`ShadowRun::launch`] hands the same preprocessed image to a detached tokio task that runs the
//! shadow model, records its latency, and — once the primary has answered — the pair's agreement in the A/B window
//! ([`crate::telemetry::ab`]) and the `cxr_ab_*` metrics. The request never waits for the shadow and never fails because of
//! it: when the shadow model's queue is full, the run is skipped and counted in `cxr_shadow_skipped_total`; a
//! failure is logged and counted in `cxr_shadow_failures_total`.
//!
//! "The same preprocessed image": when both models share the preprocessing (input size and normalisation, as the
//! exported pair does), the shadow's input is the primary's normalised plane, stacked to the shadow's channel count
//! (gray → color) or reduced to one plane (color → gray), so nothing is resized twice. Otherwise the shadow task
//! preprocesses the decoded image with its own model's preprocessing. Either way it runs through the service's one
//! model run ([`run_model`]), so its CPU work takes the image-work slots like every other.
//!
//! A shadow run holds a clone of its [`ModelHandle`] and of the image-work slots, not the engine or the state, so
//! shutting down never waits for anything but the shadow job itself (the worker finishes it before stopping).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cxr_core::card::ModelVariant;
use cxr_core::image::GrayImage;
use tokio::sync::oneshot;
use tracing::Instrument;

use cxr_engine::{InferError, Maps, ModelHandle};

use super::run::{InferenceError, ModelInput, run_model};
use crate::state::CpuWork;
use crate::telemetry::ab::{AbStats, ModelSide, Source};
use crate::telemetry::metrics::{self, Metrics};

/// The primary model's result, sent to its shadow run once the primary has answered.
#[derive(Debug)]
pub struct PrimaryOutcome {
    pub probabilities: Vec<f32>,
    /// Queue wait plus inference.
    pub model_latency: Duration,
    /// From the complete request body to the primary's result.
    pub end_to_end: Duration,
}

/// A shadow run about to start for one request.
pub struct ShadowRun {
    model: ModelHandle,
    cpu: CpuWork,
    metrics: Arc<Metrics>,
    ab: Arc<AbStats>,
}

/// Where the shadow's input comes from.
enum ShadowInput {
    /// The primary's normalised `N × N` plane (both models preprocess identically).
    Plane(Vec<f32>),
    /// The decoded image, to preprocess with the shadow model's own preprocessing.
    Image(Arc<GrayImage>),
}

impl ShadowRun {
    pub fn new(model: ModelHandle, cpu: CpuWork, metrics: Arc<Metrics>, ab: Arc<AbStats>) -> ShadowRun {
        ShadowRun { model, cpu, metrics, ab }
    }

    /// Starts the shadow run for a request whose primary model is `primary` and whose preprocessed tensor is
    /// `primary_tensor`. Returns where to send the primary's outcome, or `None` when the run was skipped (the
    /// shadow model's queue is full). Never blocks: the work happens in a detached task.
    pub fn launch(
        self,
        primary: &ModelHandle,
        primary_tensor: &[f32],
        image: &Arc<GrayImage>,
        received: Instant,
    ) -> Option<oneshot::Sender<PrimaryOutcome>> {
        let variant = self.model.info().variant;
        if self.model.queue_is_full() {
            self.skip("queue full");
            return None;
        }
        let plane_len = self.model.preprocessor().plane_len();
        let input = if primary.preprocessor() == self.model.preprocessor() && primary_tensor.len() >= plane_len {
            ShadowInput::Plane(primary_tensor[..plane_len].to_vec())
        } else {
            ShadowInput::Image(Arc::clone(image))
        };
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let primary_variant = primary.info().variant;
        let span = tracing::info_span!("shadow", model = %variant);
        tokio::spawn(self.run(input, primary_variant, received, outcome_rx).instrument(span));
        Some(outcome_tx)
    }

    async fn run(
        self,
        input: ShadowInput,
        primary: ModelVariant,
        received: Instant,
        outcome: oneshot::Receiver<PrimaryOutcome>,
    ) {
        let variant = self.model.info().variant;
        let channels = self.model.info().card.channels;
        let input = match input {
            ShadowInput::Plane(plane) => ModelInput::Tensor(stack(plane, channels)),
            ShadowInput::Image(image) => ModelInput::Image(image),
        };
        let admission = self.model.admit();
        let prediction = match run_model(&self.cpu, admission, input, Maps::NONE, |_| ()).await {
            Ok((prediction, _)) => prediction,
            Err(InferenceError::Infer(InferError::Overloaded { .. })) => {
                self.skip("queue full");
                return;
            }
            Err(error) => {
                self.metrics.shadow_failed(variant);
                tracing::warn!(%error, "shadow run failed");
                return;
            }
        };
        let end_to_end = received.elapsed();
        self.metrics.observe_shadow(variant, end_to_end);
        tracing::debug!(
            batch = prediction.batch_size,
            queue_ms = prediction.queue.as_secs_f64() * 1e3,
            inference_ms = prediction.inference.as_secs_f64() * 1e3,
            "shadow run done"
        );

        // No outcome: the primary failed or its client left; there is nothing to compare with.
        let Ok(primary_outcome) = outcome.await else { return };
        let shadow_side = ModelSide {
            probabilities: &prediction.probabilities,
            model_latency: prediction.queue + prediction.inference,
            end_to_end,
        };
        let primary_side = ModelSide {
            probabilities: &primary_outcome.probabilities,
            model_latency: primary_outcome.model_latency,
            end_to_end: primary_outcome.end_to_end,
        };
        let (color, gray) = match primary {
            ModelVariant::Color => (primary_side, shadow_side),
            ModelVariant::Gray => (shadow_side, primary_side),
        };
        metrics::record_pair(&self.ab, &self.metrics, Source::Shadow, &color, &gray);
    }

    fn skip(&self, reason: &str) {
        self.metrics.shadow_skipped(self.model.info().variant);
        tracing::debug!(model = %self.model.info().variant, reason, "shadow run skipped");
    }
}

/// The `channels × N × N` input made of one normalised plane (`N²` values) repeated.
fn stack(plane: Vec<f32>, channels: usize) -> Vec<f32> {
    if channels == 1 {
        return plane;
    }
    let mut tensor = Vec::with_capacity(channels * plane.len());
    for _ in 0..channels {
        tensor.extend_from_slice(&plane);
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plane_is_stacked_to_the_channel_count() {
        assert_eq!(stack(vec![1.0, 2.0], 1), vec![1.0, 2.0]);
        assert_eq!(stack(vec![1.0, 2.0], 3), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }
}
