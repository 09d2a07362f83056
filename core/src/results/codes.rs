//! Every coded concept of the result objects, with its coding scheme. The structure follows highdicom's TID 1500
//! writer (`highdicom.sr.MeasurementReport`); the DCM codes are PS3.16's. The 14 findings' codes, and which of
//! them are settled, are in [`FINDINGS`] (docs/pacs.md has the table).

use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::{Object, element, object};
use crate::labels::LABELS;

/// A coded concept: code value, coding scheme designator, code meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub value: &'static str,
    pub scheme: &'static str,
    pub meaning: &'static str,
}

impl Code {
    const fn new(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
        Code { value, scheme, meaning }
    }

    /// The code as a sequence item (Code Value, Coding Scheme Designator, Code Meaning).
    pub fn item(&self) -> Object {
        object([
            element(tags::CODE_VALUE, VR::SH, self.value),
            element(tags::CODING_SCHEME_DESIGNATOR, VR::SH, self.scheme),
            element(tags::CODE_MEANING, VR::LO, self.meaning),
        ])
    }
}

pub const IMAGING_MEASUREMENT_REPORT: Code = Code::new("126000", "DCM", "Imaging Measurement Report");
pub const LANGUAGE: Code = Code::new("121049", "DCM", "Language of Content Item and Descendants");
pub const ENGLISH_US: Code = Code::new("en-US", "RFC5646", "English (United States)");
pub const OBSERVER_TYPE: Code = Code::new("121005", "DCM", "Observer Type");
pub const DEVICE: Code = Code::new("121007", "DCM", "Device");
pub const DEVICE_OBSERVER_UID: Code = Code::new("121012", "DCM", "Device Observer UID");
pub const DEVICE_OBSERVER_NAME: Code = Code::new("121013", "DCM", "Device Observer Name");
pub const DEVICE_OBSERVER_MANUFACTURER: Code = Code::new("121014", "DCM", "Device Observer Manufacturer");
pub const DEVICE_OBSERVER_MODEL_NAME: Code = Code::new("121015", "DCM", "Device Observer Model Name");
pub const PROCEDURE_REPORTED: Code = Code::new("121058", "DCM", "Procedure reported");
/// The procedure reported when the source names none (LOINC; highdicom's examples use it for chest radiographs).
pub const CHEST_RADIOGRAPH: Code = Code::new("36554-4", "LN", "XR Chest Single view");
pub const IMAGING_MEASUREMENTS: Code = Code::new("126010", "DCM", "Imaging Measurements");
pub const MEASUREMENT_GROUP: Code = Code::new("125007", "DCM", "Measurement Group");
pub const TRACKING_IDENTIFIER: Code = Code::new("112039", "DCM", "Tracking Identifier");
pub const TRACKING_UID: Code = Code::new("112040", "DCM", "Tracking Unique Identifier");
pub const FINDING: Code = Code::new("121071", "DCM", "Finding");
pub const FINDING_SITE: Code = Code::new("363698007", "SCT", "Finding Site");
pub const CHEST: Code = Code::new("816094009", "SCT", "Chest");
pub const ALGORITHM_NAME: Code = Code::new("111001", "DCM", "Algorithm Name");
pub const ALGORITHM_VERSION: Code = Code::new("111003", "DCM", "Algorithm Version");
pub const PROBABILITY: Code = Code::new("122157", "DCM", "Probability");
/// The unit of a probability in [0, 1].
pub const PROBABILITY_UNIT: Code = Code::new("1", "UCUM", "no units");
pub const SOURCE_OF_MEASUREMENT: Code = Code::new("121112", "DCM", "Source of Measurement");
pub const PRESENT: Code = Code::new("52101004", "SCT", "Present");
pub const ABSENT: Code = Code::new("272519000", "SCT", "Absent");
/// The purpose of the Contributing Equipment item naming the algorithm: PS3.16 defines "Processing Equipment" as
/// equipment that processes images, "or applies an AI model" (there is no "Processing Algorithm" code).
pub const PROCESSING_EQUIPMENT: Code = Code::new("109102", "DCM", "Processing Equipment");

/// The private coding scheme of the one finding without a verified SNOMED CT concept (pleural thickening).
pub const PRIVATE_SCHEME: &str = "99CXRGRAY";

/// The code of each NIH finding by its label, and whether it is settled: `true` when the code is in a DICOM code
/// list (PS3.16, as bundled by highdicom / pydicom) or cross-referenced to the finding by the Human Phenotype
/// Ontology; `false` when it is the best choice found but unverified (docs/pacs.md lists each).
pub const FINDINGS: [(&str, Code, bool); 14] = [
    ("Atelectasis", Code::new("46621007", "SCT", "Atelectasis"), true),
    ("Cardiomegaly", Code::new("8186001", "SCT", "Cardiomegaly"), true),
    ("Effusion", Code::new("60046008", "SCT", "Pleural effusion"), true),
    ("Infiltration", Code::new("112121", "DCM", "Infiltrate"), true),
    ("Mass", Code::new("4147007", "SCT", "Mass"), true),
    ("Nodule", Code::new("27925004", "SCT", "Nodule"), true),
    ("Pneumonia", Code::new("233604007", "SCT", "Pneumonia"), true),
    ("Pneumothorax", Code::new("36118008", "SCT", "Pneumothorax"), true),
    ("Consolidation", Code::new("95436008", "SCT", "Lung consolidation"), false),
    ("Edema", Code::new("19242006", "SCT", "Pulmonary edema"), true),
    ("Emphysema", Code::new("87433001", "SCT", "Pulmonary emphysema"), true),
    ("Fibrosis", Code::new("51615001", "SCT", "Fibrosis of lung"), true),
    ("Pleural_Thickening", Code::new("PLEURTHICK", PRIVATE_SCHEME, "Pleural thickening"), false),
    ("Hernia", Code::new("84089009", "SCT", "Hiatal hernia"), true),
];

/// The code of finding `k` (the model's output order, [`LABELS`]).
pub fn finding(k: usize) -> Code {
    FINDINGS.iter().find(|(label, ..)| *label == LABELS[k]).map(|(_, code, _)| *code).expect("every label has a code")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::label_index;

    #[test]
    fn every_finding_has_one_code_by_its_label_not_its_position() {
        for label in LABELS {
            assert_eq!(FINDINGS.iter().filter(|(l, ..)| *l == label).count(), 1, "{label}");
        }
        let code = |label| finding(label_index(label).unwrap());
        assert_eq!(code("Effusion").value, "60046008");
        assert_eq!(code("Pneumothorax").value, "36118008");
        assert_eq!(code("Emphysema").meaning, "Pulmonary emphysema");
        assert_eq!(code("Pleural_Thickening").scheme, PRIVATE_SCHEME);
    }
}
