//! DICOM decoding on small synthetic files written with `dicom-object`: the layouts the real test data does
//! not cover (color models, planar data, multi-frame, shifted and 32-bit samples, 16-bit big endian) and the
//! refusals (palette color, float pixel data, missing pixel data, short pixel data). Also checks that header
//! values such as the patient name never reach the decoder's output or errors.

use cxr_core::decode::{DecodeError, DecodeLimits, ImageFormat, decode};
use dicom_core::smallvec::SmallVec;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const EXPLICIT_LE: &str = uids::EXPLICIT_VR_LITTLE_ENDIAN;
const IMPLICIT_LE: &str = uids::IMPLICIT_VR_LITTLE_ENDIAN;
/// Explicit VR Big Endian (retired, hence no non-deprecated constant).
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";

fn us(tag: Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

fn text(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn ow(values: &[u16]) -> DataElement<InMemDicomObject> {
    DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(SmallVec::from_vec(values.to_vec())))
}

fn ob(values: &[u8]) -> DataElement<InMemDicomObject> {
    DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(SmallVec::from_vec(values.to_vec())))
}

/// The Image Pixel module for a `rows × columns` image.
fn pixel_module(
    rows: u16,
    columns: u16,
    spp: u16,
    pi: &str,
    bits: (u16, u16, u16),
    signed: bool,
) -> Vec<DataElement<InMemDicomObject>> {
    let (allocated, stored, high) = bits;
    vec![
        text(tags::SOP_CLASS_UID, VR::UI, uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION),
        text(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1234567890"),
        text(tags::PATIENT_NAME, VR::PN, "SECRET^PATIENT"),
        text(tags::PATIENT_ID, VR::LO, "MRN-998877"),
        us(tags::SAMPLES_PER_PIXEL, spp),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, pi),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, columns),
        us(tags::BITS_ALLOCATED, allocated),
        us(tags::BITS_STORED, stored),
        us(tags::HIGH_BIT, high),
        us(tags::PIXEL_REPRESENTATION, u16::from(signed)),
    ]
}

fn write(ts: &str, elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter(elements)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
        .expect("meta table");
    let mut out = Vec::new();
    obj.write_all(&mut out).expect("in-memory write");
    out
}

fn decode_ok(bytes: &[u8]) -> cxr_core::decode::Decoded {
    decode(bytes, &DecodeLimits::default()).unwrap_or_else(|e| panic!("{e} ({})", e.kind()))
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn rgb_becomes_luma_interleaved_and_planar() {
    let pixels = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]];
    let expected: Vec<f32> =
        pixels.iter().map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0).collect();

    let mut interleaved = pixel_module(2, 2, 3, "RGB", (8, 8, 7), false);
    interleaved.push(us(tags::PLANAR_CONFIGURATION, 0));
    interleaved.push(ob(&pixels.concat()));
    let d = decode_ok(&write(EXPLICIT_LE, interleaved));
    assert!(close(d.image.data(), &expected), "{:?}", d.image.data());
    assert_eq!(d.info.photometric.as_deref(), Some("RGB"));

    let planar_bytes: Vec<u8> = (0..3).flat_map(|c| pixels.iter().map(move |p| p[c])).collect();
    let mut planar = pixel_module(2, 2, 3, "RGB", (8, 8, 7), false);
    planar.push(us(tags::PLANAR_CONFIGURATION, 1));
    planar.push(ob(&planar_bytes));
    let d = decode_ok(&write(EXPLICIT_LE, planar));
    assert!(close(d.image.data(), &expected), "{:?}", d.image.data());
}

#[test]
fn ybr_full_keeps_the_y_plane() {
    let mut e = pixel_module(1, 2, 3, "YBR_FULL", (8, 8, 7), false);
    e.push(us(tags::PLANAR_CONFIGURATION, 0));
    e.push(ob(&[51, 128, 128, 204, 10, 250]));
    let d = decode_ok(&write(EXPLICIT_LE, e));
    assert!(close(d.image.data(), &[0.2, 0.8]), "{:?}", d.image.data());
}

#[test]
fn palette_color_is_refused() {
    let mut e = pixel_module(1, 2, 1, "PALETTE COLOR", (8, 8, 7), false);
    e.push(ob(&[0, 1]));
    let err = decode(&write(EXPLICIT_LE, e), &DecodeLimits::default()).expect_err("palette");
    assert_eq!(err, DecodeError::UnsupportedPhotometric("PALETTE COLOR".into()));
    assert_eq!(err.kind(), "unsupported-photometric");
}

#[test]
fn multi_frame_decodes_the_first_frame() {
    let mut e = pixel_module(1, 3, 1, "MONOCHROME2", (16, 16, 15), false);
    e.push(text(tags::NUMBER_OF_FRAMES, VR::IS, "3"));
    e.push(ow(&[0, 500, 1000, 7, 7, 7, 9, 9, 9]));
    let d = decode_ok(&write(EXPLICIT_LE, e));
    assert_eq!(d.info.frames, Some(3));
    assert_eq!(d.image.data(), &[0.0, 0.5, 1.0]);
}

#[test]
fn signed_shifted_and_rescaled_samples() {
    // 12 bits stored, signed, high bit 11: raw 0xF800 is −2048, 0x07FF is 2047; the top nibble is noise.
    let mut e = pixel_module(1, 3, 1, "MONOCHROME2", (16, 12, 11), true);
    e.push(text(tags::RESCALE_SLOPE, VR::DS, "2"));
    e.push(text(tags::RESCALE_INTERCEPT, VR::DS, "-10"));
    e.push(ow(&[0xF800, 0xA000, 0x07FF]));
    let d = decode_ok(&write(EXPLICIT_LE, e));
    // Modality values −4106, −10, 4084: min..max maps them to 0, 4096/8190, 1.
    assert!(close(d.image.data(), &[0.0, 4096.0 / 8190.0, 1.0]), "{:?}", d.image.data());

    // High bit 15 with 12 bits stored: the value sits in the top 12 bits.
    let mut e = pixel_module(1, 2, 1, "MONOCHROME2", (16, 12, 15), false);
    e.push(ow(&[0x0010, 0xFFF0]));
    let d = decode_ok(&write(EXPLICIT_LE, e));
    assert_eq!(d.image.data(), &[0.0, 1.0]);
}

#[test]
fn window_functions() {
    let pixels = [0u16, 100, 200];
    for (function, expected) in [
        (None, [0.0, 0.5 / 199.0 + 0.5, 1.0]),
        (Some("LINEAR_EXACT"), [0.0, 0.5, 1.0]),
        (Some("SIGMOID"), [1.0 / (1.0 + 2f32.exp()), 0.5, 1.0 / (1.0 + (-2f32).exp())]),
    ] {
        let mut e = pixel_module(1, 3, 1, "MONOCHROME2", (16, 16, 15), false);
        e.push(text(tags::WINDOW_CENTER, VR::DS, "100\\40"));
        e.push(text(tags::WINDOW_WIDTH, VR::DS, "200\\80"));
        if let Some(f) = function {
            e.push(text(tags::VOILUT_FUNCTION, VR::CS, f));
        }
        e.push(ow(&pixels));
        let d = decode_ok(&write(EXPLICIT_LE, e));
        assert!(close(d.image.data(), &expected), "{function:?}: {:?} vs {expected:?}", d.image.data());
    }
}

#[test]
fn sixteen_bit_data_reads_the_same_in_every_native_encoding() {
    let pixels: Vec<u16> = (0..64).map(|i| (i * 1021 % 4096) as u16).collect();
    let build = || {
        let mut e = pixel_module(8, 8, 1, "MONOCHROME2", (16, 12, 11), false);
        e.push(ow(&pixels));
        e
    };
    let le = decode_ok(&write(EXPLICIT_LE, build()));
    let lo = pixels.iter().copied().min().map_or(0.0, f32::from);
    let hi = pixels.iter().copied().max().map_or(1.0, f32::from);
    let expected: Vec<f32> = pixels.iter().map(|&v| (f32::from(v) - lo) / (hi - lo)).collect();
    assert!(close(le.image.data(), &expected));
    for ts in [IMPLICIT_LE, EXPLICIT_BE] {
        let other = decode_ok(&write(ts, build()));
        assert_eq!(other.image.data(), le.image.data(), "{ts}");
    }
}

#[test]
fn thirty_two_bit_samples() {
    let mut e = pixel_module(1, 3, 1, "MONOCHROME2", (32, 32, 31), false);
    let bytes: Vec<u8> = [0u32, 3_000_000_000, 4_000_000_000].iter().flat_map(|v| v.to_le_bytes()).collect();
    e.push(ob(&bytes));
    let d = decode_ok(&write(EXPLICIT_LE, e));
    assert!(close(d.image.data(), &[0.0, 0.75, 1.0]), "{:?}", d.image.data());
}

#[test]
fn refusals_without_pixels() {
    let e = pixel_module(2, 2, 1, "MONOCHROME2", (16, 16, 15), false);
    let err = decode(&write(EXPLICIT_LE, e), &DecodeLimits::default()).expect_err("no pixel data");
    assert_eq!(err.kind(), "unsupported-pixel-data");

    let mut e = pixel_module(1, 2, 1, "MONOCHROME2", (32, 32, 31), false);
    e.push(DataElement::new(tags::FLOAT_PIXEL_DATA, VR::OF, PrimitiveValue::F32(SmallVec::from_vec(vec![0.5, 1.0]))));
    let err = decode(&write(EXPLICIT_LE, e), &DecodeLimits::default()).expect_err("float pixel data");
    assert_eq!(err, DecodeError::UnsupportedPixelData("floating-point pixel data".into()));

    let mut e = pixel_module(0, 4, 1, "MONOCHROME2", (8, 8, 7), false);
    e.push(ob(&[]));
    assert_eq!(decode(&write(EXPLICIT_LE, e), &DecodeLimits::default()).err(), Some(DecodeError::EmptyImage));

    let mut e = pixel_module(4, 4, 1, "MONOCHROME2", (16, 16, 15), false);
    e.push(ow(&[1, 2, 3]));
    let err = decode(&write(EXPLICIT_LE, e), &DecodeLimits::default()).expect_err("short pixel data");
    assert!(matches!(err, DecodeError::Corrupt { format: ImageFormat::Dicom, .. }), "{err:?}");
}

#[test]
fn header_values_never_leak() {
    let mut e = pixel_module(2, 2, 1, "MONOCHROME2", (16, 16, 15), false);
    e.push(ow(&[1, 2, 3, 4]));
    let bytes = write(EXPLICIT_LE, e);
    let d = decode_ok(&bytes);
    let json = serde_json::to_string(&d.info).expect("serialisable");
    let debug = format!("{d:?}");
    for secret in ["SECRET", "PATIENT", "MRN-998877", "2.25.1234567890"] {
        assert!(!json.contains(secret) && !debug.contains(secret), "{secret} leaked: {json} {debug}");
    }

    // Errors from every truncation of the same file carry no header values either.
    for cut in (132..bytes.len()).step_by(7) {
        if let Err(err) = decode(&bytes[..cut], &DecodeLimits::default()) {
            let text = format!("{err} {err:?}");
            for secret in ["SECRET", "PATIENT", "MRN-998877", "2.25.1234567890"] {
                assert!(!text.contains(secret), "{secret} leaked at cut {cut}: {text}");
            }
        }
    }
}
