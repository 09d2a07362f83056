//! Minimal JPEG marker walking: the frame size from the SOF segment and whether the stream is complete.
//!
//! Used as a cheap pre-check before handing a stream to a codec: to compare an embedded DICOM stream's size
//! with Rows/Columns, and to refuse truncated JPEG files, which the `image` crate's decoder (zune-jpeg in
//! lenient mode) would otherwise fill up with gray and report as a success. A truncated radiograph must never
//! reach a classifier as if it were whole.

/// The JPEG start-of-image marker.
const SOI: [u8; 2] = [0xFF, 0xD8];
/// The JPEG end-of-image marker.
const EOI: [u8; 2] = [0xFF, 0xD9];

/// A marker segment found by [`walk`]: the marker byte and the offset just past it (the length field, if any).
struct Segment {
    marker: u8,
    body: usize,
}

/// Walks the marker segments from the start of `s` up to and including the first start-of-scan (or SOF, if
/// `stop_at_sof`), skipping each segment by its length. `None` when the data ends or is not a JPEG stream.
fn walk(s: &[u8], stop: impl Fn(u8) -> bool) -> Option<Segment> {
    if !s.starts_with(&SOI) {
        return None;
    }
    let be16 = |i: usize| -> Option<usize> { Some(usize::from(u16::from_be_bytes([*s.get(i)?, *s.get(i + 1)?]))) };
    let mut i = 2;
    loop {
        // Skip to the next marker, fill bytes included.
        while *s.get(i)? != 0xFF {
            i += 1;
        }
        while *s.get(i)? == 0xFF {
            i += 1;
        }
        let marker = *s.get(i)?;
        i += 1;
        if stop(marker) {
            return Some(Segment { marker, body: i });
        }
        match marker {
            // Stand-alone markers have no length field.
            0x01 | 0xD0..=0xD8 => {}
            // End of image before any scan.
            0xD9 => return None,
            _ => i += be16(i)?,
        }
    }
}

/// `true` for the start-of-frame markers: SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC), plus SOF55
/// (F7), the JPEG-LS frame header.
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC)) || marker == 0xF7
}

/// Width and height declared by the first frame header, if it can be found before the first scan.
pub(super) fn sof_dimensions(s: &[u8]) -> Option<(u32, u32)> {
    let segment = walk(s, |m| is_sof(m) || m == 0xDA)?;
    if segment.marker == 0xDA {
        return None;
    }
    let be16 = |i: usize| -> Option<u32> { Some(u32::from(u16::from_be_bytes([*s.get(i)?, *s.get(i + 1)?]))) };
    // Segment layout: length (2), precision (1), height (2), width (2), components (1), ...
    Some((be16(segment.body + 5)?, be16(segment.body + 3)?))
}

/// `true` when an end-of-image marker follows the first start-of-scan. Inside entropy-coded data a 0xFF byte
/// is always stuffed (`FF 00`) or a restart marker, so `FF D9` there can only be the real end marker.
pub(super) fn is_complete(s: &[u8]) -> bool {
    match walk(s, |m| m == 0xDA) {
        Some(sos) => s.get(sos.body..).is_some_and(|rest| rest.windows(2).any(|w| w == EOI)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, APP0 (length 4), SOF0 (precision 8, height 0x0102, width 0x0304, 1 component), SOS, data, EOI.
    const STREAM: [u8; 29] = [
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x01, 0x02, 0x03, 0x04, 0x01,
        0x01, 0x11, 0x00, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0xFF, 0xD9,
    ];

    #[test]
    fn finds_the_frame_size() {
        assert_eq!(sof_dimensions(&STREAM), Some((0x0304, 0x0102)));
        assert_eq!(sof_dimensions(&STREAM[..12]), None);
        assert_eq!(sof_dimensions(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]), None);
        assert_eq!(sof_dimensions(b"not a jpeg"), None);
    }

    #[test]
    fn detects_truncation() {
        assert!(is_complete(&STREAM));
        assert!(!is_complete(&STREAM[..STREAM.len() - 1]));
        assert!(!is_complete(&STREAM[..20]));
    }
}
