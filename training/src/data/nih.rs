//! NIH ChestX-ray14: `Data_Entry_2017*.csv` (plain or gzip) → one [`NihRecord`] per image, and the
//! patient-disjoint train/validation/test split the paper uses (70/10/20 of images, no patient in two subsets),
//! or the official `train_val_list.txt` / `test_list.txt` when given.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use cxr_core::labels::{NUM_LABELS, label_index};

use super::{DataError, Split, read_text};

/// One row of the NIH metadata table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NihRecord {
    /// File name, e.g. `00000001_000.png`.
    pub image: String,
    /// The 14 findings in `cxr_core::labels::LABELS` order; all `false` for `No Finding`.
    pub labels: [bool; NUM_LABELS],
    pub patient: u32,
    /// `PA` or `AP`.
    pub view: String,
}

impl NihRecord {
    /// The labels as 0/1 targets.
    pub fn targets(&self) -> [f32; NUM_LABELS] {
        self.labels.map(|l| if l { 1.0 } else { 0.0 })
    }
}

/// Reads `Data_Entry_2017*.csv` (or `.csv.gz`). Columns are found by their header names, so both the 2017 and the
/// v2020 files work. An unknown finding name is an error: it would otherwise be silently dropped.
pub fn read_nih_csv(path: &Path) -> Result<Vec<NihRecord>, DataError> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| DataError::csv(path, e))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| DataError::Format {
            path: path.display().to_string(),
            problem: format!("no `{name}` column"),
        })
    };
    let (image_col, labels_col, patient_col, view_col) =
        (column("Image Index")?, column("Finding Labels")?, column("Patient ID")?, column("View Position")?);
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| DataError::csv(path, e))?;
        let field = |i: usize| row.get(i).unwrap_or("").trim();
        let bad = |problem: String| DataError::Format {
            path: path.display().to_string(),
            problem: format!("row {}: {problem}", line + 2),
        };
        let mut labels = [false; NUM_LABELS];
        let findings = field(labels_col);
        if findings != "No Finding" {
            for finding in findings.split('|') {
                let i = label_index(finding).ok_or_else(|| bad(format!("unknown finding `{finding}`")))?;
                labels[i] = true;
            }
        }
        let patient =
            field(patient_col).parse().map_err(|_| bad(format!("bad Patient ID `{}`", field(patient_col))))?;
        records.push(NihRecord {
            image: field(image_col).to_string(),
            labels,
            patient,
            view: field(view_col).to_string(),
        });
    }
    Ok(records)
}

/// Counts a correct loader reproduces from the real metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NihFacts {
    pub images: usize,
    pub patients: usize,
    pub no_finding: usize,
    /// Images carrying each label, in `LABELS` order.
    pub per_label: [usize; NUM_LABELS],
    pub views: BTreeMap<String, usize>,
}

/// The counts of a record list.
pub fn facts(records: &[NihRecord]) -> NihFacts {
    let mut per_label = [0; NUM_LABELS];
    let mut views = BTreeMap::new();
    for r in records {
        for (count, &l) in per_label.iter_mut().zip(&r.labels) {
            *count += usize::from(l);
        }
        *views.entry(r.view.clone()).or_insert(0) += 1;
    }
    NihFacts {
        images: records.len(),
        patients: records.iter().map(|r| r.patient).collect::<HashSet<_>>().len(),
        no_finding: records.iter().filter(|r| r.labels.iter().all(|l| !l)).count(),
        per_label,
        views,
    }
}

/// Patient-disjoint split of record indices with image shares as close to `fractions` (train, val; test gets the
/// rest) as whole patients allow (see [`split_groups`](super::split_groups)).
pub fn split_by_patient(records: &[NihRecord], fractions: (f64, f64), seed: u64) -> Split {
    let patients: Vec<u32> = records.iter().map(|r| r.patient).collect();
    super::split_groups(&patients, fractions, seed)
}

/// The official split: `test_list.txt` is the test set; `train_val_list.txt` is divided patient-disjointly into
/// train and validation with `val_fraction` of its images in validation.
pub fn official_split(
    records: &[NihRecord],
    train_val_list: &Path,
    test_list: &Path,
    val_fraction: f64,
    seed: u64,
) -> Result<Split, DataError> {
    let list = |p: &Path| -> Result<HashSet<String>, DataError> {
        Ok(read_text(p)?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
    };
    let (train_val, test) = (list(train_val_list)?, list(test_list)?);
    let mut split = Split::default();
    let mut rest = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if test.contains(&r.image) {
            split.test.push(i);
        } else if train_val.contains(&r.image) {
            rest.push(i);
        }
    }
    let subset: Vec<NihRecord> = rest.iter().map(|&i| records[i].clone()).collect();
    let inner = split_by_patient(&subset, (1.0 - val_fraction, val_fraction), seed);
    split.train = inner.train.iter().map(|&k| rest[k]).collect();
    split.val = inner.val.iter().chain(&inner.test).map(|&k| rest[k]).collect();
    split.sort();
    Ok(split)
}
