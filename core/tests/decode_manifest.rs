//! Decoding against the repository's test data (`tests/data/`): every file in `manifest.json` must match its 16-bit reference decode
//! within the listed tolerance, lossless encodings must agree exactly, and hostile inputs (truncations,
//! garbage, oversized images) must come back as errors without panicking.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cxr_core::card::Normalization;
use cxr_core::decode::{DecodeError, DecodeLimits, ImageFormat, decode, sniff};
use cxr_core::image::GrayImage;
use cxr_core::preprocess::Preprocessor;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");

fn testdata() -> PathBuf {
    PathBuf::from(TESTDATA)
}

fn read(rel: &str) -> Vec<u8> {
    let path = testdata().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[derive(Debug)]
struct Entry {
    file: String,
    reference: String,
    rows: u32,
    columns: u32,
    photometric: Option<String>,
    transfer_syntax: Option<String>,
    tolerance: f32,
}

fn manifest() -> Vec<Entry> {
    let text = String::from_utf8(read("manifest.json")).expect("manifest is UTF-8");
    let json: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let entries = json.as_array().expect("manifest is an array");
    assert!(!entries.is_empty(), "manifest lists no files");
    entries
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let n = |k: &str| e.get(k).and_then(|v| v.as_u64()).unwrap_or_else(|| panic!("{k} missing in {e}"));
            Entry {
                file: s("file").expect("file"),
                reference: s("reference").expect("reference"),
                rows: n("rows") as u32,
                columns: n("columns") as u32,
                photometric: s("photometric"),
                transfer_syntax: s("transfer_syntax"),
                tolerance: e.get("tolerance_max_abs").and_then(|v| v.as_f64()).expect("tolerance") as f32,
            }
        })
        .collect()
}

/// The 16-bit reference PNG as values in [0, 1].
fn reference(rel: &str) -> GrayImage {
    let img = image::load_from_memory_with_format(&read(rel), image::ImageFormat::Png).expect("reference decodes");
    let luma = img.to_luma16();
    let (w, h) = luma.dimensions();
    let data = luma.into_raw().into_iter().map(|v| f32::from(v) / 65535.0).collect();
    GrayImage::new(w, h, data).expect("reference shape")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn decode_file(rel: &str) -> cxr_core::decode::Decoded {
    decode(&read(rel), &DecodeLimits::default()).unwrap_or_else(|e| panic!("{rel}: {e} ({})", e.kind()))
}

#[test]
fn every_manifest_file_matches_its_reference() {
    let mut failures = Vec::new();
    println!("{:<48} {:>10} {:>10} {:>9}", "file", "max |Δ|", "tolerance", "decode");
    for entry in manifest() {
        let bytes = read(&entry.file);
        let start = Instant::now();
        let decoded = decode(&bytes, &DecodeLimits::default());
        let elapsed = start.elapsed();
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: {e}", entry.file));
                continue;
            }
        };
        let expected = reference(&entry.reference);
        assert_eq!((decoded.image.width(), decoded.image.height()), (entry.columns, entry.rows), "{}", entry.file);
        assert_eq!((expected.width(), expected.height()), (entry.columns, entry.rows), "{}", entry.reference);
        assert_eq!((decoded.info.width, decoded.info.height), (entry.columns, entry.rows));
        assert!(decoded.image.data().iter().all(|v| (0.0..=1.0).contains(v)), "{}: values outside [0, 1]", entry.file);

        let diff = max_abs_diff(decoded.image.data(), expected.data());
        println!(
            "{:<48} {:>10.3e} {:>10.3e} {:>7.1}ms",
            entry.file,
            diff,
            entry.tolerance,
            elapsed.as_secs_f64() * 1e3
        );
        if diff > entry.tolerance {
            failures.push(format!("{}: max |Δ| {diff:e} > {:e}", entry.file, entry.tolerance));
        }

        if entry.file.starts_with("dicom/") {
            assert_eq!(decoded.info.format, ImageFormat::Dicom);
            assert_eq!(decoded.info.photometric, entry.photometric, "{}", entry.file);
            assert_eq!(decoded.info.transfer_syntax, entry.transfer_syntax, "{}", entry.file);
            assert_eq!(decoded.info.frames, Some(1), "{}", entry.file);
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn lossless_dicom_encodings_decode_identically() {
    let lossless = [
        "dicom/cxr_explicit_le.dcm",
        "dicom/cxr_implicit_le.dcm",
        "dicom/cxr_explicit_be.dcm",
        "dicom/cxr_deflated.dcm",
        "dicom/cxr_rle.dcm",
        "dicom/cxr_jpeg_lossless_sv1.dcm",
        "dicom/cxr_jpegls_lossless.dcm",
        "dicom/cxr_j2k_lossless.dcm",
    ];
    let base = decode_file(lossless[0]);
    for rel in &lossless[1..] {
        let other = decode_file(rel);
        assert_eq!(other.image.data(), base.image.data(), "{rel} differs from {}", lossless[0]);
    }
}

#[test]
fn monochrome1_is_inverted() {
    let mono2 = decode_file("dicom/cxr_jpeg_baseline.dcm");
    let mono1 = decode_file("dicom/cxr_monochrome1_jpeg_baseline.dcm");
    assert_eq!(mono1.info.photometric.as_deref(), Some("MONOCHROME1"));
    // Same stored pixels, opposite display: v1 = 1 − v2 (up to the pipeline's min..max rounding).
    let worst = mono2.image.data().iter().zip(mono1.image.data()).map(|(a, b)| (a + b - 1.0).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-6, "MONOCHROME1 is not the inverse of MONOCHROME2 (max {worst})");
}

#[test]
fn sniffing_uses_magic_bytes_only() {
    for entry in manifest() {
        let expected = match Path::new(&entry.file).extension().and_then(|e| e.to_str()) {
            Some("dcm") => ImageFormat::Dicom,
            Some("png") => ImageFormat::Png,
            Some("jpg" | "jpeg") => ImageFormat::Jpeg,
            other => panic!("unexpected extension {other:?}"),
        };
        assert_eq!(sniff(&read(&entry.file)), Some(expected), "{}", entry.file);
    }
    assert_eq!(sniff(b"%PDF-1.7"), None);
    assert_eq!(decode(b"%PDF-1.7", &DecodeLimits::default()).err(), Some(DecodeError::UnsupportedFormat));
}

#[test]
fn truncated_files_are_errors() {
    for entry in manifest() {
        let bytes = read(&entry.file);
        let full = decode_file(&entry.file);
        let len = bytes.len();
        let cuts =
            [0, 1, 3, 64, 131, 132, 133, 200, 400, 1000, 4096, len / 4, len / 2, len * 3 / 4, len - 100, len - 1];
        for cut in cuts.into_iter().filter(|&c| c < len) {
            if let Ok(d) = decode(&bytes[..cut], &DecodeLimits::default()) {
                // A PNG whose pixel data is complete may lack only trailing chunks (IEND, text); that is
                // acceptable when, and only when, the pixels are exactly those of the whole file.
                assert!(cut > len - 200, "{} cut at {cut}/{len} decoded", entry.file);
                assert_eq!(d.image, full.image, "{} cut at {cut}/{len} decoded to different pixels", entry.file);
                println!(
                    "{} cut at {cut}/{len} decodes to the full image (only trailing chunks are missing)",
                    entry.file
                );
            }
        }
    }
}

#[test]
fn garbage_is_an_error() {
    // A deterministic xorshift generator: no extra dependency, reproducible failures.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let prefixes: [&[u8]; 3] = [b"", &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'], &[0xFF, 0xD8, 0xFF]];
    for round in 0..60 {
        let len = (next() % 5000) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let prefix = prefixes[round % 3];
        bytes.splice(0..0, prefix.iter().copied());
        if round % 4 == 3 && bytes.len() > 132 {
            bytes[128..132].copy_from_slice(b"DICM");
        }
        assert!(decode(&bytes, &DecodeLimits::default()).is_err(), "garbage round {round} decoded");
    }

    // Corrupt real files in place: flip bytes in the middle of each fixture.
    for entry in manifest() {
        let mut bytes = read(&entry.file);
        let len = bytes.len();
        for k in 0..64 {
            let i = 132 + (next() as usize % (len - 132));
            bytes[i] ^= (k as u8).wrapping_mul(37) | 1;
        }
        // Either outcome is fine; what matters is that it returns.
        let _ = decode(&bytes, &DecodeLimits::default());
    }
}

#[test]
fn too_many_pixels_is_reported_before_decoding() {
    let limits = DecodeLimits::new(1000);
    for entry in manifest() {
        let err = decode(&read(&entry.file), &limits).expect_err("over the limit");
        assert_eq!(
            err,
            DecodeError::TooManyPixels { width: entry.columns, height: entry.rows, max_pixels: 1000 },
            "{}",
            entry.file
        );
        assert_eq!(err.kind(), "too-many-pixels");
    }
}

#[test]
fn unsupported_transfer_syntax_is_named() {
    // Rewrite the transfer syntax UID of the explicit-LE file to an unassigned one of the same length, so
    // that the element structure stays valid.
    let mut bytes = read("dicom/cxr_explicit_le.dcm");
    let old = b"1.2.840.10008.1.2.1\0";
    let pos = bytes.windows(old.len()).position(|w| w == old).expect("transfer syntax UID present");
    bytes[pos..pos + old.len()].copy_from_slice(b"1.2.840.10008.1.2.9\0");
    let err = decode(&bytes, &DecodeLimits::default()).expect_err("unknown transfer syntax");
    assert_eq!(
        err,
        DecodeError::UnsupportedTransferSyntax {
            uid: "1.2.840.10008.1.2.9".into(),
            name: "unknown transfer syntax".into()
        }
    );
    assert_eq!(err.kind(), "unsupported-transfer-syntax");
}

#[test]
fn decoded_image_preprocesses_quickly() {
    let decoded = decode_file("dicom/cxr_explicit_le.dcm");
    let p = Preprocessor::new(299, Normalization::INCEPTION);
    let mut out = vec![0.0; 3 * 299 * 299];
    p.write_tensor(&decoded.image, 3, &mut out); // warm-up
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        p.write_tensor(&decoded.image, 1, &mut out[..299 * 299]);
    }
    let per_run = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
    println!("preprocess 1024x1024 -> 299x299: {per_run:.2} ms per plane");
    assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)));
}
