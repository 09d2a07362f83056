//! The two training heads as burn-train steps: a softmax classifier (ImageNet pretraining, Indiana) and a
//! multi-label sigmoid classifier (NIH). Both wrap the same [`InceptionV3`]; only the loss differs.

use burn::module::Module;
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::tensor::{Int, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, MultiLabelClassificationOutput, TrainOutput, TrainStep};

use crate::model::InceptionV3;

/// One batch on the training device: `[N, C, S, S]` inputs and either class indices or 0/1 label rows.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    pub images: Tensor<4>,
    /// `[N]` class indices (softmax tasks).
    pub classes: Option<Tensor<1, Int>>,
    /// `[N, K]` 0/1 targets (multi-label task).
    pub labels: Option<Tensor<2, Int>>,
}

/// Softmax cross-entropy over `num_classes` (ImageNet folders, Indiana normal/abnormal).
#[derive(Module, Debug)]
pub struct SoftmaxClassifier {
    pub net: InceptionV3,
}

impl SoftmaxClassifier {
    fn forward_loss(&self, batch: TrainBatch) -> ClassificationOutput {
        let targets = batch.classes.expect("softmax batches carry class indices");
        let logits = self.net.forward(batch.images);
        let loss = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.clone(), targets.clone());
        ClassificationOutput::new(loss, logits, targets)
    }
}

impl TrainStep for SoftmaxClassifier {
    type Input = TrainBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: TrainBatch) -> TrainOutput<ClassificationOutput> {
        let output = self.forward_loss(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for SoftmaxClassifier {
    type Input = TrainBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: TrainBatch) -> ClassificationOutput {
        self.forward_loss(batch)
    }
}

/// Independent sigmoids with binary cross-entropy on the logits (NIH's 14 findings).
#[derive(Module, Debug)]
pub struct MultiLabelClassifier {
    pub net: InceptionV3,
}

impl MultiLabelClassifier {
    fn forward_loss(&self, batch: TrainBatch) -> MultiLabelClassificationOutput {
        let targets = batch.labels.expect("multi-label batches carry label rows");
        let logits = self.net.forward(batch.images);
        let loss = BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&logits.device())
            .forward(logits.clone(), targets.clone());
        MultiLabelClassificationOutput::new(loss, logits, targets)
    }
}

impl TrainStep for MultiLabelClassifier {
    type Input = TrainBatch;
    type Output = MultiLabelClassificationOutput;

    fn step(&self, batch: TrainBatch) -> TrainOutput<MultiLabelClassificationOutput> {
        let output = self.forward_loss(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for MultiLabelClassifier {
    type Input = TrainBatch;
    type Output = MultiLabelClassificationOutput;

    fn step(&self, batch: TrainBatch) -> MultiLabelClassificationOutput {
        self.forward_loss(batch)
    }
}
