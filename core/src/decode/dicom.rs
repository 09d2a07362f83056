//! DICOM Part 10 decoding: header checks, first-frame pixel decoding and the grayscale pipeline.
//!
//! `dicom-object` parses the data set and `dicom-pixeldata` only turns the first frame's (possibly compressed)
//! pixel data into native stored samples (`decode_pixel_data_frame(0)`, which applies no LUT). Every attribute
//! that shapes the image is read here, and the Modality/VOI/presentation chain is [`super::grayscale`].
//!
//! Order of checks, cheapest and most protective first: structural pre-check ([`super::dicom_guard`]), transfer
//! syntax from the file meta group, full parse, pixel module attributes (empty image, pixel budget, supported
//! photometric interpretation and bit layout), the compressed stream's own dimensions, then pixel decoding.

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTable, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{PixelDecoder, PlanarConfiguration};

use super::grayscale::{Lut, Modality, Pipeline, StoredLayout, Voi, VoiFunction};
use super::{
    DecodeError, DecodeLimits, Decoded, ImageFormat, InputInfo, dicom_guard, guard_panics, jpeg_markers, sanitize,
};
use crate::image::GrayImage;

const FORMAT: ImageFormat = ImageFormat::Dicom;

type Object = InMemDicomObject<StandardDataDictionary>;
type Element = InMemElement<StandardDataDictionary>;

/// How a transfer syntax stores pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// Native (uncompressed) samples, whatever the data set encoding.
    Native,
    Rle,
    Jpeg,
    JpegLs,
    Jpeg2000,
}

/// The transfer syntaxes this decoder accepts, with their names (PS3.6 Annex A).
const SUPPORTED: &[(&str, &str, Codec)] = &[
    ("1.2.840.10008.1.2", "Implicit VR Little Endian", Codec::Native),
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian", Codec::Native),
    ("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", Codec::Native),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian", Codec::Native),
    ("1.2.840.10008.1.2.5", "RLE Lossless", Codec::Rle),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", Codec::Jpeg),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", Codec::Jpeg),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", Codec::Jpeg),
    (
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
        Codec::Jpeg,
    ),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless Image Compression", Codec::JpegLs),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless) Image Compression", Codec::JpegLs),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)", Codec::Jpeg2000),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression", Codec::Jpeg2000),
];

/// Names of transfer syntaxes that are refused, for a helpful error message.
const KNOWN_UNSUPPORTED: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian"),
    ("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)"),
    ("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component Image Compression"),
    ("1.2.840.10008.1.2.4.94", "JPIP Referenced"),
    ("1.2.840.10008.1.2.4.95", "JPIP Referenced Deflate"),
    ("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
    ("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level"),
    ("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"),
    ("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1"),
    ("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"),
    ("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"),
    ("1.2.840.10008.1.2.4.112", "JPEG XL"),
    ("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 Image Compression (Lossless Only)"),
    ("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)"),
    ("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000 Image Compression"),
    ("1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression"),
];

/// How the samples of the decoded frame become intensities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColorModel {
    /// MONOCHROME1/2: the grayscale pipeline.
    Gray { invert: bool },
    /// Three samples per pixel holding R, G, B (also after a codec's color conversion): luma.
    Rgb,
    /// Three samples per pixel holding Y, Cb, Cr (full range): Y is the luma.
    YbrFull,
}

pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    dicom_guard::check(bytes, limits.max_decoded_bytes())
        .map_err(|reason| corrupt(format!("malformed DICOM structure: {reason}")))?;

    let meta = FileMetaTable::from_reader(bytes.get(128..).unwrap_or_default())
        .map_err(|_| corrupt("cannot read the DICOM file meta information"))?;
    let uid = sanitize(meta.transfer_syntax(), |c| c.is_ascii_digit() || c == '.', 64);
    let Some(&(_, ts_name, codec)) = SUPPORTED.iter().find(|(u, _, _)| *u == uid) else {
        let name = KNOWN_UNSUPPORTED.iter().find(|(u, _)| *u == uid).map_or("unknown transfer syntax", |(_, n)| *n);
        return Err(DecodeError::UnsupportedTransferSyntax { uid, name: name.to_string() });
    };

    let obj = guard_panics(FORMAT, || {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .from_reader(bytes)
            // The parser's messages are not guaranteed free of element values, so they are not passed on.
            .map_err(|_| corrupt("cannot parse the DICOM data set"))
    })?;

    let attrs = PixelAttributes::read(&obj, codec)?;
    limits.check(attrs.columns, attrs.rows)?;
    let model = attrs.color_model(codec)?;
    let layout = attrs.layout()?;
    check_codestream(&obj, codec, attrs.rows, attrs.columns)?;

    let pixels = attrs.rows as usize * attrs.columns as usize;
    let image = guard_panics(FORMAT, || {
        let frame =
            obj.decode_pixel_data_frame(0).map_err(|e| corrupt(format!("cannot decode pixel data: {}", chain(&e))))?;
        let data = frame.data();
        let samples = pixels * usize::from(attrs.samples_per_pixel);
        if data.len() < samples * layout.bytes_per_sample() {
            return Err(corrupt("decoded pixel data is shorter than Rows × Columns × Samples per Pixel"));
        }
        let planar = frame.planar_configuration() == PlanarConfiguration::PixelFirst;
        Ok(match model {
            ColorModel::Gray { invert } => gray_pipeline(&obj, &layout, invert).render(data, &layout, pixels),
            ColorModel::Rgb => luma(data, &layout, pixels, planar),
            ColorModel::YbrFull => y_channel(data, &layout, pixels, planar),
        })
    })?;
    let image = GrayImage::new(attrs.columns, attrs.rows, image)
        .map_err(|_| corrupt("decoded buffer does not match the image size"))?;

    let info = InputInfo {
        format: FORMAT,
        width: attrs.columns,
        height: attrs.rows,
        bits_stored: Some(layout.bits_stored),
        photometric: Some(attrs.photometric.clone()),
        frames: Some(attrs.frames),
        transfer_syntax: Some(ts_name.to_string()),
    };
    Ok(Decoded { image, info })
}

/// The whole data set of a DICOM Part 10 file, after the same structural checks as [`decode`] and with a parser
/// panic turned into [`DecodeError::Corrupt`]: what `crate::results` refers to and copies from. Pixel data is not
/// decoded.
pub(crate) fn parse(bytes: &[u8], limits: &DecodeLimits) -> Result<dicom_object::DefaultDicomObject, DecodeError> {
    dicom_guard::check(bytes, limits.max_decoded_bytes())
        .map_err(|reason| corrupt(format!("malformed DICOM structure: {reason}")))?;
    guard_panics(FORMAT, || {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .from_reader(bytes)
            .map_err(|_| corrupt("cannot parse the DICOM data set"))
    })
}

fn corrupt(reason: impl Into<String>) -> DecodeError {
    DecodeError::corrupt(FORMAT, reason)
}

/// An error and its sources, joined by `: `. Used only for codec errors, which carry no header values.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The Image Pixel module attributes (PS3.3 C.7.6.3) that shape the decoded frame.
#[derive(Debug, Clone)]
struct PixelAttributes {
    rows: u32,
    columns: u32,
    samples_per_pixel: u16,
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
    signed: bool,
    /// Sanitised Photometric Interpretation, as stored.
    photometric: String,
    frames: u32,
    codec: Codec,
}

impl PixelAttributes {
    fn read(obj: &Object, codec: Codec) -> Result<Self, DecodeError> {
        if obj.get(tags::PIXEL_DATA).is_none() {
            let reason =
                if obj.get(tags::FLOAT_PIXEL_DATA).is_some() || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some() {
                    "floating-point pixel data"
                } else {
                    "the DICOM object has no Pixel Data (not an image)"
                };
            return Err(DecodeError::UnsupportedPixelData(reason.into()));
        }
        // Rows and Columns are US (at most 65535); reading them as u16 keeps every later product in range.
        let rows = u32::from(required_u16(obj, tags::ROWS, "Rows")?);
        let columns = u32::from(required_u16(obj, tags::COLUMNS, "Columns")?);
        let samples_per_pixel = optional_u16(obj, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?.unwrap_or(1);
        let bits_allocated = required_u16(obj, tags::BITS_ALLOCATED, "Bits Allocated")?;
        let bits_stored = optional_u16(obj, tags::BITS_STORED, "Bits Stored")?.unwrap_or(bits_allocated);
        let high_bit = optional_u16(obj, tags::HIGH_BIT, "High Bit")?.unwrap_or(bits_stored.saturating_sub(1));
        let pixel_representation = optional_u16(obj, tags::PIXEL_REPRESENTATION, "Pixel Representation")?.unwrap_or(0);
        let frames: u32 = match optional_int(obj, tags::NUMBER_OF_FRAMES, "Number of Frames")? {
            None => 1,
            Some(n) => u32::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| corrupt("invalid Number of Frames"))?,
        };
        let photometric = match obj.get(tags::PHOTOMETRIC_INTERPRETATION).and_then(|e| e.to_str().ok()) {
            Some(pi) => sanitize(&pi, |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == ' ', 16),
            // Absent in some old files: assume the common meaning of the sample count.
            None if samples_per_pixel == 3 => "RGB".to_string(),
            None => "MONOCHROME2".to_string(),
        };
        Ok(PixelAttributes {
            rows,
            columns,
            samples_per_pixel,
            bits_allocated,
            bits_stored,
            high_bit,
            signed: pixel_representation == 1,
            photometric,
            frames,
            codec,
        })
    }

    /// Decides how samples become intensities, refusing color models without a gray rendering here.
    fn color_model(&self, codec: Codec) -> Result<ColorModel, DecodeError> {
        // Lossy and lossless JPEG-family codecs hand back RGB for every three-sample color model they carry.
        let converted_by_codec = matches!(codec, Codec::Jpeg | Codec::JpegLs | Codec::Jpeg2000);
        let model = match (self.photometric.as_str(), self.samples_per_pixel) {
            ("MONOCHROME1", 1) => ColorModel::Gray { invert: true },
            ("MONOCHROME2", 1) => ColorModel::Gray { invert: false },
            ("RGB", 3) => ColorModel::Rgb,
            ("YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT", 3) if converted_by_codec => ColorModel::Rgb,
            ("YBR_FULL", 3) => ColorModel::YbrFull,
            (pi @ ("MONOCHROME1" | "MONOCHROME2" | "RGB" | "YBR_FULL"), spp) => {
                return Err(DecodeError::UnsupportedPixelData(format!(
                    "{spp} samples per pixel with photometric interpretation {pi}"
                )));
            }
            (pi, _) => return Err(DecodeError::UnsupportedPhotometric(pi.to_string())),
        };
        Ok(model)
    }

    /// Validates the bit layout and returns it.
    fn layout(&self) -> Result<StoredLayout, DecodeError> {
        let supported = match self.codec {
            Codec::Native => matches!(self.bits_allocated, 8 | 16 | 32),
            _ => matches!(self.bits_allocated, 8 | 16),
        };
        if !supported {
            return Err(DecodeError::UnsupportedPixelData(format!("Bits Allocated {}", self.bits_allocated)));
        }
        if self.bits_stored == 0 || self.bits_stored > self.bits_allocated {
            return Err(corrupt(format!(
                "Bits Stored {} does not fit Bits Allocated {}",
                self.bits_stored, self.bits_allocated
            )));
        }
        // Codecs return samples right-aligned; natively, a High Bit that cannot hold Bits Stored is an encoder
        // error whose most plausible meaning is the usual right alignment.
        let high_bit = if self.codec == Codec::Native
            && self.high_bit < self.bits_allocated
            && self.high_bit + 1 >= self.bits_stored
        {
            self.high_bit
        } else {
            self.bits_stored - 1
        };
        Ok(StoredLayout {
            bits_allocated: self.bits_allocated,
            bits_stored: self.bits_stored,
            high_bit,
            signed: self.signed,
        })
    }
}

/// Reads the first value of an integer attribute; `None` when absent or empty.
fn optional_int(obj: &Object, tag: Tag, name: &str) -> Result<Option<i64>, DecodeError> {
    match obj.get(tag) {
        None => Ok(None),
        Some(e) if e.is_empty_value() => Ok(None),
        Some(e) => e.to_int::<i64>().map(Some).map_err(|_| corrupt(format!("invalid {name}"))),
    }
}

/// Reads an integer attribute that must fit `T`.
fn int_as<T: TryFrom<i64>>(value: i64, name: &str) -> Result<T, DecodeError> {
    T::try_from(value).map_err(|_| corrupt(format!("{name} out of range")))
}

fn required_u16(obj: &Object, tag: Tag, name: &str) -> Result<u16, DecodeError> {
    int_as(optional_int(obj, tag, name)?.ok_or_else(|| corrupt(format!("missing {name}")))?, name)
}

fn optional_u16(obj: &Object, tag: Tag, name: &str) -> Result<Option<u16>, DecodeError> {
    optional_int(obj, tag, name)?.map(|v| int_as(v, name)).transpose()
}

/// Small helpers over element values.
trait ElementExt {
    fn is_empty_value(&self) -> bool;
}

impl ElementExt for Element {
    fn is_empty_value(&self) -> bool {
        matches!(self.value(), Value::Primitive(PrimitiveValue::Empty))
    }
}

/// Finds an attribute at the root, else in the first per-frame functional group item, else in the shared
/// functional groups (enhanced multi-frame objects keep pixel value transformations there).
fn find_in_groups(obj: &Object, group_sequence: Tag, tag: Tag) -> Option<&Element> {
    if let Some(e) = obj.get(tag) {
        return Some(e);
    }
    [tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE]
        .into_iter()
        .find_map(|fg| obj.get(fg)?.items()?.first()?.get(group_sequence)?.items()?.first()?.get(tag))
}

/// The first finite value of a numeric attribute.
fn first_float(e: &Element) -> Option<f64> {
    e.to_multi_float64().ok()?.into_iter().next().filter(|v| v.is_finite())
}

/// Builds the grayscale pipeline of the frame from its Modality LUT and VOI LUT attributes.
fn gray_pipeline(obj: &Object, layout: &StoredLayout, invert: bool) -> Pipeline {
    let modality = modality_stage(obj, layout);
    // A LUT Descriptor's first mapped value may be written as US even when it is negative.
    let (lo, hi) = layout.code_range();
    let negative_inputs = match &modality {
        Modality::Rescale { slope, intercept } => {
            (lo as f64 * slope + intercept).min(hi as f64 * slope + intercept) < 0.0
        }
        Modality::Lut(_) => false,
    };
    let voi = voi_stage(obj, negative_inputs);
    Pipeline { modality, voi, invert }
}

fn modality_stage(obj: &Object, layout: &StoredLayout) -> Modality {
    let pvt = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
    let slope = find_in_groups(obj, pvt, tags::RESCALE_SLOPE).and_then(first_float);
    let intercept = find_in_groups(obj, pvt, tags::RESCALE_INTERCEPT).and_then(first_float);
    if slope.is_some() || intercept.is_some() {
        return Modality::Rescale { slope: slope.unwrap_or(1.0), intercept: intercept.unwrap_or(0.0) };
    }
    obj.get(tags::MODALITY_LUT_SEQUENCE)
        .and_then(|e| e.items()?.first())
        .and_then(|item| parse_lut(item, layout.signed))
        .map_or(Modality::IDENTITY, Modality::Lut)
}

fn voi_stage(obj: &Object, negative_inputs: bool) -> Voi {
    let fvs = tags::FRAME_VOILUT_SEQUENCE;
    let center = find_in_groups(obj, fvs, tags::WINDOW_CENTER).and_then(first_float);
    let width = find_in_groups(obj, fvs, tags::WINDOW_WIDTH).and_then(first_float);
    if let (Some(center), Some(width)) = (center, width) {
        let function = find_in_groups(obj, fvs, tags::VOILUT_FUNCTION)
            .and_then(|e| e.to_multi_str().ok().and_then(|v| v.first().map(|s| s.trim().to_ascii_uppercase())));
        let function = match function.as_deref() {
            Some("LINEAR_EXACT") => VoiFunction::LinearExact,
            Some("SIGMOID") => VoiFunction::Sigmoid,
            _ => VoiFunction::Linear,
        };
        let valid = match function {
            VoiFunction::Linear => width >= 1.0,
            VoiFunction::LinearExact | VoiFunction::Sigmoid => width > 0.0,
        };
        if valid {
            return Voi::Window { center, width, function };
        }
    }
    find_in_groups(obj, fvs, tags::VOILUT_SEQUENCE)
        .and_then(|e| e.items()?.first())
        .and_then(|item| parse_lut(item, negative_inputs))
        .map_or(Voi::MinMax, Voi::Lut)
}

/// Parses a LUT item (LUT Descriptor + LUT Data); `None` when it is unusable, so the caller falls back.
fn parse_lut(item: &Object, signed_inputs: bool) -> Option<Lut> {
    let descriptor = item.get(tags::LUT_DESCRIPTOR)?;
    let values: Vec<i64> = descriptor.to_multi_int::<i64>().ok()?;
    let &[entries, first, bits] = values.as_slice() else {
        return None;
    };
    // PS3.3 C.11.1.1: 0 entries means 2^16.
    let entries = if entries == 0 { 65_536 } else { usize::try_from(entries).ok()? };
    let first = if signed_inputs && descriptor.vr() == VR::US && first > 32_767 { first - 65_536 } else { first };
    let bits = u16::try_from(bits).ok()?;

    let data = item.get(tags::LUT_DATA)?;
    let mut words: Vec<u16> = match data.value() {
        // Read as bytes (OB/UN): 16-bit little-endian words.
        Value::Primitive(PrimitiveValue::U8(b)) => {
            b.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect()
        }
        Value::Primitive(PrimitiveValue::I16(v)) => v.iter().map(|&x| x as u16).collect(),
        _ => data.to_multi_int::<u16>().ok()?,
    };
    if bits <= 8 && words.len() * 2 >= entries && words.len() < entries {
        // Retired packing: two 8-bit entries per 16-bit word, low byte first.
        words = words.iter().flat_map(|w| w.to_le_bytes()).map(u16::from).take(entries).collect();
    }
    if words.len() != entries {
        return None;
    }
    Lut::new(first, bits, words)
}

/// Luma of three-sample RGB data, scaled by the stored maximum.
fn luma(data: &[u8], layout: &StoredLayout, pixels: usize, planar: bool) -> Vec<f32> {
    let unsigned = StoredLayout { signed: false, ..*layout };
    let max = ((1u64 << layout.bits_stored) - 1) as f32;
    (0..pixels)
        .map(|i| {
            let [r, g, b] = rgb_indices(i, pixels, planar).map(|k| unsigned.stored(data, k) as f32);
            ((super::LUMA[0] * r + super::LUMA[1] * g + super::LUMA[2] * b) / max).clamp(0.0, 1.0)
        })
        .collect()
}

/// The Y samples of three-sample YBR_FULL data, scaled by the stored maximum.
fn y_channel(data: &[u8], layout: &StoredLayout, pixels: usize, planar: bool) -> Vec<f32> {
    let unsigned = StoredLayout { signed: false, ..*layout };
    let max = ((1u64 << layout.bits_stored) - 1) as f32;
    (0..pixels)
        .map(|i| (unsigned.stored(data, rgb_indices(i, pixels, planar)[0]) as f32 / max).clamp(0.0, 1.0))
        .collect()
}

/// Sample indices of pixel `i`'s three components, interleaved (R G B R G B …) or planar (R… G… B…).
fn rgb_indices(i: usize, pixels: usize, planar: bool) -> [usize; 3] {
    if planar { [i, pixels + i, 2 * pixels + i] } else { [3 * i, 3 * i + 1, 3 * i + 2] }
}

/// Checks that the first compressed fragment's own dimensions agree with Rows/Columns before a codec sizes
/// buffers from either (some codecs write the stream's size into a buffer sized from the header).
fn check_codestream(obj: &Object, codec: Codec, rows: u32, columns: u32) -> Result<(), DecodeError> {
    if codec == Codec::Native {
        return Ok(());
    }
    let Some(first) = obj.get(tags::PIXEL_DATA).and_then(|e| e.fragments()).and_then(|f| f.first().cloned()) else {
        return Err(corrupt("compressed transfer syntax without encapsulated pixel data fragments"));
    };
    let dims = match codec {
        Codec::Jpeg | Codec::JpegLs => jpeg_markers::sof_dimensions(&first),
        Codec::Jpeg2000 => j2k_dimensions(&first),
        Codec::Native | Codec::Rle => None,
    };
    match dims {
        Some((w, h)) if w != columns || (h != 0 && h != rows) => {
            Err(corrupt(format!("compressed stream is {w}x{h} but Rows/Columns say {columns}x{rows}")))
        }
        _ => Ok(()),
    }
}

/// Width and height from the SIZ marker of a raw JPEG 2000 codestream; `None` for JP2-wrapped data.
fn j2k_dimensions(s: &[u8]) -> Option<(u32, u32)> {
    if s.get(0..4)? != [0xFF, 0x4F, 0xFF, 0x51] {
        return None;
    }
    let be32 = |i: usize| -> Option<u32> { Some(u32::from_be_bytes(s.get(i..i + 4)?.try_into().ok()?)) };
    let (x, y, x0, y0) = (be32(8)?, be32(12)?, be32(16)?, be32(20)?);
    Some((x.checked_sub(x0)?, y.checked_sub(y0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j2k_siz_is_found() {
        let mut s = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for v in [1024u32, 768, 0, 0] {
            s.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(j2k_dimensions(&s), Some((1024, 768)));
        assert_eq!(j2k_dimensions(&s[..10]), None);
    }
}
