//! Training data: the three dataset layouts the paper uses, decoded and preprocessed by `cxr-core` (the serving
//! code path), and a multi-threaded, seeded, bounded-memory [`loader`].
//!
//! - [`imagefolder`]: ImageNet in the LSVRC2012 layout, with Inception augmentation (pretraining).
//! - [`nih`]: NIH ChestX-ray14 metadata, labels and the patient-disjoint split (fine-tuning, 14 labels).
//! - [`indiana`]: the Indiana University / OpenI collection, normal vs abnormal (fine-tuning, 2 classes).
//! - [`scores`]: a truth and two score columns of any CSV (`cxr-train delong`).
//! - [`loader`]: batches of `[N, C, S, S]` inputs with their targets; corrupt or missing files are counted, named
//!   and skipped, and a run fails once they exceed `--max-bad-fraction`.

pub mod imagefolder;
pub mod indiana;
pub mod loader;
pub mod nih;
pub mod scores;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::Fnv1a;

/// Errors of the data layer. Messages name files, never DICOM header values.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The file's content is not what it should be (a missing column, a bad row); `problem` says what.
    #[error("{path}: {problem}")]
    Format { path: String, problem: String },
    #[error("{path}: {source}")]
    Csv { path: String, source: csv::Error },
    #[error("cannot start the loader threads: {0}")]
    Threads(#[source] rayon::ThreadPoolBuildError),
    #[error("{path}: no usable images found")]
    Empty { path: String },
    #[error(
        "{bad} of {seen} images could not be used ({:.2} % > --max-bad-fraction {:.2} %); first: {}",
        100.0 * *bad as f64 / *seen as f64, 100.0 * max_fraction, examples.join(", ")
    )]
    TooManyBad { bad: usize, seen: usize, max_fraction: f64, examples: Vec<String> },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.display().to_string(), source }
    }

    pub(crate) fn csv(path: &Path, err: csv::Error) -> Self {
        DataError::Csv { path: path.display().to_string(), source: err }
    }
}

/// Reads a text file, transparently un-gzipping `*.gz`.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut out).map_err(|e| DataError::io(path, e))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes)
        .map_err(|_| DataError::Format { path: path.display().to_string(), problem: "not UTF-8".into() })
}

/// Indices of records in each subset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    pub(crate) fn sort(&mut self) {
        self.train.sort_unstable();
        self.val.sort_unstable();
        self.test.sort_unstable();
    }
}

/// Group-disjoint split of item indices (`groups[i]` is item `i`'s patient) with item shares as close to
/// `fractions` (train, val; test gets the rest) as whole groups allow: groups are shuffled with `seed` and assigned
/// in that order by the midpoint of their items, so no group spans two subsets and each subset misses its share by
/// at most half of one group's items.
pub fn split_groups<K: Ord + Clone>(groups: &[K], fractions: (f64, f64), seed: u64) -> Split {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut members: std::collections::BTreeMap<K, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        members.entry(g.clone()).or_default().push(i);
    }
    let mut order: Vec<&Vec<usize>> = members.values().collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let total = groups.len() as f64;
    let (train_target, val_target) = (fractions.0 * total, (fractions.0 + fractions.1) * total);
    let mut split = Split::default();
    let mut assigned = 0usize;
    for items in order {
        let mid = assigned as f64 + items.len() as f64 / 2.0;
        let subset = if mid <= train_target {
            &mut split.train
        } else if mid <= val_target {
            &mut split.val
        } else {
            &mut split.test
        };
        subset.extend(items);
        assigned += items.len();
    }
    split.sort();
    split
}

/// What a sample's target is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// One class index (ImageNet, Indiana normal/abnormal).
    Class(usize),
    /// Independent 0/1 labels (NIH, 14 findings).
    MultiLabel(Vec<f32>),
}

/// How a sample is augmented before it becomes a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Augment {
    /// Evaluation: decode and preprocess only.
    None,
    /// Chest X-rays: random horizontal flip (the paper's only augmentation for fine-tuning).
    Flip,
    /// ImageNet: Inception's distorted bounding-box crop, flip and color distortion.
    Inception,
}

/// One image file and its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub path: PathBuf,
    pub target: Target,
}

/// A fingerprint of a sample list (each file's name and parent folder, and its target, in order): equal lists give
/// equal fingerprints wherever the dataset is mounted, so a run's `config.json` records exactly what it was
/// trained on.
pub fn fingerprint(samples: &[Sample]) -> String {
    let mut hash = Fnv1a::default();
    let mut feed = |bytes: &[u8]| hash.feed(bytes);
    for s in samples {
        let parent = s.path.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        feed(parent.unwrap_or_default().as_bytes());
        feed(b"/");
        feed(s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
        feed(&[0]);
        match &s.target {
            Target::Class(c) => feed(&(*c as u64).to_le_bytes()),
            Target::MultiLabel(v) => v.iter().for_each(|x| feed(&x.to_le_bytes())),
        }
    }
    format!("fnv1a64:{:016x}:{}", hash.0, samples.len())
}
