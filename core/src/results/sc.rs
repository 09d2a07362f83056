//! The Secondary Capture of one model's result on one image: its class activation overlays of the top findings
//! (the most probable first, left to right, separated by a black band), drawn by [`crate::cam::Film`] exactly as
//! `/predict?overlay=png` draws them, as one RGB frame. The picture carries no text: the findings and their order
//! are in Derivation Description, and Burned In Annotation is YES because the colours are part of the pixels.

use dicom_core::{PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use image::RgbImage;

use super::source::SourceInstance;
use super::{
    ModelResult, ResultObject, ResultsError, SC_STORAGE, common, element, object, result_uids, sequence, write,
};
use crate::cam::{Film, GridMapping, OVERLAY_MAX_SIDE};
use crate::image::GrayImage;
use crate::labels::LABELS;

/// Series Number of the overlays (the SRs' series is [`super::sr::SERIES_NUMBER`]).
pub const SERIES_NUMBER: u32 = 9_902;
/// Findings drawn, the most probable first.
pub const TOP_FINDINGS: usize = 3;
/// Width of the black band between two overlays, in pixels.
const GAP: u32 = 4;

/// The class activation maps of one prediction: `[14, grid, grid]`, row-major, in label order.
#[derive(Debug, Clone, Copy)]
pub struct Maps<'a> {
    pub values: &'a [f32],
    pub grid: usize,
}

/// Makes the Secondary Capture of `result` on `source`, whose decoded image is `image` and whose maps are `maps`.
pub fn secondary_capture(
    source: &SourceInstance,
    result: &ModelResult,
    image: &GrayImage,
    maps: Maps,
    now: &chrono::DateTime<chrono::Utc>,
) -> Result<ResultObject, ResultsError> {
    let (g, n) = (maps.grid, LABELS.len());
    if result.probabilities.len() != n || g == 0 || maps.values.len() != n * g * g {
        return Err(ResultsError::Probabilities { got: result.probabilities.len(), expected: n });
    }
    let mut ranked: Vec<usize> = (0..n).collect();
    ranked.sort_by(|a, b| result.probabilities[*b].total_cmp(&result.probabilities[*a]));
    let drawn = &ranked[..TOP_FINDINGS];
    let film = Film::new(image, OVERLAY_MAX_SIDE);
    let mapping = GridMapping::new(image.width(), image.height(), g);
    let overlays: Vec<RgbImage> =
        drawn.iter().map(|&k| film.overlay(&maps.values[k * g * g..(k + 1) * g * g], &mapping)).collect();
    let picture = side_by_side(&overlays);
    let description: Vec<String> =
        drawn.iter().map(|&k| format!("{} {:.3}", LABELS[k], result.probabilities[k])).collect();
    let (series, instance) = result_uids(source, result, "sc");
    let mut elements = common(source, result, (SC_STORAGE, &instance), ("OT", &series, SERIES_NUMBER), now);
    let (width, height) = (picture.width() as u16, picture.height() as u16);
    elements.extend([
        element(tags::CONVERSION_TYPE, VR::CS, "WSD"),
        element(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"),
        element(tags::CONTENT_DATE, VR::DA, now.format("%Y%m%d").to_string()),
        element(tags::CONTENT_TIME, VR::TM, now.format("%H%M%S").to_string()),
        dicom_core::DataElement::new(tags::IMAGE_TYPE, VR::CS, dicom_value!(Strs, ["DERIVED", "SECONDARY"])),
        dicom_core::DataElement::empty(tags::PATIENT_ORIENTATION, VR::CS),
        element(
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            format!(
                "Class activation maps (CAM) of {} {}, left to right: {}",
                result.card.name,
                result.card.version,
                description.join(", ")
            ),
        ),
        sequence(
            tags::SOURCE_IMAGE_SEQUENCE,
            vec![object([
                element(tags::REFERENCED_SOP_CLASS_UID, VR::UI, source.sop_class.as_str()),
                element(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, source.sop_instance.as_str()),
            ])],
        ),
        element(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"),
        element(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        element(tags::SAMPLES_PER_PIXEL, VR::US, 3_u16),
        element(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
        element(tags::PLANAR_CONFIGURATION, VR::US, 0_u16),
        element(tags::ROWS, VR::US, height),
        element(tags::COLUMNS, VR::US, width),
        element(tags::BITS_ALLOCATED, VR::US, 8_u16),
        element(tags::BITS_STORED, VR::US, 8_u16),
        element(tags::HIGH_BIT, VR::US, 7_u16),
        element(tags::PIXEL_REPRESENTATION, VR::US, 0_u16),
        element(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(picture.into_raw())),
    ]);
    write(object(elements), SC_STORAGE, series)
}

/// The overlays in one picture, left to right, with a black band between two.
fn side_by_side(overlays: &[RgbImage]) -> RgbImage {
    let height = overlays.iter().map(RgbImage::height).max().unwrap_or(1);
    let width = overlays.iter().map(RgbImage::width).sum::<u32>() + GAP * (overlays.len().max(1) as u32 - 1);
    let mut out = RgbImage::new(width, height);
    let mut x = 0;
    for overlay in overlays {
        image::imageops::replace(&mut out, overlay, i64::from(x), 0);
        x += overlay.width() + GAP;
    }
    out
}
