//! Inference over a split and the run's evaluation: per-class ROC AUC with 95 % CI and mean AUC (plus accuracy for
//! softmax tasks) on the test split, Youden operating thresholds on the validation split, and the prediction
//! CSVs that `compare` reads.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::cause::Cause;
use crate::data::loader::{Loader, file_name};
use crate::data::{Sample, Target};
use crate::model::InceptionV3;
use crate::roc::{AucEstimate, auc_with_ci, youden_threshold};
use crate::run::{TrainConfig, TrainError, load_best};
use crate::train::dataset::{class_names, splits_for};

/// Scores of one split: one row per usable image.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub classes: Vec<String>,
    pub images: Vec<String>,
    /// `truth[i][k]`: 1 when image `i` has class/label `k`.
    pub truth: Vec<Vec<f32>>,
    /// `scores[i][k]`: the probability of class/label `k` (softmax or sigmoid).
    pub scores: Vec<Vec<f32>>,
}

impl Predictions {
    /// Column `k` as (truth, scores) for the statistics.
    pub fn column(&self, k: usize) -> (Vec<bool>, Vec<f64>) {
        (self.truth.iter().map(|t| t[k] >= 0.5).collect(), self.scores.iter().map(|s| f64::from(s[k])).collect())
    }

    /// Writes `image,truth_<class>...,score_<class>...`.
    pub fn write_csv(&self, path: &Path) -> Result<(), TrainError> {
        let mut out = String::from("image");
        for c in &self.classes {
            out += &format!(",truth_{c}");
        }
        for c in &self.classes {
            out += &format!(",score_{c}");
        }
        out.push('\n');
        for ((image, truth), scores) in self.images.iter().zip(&self.truth).zip(&self.scores) {
            out += image;
            for t in truth {
                out += &format!(",{t}");
            }
            for s in scores {
                out += &format!(",{s}");
            }
            out.push('\n');
        }
        std::fs::write(path, out).map_err(|e| TrainError::run_dir(path, e))
    }

    /// Reads a file written by [`write_csv`](Self::write_csv).
    pub fn read_csv(path: &Path) -> Result<Predictions, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::run_dir(path, e))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let classes: Vec<String> = header.iter().filter_map(|h| h.strip_prefix("truth_")).map(str::to_string).collect();
        let k = classes.len();
        if k == 0 || header.len() != 1 + 2 * k {
            return Err(TrainError::run_dir(path, "not a predictions file (image, truth_*, score_* columns)"));
        }
        let mut p = Predictions { classes, images: Vec::new(), truth: Vec::new(), scores: Vec::new() };
        for (n, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            let nums: Result<Vec<f32>, _> = fields.iter().skip(1).map(|f| f.parse::<f32>()).collect();
            match nums {
                Ok(v) if fields.len() == 1 + 2 * k => {
                    p.images.push(fields[0].to_string());
                    p.truth.push(v[..k].to_vec());
                    p.scores.push(v[k..].to_vec());
                }
                _ => return Err(TrainError::run_dir(path, format!("line {}: malformed row", n + 2))),
            }
        }
        Ok(p)
    }
}

/// Runs the network over `samples` (no augmentation) and returns the probabilities.
pub fn predict(
    net: &InceptionV3,
    config: &TrainConfig,
    samples: &[Sample],
    device: &Device,
) -> Result<Predictions, TrainError> {
    let classes = class_names(&config.dataset);
    let net = net.valid();
    let loader = Loader::new(samples.to_vec(), config.loader_config(false))?;
    let (size, channels) = (config.input_size, config.variant.channels());
    let mut p = Predictions { classes: classes.clone(), images: Vec::new(), truth: Vec::new(), scores: Vec::new() };
    for batch in loader.epoch(0) {
        let batch = batch?;
        let n = batch.len();
        let x = Tensor::<4>::from_data(TensorData::new(batch.images, [n, channels, size, size]), device);
        let logits = net.forward(x);
        let probs = if config.task.is_softmax() { softmax(logits, 1) } else { sigmoid(logits) };
        let values: Vec<f32> = probs
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| TrainError::Training(Cause::during("reading probabilities", Cause::debug(e))))?;
        for (row, (i, target)) in values.chunks_exact(classes.len()).zip(batch.indices.iter().zip(&batch.targets)) {
            p.images.push(file_name(&samples[*i].path));
            p.truth.push(match target {
                Target::MultiLabel(v) => v.clone(),
                Target::Class(c) => (0..classes.len()).map(|k| if k == *c { 1.0 } else { 0.0 }).collect(),
            });
            p.scores.push(row.to_vec());
        }
    }
    Ok(p)
}

/// What `evaluate` writes to `evaluation.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEvaluation {
    /// AUC with CI per class/label on the test split (`null` where it had one class only).
    pub test_auc: BTreeMap<String, Option<AucEstimate>>,
    pub test_mean_auc: f64,
    /// Accuracy of the arg-max class on the test split (softmax tasks).
    pub test_accuracy: Option<f64>,
    pub val_mean_auc: f64,
    /// Youden's J threshold per class/label on the validation split.
    pub thresholds: BTreeMap<String, Option<f64>>,
    pub test_images: usize,
    pub val_images: usize,
}

fn mean_auc(p: &Predictions, skip_first_of_two: bool) -> (BTreeMap<String, Option<AucEstimate>>, f64) {
    let mut per = BTreeMap::new();
    let mut sum = 0.0;
    let mut count = 0usize;
    for (k, name) in p.classes.iter().enumerate() {
        // For a 2-class softmax, both columns give the same AUC; report the positive (second) class only.
        if skip_first_of_two && p.classes.len() == 2 && k == 0 {
            continue;
        }
        let (truth, scores) = p.column(k);
        let estimate = auc_with_ci(&truth, &scores).ok();
        if let Some(e) = estimate {
            sum += e.auc;
            count += 1;
        }
        per.insert(name.clone(), estimate);
    }
    (per, if count == 0 { f64::NAN } else { sum / count as f64 })
}

fn accuracy(p: &Predictions) -> f64 {
    let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
    let correct = p.truth.iter().zip(&p.scores).filter(|(t, s)| argmax(t) == argmax(s)).count();
    correct as f64 / p.images.len().max(1) as f64
}

/// Evaluates a finished run: writes `val_predictions.csv`, `test_predictions.csv` and `evaluation.json`.
pub fn evaluate_run(dir: &Path, device: &Device) -> Result<RunEvaluation, TrainError> {
    let (config, net) = load_best(dir, device)?;
    let splits = splits_for(&config.dataset)?;
    if splits.test.is_empty() {
        return Err(TrainError::Config(
            "this run's dataset has no test split (pretraining is measured on validation)".into(),
        ));
    }
    let val = predict(&net, &config, &splits.val, device)?;
    let test = predict(&net, &config, &splits.test, device)?;
    val.write_csv(&dir.join("val_predictions.csv"))?;
    test.write_csv(&dir.join("test_predictions.csv"))?;
    let softmax = config.task.is_softmax();
    let (test_auc, test_mean_auc) = mean_auc(&test, softmax);
    let (_, val_mean_auc) = mean_auc(&val, softmax);
    let thresholds = val
        .classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let (truth, scores) = val.column(k);
            (name.clone(), youden_threshold(&truth, &scores).ok())
        })
        .collect();
    let evaluation = RunEvaluation {
        test_auc,
        test_mean_auc,
        test_accuracy: softmax.then(|| accuracy(&test)),
        val_mean_auc,
        thresholds,
        test_images: test.images.len(),
        val_images: val.images.len(),
    };
    std::fs::write(dir.join("evaluation.json"), serde_json::to_string_pretty(&evaluation).expect("JSON"))
        .map_err(|e| TrainError::run_dir(dir, e))?;
    Ok(evaluation)
}

/// Reads a run's `evaluation.json`.
pub fn read_evaluation(dir: &Path) -> Result<RunEvaluation, TrainError> {
    crate::run::read_run_file(dir, "evaluation.json", "run `cxr-train evaluate` first")
}
