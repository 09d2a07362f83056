//! A structural pre-check of DICOM Part 10 bytes, run before the DICOM parser sees them.
//!
//! The parser (`dicom-parser`) allocates each element's buffer from its declared length before reading it, and
//! builds nested sequences recursively. A few hundred hostile bytes could therefore ask for a 4 GiB allocation
//! or nest sequences deeply enough to overflow the stack (an abort, not a catchable panic). This walker follows
//! the same element grammar without allocating and rejects:
//! - a defined value length larger than the bytes left in the file or in the enclosing item/sequence;
//! - sequences nested deeper than [`MAX_DEPTH`];
//! - a file that ends in the middle of an element header, sequence or item.
//!
//! - any construct it cannot follow (an unknown VR code, a delimiter or tag out of place, an undefined length on an
//!   element that cannot have one): the parser would read on from a position nobody checked, and a hostile length
//!   there is again an allocation of up to 4 GiB that the parser zero-fills before failing — seconds of CPU and
//!   gigabytes of memory per request (found by the `decode_dicom` fuzz target; the input is replayed by
//!   `core/tests/fuzz_regressions.rs`). Only a few stray bytes (fewer than an element header) after the last
//!   element are left to the parser.
//!
//! A deflated data set is inflated here first, with a cap on its inflated size (a few kilobytes of deflate
//! stream can expand to gigabytes), and the inflated body is walked like any explicit VR little endian one.
//! The parser then inflates the same bytes again; that costs milliseconds and keeps it on the original input.

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::header::VR;
use dicom_dictionary_std::StandardDataDictionary;

/// Deepest accepted sequence nesting. Image objects use a handful of levels (functional groups nest 2).
pub(super) const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_DELIMITER: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// Transfer syntax UID of Implicit VR Little Endian.
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
/// Transfer syntax UID of Explicit VR Big Endian.
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
/// Transfer syntax UID of Deflated Explicit VR Little Endian, whose data set is deflated.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// Checks the element structure of a Part 10 file (preamble included); a deflated data set may inflate to at
/// most `max_inflated` bytes. `Err` holds a technical reason.
pub(super) fn check(bytes: &[u8], max_inflated: usize) -> Result<(), String> {
    let mut w = Walker { buf: bytes, pos: 132, explicit: true, big_endian: false };
    if bytes.get(128..132) != Some(b"DICM".as_slice()) {
        return Err("missing DICM prefix".into());
    }
    let ts = w.meta_group()?;
    if ts == DEFLATED {
        let body = inflate(&bytes[w.pos..], max_inflated)?;
        let mut inner = Walker { buf: &body, pos: 0, explicit: true, big_endian: false };
        return inner.dataset(body.len(), 0, Closing::EndOfData).map(|_| ());
    }
    w.explicit = ts != IMPLICIT_LE;
    w.big_endian = ts == EXPLICIT_BE;
    match w.dataset(bytes.len(), 0, Closing::EndOfData)? {
        Flow::Continue | Flow::Stop => Ok(()),
    }
}

/// Inflates a raw deflate stream (RFC 1951, as PS3.5 A.5 prescribes), refusing output beyond `max` bytes.
fn inflate(deflated: &[u8], max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(deflated)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| "invalid deflate stream".to_string())?;
    if out.len() > max {
        return Err(format!("deflated data set inflates to more than {max} bytes"));
    }
    Ok(out)
}

/// Whether the walker could follow the structure to its end, or gave up on something it does not understand.
enum Flow {
    Continue,
    Stop,
}

/// How a data set ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// At the end of the file (the top-level data set).
    EndOfData,
    /// At the end of a defined-length item.
    Length,
    /// At an item delimitation item.
    Delimiter,
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    explicit: bool,
    big_endian: bool,
}

impl Walker<'_> {
    fn remaining(&self, end: usize) -> usize {
        end.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, end: usize) -> Result<[u8; N], String> {
        if self.remaining(end) < N {
            return Err("data ends inside an element header".into());
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    fn u16(&mut self, end: usize) -> Result<u16, String> {
        let b = self.bytes::<2>(end)?;
        Ok(if self.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    fn u32(&mut self, end: usize) -> Result<u32, String> {
        let b = self.bytes::<4>(end)?;
        Ok(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    fn tag(&mut self, end: usize) -> Result<(u16, u16), String> {
        Ok((self.u16(end)?, self.u16(end)?))
    }

    /// Skips `len` bytes after checking that they exist before `end`.
    fn skip(&mut self, len: u32, end: usize) -> Result<(), String> {
        let len = len as usize;
        if len > self.remaining(end) {
            return Err("an element's length exceeds the data that contains it".into());
        }
        self.pos += len;
        Ok(())
    }

    /// Walks the file meta group (always explicit VR little endian) and returns the transfer syntax UID.
    fn meta_group(&mut self) -> Result<String, String> {
        let end = self.buf.len();
        let mut ts = String::new();
        loop {
            // The meta group ends where the first element of another group begins.
            let Some(group) = self.buf.get(self.pos..self.pos + 2) else {
                return Err("data ends inside the file meta information".into());
            };
            if u16::from_le_bytes([group[0], group[1]]) != 0x0002 {
                break;
            }
            let tag = self.tag(end)?;
            let vr = self.bytes::<2>(end)?;
            let len = if has_long_length(vr) {
                self.bytes::<2>(end)?;
                self.u32(end)?
            } else {
                u32::from(self.u16(end)?)
            };
            if len == UNDEFINED {
                return Err("undefined length in the file meta information".into());
            }
            let start = self.pos;
            self.skip(len, end)?;
            if tag == (0x0002, 0x0010) {
                ts = String::from_utf8_lossy(&self.buf[start..self.pos])
                    .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_string();
            }
        }
        Ok(ts)
    }

    /// Walks data elements until `end` or, for an undefined-length item, its delimitation item.
    fn dataset(&mut self, end: usize, depth: usize, closing: Closing) -> Result<Flow, String> {
        loop {
            if self.pos >= end {
                return match closing {
                    Closing::Delimiter => Err("data ends inside an undefined-length item".into()),
                    Closing::EndOfData | Closing::Length => Ok(Flow::Continue),
                };
            }
            // A few stray bytes after the last element of the file are left to the parser.
            if closing == Closing::EndOfData && self.remaining(end) < 8 {
                return Ok(Flow::Stop);
            }
            let tag = self.tag(end)?;
            if tag.0 == 0xFFFE {
                let _len = self.u32(end)?;
                return match (tag, closing) {
                    (ITEM_DELIMITER, Closing::Delimiter) => Ok(Flow::Continue),
                    _ => Err(format!("an item or delimiter tag out of place at offset {}", self.pos - 8)),
                };
            }
            let (vr, len) = if self.explicit {
                let vr_bytes = self.bytes::<2>(end)?;
                let Some(vr) = VR::from_binary(vr_bytes) else {
                    return Err(format!("an unknown value representation at offset {}", self.pos - 2));
                };
                let len = if has_long_length(vr_bytes) {
                    self.bytes::<2>(end)?;
                    self.u32(end)?
                } else {
                    u32::from(self.u16(end)?)
                };
                (Some(vr), len)
            } else {
                (None, self.u32(end)?)
            };
            let is_sequence = match vr {
                Some(vr) => vr == VR::SQ,
                None => dictionary_says_sequence(tag),
            };

            let flow = if len == UNDEFINED {
                if tag == PIXEL_DATA && vr != Some(VR::SQ) {
                    self.fragments(end)?
                } else if is_sequence || vr.is_none() {
                    self.sequence(end, depth + 1, None)?
                } else if vr == Some(VR::UN) {
                    // An undefined-length UN element is a sequence encoded in implicit VR little endian.
                    let (explicit, big_endian) = (self.explicit, self.big_endian);
                    self.explicit = false;
                    self.big_endian = false;
                    let flow = self.sequence(end, depth + 1, None);
                    self.explicit = explicit;
                    self.big_endian = big_endian;
                    flow?
                } else {
                    return Err(format!(
                        "an undefined length on an element that cannot have one (tag {:04X},{:04X})",
                        tag.0, tag.1
                    ));
                }
            } else if is_sequence {
                let seq_end = self.checked_end(len, end)?;
                let flow = self.sequence(seq_end, depth + 1, Some(seq_end))?;
                self.pos = seq_end;
                flow
            } else {
                self.skip(len, end)?;
                Flow::Continue
            };
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
        }
    }

    /// The end offset of a defined-length value starting here, checked against `end`.
    fn checked_end(&self, len: u32, end: usize) -> Result<usize, String> {
        let len = len as usize;
        if len > self.remaining(end) {
            return Err("an element's length exceeds the data that contains it".into());
        }
        Ok(self.pos + len)
    }

    /// Walks the items of a sequence: up to `bound` for a defined-length sequence, else to its delimiter.
    fn sequence(&mut self, end: usize, depth: usize, bound: Option<usize>) -> Result<Flow, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH} levels"));
        }
        loop {
            if let Some(bound) = bound
                && self.pos >= bound
            {
                return Ok(Flow::Continue);
            }
            let tag = self.tag(end)?;
            let len = self.u32(end)?;
            match tag {
                ITEM if len == UNDEFINED => {
                    if let Flow::Stop = self.dataset(end, depth, Closing::Delimiter)? {
                        return Ok(Flow::Stop);
                    }
                }
                ITEM => {
                    let item_end = self.checked_end(len, end)?;
                    let flow = self.dataset(item_end, depth, Closing::Length)?;
                    self.pos = item_end;
                    if let Flow::Stop = flow {
                        return Ok(Flow::Stop);
                    }
                }
                SEQUENCE_DELIMITER if bound.is_none() => return Ok(Flow::Continue),
                _ => return Err(format!("a tag out of place inside a sequence at offset {}", self.pos - 8)),
            }
        }
    }

    /// Walks the fragments of encapsulated pixel data up to the sequence delimiter.
    fn fragments(&mut self, end: usize) -> Result<Flow, String> {
        loop {
            let tag = self.tag(end)?;
            let len = self.u32(end)?;
            match tag {
                ITEM if len != UNDEFINED => self.skip(len, end)?,
                SEQUENCE_DELIMITER => return Ok(Flow::Continue),
                _ => {
                    return Err(format!(
                        "a tag out of place among the pixel data fragments at offset {}",
                        self.pos - 8
                    ));
                }
            }
        }
    }
}

/// VRs whose explicit encoding has a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
fn has_long_length(vr: [u8; 2]) -> bool {
    matches!(&vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV")
}

/// In implicit VR, whether the standard dictionary (which the parser also consults) declares a sequence.
fn dictionary_says_sequence((group, element): (u16, u16)) -> bool {
    StandardDataDictionary
        .by_tag(Tag(group, element))
        .is_some_and(|entry| matches!(entry.vr(), VirtualVr::Exact(VR::SQ)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal Part 10 prefix: preamble, DICM, and a meta group holding only the transfer syntax.
    fn prefix(ts: &str) -> Vec<u8> {
        let mut ts = ts.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        out.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        out.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        out.extend_from_slice(&ts);
        out
    }

    fn explicit_element(out: &mut Vec<u8>, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        if has_long_length(*vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
    }

    #[test]
    fn accepts_well_formed_elements() {
        let mut f = prefix("1.2.840.10008.1.2.1");
        explicit_element(&mut f, (0x0028, 0x0010), b"US", &[4, 0]);
        explicit_element(&mut f, (0x7FE0, 0x0010), b"OW", &[0; 8]);
        assert_eq!(check(&f, 1 << 20), Ok(()));
    }

    #[test]
    fn rejects_length_beyond_end() {
        let mut f = prefix("1.2.840.10008.1.2.1");
        f.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
        f.extend_from_slice(&u32::MAX.wrapping_sub(1).to_le_bytes());
        f.extend_from_slice(&[0; 16]);
        assert!(check(&f, 1 << 20).is_err());
    }

    #[test]
    fn rejects_deep_nesting() {
        let mut f = prefix("1.2.840.10008.1.2.1");
        for _ in 0..(MAX_DEPTH + 2) {
            // (0040,A730) SQ of undefined length holding an undefined-length item.
            f.extend_from_slice(&[0x40, 0x00, 0x30, 0xA7, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
            f.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let err = check(&f, 1 << 20).expect_err("too deep");
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn caps_inflated_size() {
        use std::io::Write;
        let mut body = Vec::new();
        explicit_element(&mut body, (0x7FE0, 0x0010), b"OB", &vec![0u8; 100_000]);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&body).expect("in-memory write");
        let mut f = prefix(DEFLATED);
        f.extend_from_slice(&enc.finish().expect("in-memory write"));
        assert_eq!(check(&f, 200_000), Ok(()));
        let err = check(&f, 50_000).expect_err("over the cap");
        assert!(err.contains("inflates"), "{err}");
    }

    #[test]
    fn rejects_truncated_meta() {
        let f = prefix("1.2.840.10008.1.2.1");
        assert!(check(&f[..f.len() - 3], 1 << 20).is_err());
    }
}
