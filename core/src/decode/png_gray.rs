//! A fast path for the X-ray PNG: non-interlaced 8- or 16-bit grayscale holding nothing but `IHDR`, `IDAT` and
//! `IEND` chunks (what DICOM-to-PNG converters and this project's own tools write).
//!
//! Why hand-written, when `image` (through the `png` crate) decodes every PNG correctly: under a saturated server
//! the PNG decode is what separates its throughput from the DICOM's, and half of a 1024² 16-bit X-ray's 5.9-ms
//! decode is the `png` crate's Paeth unfilter, which goes one row at a time with every byte waiting for its left
//! neighbour. Here a run of Paeth rows is unfiltered four rows at once, each row one pixel behind the row above it,
//! so that four independent dependency chains overlap; and the samples go straight into the `f32` image without the
//! intermediate buffers. Inflating stays with `fdeflate`, the `png` crate's own inflater.
//!
//! Anything else — another color type or bit depth, interlacing, any other chunk, a CRC, zlib stream or length that
//! does not add up, a size over the limits — returns `None`, and the caller decodes the file through `image` as
//! before (which then reports the error, if there is one). So this path only decodes files that `image` decodes,
//! to the same values: tested against `image` for every filter type, both bit depths, odd sizes and every fixture.

use super::{DecodeLimits, Decoded, ImageFormat, InputInfo};
use crate::image::GrayImage;

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
/// The PNG specification's largest chunk length.
const MAX_CHUNK: usize = (1 << 31) - 1;

/// Decodes `bytes` when it is a PNG this fast path takes; `None` otherwise (and on any inconsistency).
pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Option<Decoded> {
    // The code below has no known way to panic; a panic all the same means "not for the fast path".
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| try_decode(bytes, limits))).ok().flatten()
}

fn try_decode(bytes: &[u8], limits: &DecodeLimits) -> Option<Decoded> {
    let (header, idat) = chunks(bytes)?;
    limits.check(header.width, header.height).ok()?;
    let (width, height) = (usize::try_from(header.width).ok()?, usize::try_from(header.height).ok()?);
    let bpp = usize::from(header.depth / 8);
    let row_len = width.checked_mul(bpp)?;
    let filtered = inflate(&idat, height.checked_mul(row_len.checked_add(1)?)?)?;
    let data = match bpp {
        1 => unfilter_to_f32::<1>(filtered, width, height)?,
        _ => unfilter_to_f32::<2>(filtered, width, height)?,
    };
    let image = GrayImage::new(header.width, header.height, data).ok()?;
    let info = InputInfo {
        format: ImageFormat::Png,
        width: header.width,
        height: header.height,
        bits_stored: Some(u16::from(header.depth)),
        photometric: Some("MONOCHROME2".to_string()),
        frames: None,
        transfer_syntax: None,
    };
    Some(Decoded { image, info })
}

/// The parts of `IHDR` this path needs.
#[derive(Debug, Clone, Copy)]
struct Header {
    width: u32,
    height: u32,
    /// 8 or 16.
    depth: u8,
}

/// Walks the chunks: `IHDR` first, then one contiguous run of `IDAT`, then `IEND`, every CRC correct. Returns the
/// header and the `IDAT` payloads in order.
fn chunks(bytes: &[u8]) -> Option<(Header, Vec<&[u8]>)> {
    let mut rest = bytes.strip_prefix(&SIGNATURE)?;
    let mut header = None;
    let mut idat = Vec::new();
    loop {
        let length = usize::try_from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
        if length > MAX_CHUNK {
            return None;
        }
        let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
        let data = rest.get(8..8 + length)?;
        let crc = u32::from_be_bytes(rest.get(8 + length..12 + length)?.try_into().ok()?);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&kind);
        hasher.update(data);
        if hasher.finalize() != crc {
            return None;
        }
        rest = &rest[12 + length..];
        match (&kind, header) {
            (b"IHDR", None) => header = Some(parse_header(data)?),
            (b"IDAT", Some(_)) => idat.push(data),
            (b"IEND", Some(header)) if length == 0 && !idat.is_empty() => return Some((header, idat)),
            _ => return None,
        }
    }
}

fn parse_header(data: &[u8]) -> Option<Header> {
    let [w0, w1, w2, w3, h0, h1, h2, h3, depth, color, compression, filter, interlace] = data.try_into().ok()?;
    let (width, height) = (u32::from_be_bytes([w0, w1, w2, w3]), u32::from_be_bytes([h0, h1, h2, h3]));
    let valid = width > 0 && height > 0 && width <= MAX_CHUNK as u32 && height <= MAX_CHUNK as u32;
    // Color type 0 is grayscale; compression, filter method and interlacing 0 are the only standard non-interlaced
    // values.
    (valid && matches!(depth, 8 | 16) && (color, compression, filter, interlace) == (0, 0, 0, 0)).then_some(Header {
        width,
        height,
        depth,
    })
}

/// Inflates the zlib stream spread over the `IDAT` payloads into exactly `expected` bytes: `None` when the stream
/// is invalid (checksum included), ends early or would produce more.
fn inflate(idat: &[&[u8]], expected: usize) -> Option<Vec<u8>> {
    let joined;
    let input: &[u8] = match idat {
        [one] => one,
        many => {
            joined = many.concat();
            &joined
        }
    };
    let mut out = vec![0u8; expected];
    let mut decompressor = fdeflate::Decompressor::new();
    let (mut read, mut written) = (0, 0);
    while !decompressor.is_done() {
        let (consumed, produced) = decompressor.read(&input[read..], &mut out, written, true).ok()?;
        read += consumed;
        written += produced;
        if consumed == 0 && produced == 0 {
            return None;
        }
    }
    (written == expected && read == input.len()).then_some(out)
}

/// Unfilters the rows of `filtered` (each a filter byte and `width × BPP` bytes) and converts the big-endian
/// samples to intensities in [0, 1] with the same arithmetic as the `image` path.
fn unfilter_to_f32<const BPP: usize>(mut filtered: Vec<u8>, width: usize, height: usize) -> Option<Vec<f32>> {
    let row_len = width * BPP;
    let stride = row_len + 1;
    let zeros = vec![0u8; row_len];
    let mut row = 0;
    while row < height {
        let (done, todo) = filtered.split_at_mut(row * stride);
        let above: &[u8] = if row == 0 { &zeros } else { &done[done.len() - row_len..] };
        let filter = todo[0];
        let run = todo.chunks(stride).take(4).take_while(|r| r[0] == 4).count();
        if filter == 4 && run == 4 && width >= 4 {
            let mut rows = todo.chunks_exact_mut(stride).map(|r| &mut r[1..]);
            let (r0, r1, r2, r3) = (rows.next()?, rows.next()?, rows.next()?, rows.next()?);
            paeth4::<BPP>(above, [r0, r1, r2, r3]);
            row += 4;
            continue;
        }
        unfilter_row::<BPP>(filter, above, &mut todo[1..stride])?;
        row += 1;
    }
    let mut out = Vec::with_capacity(width * height);
    for row in filtered.chunks_exact(stride) {
        match BPP {
            1 => out.extend(row[1..].iter().map(|&v| f32::from(v) * (1.0 / 255.0))),
            _ => out.extend(
                row[1..].chunks_exact(2).map(|s| f32::from(u16::from_be_bytes([s[0], s[1]])) * (1.0 / 65535.0)),
            ),
        }
    }
    Some(out)
}

/// One row with any of the five filter types (`None` for an unknown one).
fn unfilter_row<const BPP: usize>(filter: u8, above: &[u8], row: &mut [u8]) -> Option<()> {
    match filter {
        0 => {}
        1 => {
            for i in BPP..row.len() {
                row[i] = row[i].wrapping_add(row[i - BPP]);
            }
        }
        2 => row.iter_mut().zip(above).for_each(|(x, b)| *x = x.wrapping_add(*b)),
        3 => {
            for i in 0..row.len() {
                let a = if i >= BPP { u16::from(row[i - BPP]) } else { 0 };
                row[i] = row[i].wrapping_add(((a + u16::from(above[i])) / 2) as u8);
            }
        }
        4 => {
            for i in 0..row.len() {
                let (a, c) = if i >= BPP { (row[i - BPP], above[i - BPP]) } else { (0, 0) };
                row[i] = row[i].wrapping_add(paeth(a, above[i], c));
            }
        }
        _ => return None,
    }
    Some(())
}

/// The Paeth predictor in stb_image's branch-free form (equal to the specification's for all inputs; tested).
#[inline(always)]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (a, b, c) = (i16::from(a), i16::from(b), i16::from(c));
    let thresh = c * 3 - (a + b);
    let (lo, hi) = (a.min(b), a.max(b));
    let t0 = if hi <= thresh { lo } else { c };
    (if thresh <= lo { hi } else { t0 }) as u8
}

/// Four consecutive Paeth rows below `above`: at step `s`, row `k` does pixel `s − k`, whose upper neighbours row
/// `k − 1` finished one step earlier. Each row carries its left neighbour `a` and upper-left neighbour `c` (zero
/// before the first pixel, as the specification says).
fn paeth4<const BPP: usize>(above: &[u8], rows: [&mut [u8]; 4]) {
    let [r0, r1, r2, r3] = rows;
    let len = above.len();
    let px = len / BPP;
    assert!(r0.len() == len && r1.len() == len && r2.len() == len && r3.len() == len && px >= 4);
    let mut state = [([0u8; BPP], [0u8; BPP]); 4];
    #[inline(always)]
    fn step<const BPP: usize>(up: &[u8], cur: &mut [u8], x: usize, (a, c): &mut ([u8; BPP], [u8; BPP])) {
        let at = x * BPP;
        let (up, cur) = (&up[at..at + BPP], &mut cur[at..at + BPP]);
        for i in 0..BPP {
            let b = up[i];
            let value = cur[i].wrapping_add(paeth(a[i], b, c[i]));
            cur[i] = value;
            a[i] = value;
            c[i] = b;
        }
    }
    let [s0, s1, s2, s3] = &mut state;
    // Ramp up: rows start one pixel apart.
    step::<BPP>(above, r0, 0, s0);
    step::<BPP>(above, r0, 1, s0);
    step::<BPP>(r0, r1, 0, s1);
    step::<BPP>(above, r0, 2, s0);
    step::<BPP>(r0, r1, 1, s1);
    step::<BPP>(r1, r2, 0, s2);
    for s in 3..px {
        step::<BPP>(above, r0, s, s0);
        step::<BPP>(r0, r1, s - 1, s1);
        step::<BPP>(r1, r2, s - 2, s2);
        step::<BPP>(r2, r3, s - 3, s3);
    }
    // Ramp down.
    step::<BPP>(r0, r1, px - 1, s1);
    step::<BPP>(r1, r2, px - 2, s2);
    step::<BPP>(r2, r3, px - 3, s3);
    step::<BPP>(r1, r2, px - 1, s2);
    step::<BPP>(r2, r3, px - 2, s3);
    step::<BPP>(r2, r3, px - 1, s3);
}

#[cfg(test)]
mod tests {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::{ExtendedColorType, ImageEncoder};

    use super::*;

    /// A deterministic 32-bit xorshift generator (no extra dependency, reproducible failures); `seed` must not be 0.
    fn xorshift(mut state: u32) -> impl FnMut() -> u32 {
        move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        }
    }

    /// A test image: smooth ramps with noise (every Paeth branch is taken) in 8 or 16 bits, big-endian.
    fn pixels(width: u32, height: u32, depth: u8, seed: u32) -> Vec<u8> {
        let mut next = xorshift(seed.wrapping_mul(2_654_435_761).wrapping_add(1));
        let mut out = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let state = next();
                let smooth = (x * 977 + y * 331) % 65_536;
                let v = if state.is_multiple_of(3) { state % 65_536 } else { smooth };
                match depth {
                    8 => out.push((v >> 8) as u8),
                    _ => out.extend_from_slice(&(v as u16).to_be_bytes()),
                }
            }
        }
        out
    }

    fn encode(width: u32, height: u32, depth: u8, filter: FilterType, seed: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let color = if depth == 8 { ExtendedColorType::L8 } else { ExtendedColorType::L16 };
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, filter)
            .write_image(&pixels(width, height, depth, seed), width, height, color)
            .expect("encodes");
        out
    }

    fn through_image(bytes: &[u8]) -> Decoded {
        super::super::raster::decode_with_image(bytes, ImageFormat::Png, &DecodeLimits::default()).expect("decodes")
    }

    fn assert_same(bytes: &[u8], what: &str) {
        let fast = decode(bytes, &DecodeLimits::default()).unwrap_or_else(|| panic!("{what}: not taken"));
        let slow = through_image(bytes);
        assert_eq!(fast.info, slow.info, "{what}");
        assert!(fast.image.data() == slow.image.data(), "{what}: pixel values differ");
    }

    #[test]
    fn every_filter_depth_and_odd_size_decodes_as_image_does() {
        let filters = [
            FilterType::NoFilter,
            FilterType::Sub,
            FilterType::Up,
            FilterType::Avg,
            FilterType::Paeth,
            FilterType::Adaptive,
        ];
        for (n, filter) in filters.into_iter().enumerate() {
            for depth in [8, 16] {
                for (width, height) in [(1, 1), (1, 6), (3, 7), (4, 4), (5, 9), (17, 13), (64, 33)] {
                    let bytes = encode(width, height, depth, filter, n as u32 * 31 + width + height);
                    assert_same(&bytes, &format!("{filter:?} {depth}-bit {width}×{height}"));
                }
            }
        }
    }

    #[test]
    fn the_stbi_predictor_is_the_specifications() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in (0..=255u8).step_by(3) {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    let spec = if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    };
                    assert_eq!(paeth(a, b, c), spec, "{a} {b} {c}");
                }
            }
        }
    }

    #[test]
    fn fixtures_decode_as_image_does() {
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data"));
        let mut taken = 0;
        for dir in ["reference", "images"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("fixture directory") {
                let path = entry.expect("entry").path();
                if path.extension().is_none_or(|e| e != "png") {
                    continue;
                }
                let bytes = std::fs::read(&path).expect("fixture");
                match decode(&bytes, &DecodeLimits::default()) {
                    Some(_) => {
                        assert_same(&bytes, &path.display().to_string());
                        taken += 1;
                    }
                    // Only files with more than IHDR/IDAT/IEND or of another color type may go the slow way.
                    None => assert!(
                        path.ends_with("nih_00000001_000.png") && dir == "images"
                            || path.ends_with("tbx11k_h0001_rgb.png"),
                        "{} should take the fast path",
                        path.display()
                    ),
                }
            }
        }
        assert!(taken >= 9, "{taken} fixtures took the fast path");
    }

    /// Rewrites one chunk's payload (and its CRC).
    fn with_chunk(bytes: &[u8], kind: &[u8; 4], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = bytes[..8].to_vec();
        let mut rest = &bytes[8..];
        while rest.len() >= 12 {
            let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let mut data = rest[8..8 + length].to_vec();
            if &rest[4..8] == kind {
                edit(&mut data);
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&rest[4..8]);
            hasher.update(&data);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(&rest[4..8]);
            out.extend_from_slice(&data);
            out.extend_from_slice(&hasher.finalize().to_be_bytes());
            rest = &rest[12 + length..];
        }
        out
    }

    #[test]
    fn anything_unusual_is_left_to_image() {
        let good = encode(17, 13, 16, FilterType::Paeth, 7);
        let limits = DecodeLimits::default();
        assert!(decode(&good, &limits).is_some());
        // A wrong CRC, a cut file, a trailing byte in the zlib data, a bad filter byte.
        let mut bad_crc = good.clone();
        let last_idat_byte = good.len() - 12 - 5;
        bad_crc[last_idat_byte] ^= 1;
        assert!(decode(&bad_crc, &limits).is_none());
        assert!(decode(&good[..good.len() - 20], &limits).is_none());
        // A byte after the zlib stream's checksum is ignored by both paths alike.
        assert_same(&with_chunk(&good, b"IDAT", |d| d.push(0)), "trailing byte in IDAT");
        // Interlaced, RGB, 4-bit.
        assert!(decode(&with_chunk(&good, b"IHDR", |d| d[12] = 1), &limits).is_none());
        assert!(decode(&with_chunk(&good, b"IHDR", |d| d[9] = 2), &limits).is_none());
        assert!(decode(&with_chunk(&good, b"IHDR", |d| d[8] = 4), &limits).is_none());
        // Over the pixel limit: `image` reports it.
        assert!(decode(&good, &DecodeLimits::new(10)).is_none());
        // Another chunk (here a tRNS, which makes `image` add an alpha channel).
        let mut trns = good[..33].to_vec();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(b"tRNS");
        hasher.update(&[0, 0]);
        trns.extend_from_slice(&2u32.to_be_bytes());
        trns.extend_from_slice(b"tRNS");
        trns.extend_from_slice(&[0, 0]);
        trns.extend_from_slice(&hasher.finalize().to_be_bytes());
        trns.extend_from_slice(&good[33..]);
        assert!(through_image(&trns).image.data().len() == 17 * 13);
        assert!(decode(&trns, &limits).is_none());
    }

    /// A zlib stream of `raw` in stored (uncompressed) blocks, so that tests can write filtered rows directly.
    fn stored_zlib(raw: &[u8]) -> Vec<u8> {
        let mut zlib = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = if raw.is_empty() { vec![&[]] } else { raw.chunks(65_535).collect() };
        for (i, block) in blocks.iter().enumerate() {
            let len = block.len() as u16;
            zlib.push(u8::from(i + 1 == blocks.len()));
            zlib.extend_from_slice(&len.to_le_bytes());
            zlib.extend_from_slice(&(!len).to_le_bytes());
            zlib.extend_from_slice(block);
        }
        let (mut s1, mut s2) = (1u32, 0u32);
        for b in raw {
            s1 = (s1 + u32::from(*b)) % 65_521;
            s2 = (s2 + s1) % 65_521;
        }
        zlib.extend_from_slice(&((s2 << 16) | s1).to_be_bytes());
        zlib
    }

    #[test]
    fn a_filter_byte_out_of_range_is_left_to_image() {
        let rows =
            |middle: u8| -> Vec<u8> { (0..3).flat_map(|r| [if r == 1 { middle } else { 0 }, 1, 2, 3, 4]).collect() };
        let good = encode(2, 3, 16, FilterType::NoFilter, 1);
        for (filter, taken) in [(0, true), (4, true), (5, false), (255, false)] {
            let edited = with_chunk(&good, b"IDAT", |d| *d = stored_zlib(&rows(filter)));
            assert_eq!(decode(&edited, &DecodeLimits::default()).is_some(), taken, "filter {filter}");
            if taken {
                assert_same(&edited, &format!("filter {filter}"));
            }
        }
    }

    /// Random filtered rows — random bytes, each row's filter byte drawn with runs of Paeth rows of every length
    /// and now and then an invalid one — decode as `image` decodes them, or are declined where `image` fails.
    #[test]
    fn random_filtered_rows_decode_as_image_does() {
        let mut next = xorshift(0x9E37_79B9);
        let mut taken = 0;
        for case in 0..400 {
            let depth = if case % 2 == 0 { 16 } else { 8 };
            let (width, height) = (1 + next() % 40, 1 + next() % 14);
            let row_len = (width * depth / 8) as usize;
            let mut raw = Vec::new();
            for _ in 0..height {
                let filter = match next() % 20 {
                    0..=9 => 4,
                    n @ 10..=18 => (n % 4) as u8,
                    _ => 5 + (next() % 250) as u8,
                };
                raw.push(filter);
                raw.extend((0..row_len).map(|_| next() as u8));
            }
            let shell = encode(width, height, depth as u8, FilterType::NoFilter, case);
            let bytes = with_chunk(&shell, b"IDAT", |d| *d = stored_zlib(&raw));
            let slow = super::super::raster::decode_with_image(&bytes, ImageFormat::Png, &DecodeLimits::default());
            match decode(&bytes, &DecodeLimits::default()) {
                Some(fast) => {
                    let slow = slow.unwrap_or_else(|e| panic!("case {case}: fast path took what image refuses: {e}"));
                    assert!(fast.image.data() == slow.image.data(), "case {case}: pixel values differ");
                    taken += 1;
                }
                None => assert!(raw.iter().step_by(row_len + 1).any(|f| *f > 4), "case {case}: declined a valid file"),
            }
        }
        assert!(taken > 200, "{taken} of 400 taken");
    }
}
