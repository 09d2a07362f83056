//! The source instance of a result: what the SR and the Secondary Capture refer to and copy from it (the Patient
//! and General Study modules, the study and series it lies in), and whether it is an image this service processes
//! at all. The copied elements are kept as they are in the file and never logged.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;

use super::{MANUFACTURER, ResultsError, SC_STORAGE, SR_STORAGE};
use crate::decode::{DecodeLimits, parse_dicom};

/// Patient and General Study module attributes copied into every result (PS3.3 C.7.1.1, C.7.2.1). The parser
/// has decoded their text with the source's character set; the results write it as UTF-8 (`ISO_IR 192`).
const COPIED: &[Tag] = &[
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::STUDY_DESCRIPTION,
];

/// Type 2 attributes of the copied modules: present in every result, empty when the source lacks them.
pub(super) const TYPE_2: &[Tag] = &[
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
];

/// What a result needs of its source instance.
#[derive(Debug, Clone)]
pub struct SourceInstance {
    pub sop_class: String,
    pub sop_instance: String,
    pub study_instance: String,
    pub series_instance: String,
    /// The copied Patient and General Study elements present in the source.
    pub(super) copied: Vec<InMemElement>,
    /// Procedure Code Sequence (0008,1032), the procedure the SR reports on, when the source has one.
    pub(super) procedure: Option<InMemElement>,
    /// Whether the source is one of this service's own results (its SR or Secondary Capture sent back).
    pub own_result: bool,
    /// Whether it holds Pixel Data (7FE0,0010): an image, rather than a report or another non-image object.
    pub has_pixels: bool,
}

impl SourceInstance {
    /// Reads the source's header (no pixel decoding) with the decoder's structural checks.
    pub fn read(bytes: &[u8], limits: &DecodeLimits) -> Result<SourceInstance, ResultsError> {
        let obj = parse_dicom(bytes, limits)?;
        let text = |tag: Tag| -> Option<String> {
            let value = obj.element(tag).ok()?.to_str().ok()?;
            let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            (!value.is_empty()).then(|| value.to_string())
        };
        let uid = |tag: Tag, name: &'static str| text(tag).ok_or(ResultsError::MissingUid(name));
        let sop_class = uid(tags::SOP_CLASS_UID, "SOP Class UID")?;
        let manufacturer = text(tags::MANUFACTURER);
        let own_result =
            (sop_class == SR_STORAGE || sop_class == SC_STORAGE) && manufacturer.as_deref() == Some(MANUFACTURER);
        Ok(SourceInstance {
            sop_instance: uid(tags::SOP_INSTANCE_UID, "SOP Instance UID")?,
            study_instance: uid(tags::STUDY_INSTANCE_UID, "Study Instance UID")?,
            series_instance: uid(tags::SERIES_INSTANCE_UID, "Series Instance UID")?,
            copied: COPIED.iter().filter_map(|&tag| obj.element(tag).ok().cloned()).collect(),
            procedure: obj.element(tags::PROCEDURE_CODE_SEQUENCE).ok().cloned(),
            own_result,
            has_pixels: obj.element(tags::PIXEL_DATA).is_ok(),
            sop_class,
        })
    }
}
