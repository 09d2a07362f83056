//! `compare`: two evaluated runs on the same test images → per-class DeLong tests as the paper's Table 2
//! (`compare.md`), as JSON (`compare.json`) and as one ROC chart per label (`roc-NN-<label>.png`).

use std::path::Path;

use super::evaluate::Predictions;
use super::plot::{Curve, roc_png};
use crate::roc::{ComparisonRow, compare_models, comparison_markdown, roc_curve};
use crate::run::TrainError;

/// Compares the `test_predictions.csv` of runs `a` and `b`; returns the markdown table.
pub fn compare_runs(a: &Path, b: &Path, out: &Path) -> Result<String, TrainError> {
    let pa = Predictions::read_csv(&a.join("test_predictions.csv"))?;
    let pb = Predictions::read_csv(&b.join("test_predictions.csv"))?;
    if pa.images != pb.images || pa.classes != pb.classes || pa.truth != pb.truth {
        return Err(TrainError::Config(format!(
            "{} and {} were not evaluated on the same test images and labels",
            a.display(),
            b.display()
        )));
    }
    // Two-class softmax columns mirror each other: compare the positive class only.
    let first = usize::from(pa.classes.len() == 2);
    let ks: Vec<usize> = (first..pa.classes.len()).collect();
    let labels: Vec<&str> = ks.iter().map(|&k| pa.classes[k].as_str()).collect();
    let truth: Vec<Vec<bool>> = ks.iter().map(|&k| pa.column(k).0).collect();
    let sa: Vec<Vec<f64>> = ks.iter().map(|&k| pa.column(k).1).collect();
    let sb: Vec<Vec<f64>> = ks.iter().map(|&k| pb.column(k).1).collect();
    let rows: Vec<ComparisonRow> = compare_models(&labels, &truth, &sa, &sb)?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let markdown = comparison_markdown(&rows, &name(a), &name(b));
    std::fs::create_dir_all(out).map_err(|e| TrainError::run_dir(out, e))?;
    std::fs::write(out.join("compare.md"), &markdown).map_err(|e| TrainError::run_dir(out, e))?;
    std::fs::write(out.join("compare.json"), serde_json::to_string_pretty(&rows).expect("JSON"))
        .map_err(|e| TrainError::run_dir(out, e))?;
    for (i, row) in rows.iter().enumerate() {
        let k = labels.iter().position(|l| *l == row.label).expect("row label");
        let (ca, cb) = (roc_curve(&truth[k], &sa[k]), roc_curve(&truth[k], &sb[k]));
        let (Ok(ca), Ok(cb)) = (ca, cb) else { continue };
        let path = out.join(format!("roc-{:02}-{}.png", i + 1, row.label));
        let curves = [
            Curve { name: &name(a), auc: row.a.auc, points: &ca },
            Curve { name: &name(b), auc: row.b.auc, points: &cb },
        ];
        let title = format!("{}: DeLong p = {:.3}{}", row.label.replace('_', " "), row.test.p, row.test.marks());
        roc_png(&path, &title, &curves).map_err(|e| TrainError::run_dir(&path, e))?;
    }
    Ok(markdown)
}
