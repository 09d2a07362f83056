//! The deterministic torchvision `inception_v3` state dict of the import tests, regenerated from a seed.
//!
//! `tests/data/torchvision/inception_v3_seeded.json` was recorded once from real torchvision by
//! `tests/python/record_torchvision.py` (see its docstring): the state dict's keys, shapes and dtypes in
//! torchvision's order, the `.pth` container layout `torch.save` wrote, and torchvision's logits for this generator's
//! weights on real fixture X-rays preprocessed by `cxr-core`. `data.pkl` beside it is `torch.save`'s pickle for that
//! state dict. Only the seed and this generator are needed to rebuild the 95 MB of weights, so the repository keeps
//! neither the weights nor torch.
//!
//! Generator (mirrored exactly by the Python script): tensor `key` of `n` elements takes
//! `lo + (hi - lo) · u_i` (in f64, then rounded to f32) for `i = 1..=n`, with `u_i = (mix64(s + i · γ) >> 40)
//! / 2^24`, `s = seed XOR fnv1a64(key)`, `γ = 0x9E3779B97F4A7C15`; `(lo, hi)` by parameter: convolution weights
//! `±√(6 / fan_in)`, linear weights `±1/√fan_in`, batch-norm weight and running variance `[0.5, 1.5)`, batch-norm bias,
//! running mean and linear bias `[-0.1, 0.1)`; `num_batches_tracked` is the int64 scalar 0.

use std::io::Write;
use std::path::{Path, PathBuf};

use cxr_train::hash::{Fnv1a, GOLDEN_GAMMA as GOLDEN, mix64};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Entry {
    pub key: String,
    pub shape: Vec<usize>,
    /// `float32` or `int64`.
    pub dtype: String,
    /// The `.pth` storage holding it (`archive/data/<storage>`).
    pub storage: String,
}

/// Every field but `fixtures` defaults, so that a first recording can start from `{"fixtures": [...]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Recorded {
    pub seed: u64,
    pub torch: String,
    pub torchvision: String,
    pub state_dict: Vec<Entry>,
    /// Zip entries of `torch.save` other than `data.pkl` and the storages: (name under the archive folder, text).
    pub pth_extra_entries: Vec<(String, String)>,
    /// The fixtures (paths under tests/data) whose preprocessed color tensors are the inputs.
    pub fixtures: Vec<String>,
    /// SHA-256 of the input batch (f32 little-endian), to tell a preprocessing change from an import regression.
    pub inputs_sha256: String,
    /// torchvision's logits, one row per fixture.
    pub logits: Vec<Vec<f32>>,
}

pub fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/torchvision"))
}

pub fn recorded() -> Recorded {
    let text = std::fs::read_to_string(dir().join("inception_v3_seeded.json")).expect("recorded torchvision outputs");
    serde_json::from_str(&text).expect("recording parses")
}

/// The value range of a float parameter.
fn range(key: &str, shape: &[usize]) -> (f64, f64) {
    let fan_in = shape.iter().skip(1).product::<usize>().max(1) as f64;
    if key.ends_with("conv.weight") {
        let a = (6.0 / fan_in).sqrt();
        (-a, a)
    } else if key.ends_with("fc.weight") {
        let a = 1.0 / fan_in.sqrt();
        (-a, a)
    } else if key.ends_with("bn.weight") || key.ends_with("running_var") {
        (0.5, 1.5)
    } else {
        (-0.1, 0.1)
    }
}

/// The values of float tensor `key`.
pub fn values(seed: u64, key: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let s = seed ^ Fnv1a::hash(key.as_bytes());
    let (lo, hi) = range(key, shape);
    (1..=n as u64)
        .map(|i| {
            let u = (mix64(s.wrapping_add(i.wrapping_mul(GOLDEN))) >> 40) as f64 / (1u64 << 24) as f64;
            (lo + (hi - lo) * u) as f32
        })
        .collect()
}

/// Little-endian bytes of one entry.
pub fn bytes(seed: u64, entry: &Entry) -> Vec<u8> {
    match entry.dtype.as_str() {
        "float32" => values(seed, &entry.key, &entry.shape).iter().flat_map(|v| v.to_le_bytes()).collect(),
        "int64" => vec![0u8; 8 * entry.shape.iter().product::<usize>()],
        other => panic!("unexpected dtype {other}"),
    }
}

/// Which entries to write, and how to change them (for the error-path tests).
/// One tensor of a state dict file: key, shape, dtype and little-endian bytes.
pub type Tensor = (String, Vec<usize>, String, Vec<u8>);

pub type Edit<'a> = &'a dyn Fn(&Entry) -> Vec<Tensor>;

/// Keeps every entry as it is.
pub fn unchanged(seed: u64) -> impl Fn(&Entry) -> Vec<Tensor> {
    move |e| vec![(e.key.clone(), e.shape.clone(), e.dtype.clone(), bytes(seed, e))]
}

/// Writes a safetensors file (8-byte header length, JSON header, data) of the edited entries.
pub fn write_safetensors(path: &Path, recorded: &Recorded, edit: Edit) {
    let tensors: Vec<_> = recorded.state_dict.iter().flat_map(edit).collect();
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (key, shape, dtype, data) in &tensors {
        let dtype = if dtype == "int64" { "I64" } else { "F32" };
        header.insert(
            key.clone(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, offset + data.len()] }),
        );
        offset += data.len();
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    file.write_all(&header).unwrap();
    for (_, _, _, data) in &tensors {
        file.write_all(data).unwrap();
    }
    file.flush().unwrap();
}

/// Rebuilds the `.pth` `torch.save` wrote: its pickle (`data.pkl`, recorded), the small text entries, and each
/// storage regenerated from the seed, in a stored zip under the archive folder `inception_v3_seeded`.
pub fn write_pth(path: &Path, recorded: &Recorded) {
    use zip::write::SimpleFileOptions;
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let archive = "inception_v3_seeded";
    zip.start_file(format!("{archive}/data.pkl"), options).unwrap();
    zip.write_all(&std::fs::read(dir().join("data.pkl")).expect("recorded pickle")).unwrap();
    for (name, text) in &recorded.pth_extra_entries {
        zip.start_file(format!("{archive}/{name}"), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    for entry in &recorded.state_dict {
        zip.start_file(format!("{archive}/data/{}", entry.storage), options).unwrap();
        zip.write_all(&bytes(recorded.seed, entry)).unwrap();
    }
    zip.finish().unwrap();
}
