//! The 14 NIH ChestX-ray14 findings, in the one order used everywhere: model outputs, model cards, API responses
//! and metrics. The spelling is NIH's own (`Pleural_Thickening` keeps its underscore).

/// Number of disease outputs of every classifier in this project.
pub const NUM_LABELS: usize = 14;

/// NIH ChestX-ray14 labels in output order. Index `i` of a model's `probabilities` row is `LABELS[i]`.
pub const LABELS: [&str; NUM_LABELS] = [
    "Atelectasis",
    "Cardiomegaly",
    "Emphysema",
    "Effusion",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Fibrosis",
    "Pleural_Thickening",
];

/// Returns the output index of a label in NIH spelling, or `None` for an unknown label (e.g. `No Finding`).
pub fn label_index(label: &str) -> Option<usize> {
    LABELS.iter().position(|l| *l == label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indexed() {
        for (i, label) in LABELS.iter().enumerate() {
            assert_eq!(label_index(label), Some(i));
        }
        assert_eq!(label_index("No Finding"), None);
    }
}
