//! Results as DICOM (IHE AI Results): for one source image and one model, a Comprehensive 3D SR with a TID 1500
//! Measurement Report ([`sr`]) and a Secondary Capture of the class activation overlays ([`sc`]), each in a new
//! series of the source's study, with UIDs derived from (source instance, model, version, kind) ([`uid`]) so a
//! resent image gives the same objects. [`source`] reads what they copy and refer to; [`stow`] writes the STOW-RS
//! answer of an intake; [`codes`] holds every coded concept used.
//!
//! Architecture invariant: the objects carry the source's Patient and Study attributes and nothing from them is
//! logged or returned in errors; errors name what is missing or wrong, never a value.

pub mod codes;
pub mod sc;
pub mod source;
pub mod sr;
pub mod stow;
pub mod uid;

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::card::ModelCard;
use crate::decode::DecodeError;

/// Comprehensive 3D SR Storage.
pub const SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.34";
/// Secondary Capture Image Storage.
pub const SC_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
/// Explicit VR Little Endian, the transfer syntax of every result.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Manufacturer (0008,0070) of every result; with the SOP class, how a result sent back is recognised.
pub const MANUFACTURER: &str = "cxr-gray project";
/// Manufacturer's Model Name (0008,1090) of every result: the service that made it.
pub const MODEL_NAME: &str = "cxr-serve";
/// The UID root of this implementation (Implementation Class UID of the files' meta information).
const IMPLEMENTATION_CLASS_UID: &str = "2.25.223680365361305542125563617040318046397";

/// Why a result could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The source is not a DICOM file that can be parsed (the decoder's finding).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The source lacks a UID every result refers to.
    #[error("the source DICOM object has no {0}")]
    MissingUid(&'static str),
    /// The model's result does not have one probability per finding.
    #[error("{got} probabilities for {expected} findings")]
    Probabilities { got: usize, expected: usize },
    /// dicom-rs could not write the object (a bug here, not the input's fault).
    #[error("cannot write the result object: {0}")]
    Write(String),
}

/// One model's result on one image: what the objects report.
#[derive(Debug, Clone, Copy)]
pub struct ModelResult<'a> {
    pub card: &'a ModelCard,
    /// One per finding, in label order.
    pub probabilities: &'a [f32],
}

/// A result object, written as a DICOM Part 10 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultObject {
    pub sop_class: &'static str,
    pub sop_instance: String,
    pub series_instance: String,
    /// The whole file (preamble, meta information, data set).
    pub bytes: Vec<u8>,
}

type Object = InMemDicomObject;

/// A primitive element.
fn element(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, value.into())
}

/// A sequence element of `items`.
fn sequence(tag: Tag, items: Vec<Object>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// An object of `elements`.
fn object(elements: impl IntoIterator<Item = InMemElement>) -> Object {
    InMemDicomObject::from_element_iter(elements)
}

/// The elements every result shares: the source's Patient and General Study modules (type 2 ones empty when
/// absent), the new series, General and Enhanced General Equipment, the SOP Common module and the Contributing
/// Equipment Sequence naming the algorithm (IHE AIR).
fn common(
    source: &source::SourceInstance,
    result: &ModelResult,
    sop: (&'static str, &str),
    series: (&str, &str, u32),
    now: &chrono::DateTime<chrono::Utc>,
) -> Vec<InMemElement> {
    let (sop_class, sop_instance) = sop;
    let (modality, series_instance, series_number) = series;
    let card = result.card;
    let (date, time) = (now.format("%Y%m%d").to_string(), now.format("%H%M%S").to_string());
    let mut out: Vec<InMemElement> = source.copied.clone();
    for &tag in source::TYPE_2 {
        if !out.iter().any(|e| e.tag() == tag) {
            out.push(DataElement::empty(tag, type_2_vr(tag)));
        }
    }
    out.extend([
        // dicom-rs encodes every text value in the object's character set: UTF-8 holds any copied name.
        element(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        element(tags::SOP_CLASS_UID, VR::UI, sop_class),
        element(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
        element(tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str()),
        element(tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str()),
        element(tags::MODALITY, VR::CS, modality),
        element(tags::SERIES_INSTANCE_UID, VR::UI, series_instance),
        element(tags::SERIES_NUMBER, VR::IS, series_number.to_string()),
        element(tags::SERIES_DESCRIPTION, VR::LO, series_description(card, modality)),
        element(tags::INSTANCE_NUMBER, VR::IS, "1"),
        element(tags::MANUFACTURER, VR::LO, MANUFACTURER),
        element(tags::MANUFACTURER_MODEL_NAME, VR::LO, MODEL_NAME),
        element(tags::DEVICE_SERIAL_NUMBER, VR::LO, card.name.as_str()),
        element(tags::SOFTWARE_VERSIONS, VR::LO, software_version(card)),
        sequence(tags::CONTRIBUTING_EQUIPMENT_SEQUENCE, vec![contributing_equipment(card, now)]),
    ]);
    out
}

/// The VR of a copied type 2 attribute, for its empty element.
fn type_2_vr(tag: Tag) -> VR {
    match tag {
        tags::PATIENT_NAME | tags::REFERRING_PHYSICIAN_NAME => VR::PN,
        tags::PATIENT_BIRTH_DATE | tags::STUDY_DATE => VR::DA,
        tags::STUDY_TIME => VR::TM,
        tags::PATIENT_SEX => VR::CS,
        tags::ACCESSION_NUMBER | tags::STUDY_ID => VR::SH,
        _ => VR::LO,
    }
}

/// What a series of results says about itself: the model, and for an untrained one that it is not for diagnosis.
fn series_description(card: &ModelCard, modality: &str) -> String {
    let what = if modality == "SR" { "findings" } else { "class activation overlay" };
    let text = if card.trained {
        format!("AI {what}: {} {}", card.name, card.version)
    } else {
        format!("UNTRAINED model, not for diagnostic use: AI {what}, {} {}", card.name, card.version)
    };
    // Series Description is a LO: at most 64 characters.
    text.chars().take(64).collect()
}

/// The model's version as Software Versions holds it (a LO, at most 64 characters).
fn software_version(card: &ModelCard) -> String {
    format!("{} {}", card.name, card.version).chars().take(64).collect()
}

/// The Contributing Equipment item of IHE AIR naming the algorithm: purpose, manufacturer, model, version.
fn contributing_equipment(card: &ModelCard, now: &chrono::DateTime<chrono::Utc>) -> Object {
    object([
        sequence(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE, vec![codes::PROCESSING_EQUIPMENT.item()]),
        element(tags::MANUFACTURER, VR::LO, MANUFACTURER),
        element(tags::MANUFACTURER_MODEL_NAME, VR::LO, card.name.as_str()),
        element(tags::SOFTWARE_VERSIONS, VR::LO, software_version(card)),
        element(tags::CONTRIBUTION_DATE_TIME, VR::DT, now.format("%Y%m%d%H%M%S").to_string()),
        element(tags::CONTRIBUTION_DESCRIPTION, VR::ST, "AI classification of 14 chest X-ray findings"),
    ])
}

/// The UIDs of the result of `kind` (`sr`, `sc`) of `result` on `source`: (its series, the instance), derived from
/// the source instance, the model's name and version, and the kind.
pub fn result_uids(source: &source::SourceInstance, result: &ModelResult, kind: &str) -> (String, String) {
    let (name, version) = (&result.card.name, &result.card.version);
    (
        uid::result_uid(&source.sop_instance, name, version, &format!("{kind}-series")),
        uid::result_uid(&source.sop_instance, name, version, kind),
    )
}

/// The device UID of a model version (the Device Observer UID of its SRs).
fn device_uid(card: &ModelCard) -> String {
    uid::result_uid("device", &card.name, &card.version, "device")
}

/// Writes `obj` as a Part 10 file in Explicit VR Little Endian.
fn write(obj: Object, sop_class: &'static str, series_instance: String) -> Result<ResultObject, ResultsError> {
    let sop_instance = obj
        .element(tags::SOP_INSTANCE_UID)
        .ok()
        .and_then(|e| e.to_str().ok().map(|s| s.into_owned()))
        .ok_or(ResultsError::MissingUid("SOP Instance UID"))?;
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name("CXR_SERVE");
    let file = obj.with_meta(meta).map_err(|e| ResultsError::Write(e.to_string()))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| ResultsError::Write(e.to_string()))?;
    Ok(ResultObject { sop_class, sop_instance, series_instance, bytes })
}

#[cfg(test)]
mod tests {
    use dicom_core::value::Value;
    use dicom_object::{DefaultDicomObject, OpenFileOptions};

    use super::source::SourceInstance;
    use super::*;
    use crate::card::ModelVariant;
    use crate::card::tests::{card, trained};
    use crate::decode::{DecodeLimits, decode};
    use crate::image::GrayImage;
    use crate::labels::LABELS;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/dicom/cxr_explicit_le.dcm");

    fn source_bytes() -> Vec<u8> {
        std::fs::read(FIXTURE).unwrap()
    }

    fn parse(bytes: &[u8]) -> DefaultDicomObject {
        OpenFileOptions::new().from_reader(bytes).unwrap()
    }

    fn text(obj: &InMemDicomObject, tag: Tag) -> String {
        obj.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
    }

    fn items(obj: &InMemDicomObject, tag: Tag) -> Vec<InMemDicomObject> {
        match obj.element(tag).unwrap().value() {
            Value::Sequence(seq) => seq.items().to_vec(),
            _ => panic!("{tag} is not a sequence"),
        }
    }

    fn concept(item: &InMemDicomObject) -> String {
        text(&items(item, tags::CONCEPT_NAME_CODE_SEQUENCE)[0], tags::CODE_VALUE)
    }

    fn probabilities() -> Vec<f32> {
        (0..LABELS.len()).map(|k| (k as f32 + 0.5) / LABELS.len() as f32).collect()
    }

    #[test]
    fn the_sr_reports_every_finding_in_the_sources_study() {
        let bytes = source_bytes();
        let source = SourceInstance::read(&bytes, &DecodeLimits::default()).unwrap();
        assert!(source.has_pixels && !source.own_result);
        let card = trained(ModelVariant::Gray);
        let p = probabilities();
        let result = ModelResult { card: &card, probabilities: &p };
        let now = chrono::Utc::now();
        let sr = sr::structured_report(&source, &result, &now).unwrap();
        assert_eq!(
            sr,
            ResultObject { bytes: sr.bytes.clone(), ..sr::structured_report(&source, &result, &now).unwrap() }
        );
        let obj = parse(&sr.bytes);
        assert_eq!(text(&obj, tags::SOP_CLASS_UID), SR_STORAGE);
        assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), sr.sop_instance);
        assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), source.study_instance);
        assert_ne!(text(&obj, tags::SERIES_INSTANCE_UID), source.series_instance);
        assert_eq!(text(&obj, tags::MODALITY), "SR");
        // One threshold of the trained card is missing: 13 evaluations, so the report is PARTIAL.
        assert_eq!(text(&obj, tags::COMPLETION_FLAG), "PARTIAL");
        assert_eq!(text(&obj, tags::VERIFICATION_FLAG), "UNVERIFIED");
        let evidence = items(&obj, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE);
        let series = items(&evidence[0], tags::REFERENCED_SERIES_SEQUENCE);
        let referenced = items(&series[0], tags::REFERENCED_SOP_SEQUENCE);
        assert_eq!(text(&referenced[0], tags::REFERENCED_SOP_INSTANCE_UID), source.sop_instance);
        assert_eq!(concept(&obj), "126000");
        let root = items(&obj, tags::CONTENT_SEQUENCE);
        let measurements = root.iter().find(|item| concept(item) == "126010").unwrap();
        let groups = items(measurements, tags::CONTENT_SEQUENCE);
        assert_eq!(groups.len(), LABELS.len());
        let mut evaluations = 0;
        for (k, group) in groups.iter().enumerate() {
            let children = items(group, tags::CONTENT_SEQUENCE);
            let finding = children.iter().find(|c| concept(c) == "121071").unwrap();
            assert_eq!(
                text(&items(finding, tags::CONCEPT_CODE_SEQUENCE)[0], tags::CODE_VALUE),
                codes::finding(k).value
            );
            let num = children.iter().find(|c| concept(c) == "122157").unwrap();
            let measured = &items(num, tags::MEASURED_VALUE_SEQUENCE)[0];
            let value: f64 = text(measured, tags::NUMERIC_VALUE).parse().unwrap();
            assert!((value - f64::from(p[k])).abs() < 1e-7, "{k}: {value} vs {}", p[k]);
            evaluations += children.iter().filter(|c| concept(c) == codes::finding(k).value).count();
        }
        assert_eq!(evaluations, LABELS.len() - 1);
        // The service recognises its own result sent back, and it has no pixels.
        let back = SourceInstance::read(&sr.bytes, &DecodeLimits::default()).unwrap();
        assert!(back.own_result && !back.has_pixels);
    }

    #[test]
    fn uids_depend_on_the_source_the_model_and_its_version_only() {
        let bytes = source_bytes();
        let source = SourceInstance::read(&bytes, &DecodeLimits::default()).unwrap();
        let (gray, color) = (card(ModelVariant::Gray), card(ModelVariant::Color));
        let p = probabilities();
        let a = result_uids(&source, &ModelResult { card: &gray, probabilities: &p }, "sr");
        let b = result_uids(&source, &ModelResult { card: &gray, probabilities: &[0.5; 14] }, "sr");
        let c = result_uids(&source, &ModelResult { card: &color, probabilities: &p }, "sr");
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
        assert_ne!(a.1, c.1);
        let untrained = ModelResult { card: &gray, probabilities: &p };
        let sr = sr::structured_report(&source, &untrained, &chrono::Utc::now()).unwrap();
        let obj = parse(&sr.bytes);
        assert!(text(&obj, tags::SERIES_DESCRIPTION).contains("not for diagnostic use"));
        assert_eq!(text(&obj, tags::COMPLETION_FLAG), "PARTIAL");
    }

    #[test]
    fn the_secondary_capture_is_an_rgb_overlay_derived_from_the_source() {
        let bytes = source_bytes();
        let source = SourceInstance::read(&bytes, &DecodeLimits::default()).unwrap();
        let image: GrayImage = decode(&bytes, &DecodeLimits::default()).unwrap().image;
        let card = card(ModelVariant::Color);
        let p = probabilities();
        let g = 8;
        let values: Vec<f32> = (0..LABELS.len() * g * g).map(|i| (i % 7) as f32).collect();
        let result = ModelResult { card: &card, probabilities: &p };
        let sc =
            sc::secondary_capture(&source, &result, &image, sc::Maps { values: &values, grid: g }, &chrono::Utc::now())
                .unwrap();
        let obj = parse(&sc.bytes);
        assert_eq!(text(&obj, tags::SOP_CLASS_UID), SC_STORAGE);
        assert_eq!(text(&obj, tags::PHOTOMETRIC_INTERPRETATION), "RGB");
        assert_eq!(text(&obj, tags::BURNED_IN_ANNOTATION), "YES");
        assert_eq!(text(&obj, tags::IMAGE_TYPE), "DERIVED\\SECONDARY");
        let rows: u32 = text(&obj, tags::ROWS).parse().unwrap();
        let columns: u32 = text(&obj, tags::COLUMNS).parse().unwrap();
        assert_eq!(obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().len() as u32, rows * columns * 3);
        let derived = &items(&obj, tags::SOURCE_IMAGE_SEQUENCE)[0];
        assert_eq!(text(derived, tags::REFERENCED_SOP_INSTANCE_UID), source.sop_instance);
        // The most probable finding is drawn first.
        assert!(text(&obj, tags::DERIVATION_DESCRIPTION).contains(&format!("left to right: {}", LABELS[13])));
        let back = SourceInstance::read(&sc.bytes, &DecodeLimits::default()).unwrap();
        assert!(back.own_result && back.has_pixels);
    }

    #[test]
    fn a_file_that_is_not_dicom_is_a_decode_error() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/images/nih_00000001_000.png"));
        let bytes = bytes.unwrap();
        assert!(matches!(SourceInstance::read(&bytes, &DecodeLimits::default()), Err(ResultsError::Decode(_))));
    }
}
