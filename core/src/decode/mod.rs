//! Bytes of an uploaded image → [`GrayImage`] in [0, 1] plus technical facts about the input.
//!
//! # Formats
//! The format is decided by [`sniff`] from magic bytes only; a declared Content-Type or file name is never
//! trusted. Accepted are DICOM Part 10 files (`DICM` at offset 128), PNG and JPEG (JFIF/Exif/raw `FF D8 FF`).
//!
//! # Intensities
//! - PNG/JPEG: 8-bit gray ÷ 255, 16-bit gray ÷ 65535; RGB(A) and palette images become luma
//!   `Y = 0.299 R + 0.587 G + 0.114 B`, computed in `f32` from the original-precision samples and then divided by
//!   the sample maximum; alpha is ignored (gray+alpha keeps the gray).
//! - DICOM: the PS3.3 C.11 grayscale pipeline on the first frame: stored values (masked to Bits Stored, sign
//!   extended when Pixel Representation is 1) → Modality LUT (Rescale Slope/Intercept, or the Modality LUT
//!   Sequence) → VOI (the first Window Center/Width with the VOI LUT Function, LINEAR by default, as in C.11.2.1.2;
//!   else the first item of the VOI LUT Sequence; else the min..max of the modality values) → MONOCHROME1 inverted.
//!   RGB data becomes luma as above, divided by `2^BitsStored − 1`; so does YBR data inside JPEG, JPEG-LS and
//!   JPEG 2000 streams, which those codecs return as RGB. Native or RLE YBR_FULL keeps its Y plane. PALETTE
//!   COLOR, native YBR_FULL_422/YBR_PARTIAL_* and the other color models are refused.
//!
//! # Safety against hostile input
//! Nothing here panics on any input. Dimensions are read from the headers and checked against
//! [`DecodeLimits::max_pixels`] before any pixel buffer is allocated, `image`'s [`image::Limits`] cap the PNG/JPEG
//! decoders' allocations, and a DICOM file's element structure is checked (lengths within the file, bounded
//! sequence nesting, a capped inflated size for deflated data sets) before the DICOM parser runs. Truncated
//! JPEG files are refused rather than decoded with a gray tail. Third-party codecs are additionally run under
//! [`std::panic::catch_unwind`]: a few of them index slices with stream-derived sizes, and a panic there is
//! reported as [`DecodeError::Corrupt`] instead of tearing down the caller.
//!
//! # Privacy
//! DICOM headers carry protected health information. [`InputInfo`] holds only technical attributes, and no
//! error message contains a header value other than technical ones (transfer syntax UID, photometric
//! interpretation, dimensions, bit depths), which are sanitised to their value character sets before use.

/// Luma weights (R, G, B) of ITU-R BT.601, the convention of the reference decodes (and of PIL's `convert("L")`);
/// also what training uses for gray images and what `cxr-train import --gray-from-color luma` weights filters by.
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

mod dicom;
mod dicom_guard;
mod grayscale;
mod jpeg_markers;
mod png_gray;
mod raster;

use serde::Serialize;

use crate::image::GrayImage;

/// The container formats [`decode`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Dicom,
    Png,
    Jpeg,
}

crate::keywords!(ImageFormat, "image format", { Dicom => "dicom", Png => "png", Jpeg => "jpeg" });

/// The PNG file signature.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Identifies the container format from magic bytes alone.
///
/// DICOM is recognised only as a Part 10 file (128-byte preamble followed by `DICM`); PNG by its 8-byte
/// signature; JPEG by `FF D8 FF` (SOI followed by any marker).
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.get(128..132) == Some(b"DICM") {
        Some(ImageFormat::Dicom)
    } else if bytes.starts_with(&PNG_SIGNATURE) {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else {
        None
    }
}

/// Resource limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted `width × height` of the decoded (first) frame.
    pub max_pixels: u64,
}

impl DecodeLimits {
    /// The default pixel budget: 100 megapixels, far above any chest radiograph (≈ 3000 × 3000).
    pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

    /// Limits with the given pixel budget.
    pub const fn new(max_pixels: u64) -> Self {
        DecodeLimits { max_pixels }
    }

    /// Working-memory budget for decoders: the largest permitted frame at the widest sample type
    /// (8 bytes per pixel) plus 64 MiB of headroom. Also caps the inflated size of a deflated DICOM data set.
    pub fn max_decoded_bytes(&self) -> usize {
        let bytes = self.max_pixels.saturating_mul(8).saturating_add(64 * 1024 * 1024);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// Returns [`DecodeError::EmptyImage`] or [`DecodeError::TooManyPixels`] when a `width × height` frame
    /// must not be decoded.
    fn check(&self, width: u32, height: u32) -> Result<(), DecodeError> {
        if width == 0 || height == 0 {
            return Err(DecodeError::EmptyImage);
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(DecodeError::TooManyPixels { width, height, max_pixels: self.max_pixels });
        }
        Ok(())
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::new(Self::DEFAULT_MAX_PIXELS)
    }
}

/// Technical facts about a decoded input, safe to log and to return to clients.
///
/// Deliberately has no field for any patient, study or device attribute: DICOM headers are PHI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputInfo {
    pub format: ImageFormat,
    /// Width of the decoded image in pixels (DICOM Columns).
    pub width: u32,
    /// Height of the decoded image in pixels (DICOM Rows).
    pub height: u32,
    /// Bits per sample: DICOM Bits Stored, or the PNG/JPEG sample depth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_stored: Option<u16>,
    /// The color model: the DICOM Photometric Interpretation as stored in the file (before any conversion by a
    /// codec), or for PNG/JPEG the DICOM term for their color model (`MONOCHROME2`, `RGB`, `CMYK`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photometric: Option<String>,
    /// DICOM Number of Frames (1 when absent); only the first frame is decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// DICOM transfer syntax name, e.g. `JPEG 2000 Image Compression (Lossless Only)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_syntax: Option<String>,
}

/// A decoded image with the facts about its source.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: GrayImage,
    pub info: InputInfo,
}

/// Why an input could not be decoded. Each variant has a stable slug, [`DecodeError::kind`].
///
/// Messages contain no DICOM header value except technical ones (UIDs of transfer syntaxes, photometric
/// interpretations, dimensions and bit depths).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are neither a DICOM Part 10 file, nor PNG, nor JPEG.
    #[error("unsupported image format: expected a DICOM (Part 10), PNG or JPEG file")]
    UnsupportedFormat,
    /// The bytes claim a supported format but are truncated or malformed. `detail` is written for the client that
    /// sent the file (it travels in the problem response), so it is the decoder's finding in words, with no header
    /// value and no internal error chain.
    #[error("corrupt {format} data: {detail}")]
    Corrupt { format: ImageFormat, detail: String },
    /// A DICOM file in a transfer syntax this decoder does not handle.
    #[error("unsupported DICOM transfer syntax {name} ({uid})")]
    UnsupportedTransferSyntax { uid: String, name: String },
    /// A DICOM photometric interpretation that has no sensible gray rendering here (e.g. PALETTE COLOR).
    #[error("unsupported DICOM photometric interpretation {0:?}")]
    UnsupportedPhotometric(String),
    /// A DICOM object whose pixel data this decoder does not handle (no Pixel Data, float pixel data, unusual
    /// bit or sample layouts).
    #[error("unsupported DICOM pixel data: {0}")]
    UnsupportedPixelData(String),
    /// The image is larger than [`DecodeLimits::max_pixels`]; detected from the header, before decoding.
    #[error("image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")]
    TooManyPixels { width: u32, height: u32, max_pixels: u64 },
    /// The image has zero rows or zero columns.
    #[error("image has no pixels")]
    EmptyImage,
}

impl DecodeError {
    /// A stable, URL-safe slug per variant, for problem types and metrics labels.
    pub const fn kind(&self) -> &'static str {
        match self {
            DecodeError::UnsupportedFormat => "unsupported-format",
            DecodeError::Corrupt { .. } => "corrupt-image",
            DecodeError::UnsupportedTransferSyntax { .. } => "unsupported-transfer-syntax",
            DecodeError::UnsupportedPhotometric(_) => "unsupported-photometric",
            DecodeError::UnsupportedPixelData(_) => "unsupported-pixel-data",
            DecodeError::TooManyPixels { .. } => "too-many-pixels",
            DecodeError::EmptyImage => "empty-image",
        }
    }

    pub(crate) fn corrupt(format: ImageFormat, detail: impl Into<String>) -> Self {
        DecodeError::Corrupt { format, detail: detail.into() }
    }
}

/// Decodes a DICOM, PNG or JPEG file into a gray image in [0, 1].
///
/// The format comes from [`sniff`]; see the module documentation for the intensity conventions.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    match sniff(bytes) {
        None => Err(DecodeError::UnsupportedFormat),
        Some(ImageFormat::Dicom) => dicom::decode(bytes, limits),
        Some(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => raster::decode(bytes, format, limits),
    }
}

/// The data set of a DICOM Part 10 file (no pixel decoding), for the result objects made from it. Crate-private:
/// header values are PHI and leave `cxr-core` only inside those objects.
pub(crate) fn parse_dicom(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<dicom_object::DefaultDicomObject, DecodeError> {
    match sniff(bytes) {
        Some(ImageFormat::Dicom) => dicom::parse(bytes, limits),
        _ => Err(DecodeError::UnsupportedFormat),
    }
}

/// Decodes a file into its R, G and B planes in [0, 1], for color training data (ImageNet pretraining). PNG and
/// JPEG keep their color; a gray PNG/JPEG or a DICOM (always rendered gray) gives three equal planes.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<[GrayImage; 3], DecodeError> {
    match sniff(bytes) {
        None => Err(DecodeError::UnsupportedFormat),
        Some(ImageFormat::Dicom) => {
            let gray = dicom::decode(bytes, limits)?.image;
            Ok([gray.clone(), gray.clone(), gray])
        }
        Some(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => raster::decode_rgb(bytes, format, limits),
    }
}

/// Runs `f`, turning a panic inside it into [`DecodeError::Corrupt`].
///
/// Used only around third-party decoders, which index buffers with sizes taken from the stream. The default
/// panic hook still prints the panic's location (never image or header content) to stderr.
fn guard_panics<T>(format: ImageFormat, f: impl FnOnce() -> Result<T, DecodeError>) -> Result<T, DecodeError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(DecodeError::corrupt(format, "the decoder rejected the data (internal decoder panic)")),
    }
}

/// Keeps only the characters a technical DICOM value may contain and at most `max` of them, so that a
/// hostile file cannot smuggle arbitrary text into logs or responses through a "technical" attribute.
fn sanitize(value: &str, allowed: impl Fn(char) -> bool, max: usize) -> String {
    value.trim_matches(|c: char| c == '\0' || c.is_whitespace()).chars().filter(|&c| allowed(c)).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes() {
        let mut dicom = vec![0u8; 140];
        dicom[128..132].copy_from_slice(b"DICM");
        assert_eq!(sniff(&dicom), Some(ImageFormat::Dicom));
        assert_eq!(sniff(&PNG_SIGNATURE), Some(ImageFormat::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
        assert_eq!(sniff(b"DICM"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"GIF89a"), None);
    }

    #[test]
    fn kinds_are_distinct() {
        let errors = [
            DecodeError::UnsupportedFormat,
            DecodeError::corrupt(ImageFormat::Png, "x"),
            DecodeError::UnsupportedTransferSyntax { uid: "1.2".into(), name: "x".into() },
            DecodeError::UnsupportedPhotometric("PALETTE COLOR".into()),
            DecodeError::UnsupportedPixelData("x".into()),
            DecodeError::TooManyPixels { width: 1, height: 1, max_pixels: 0 },
            DecodeError::EmptyImage,
        ];
        let mut kinds: Vec<_> = errors.iter().map(DecodeError::kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), errors.len());
    }

    #[test]
    fn limits_are_checked() {
        let limits = DecodeLimits::new(100);
        assert_eq!(limits.check(10, 10), Ok(()));
        assert_eq!(limits.check(0, 10), Err(DecodeError::EmptyImage));
        assert!(matches!(limits.check(11, 10), Err(DecodeError::TooManyPixels { width: 11, height: 10, .. })));
        assert_eq!(DecodeLimits::default().max_pixels, 100_000_000);
    }

    #[test]
    fn garbage_is_unsupported() {
        assert_eq!(decode(b"hello", &DecodeLimits::default()).err(), Some(DecodeError::UnsupportedFormat));
    }

    #[test]
    fn input_info_skips_absent_fields() {
        let info = InputInfo {
            format: ImageFormat::Png,
            width: 2,
            height: 3,
            bits_stored: Some(8),
            photometric: None,
            frames: None,
            transfer_syntax: None,
        };
        let json = serde_json::to_string(&info).expect("serialisable");
        assert_eq!(json, r#"{"format":"png","width":2,"height":3,"bits_stored":8}"#);
    }
}
