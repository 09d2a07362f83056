//! Helpers shared by the training crate's end-to-end tests: the `cxr-train` binary, generated images, the fixture
//! X-rays preprocessed by `cxr-core`, and ONNX Runtime.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cxr_core::card::{INPUT_NAME, LOGITS_NAME, Normalization, PROBABILITIES_NAME};
use cxr_core::decode::{DecodeLimits, decode};
use cxr_core::labels::NUM_LABELS;
use cxr_core::preprocess::Preprocessor;
use cxr_train::model::INPUT_SIZE;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor as OrtTensor;

use dicom_core::smallvec::SmallVec;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use rand::Rng;
use rand::rngs::StdRng;

pub const SIDE: u32 = 64;

pub fn cxr_train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cxr-train"))
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A synthetic radiograph: smooth random background, noise, and the drawn findings (each +0.5 of full scale over
/// the background, so a finding is brighter than any background pixel around it).
pub fn radiograph(rng: &mut StdRng, disk: bool, band: bool) -> Vec<u8> {
    radiograph_at(rng, disk, band, None)
}

/// [`radiograph`] with the disk's centre at `centre` (pixels) instead of near the middle; the generator draws the
/// same random numbers either way, so the images that follow are unchanged.
pub fn radiograph_at(rng: &mut StdRng, disk: bool, band: bool, centre: Option<(f64, f64)>) -> Vec<u8> {
    let (gx, gy, base) = (rng.random_range(-0.2..0.2), rng.random_range(-0.2..0.2), rng.random_range(0.25..0.45));
    let drawn = (32.0 + rng.random_range(-4.0..4.0), 30.0 + rng.random_range(-4.0..4.0));
    let (cx, cy) = centre.unwrap_or(drawn);
    let radius = rng.random_range(11.0..15.0);
    let band_top = rng.random_range(46..52);
    (0..SIDE * SIDE)
        .map(|i| {
            let (x, y) = ((i % SIDE) as f64, (i / SIDE) as f64);
            let mut v: f64 = base + gx * (x / 64.0 - 0.5) + gy * (y / 64.0 - 0.5) + rng.random_range(-0.06..0.06);
            if disk && ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() < radius {
                v += 0.5;
            }
            if band && y as u32 >= band_top && y < 60.0 {
                v += 0.5;
            }
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        })
        .collect()
}

pub fn write_png(path: &Path, pixels: Vec<u8>) {
    image::GrayImage::from_raw(SIDE, SIDE, pixels).expect("buffer").save(path).expect("png written");
}

pub fn write_dicom(path: &Path, pixels: Vec<u8>) {
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let obj = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION),
        text(tags::SOP_INSTANCE_UID, VR::UI, "2.25.42"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, SIDE as u16),
        us(tags::COLUMNS, SIDE as u16),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(SmallVec::from_vec(pixels))),
    ])
    .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
    .expect("meta table");
    obj.write_to_file(path).expect("dicom written");
}

/// Two-class RGB ImageFolder (ring vs bar) for pretraining.
pub fn imagefolder(root: &Path, rng: &mut StdRng) {
    for (split, n) in [("train", 24), ("val", 8)] {
        for class in ["bar", "ring"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for k in 0..n {
                let bg = [rng.random_range(0..120u8), rng.random_range(0..120u8), rng.random_range(0..120u8)];
                let fg = [rng.random_range(150..=255u8), rng.random_range(150..=255u8), rng.random_range(150..=255u8)];
                let img = image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
                    let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
                    let r = (dx * dx + dy * dy).sqrt();
                    let on = if class == "ring" {
                        (12.0..18.0).contains(&r)
                    } else {
                        (28..36).contains(&y) && (8..56).contains(&x)
                    };
                    image::Rgb(if on { fg } else { bg })
                });
                img.save(dir.join(format!("{class}_{k:03}.png"))).unwrap();
            }
        }
    }
}

pub const CARDIOMEGALY: &str = "Cardiomegaly";
pub const EFFUSION: &str = "Effusion";
/// The control label: present in the rows, drawn nowhere.
pub const CONTROL: &str = "Infiltration";

/// An NIH stand-in under `root`: real label rows of `tests/data/metadata/Data_Entry_2017_v2020.csv.gz` (real image
/// names, patients and finding lists), `per_combination` rows for each of the 8 combinations of Cardiomegaly,
/// Effusion and Infiltration (so the three are independent), each image a [`radiograph`] with the disk drawn for
/// Cardiomegaly and the band for Effusion; Infiltration is drawn nowhere. Half the images (by `rng`) are 8-bit PNG,
/// half DICOM, so both decoders feed training. Returns the subset CSV; images are in `root/images`.
pub fn nih_subset(root: &Path, rng: &mut StdRng, per_combination: usize) -> PathBuf {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(testdata("metadata/Data_Entry_2017_v2020.csv.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    // Counts only: the rows are taken in file order whatever the map's iteration order.
    let mut taken: HashMap<(bool, bool, bool), usize> = HashMap::new();
    let images = root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv_out = format!("{header}\n");
    for line in lines {
        let findings = line.split(',').nth(1).unwrap();
        let has = |l: &str| findings.split('|').any(|f| f == l);
        let key = (has(CARDIOMEGALY), has(EFFUSION), has(CONTROL));
        let count = taken.entry(key).or_default();
        if *count >= per_combination {
            continue;
        }
        *count += 1;
        let name = line.split(',').next().unwrap();
        let pixels = radiograph(rng, key.0, key.1);
        if rng.random_bool(0.5) {
            write_png(&images.join(name), pixels);
        } else {
            write_dicom(&images.join(name.replace(".png", ".dcm")), pixels);
        }
        csv_out += line;
        csv_out.push('\n');
        if taken.len() == 8 && taken.values().all(|&c| c >= per_combination) {
            break;
        }
    }
    assert_eq!(taken.values().sum::<usize>(), 8 * per_combination, "the real CSV has every label combination");
    let csv = root.join("Data_Entry_2017_subset.csv");
    std::fs::write(&csv, csv_out).unwrap();
    csv
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A file under the repository's `tests/data`.
pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data")).join(rel)
}

/// Decodes and preprocesses fixtures into one `[N, C, 299, 299]` batch, through the server's code path.
pub fn fixture_batch<S: AsRef<str>>(fixtures: &[S], channels: usize) -> (Vec<usize>, Vec<f32>) {
    let pre = Preprocessor::new(INPUT_SIZE, Normalization::INCEPTION);
    let mut data = Vec::new();
    for rel in fixtures {
        let bytes = std::fs::read(testdata(rel.as_ref())).expect("fixture");
        let decoded = decode(&bytes, &DecodeLimits::default()).expect("fixture decodes");
        data.extend(pre.tensor(&decoded.image, channels));
    }
    (vec![fixtures.len(), channels, INPUT_SIZE, INPUT_SIZE], data)
}

fn ort_dylib() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/ort/cpu/libonnxruntime.so.1.31.1"))
    })
}

/// ONNX Runtime allows one environment per process; the tests share it.
fn ort_environment() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = ort_dylib();
        assert!(lib.exists(), "ONNX Runtime not found at {}: run scripts/setup-ort.sh", lib.display());
        ort::init_from(&lib).expect("load ONNX Runtime").with_name("cxr-train-tests").build().expect("ORT environment")
    })
}

pub fn ort_session(onnx: &[u8]) -> Session {
    Session::builder(ort_environment())
        .expect("session builder")
        .with_intra_threads(2)
        .expect("threads")
        .commit_from_memory(onnx)
        .expect("ONNX Runtime accepts the model")
}

/// Runs a served-interface model; checks the output shape and that probabilities are the sigmoid of the logits.
pub fn ort_probabilities(session: &mut Session, shape: &[usize], data: Vec<f32>) -> Vec<f32> {
    let input = OrtTensor::from_array((shape.to_vec(), data)).expect("input tensor");
    let outputs = session.run(ort::inputs![INPUT_NAME => input]).expect("ORT run");
    let (out_shape, probs) = outputs[PROBABILITIES_NAME].try_extract_tensor::<f32>().expect("probabilities");
    assert_eq!(&**out_shape, &[shape[0] as i64, NUM_LABELS as i64]);
    let (_, logits) = outputs[LOGITS_NAME].try_extract_tensor::<f32>().expect("logits");
    for (p, l) in probs.iter().zip(logits) {
        assert!((p - 1.0 / (1.0 + (-l).exp())).abs() < 1e-6, "probabilities are the sigmoid of logits");
    }
    probs.to_vec()
}

/// Runs a model and returns the named outputs, each flattened row-major with its shape.
pub fn ort_outputs(
    session: &mut Session,
    shape: &[usize],
    data: Vec<f32>,
    names: &[&str],
) -> Vec<(Vec<i64>, Vec<f32>)> {
    let input = OrtTensor::from_array((shape.to_vec(), data)).expect("input tensor");
    let outputs = session.run(ort::inputs![INPUT_NAME => input]).expect("ORT run");
    names
        .iter()
        .map(|name| {
            let (shape, values) = outputs[*name].try_extract_tensor::<f32>().unwrap_or_else(|e| panic!("{name}: {e}"));
            (shape.to_vec(), values.to_vec())
        })
        .collect()
}

/// Largest absolute difference relative to the larger magnitude of the two (at least 1).
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().chain(b).fold(1f32, |m, v| m.max(v.abs()));
    max_abs_diff(a, b) / scale
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
