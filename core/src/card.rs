//! Model cards and model variants.
//!
//! A [`ModelCard`] travels with every exported classifier twice: embedded in the ONNX `metadata_props` under the
//! key [`CARD_METADATA_KEY`] and as a sidecar JSON file next to the `.onnx`. The training crate writes it; the
//! server reads it and refuses a model whose card contradicts the graph (wrong channel count, wrong labels).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::labels::LABELS;

/// ONNX `metadata_props` key under which the JSON model card is stored.
pub const CARD_METADATA_KEY: &str = "cxr.model_card";
/// ONNX `metadata_props` key naming a file's number format: absent (FP32) or [`FP16_PRECISION`].
pub const PRECISION_METADATA_KEY: &str = "cxr.precision";
/// The value of [`PRECISION_METADATA_KEY`] in an FP16 file, and the extension infix of its name: `<stem>.fp16.onnx`.
pub const FP16_PRECISION: &str = "fp16";
/// Version of the card schema; bump when a field changes meaning.
pub const CARD_SCHEMA_VERSION: u32 = 1;
/// Name of the ONNX graph input: `[N, C, H, W]` float32.
pub const INPUT_NAME: &str = "image";
/// Name of the ONNX graph output holding sigmoid probabilities `[N, 14]`.
pub const PROBABILITIES_NAME: &str = "probabilities";
/// Name of the ONNX graph output holding raw logits `[N, 14]`.
pub const LOGITS_NAME: &str = "logits";
/// Name of the optional ONNX graph output holding the last feature map before global average pooling,
/// `[N, 2048, g, g]` (`g` = 8 at 299 × 299).
pub const FEATURES_NAME: &str = "features";
/// Name of the optional ONNX graph output holding the class activation maps `[N, 14, g, g]`: the classifier applied
/// at every position of [`FEATURES_NAME`], bias included, so the spatial mean of map `k` is logit `k`.
pub const CAM_NAME: &str = "cam";

/// The two classifiers the project compares. They differ only in the first convolution's input channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelVariant {
    /// ImageNet color pretraining; the gray X-ray is stacked to 3 identical channels ("pseudo-color").
    Color,
    /// Luma-grayscale ImageNet pretraining; the X-ray is fed as 1 channel.
    Gray,
}

// `ALL` is both variants in the order of A/B responses: color first, then gray.
crate::keywords!(ModelVariant, "model variant", { Color => "color", Gray => "gray" });
#[cfg(feature = "clap")]
crate::keywords!(@value_enum ModelVariant);

impl ModelVariant {
    /// Input channels of the first convolution.
    pub const fn channels(self) -> usize {
        match self {
            ModelVariant::Color => 3,
            ModelVariant::Gray => 1,
        }
    }

    /// File stem of the exported model in `models/`.
    pub fn file_stem(self) -> String {
        format!("cxr-inception-v3-{}", self.as_str())
    }
}

/// Which model(s) answer a request or run a job: one variant, or both on the same image (results in
/// [`ModelVariant::ALL`] order, color then gray).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelSelection {
    Color,
    Gray,
    Both,
}

crate::keywords!(ModelSelection, "model", { Color => "color", Gray => "gray", Both => "both" });
#[cfg(feature = "clap")]
crate::keywords!(@value_enum ModelSelection);

impl ModelSelection {
    /// The variants to run, in response order.
    pub fn variants(self) -> &'static [ModelVariant] {
        match self {
            ModelSelection::Color => &ModelVariant::ALL[..1],
            ModelSelection::Gray => &ModelVariant::ALL[1..],
            ModelSelection::Both => &ModelVariant::ALL,
        }
    }

    /// The one variant selected, or `None` for both.
    pub fn single(self) -> Option<ModelVariant> {
        match self {
            ModelSelection::Color => Some(ModelVariant::Color),
            ModelSelection::Gray => Some(ModelVariant::Gray),
            ModelSelection::Both => None,
        }
    }
}

impl From<ModelVariant> for ModelSelection {
    fn from(variant: ModelVariant) -> Self {
        match variant {
            ModelVariant::Color => ModelSelection::Color,
            ModelVariant::Gray => ModelSelection::Gray,
        }
    }
}

/// Per-channel input normalisation applied after resizing: `x' = (x - mean) / std` with `x` in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: f32,
    pub std: f32,
}

impl Normalization {
    /// Inception's convention: [0, 1] mapped to [-1, 1].
    pub const INCEPTION: Normalization = Normalization { mean: 0.5, std: 0.5 };
}

/// Where the weights came from, so nobody mistakes a seeded initialisation for a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `true` only when the weights were fitted on data; `false` for a seeded initialisation.
    pub trained: bool,
    /// Human-readable account of how the weights were produced.
    pub description: String,
    /// Seed of the initialisation (and of training, when trained).
    pub seed: u64,
    /// Datasets the weights were fitted on (empty when untrained).
    pub datasets: Vec<String>,
    /// The tool and version that produced the file.
    pub producer: String,
    /// For weights this project did not train: the file they came from (`cxr-train import` or `adopt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ExternalSource>,
}

/// How weights from outside entered the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A PyTorch / safetensors state dict loaded into the Burn network and exported by `cxr-train` (`import`).
    Imported,
    /// An ONNX classifier exported elsewhere, wrapped into the served interface (`adopt`).
    Adopted,
}

/// The external file a model's weights came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalSource {
    pub kind: SourceKind,
    /// The file name as given to the tool.
    pub file: String,
    /// `pytorch`, `safetensors` or `onnx`.
    pub format: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Everything a consumer needs to run an exported classifier correctly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub schema_version: u32,
    /// Model name, e.g. `cxr-inception-v3-gray`.
    pub name: String,
    /// Model version string, unique per produced file (name + semver + seed).
    pub version: String,
    pub variant: ModelVariant,
    pub architecture: String,
    /// Input channels: 3 for color, 1 for gray.
    pub channels: usize,
    /// Input height and width in pixels.
    pub input_size: usize,
    pub normalization: Normalization,
    /// How a gray X-ray becomes the input tensor (resize method, padding, channel stacking).
    pub preprocessing: String,
    /// Output labels, in output order.
    pub labels: Vec<String>,
    pub input_name: String,
    pub outputs: Vec<String>,
    pub trained: bool,
    pub provenance: Provenance,
    /// Trainable parameter count (BatchNorm running statistics excluded).
    pub parameters: u64,
    /// How a trained model was evaluated, and its operating thresholds; absent for untrained weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
}

/// The evaluation of a trained model, written by `cxr-train export --run` and shown by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The dataset the metrics were measured on, e.g. `NIH ChestX-ray14`.
    pub dataset: String,
    /// Seed of the train/validation/test split.
    pub split_seed: u64,
    /// Epochs trained (the kept checkpoint's epoch).
    pub epochs: usize,
    /// Validation metrics by name (e.g. `loss`, `mean_auc`).
    pub validation: BTreeMap<String, f64>,
    /// Test metrics by name (e.g. `mean_auc`, `auc_Atelectasis`).
    pub test: BTreeMap<String, f64>,
    /// Per-label operating threshold on the probability (Youden's J on the validation split), in label order;
    /// `null` where the validation split had only one class for that label.
    pub thresholds: Vec<Option<f32>>,
}

/// A card that contradicts itself or the project's invariants.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("model card is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model card schema version {found} is not supported (expected {expected})")]
    Schema { found: u32, expected: u32 },
    #[error("model card for variant {variant} declares {channels} channels (expected {expected})")]
    Channels { variant: ModelVariant, channels: usize, expected: usize },
    #[error("model card labels differ from the 14 NIH labels in project order")]
    Labels,
    #[error("model card `trained` ({trained}) disagrees with its provenance ({provenance})")]
    Trained { trained: bool, provenance: bool },
    #[error("model card has an evaluation but says the weights are not trained")]
    EvaluationUntrained,
    /// Which threshold is out of place (a check of the card's own; no underlying error).
    #[error("model card thresholds: {0}")]
    Thresholds(String),
}

impl ModelCard {
    /// Parses and validates a card from JSON.
    pub fn from_json(json: &str) -> Result<ModelCard, CardError> {
        let card: ModelCard = serde_json::from_str(json)?;
        card.validate()?;
        Ok(card)
    }

    /// Serialises the card as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ModelCard always serialises")
    }

    /// Checks the invariants every card must satisfy.
    pub fn validate(&self) -> Result<(), CardError> {
        if self.schema_version != CARD_SCHEMA_VERSION {
            return Err(CardError::Schema { found: self.schema_version, expected: CARD_SCHEMA_VERSION });
        }
        if self.channels != self.variant.channels() {
            return Err(CardError::Channels {
                variant: self.variant,
                channels: self.channels,
                expected: self.variant.channels(),
            });
        }
        if self.labels.len() != LABELS.len() || self.labels.iter().zip(LABELS).any(|(a, b)| a != b) {
            return Err(CardError::Labels);
        }
        if self.trained != self.provenance.trained {
            return Err(CardError::Trained { trained: self.trained, provenance: self.provenance.trained });
        }
        if let Some(evaluation) = &self.evaluation {
            if !self.trained {
                return Err(CardError::EvaluationUntrained);
            }
            if evaluation.thresholds.len() != LABELS.len() {
                return Err(CardError::Thresholds(format!(
                    "{} values for {} labels",
                    evaluation.thresholds.len(),
                    LABELS.len()
                )));
            }
            if let Some((i, t)) = evaluation
                .thresholds
                .iter()
                .enumerate()
                .find_map(|(i, t)| t.filter(|t| !(0.0..=1.0).contains(t)).map(|t| (i, t)))
            {
                return Err(CardError::Thresholds(format!("{} is {t}, outside [0, 1]", LABELS[i])));
            }
        }
        Ok(())
    }

    /// The operating threshold of label `index`, when the card has one.
    pub fn threshold(&self, index: usize) -> Option<f32> {
        self.evaluation.as_ref().and_then(|e| e.thresholds.get(index).copied().flatten())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn card(variant: ModelVariant) -> ModelCard {
        ModelCard {
            schema_version: CARD_SCHEMA_VERSION,
            name: variant.file_stem(),
            version: "0.1.0+seed.7".into(),
            variant,
            architecture: "inception_v3".into(),
            channels: variant.channels(),
            input_size: 299,
            normalization: Normalization::INCEPTION,
            preprocessing: "test".into(),
            labels: LABELS.iter().map(|s| s.to_string()).collect(),
            input_name: INPUT_NAME.into(),
            outputs: vec![PROBABILITIES_NAME.into(), LOGITS_NAME.into()],
            trained: false,
            provenance: Provenance {
                trained: false,
                description: "seeded initialisation".into(),
                seed: 7,
                datasets: vec![],
                producer: "test".into(),
                source: None,
            },
            parameters: 1,
            evaluation: None,
        }
    }

    pub(crate) fn trained(variant: ModelVariant) -> ModelCard {
        let mut c = card(variant);
        c.trained = true;
        c.provenance.trained = true;
        let mut thresholds = vec![Some(0.5); LABELS.len()];
        thresholds[4] = None;
        c.evaluation = Some(Evaluation {
            dataset: "NIH ChestX-ray14".into(),
            split_seed: 7,
            epochs: 3,
            validation: BTreeMap::from([("loss".into(), 0.2)]),
            test: BTreeMap::from([("mean_auc".into(), 0.77)]),
            thresholds,
        });
        c
    }

    #[test]
    fn evaluation_round_trips_and_is_checked() {
        let c = trained(ModelVariant::Gray);
        assert_eq!(ModelCard::from_json(&c.to_json()).unwrap(), c);
        assert_eq!((c.threshold(0), c.threshold(4), c.threshold(99)), (Some(0.5), None, None));
        // Untrained cards have no `evaluation` key at all, so cards written before it existed still parse.
        assert!(!card(ModelVariant::Gray).to_json().contains("evaluation"));
        let mut bad = trained(ModelVariant::Gray);
        bad.evaluation.as_mut().unwrap().thresholds.pop();
        assert!(matches!(bad.validate(), Err(CardError::Thresholds(_))));
        let mut bad = trained(ModelVariant::Gray);
        bad.evaluation.as_mut().unwrap().thresholds[0] = Some(1.5);
        assert!(matches!(bad.validate(), Err(CardError::Thresholds(_))));
        let mut bad = trained(ModelVariant::Gray);
        (bad.trained, bad.provenance.trained) = (false, false);
        assert!(matches!(bad.validate(), Err(CardError::EvaluationUntrained)));
    }

    #[test]
    fn card_round_trips_through_json() {
        for variant in ModelVariant::ALL {
            let c = card(variant);
            assert_eq!(ModelCard::from_json(&c.to_json()).unwrap(), c);
        }
    }

    #[test]
    fn card_rejects_contradictions() {
        let mut c = card(ModelVariant::Gray);
        c.channels = 3;
        assert!(matches!(c.validate(), Err(CardError::Channels { .. })));
        let mut c = card(ModelVariant::Color);
        c.labels.swap(0, 1);
        assert!(matches!(c.validate(), Err(CardError::Labels)));
        let mut c = card(ModelVariant::Color);
        c.trained = true;
        assert!(matches!(c.validate(), Err(CardError::Trained { .. })));
    }

    #[test]
    fn variant_names_parse() {
        assert_eq!("gray".parse::<ModelVariant>().unwrap(), ModelVariant::Gray);
        assert_eq!("color".parse::<ModelVariant>().unwrap(), ModelVariant::Color);
        assert!("grey".parse::<ModelVariant>().is_err());
        assert_eq!(ModelVariant::Gray.channels(), 1);
        assert_eq!(ModelVariant::Color.channels(), 3);
    }
}
