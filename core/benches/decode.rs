//! Decode + preprocess benchmark (not a test): prints a table of median/p95 times per real fixture, so the
//! "decode + preprocess ≤ 5 % of inference" goal can be checked on any machine with `cargo bench -p cxr-core`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cxr_core::card::Normalization;
use cxr_core::decode::{DecodeLimits, decode};
use cxr_core::preprocess::Preprocessor;
use cxr_core::stats::percentile;

const FIXTURES: [&str; 7] = [
    "reference/cxr_lossless.png",
    "dicom/cxr_explicit_le.dcm",
    "dicom/cxr_jpeg_baseline.dcm",
    "dicom/cxr_j2k_lossless.dcm",
    "images/nih_00000001_000.png",
    "images/padchest_16747_3_1.jpg",
    "images/tbx11k_h0001_rgb.png",
];

/// The `p`-th percentile of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let ms: Vec<f64> = sorted.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    percentile(&ms, p)
}

fn main() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data"));
    let pre = Preprocessor::new(299, Normalization::INCEPTION);
    let limits = DecodeLimits::default();
    let budget = Duration::from_secs(2);
    println!("| file | size | decode p50 ms | decode p95 ms | preprocess 1-ch p50 ms | preprocess 3-ch p50 ms |");
    println!("|---|---|---|---|---|---|");
    // `cargo bench -p cxr-core --bench decode -- SUBSTRING` restricts the run to matching fixtures.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for rel in FIXTURES.iter().filter(|r| filter.is_empty() || filter.iter().any(|f| r.contains(f.as_str()))) {
        let bytes = std::fs::read(root.join(rel)).expect("fixture");
        let (mut dec, mut pre1, mut pre3) = (Vec::new(), Vec::new(), Vec::new());
        let started = Instant::now();
        let mut size = String::new();
        while (started.elapsed() < budget || dec.len() < 5) && dec.len() < 500 {
            let t = Instant::now();
            let decoded = decode(&bytes, &limits).expect("decodes");
            dec.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(pre.tensor(&decoded.image, 1));
            pre1.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(pre.tensor(&decoded.image, 3));
            pre3.push(t.elapsed());
            size = format!("{}×{}", decoded.info.width, decoded.info.height);
        }
        for v in [&mut dec, &mut pre1, &mut pre3] {
            v.sort();
        }
        println!(
            "| {rel} | {size} | {:.2} | {:.2} | {:.2} | {:.2} |",
            percentile_ms(&dec, 50.0),
            percentile_ms(&dec, 95.0),
            percentile_ms(&pre1, 50.0),
            percentile_ms(&pre3, 50.0)
        );
    }
}
