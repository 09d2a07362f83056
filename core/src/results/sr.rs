//! The Comprehensive 3D SR of one model's result on one image: a TID 1500 Measurement Report whose Imaging
//! Measurements hold one TID 1501 Measurement Group per finding (tracking identifier and UID, the finding's code,
//! finding site chest, the probability as a NUM with the algorithm's name and version and the source image as the
//! source of measurement, and a Present / Absent evaluation when the model card has the finding's threshold). The
//! observer is the model (a device observer); the evidence is the source image.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;

use super::codes::{self, Code};
use super::source::SourceInstance;
use super::{
    ModelResult, Object, ResultObject, ResultsError, SR_STORAGE, common, element, object, result_uids, sequence, uid,
    write,
};
use crate::labels::LABELS;

/// Series Number of the SRs (the overlays' series is [`super::sc::SERIES_NUMBER`]).
pub const SERIES_NUMBER: u32 = 9_901;

/// Makes the SR of `result` on `source`, dated `now`.
pub fn structured_report(
    source: &SourceInstance,
    result: &ModelResult,
    now: &chrono::DateTime<chrono::Utc>,
) -> Result<ResultObject, ResultsError> {
    if result.probabilities.len() != LABELS.len() {
        return Err(ResultsError::Probabilities { got: result.probabilities.len(), expected: LABELS.len() });
    }
    let (series, instance) = result_uids(source, result, "sr");
    let mut elements = common(source, result, (SR_STORAGE, &instance), ("SR", &series, SERIES_NUMBER), now);
    let thresholds = result.card.evaluation.as_ref().map(|e| e.thresholds.as_slice()).unwrap_or_default();
    let complete = thresholds.len() == LABELS.len() && thresholds.iter().all(Option::is_some);
    elements.extend([
        element(tags::CONTENT_DATE, VR::DA, now.format("%Y%m%d").to_string()),
        element(tags::CONTENT_TIME, VR::TM, now.format("%H%M%S").to_string()),
        // Each finding has its probability; it is COMPLETE when each also has its Present / Absent evaluation.
        element(tags::COMPLETION_FLAG, VR::CS, if complete { "COMPLETE" } else { "PARTIAL" }),
        element(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"),
        sequence(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, Vec::new()),
        sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new()),
        sequence(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![evidence(source)]),
        // The root content item: TID 1500.
        element(tags::VALUE_TYPE, VR::CS, "CONTAINER"),
        concept_name(codes::IMAGING_MEASUREMENT_REPORT),
        element(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"),
        sequence(
            tags::CONTENT_TEMPLATE_SEQUENCE,
            vec![object([
                element(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
                element(tags::TEMPLATE_IDENTIFIER, VR::CS, "1500"),
            ])],
        ),
        sequence(tags::CONTENT_SEQUENCE, report_content(source, result, thresholds)),
    ]);
    write(object(elements), SR_STORAGE, series)
}

/// The Current Requested Procedure Evidence: the source image, in its series and study.
fn evidence(source: &SourceInstance) -> Object {
    object([
        element(tags::STUDY_INSTANCE_UID, VR::UI, source.study_instance.as_str()),
        sequence(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![object([
                element(tags::SERIES_INSTANCE_UID, VR::UI, source.series_instance.as_str()),
                sequence(tags::REFERENCED_SOP_SEQUENCE, vec![image_reference(source)]),
            ])],
        ),
    ])
}

fn image_reference(source: &SourceInstance) -> Object {
    object([
        element(tags::REFERENCED_SOP_CLASS_UID, VR::UI, source.sop_class.as_str()),
        element(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, source.sop_instance.as_str()),
    ])
}

/// TID 1500's children: language, the device observer (TID 1002 / 1004), the procedure reported and the Imaging
/// Measurements container.
fn report_content(source: &SourceInstance, result: &ModelResult, thresholds: &[Option<f32>]) -> Vec<Object> {
    let card = result.card;
    let procedure = source
        .procedure
        .as_ref()
        .and_then(first_code)
        .map(|item| content(Relationship::HasConceptMod, codes::PROCEDURE_REPORTED, Value::CodeItem(item)))
        .unwrap_or_else(|| {
            content(Relationship::HasConceptMod, codes::PROCEDURE_REPORTED, Value::Code(codes::CHEST_RADIOGRAPH))
        });
    let groups = LABELS
        .iter()
        .enumerate()
        .map(|(k, label)| measurement_group(source, result, k, label, thresholds.get(k).copied().flatten()))
        .collect();
    vec![
        content(Relationship::HasConceptMod, codes::LANGUAGE, Value::Code(codes::ENGLISH_US)),
        content(Relationship::HasObsContext, codes::OBSERVER_TYPE, Value::Code(codes::DEVICE)),
        content(Relationship::HasObsContext, codes::DEVICE_OBSERVER_UID, Value::Uid(super::device_uid(card))),
        content(Relationship::HasObsContext, codes::DEVICE_OBSERVER_NAME, Value::Text(card.name.clone())),
        content(
            Relationship::HasObsContext,
            codes::DEVICE_OBSERVER_MANUFACTURER,
            Value::Text(super::MANUFACTURER.into()),
        ),
        content(Relationship::HasObsContext, codes::DEVICE_OBSERVER_MODEL_NAME, Value::Text(super::MODEL_NAME.into())),
        procedure,
        container(Relationship::Contains, codes::IMAGING_MEASUREMENTS, groups),
    ]
}

/// The first item of a code sequence element (the source's Procedure Code Sequence), if it holds one.
fn first_code(element: &InMemElement) -> Option<Object> {
    element.items()?.first().cloned()
}

/// One TID 1501 group: what the model says of finding `k`, in the order highdicom writes it (tracking identifier
/// and UID, finding, finding site, algorithm, the probability, the evaluation, the source image).
fn measurement_group(
    source: &SourceInstance,
    result: &ModelResult,
    k: usize,
    label: &str,
    threshold: Option<f32>,
) -> Object {
    let card = result.card;
    let finding = codes::finding(k);
    let probability = result.probabilities[k];
    let tracking_uid = uid::result_uid(&source.sop_instance, &card.name, &card.version, &format!("group-{label}"));
    let algorithm = || {
        [
            content(Relationship::HasConceptMod, codes::ALGORITHM_NAME, Value::Text(card.name.clone())),
            content(Relationship::HasConceptMod, codes::ALGORITHM_VERSION, Value::Text(card.version.clone())),
        ]
    };
    let source_image =
        || content(Relationship::InferredFrom, codes::SOURCE_OF_MEASUREMENT, Value::Image(image_reference(source)));
    let mut measurement = content(Relationship::Contains, codes::PROBABILITY, Value::Probability(probability));
    let mut inside = vec![source_image()];
    inside.extend(algorithm());
    measurement.put(sequence(tags::CONTENT_SEQUENCE, inside));
    let mut children = vec![
        content(Relationship::HasObsContext, codes::TRACKING_IDENTIFIER, Value::Text(format!("{} {label}", card.name))),
        content(Relationship::HasObsContext, codes::TRACKING_UID, Value::Uid(tracking_uid)),
        content(Relationship::Contains, codes::FINDING, Value::Code(finding)),
        content(Relationship::HasConceptMod, codes::FINDING_SITE, Value::Code(codes::CHEST)),
    ];
    children.extend(algorithm());
    children.push(measurement);
    if let Some(threshold) = threshold {
        let verdict = if probability >= threshold { codes::PRESENT } else { codes::ABSENT };
        children.push(content(Relationship::Contains, finding, Value::Code(verdict)));
    }
    children.push(content(Relationship::Contains, codes::SOURCE_OF_MEASUREMENT, Value::Image(image_reference(source))));
    container(Relationship::Contains, codes::MEASUREMENT_GROUP, children)
}

/// The relationship of a content item to its parent (PS3.3 C.17.3.2.4).
#[derive(Debug, Clone, Copy)]
enum Relationship {
    Contains,
    HasObsContext,
    HasConceptMod,
    InferredFrom,
}

impl Relationship {
    const fn as_str(self) -> &'static str {
        match self {
            Relationship::Contains => "CONTAINS",
            Relationship::HasObsContext => "HAS OBS CONTEXT",
            Relationship::HasConceptMod => "HAS CONCEPT MOD",
            Relationship::InferredFrom => "INFERRED FROM",
        }
    }
}

/// The value of a content item.
enum Value {
    Text(String),
    Uid(String),
    Code(Code),
    /// A coded value taken as is (the source's procedure code).
    CodeItem(Object),
    /// A probability in [0, 1]: a NUM in the unit [`codes::PROBABILITY_UNIT`].
    Probability(f32),
    /// A reference to an image.
    Image(Object),
}

/// A concept name: Concept Name Code Sequence (0040,A043) with one item.
fn concept_name(code: Code) -> InMemElement {
    sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code.item()])
}

/// One content item.
fn content(relationship: Relationship, name: Code, value: Value) -> Object {
    let (value_type, value): (&str, InMemElement) = match value {
        Value::Text(text) => ("TEXT", element(tags::TEXT_VALUE, VR::UT, text)),
        Value::Uid(uid) => ("UIDREF", element(tags::UID, VR::UI, uid)),
        Value::Code(code) => ("CODE", sequence(tags::CONCEPT_CODE_SEQUENCE, vec![code.item()])),
        Value::CodeItem(item) => ("CODE", sequence(tags::CONCEPT_CODE_SEQUENCE, vec![item])),
        Value::Probability(p) => (
            "NUM",
            sequence(
                tags::MEASURED_VALUE_SEQUENCE,
                vec![object([
                    sequence(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![codes::PROBABILITY_UNIT.item()]),
                    element(tags::NUMERIC_VALUE, VR::DS, decimal_string(p)),
                    element(tags::FLOATING_POINT_VALUE, VR::FD, f64::from(p)),
                ])],
            ),
        ),
        Value::Image(reference) => ("IMAGE", sequence(tags::REFERENCED_SOP_SEQUENCE, vec![reference])),
    };
    object([
        element(tags::RELATIONSHIP_TYPE, VR::CS, relationship.as_str()),
        element(tags::VALUE_TYPE, VR::CS, value_type),
        concept_name(name),
        value,
    ])
}

/// A CONTAINER item of `children`.
fn container(relationship: Relationship, name: Code, children: Vec<Object>) -> Object {
    object([
        element(tags::RELATIONSHIP_TYPE, VR::CS, relationship.as_str()),
        element(tags::VALUE_TYPE, VR::CS, "CONTAINER"),
        concept_name(name),
        element(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"),
        sequence(tags::CONTENT_SEQUENCE, children),
    ])
}

/// A probability as a Decimal String: at most 16 characters, so 8 decimals (enough for an f32 in [0, 1]); the
/// Floating Point Value beside it holds the exact number.
fn decimal_string(p: f32) -> String {
    format!("{:.8}", f64::from(p)).trim_end_matches('0').trim_end_matches('.').to_string()
}
