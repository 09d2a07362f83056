//! From a run's [`DatasetSpec`] to its train / validation / test sample lists, so that training, `evaluate` and
//! `export` all rebuild the same split from `config.json`.

use crate::data::imagefolder::{scan_class_folders, scan_flat_with_ground_truth};
use crate::data::indiana;
use crate::data::nih;
use crate::data::{DataError, Sample, Split, Target};

use super::Splits;
use crate::run::DatasetSpec;

/// The fractions of the paper's split: 70 % train, 10 % validation, the rest test.
pub const SPLIT_FRACTIONS: (f64, f64) = (0.7, 0.1);

/// Class names of a spec (ImageNet folders; `normal`/`abnormal` for Indiana; the 14 findings for NIH).
pub fn class_names(spec: &DatasetSpec) -> Vec<String> {
    match spec {
        DatasetSpec::ImageFolder { classes, .. } => classes.clone(),
        DatasetSpec::Nih { .. } => cxr_core::labels::LABELS.iter().map(|l| l.to_string()).collect(),
        DatasetSpec::Indiana { .. } => vec!["normal".into(), "abnormal".into()],
        DatasetSpec::Imported { .. } => cxr_core::labels::LABELS.iter().map(|l| l.to_string()).collect(),
    }
}

fn pick(samples: &[Sample], idx: &[usize]) -> Vec<Sample> {
    idx.iter().map(|&i| samples[i].clone()).collect()
}

fn from_split(samples: Vec<Sample>, split: &Split) -> Splits {
    Splits { train: pick(&samples, &split.train), val: pick(&samples, &split.val), test: pick(&samples, &split.test) }
}

/// Where an NIH image is: `images/<Image Index>`, or the same name with `.dcm` when the PNG is absent and a DICOM
/// conversion is there instead.
pub fn nih_image_path(images: &std::path::Path, name: &str) -> std::path::PathBuf {
    let png = images.join(name);
    if png.exists() {
        return png;
    }
    let dicom = png.with_extension("dcm");
    if dicom.exists() { dicom } else { png }
}

/// Builds the three lists. ImageFolder runs have no test list (pretraining reports top-1/top-5 on validation).
pub fn splits_for(spec: &DatasetSpec) -> Result<Splits, DataError> {
    match spec {
        DatasetSpec::ImageFolder { train, val, val_ground_truth, .. } => {
            let train_set = scan_class_folders(train)?;
            let val_samples = match val_ground_truth {
                Some(gt) => scan_flat_with_ground_truth(val, gt, None)?,
                None => {
                    let val_set = scan_class_folders(val)?;
                    if val_set.classes != train_set.classes {
                        return Err(DataError::Format {
                            path: val.display().to_string(),
                            problem: "validation class folders differ from the training ones".into(),
                        });
                    }
                    val_set.samples
                }
            };
            Ok(Splits { train: train_set.samples, val: val_samples, test: Vec::new() })
        }
        DatasetSpec::Nih { csv, images, split_seed, train_val_list, test_list } => {
            let records = nih::read_nih_csv(csv)?;
            let split = match (train_val_list, test_list) {
                (Some(tv), Some(t)) => nih::official_split(&records, tv, t, 0.125, *split_seed)?,
                _ => nih::split_by_patient(&records, SPLIT_FRACTIONS, *split_seed),
            };
            let samples = records
                .iter()
                .map(|r| Sample {
                    path: nih_image_path(images, &r.image),
                    target: Target::MultiLabel(r.targets().to_vec()),
                })
                .collect();
            Ok(from_split(samples, &split))
        }
        DatasetSpec::Indiana { reports, metadata, images, split_seed } => {
            let (records, _) = indiana::derive(&indiana::read_reports(reports)?, &indiana::read_metadata(metadata)?);
            let patients: Vec<&str> = records.iter().map(|r| r.patient.as_str()).collect();
            let split = crate::data::split_groups(&patients, SPLIT_FRACTIONS, *split_seed);
            let samples = records
                .iter()
                .map(|r| Sample { path: r.image_path(images), target: Target::Class(usize::from(!r.normal)) })
                .collect();
            Ok(from_split(samples, &split))
        }
        DatasetSpec::Imported { source, .. } => Err(DataError::Format {
            path: source.display().to_string(),
            problem: "an imported model has no dataset to evaluate on; fine-tune it first (finetune --init-from)"
                .into(),
        }),
    }
}
