//! Inputs the fuzz targets (fuzz/) found to crash, hang or stall, replayed on every test run: each must now be
//! answered (an image or an error) quickly and without a panic.
//!
//! `tests/data/fuzz/decode_dicom/`: three DICOM files from a 10-minute `decode_dicom` run whose mutated pixel-data
//! fragments made `dicom-parser` zero-fill allocations of up to 4 GiB before failing (2.6 s and gigabytes per
//! request; `dicom_guard` now refuses any structure it cannot follow), and one RLE file on which
//! `dicom-transfer-syntax-registry`'s RLE decoder panics with an out-of-bounds index (caught by `guard_panics`:
//! `Corrupt`, 422 at the server).

use std::time::{Duration, Instant};

use cxr_core::decode::{DecodeLimits, decode};

#[test]
fn every_fuzz_finding_is_answered_quickly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fuzz");
    let mut replayed = 0;
    for target in std::fs::read_dir(&root).expect("tests/data/fuzz exists") {
        let target = target.unwrap().path();
        for file in std::fs::read_dir(&target).unwrap() {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            // The decode_dicom target prefixes a Part 10 preamble when the input lacks one; replay it the same way.
            let bytes = if target.ends_with("decode_dicom") && data.get(128..132) != Some(b"DICM".as_slice()) {
                [vec![0u8; 128], b"DICM".to_vec(), data].concat()
            } else {
                data
            };
            let started = Instant::now();
            let result = decode(&bytes, &DecodeLimits::default());
            let took = started.elapsed();
            assert!(result.is_err(), "{}: every finding so far is malformed", path.display());
            println!(
                "{}: {:?} in {took:?}",
                path.display(),
                result.as_ref().map(|d| (d.image.width(), d.image.height()))
            );
            assert!(took < Duration::from_millis(500), "{} took {took:?}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 3, "the regression files are there");
}
