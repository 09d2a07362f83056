//! ROC statistics: ROC AUC with DeLong confidence intervals, DeLong's test for two correlated ROC curves
//! (the paper's per-disease comparison), ROC curves and Youden operating thresholds.
//!
//! DeLong uses the fast algorithm of Sun & Xu (2014, *IEEE Signal Processing Letters* 21(11)): the structural
//! components V10/V01 come from mid-ranks instead of the O(m·n) pairwise kernel, so a 20,000-image NIH test split
//! costs milliseconds. [`delong_brute_force`] is the textbook O(m·n) definition, kept as the oracle the fast one is
//! tested against. These are a few dozen lines of arithmetic; no maintained Rust crate implements DeLong.

use serde::{Deserialize, Serialize};

/// Why a statistic cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RocError {
    #[error("{what}: {truth} labels but {scores} scores")]
    Length { what: &'static str, truth: usize, scores: usize },
    #[error("{0}: AUC needs at least one positive and one negative case")]
    OneClass(&'static str),
    #[error("{0}: a score is NaN")]
    NaN(&'static str),
}

/// AUC with its DeLong variance and a 95 % normal-approximation confidence interval (clamped to [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AucEstimate {
    pub auc: f64,
    pub variance: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub positives: usize,
    pub negatives: usize,
}

/// DeLong's test of `H0: AUC_a = AUC_b` for two scores of the same cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeLongTest {
    pub auc_a: f64,
    pub auc_b: f64,
    pub var_a: f64,
    pub var_b: f64,
    pub covariance: f64,
    /// `(auc_a − auc_b) / sqrt(var_a + var_b − 2 cov)`; 0 when both curves are identical.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

impl DeLongTest {
    /// The paper's marks: `**` for p < 0.01, `*` for p < 0.05, nothing otherwise.
    pub fn marks(&self) -> &'static str {
        significance_marks(self.p)
    }
}

/// `**` for p < 0.01, `*` for p < 0.05 (Table 2 of the paper), `""` otherwise.
pub fn significance_marks(p: f64) -> &'static str {
    if p < 0.01 {
        "**"
    } else if p < 0.05 {
        "*"
    } else {
        ""
    }
}

/// 1-based mid-ranks of `x` (ties share the mean of their ranks), as in Sun & Xu's `compute_midrank`.
fn midranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) hold equal values: their 1-based ranks average to (i + j) / 2 + 1.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

fn check(what: &'static str, truth: &[bool], scores: &[f64]) -> Result<(usize, usize), RocError> {
    if truth.len() != scores.len() {
        return Err(RocError::Length { what, truth: truth.len(), scores: scores.len() });
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(RocError::NaN(what));
    }
    let m = truth.iter().filter(|&&t| t).count();
    let n = truth.len() - m;
    if m == 0 || n == 0 {
        return Err(RocError::OneClass(what));
    }
    Ok((m, n))
}

/// The scores of the positive and of the negative cases.
fn split_by_truth(truth: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let pick = |want: bool| truth.iter().zip(scores).filter(|(t, _)| **t == want).map(|(_, s)| *s).collect();
    (pick(true), pick(false))
}

/// Structural components of one score: AUC, V10 (per positive) and V01 (per negative), by mid-ranks.
fn components(truth: &[bool], scores: &[f64], m: usize, n: usize) -> (f64, Vec<f64>, Vec<f64>) {
    let (pos, neg) = split_by_truth(truth, scores);
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let tz = midranks(&all);
    let tx = midranks(&pos);
    let ty = midranks(&neg);
    let (mf, nf) = (m as f64, n as f64);
    let auc = (tz[..m].iter().sum::<f64>() - mf * (mf + 1.0) / 2.0) / (mf * nf);
    let v10 = (0..m).map(|i| (tz[i] - tx[i]) / nf).collect();
    let v01 = (0..n).map(|j| 1.0 - (tz[m + j] - ty[j]) / mf).collect();
    (auc, v10, v01)
}

fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let k = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / k, b.iter().sum::<f64>() / k);
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (k - 1.0)
}

/// Var/cov of two AUCs from their structural components: S10/m + S01/n (DeLong et al. 1988). With a single
/// positive or negative case the sample covariance is undefined; it is taken as 0 then.
fn auc_cov(v10a: &[f64], v01a: &[f64], v10b: &[f64], v01b: &[f64]) -> f64 {
    let (m, n) = (v10a.len(), v01a.len());
    let s10 = if m > 1 { covariance(v10a, v10b) } else { 0.0 };
    let s01 = if n > 1 { covariance(v01a, v01b) } else { 0.0 };
    s10 / m as f64 + s01 / n as f64
}

/// ROC AUC (probability that a random positive scores above a random negative, ties counting ½).
pub fn roc_auc(truth: &[bool], scores: &[f64]) -> Result<f64, RocError> {
    let (m, n) = check("roc_auc", truth, scores)?;
    Ok(components(truth, scores, m, n).0)
}

/// AUC with DeLong's variance and a 95 % confidence interval.
pub fn auc_with_ci(truth: &[bool], scores: &[f64]) -> Result<AucEstimate, RocError> {
    let (m, n) = check("auc_with_ci", truth, scores)?;
    let (auc, v10, v01) = components(truth, scores, m, n);
    let variance = auc_cov(&v10, &v01, &v10, &v01).max(0.0);
    let half = 1.959_963_984_540_054 * variance.sqrt();
    Ok(AucEstimate {
        auc,
        variance,
        ci_low: (auc - half).max(0.0),
        ci_high: (auc + half).min(1.0),
        positives: m,
        negatives: n,
    })
}

/// The test statistic from each score's (AUC, V10, V01).
fn test_from(a: (f64, Vec<f64>, Vec<f64>), b: (f64, Vec<f64>, Vec<f64>)) -> DeLongTest {
    let ((auc_a, v10a, v01a), (auc_b, v10b, v01b)) = (a, b);
    let var_a = auc_cov(&v10a, &v01a, &v10a, &v01a);
    let var_b = auc_cov(&v10b, &v01b, &v10b, &v01b);
    let covariance = auc_cov(&v10a, &v01a, &v10b, &v01b);
    let var = var_a + var_b - 2.0 * covariance;
    let diff = auc_a - auc_b;
    let z = if var > 0.0 {
        diff / var.sqrt()
    } else if diff == 0.0 {
        0.0
    } else {
        diff.signum() * f64::INFINITY
    };
    DeLongTest { auc_a, auc_b, var_a, var_b, covariance, z, p: two_sided_p(z) }
}

/// Fast DeLong test (Sun & Xu 2014): O((m + n) log(m + n)).
pub fn delong(truth: &[bool], a: &[f64], b: &[f64]) -> Result<DeLongTest, RocError> {
    let (m, n) = check("delong (a)", truth, a)?;
    check("delong (b)", truth, b)?;
    Ok(test_from(components(truth, a, m, n), components(truth, b, m, n)))
}

/// DeLong's test from its definition: the kernel ψ(x, y) = 1 if x > y, ½ if equal, 0 otherwise over every
/// positive/negative pair. O(m·n); the oracle for [`delong`].
pub fn delong_brute_force(truth: &[bool], a: &[f64], b: &[f64]) -> Result<DeLongTest, RocError> {
    let (m, n) = check("delong_brute_force (a)", truth, a)?;
    check("delong_brute_force (b)", truth, b)?;
    let psi = |x: f64, y: f64| {
        if x > y {
            1.0
        } else if x == y {
            0.5
        } else {
            0.0
        }
    };
    let comps = |s: &[f64]| {
        let (pos, neg) = split_by_truth(truth, s);
        let v10: Vec<f64> = pos.iter().map(|&x| neg.iter().map(|&y| psi(x, y)).sum::<f64>() / n as f64).collect();
        let v01: Vec<f64> = neg.iter().map(|&y| pos.iter().map(|&x| psi(x, y)).sum::<f64>() / m as f64).collect();
        let auc = v10.iter().sum::<f64>() / m as f64;
        (auc, v10, v01)
    };
    Ok(test_from(comps(a), comps(b)))
}

/// Two-sided p-value of a standard normal statistic: `erfc(|z| / √2)`.
pub fn two_sided_p(z: f64) -> f64 {
    if z.is_infinite() {
        return 0.0;
    }
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// One point of a ROC curve: predicting positive when `score ≥ threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub threshold: f64,
    pub fpr: f64,
    pub tpr: f64,
}

/// The ROC curve, from (0, 0) at threshold +∞ to (1, 1), one point per distinct score.
pub fn roc_curve(truth: &[bool], scores: &[f64]) -> Result<Vec<RocPoint>, RocError> {
    let (m, n) = check("roc_curve", truth, scores)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![RocPoint { threshold: f64::INFINITY, fpr: 0.0, tpr: 0.0 }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            if truth[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint { threshold, fpr: fp as f64 / n as f64, tpr: tp as f64 / m as f64 });
    }
    Ok(points)
}

/// The operating threshold maximising Youden's J = TPR − FPR (the first, i.e. highest, threshold on ties).
pub fn youden_threshold(truth: &[bool], scores: &[f64]) -> Result<f64, RocError> {
    let curve = roc_curve(truth, scores)?;
    let best = curve
        .iter()
        .filter(|p| p.threshold.is_finite())
        .fold(None::<RocPoint>, |best, p| match best {
            Some(b) if b.tpr - b.fpr >= p.tpr - p.fpr => Some(b),
            _ => Some(*p),
        })
        .expect("a two-class curve has a finite threshold");
    Ok(best.threshold)
}

/// One row of a Table-2-style comparison: a label's AUC under model A and model B and DeLong's test between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub label: String,
    pub a: AucEstimate,
    pub b: AucEstimate,
    pub test: DeLongTest,
}

/// Per-label comparison of two models on the same cases. `truth[k][i]` is label `k` of case `i`; `a[k][i]` and
/// `b[k][i]` are the two models' scores. Labels with only one class among the cases are skipped (no AUC exists).
pub fn compare_models(
    labels: &[&str],
    truth: &[Vec<bool>],
    a: &[Vec<f64>],
    b: &[Vec<f64>],
) -> Result<Vec<ComparisonRow>, RocError> {
    let mut rows = Vec::new();
    for (k, label) in labels.iter().enumerate() {
        match delong(&truth[k], &a[k], &b[k]) {
            Ok(test) => rows.push(ComparisonRow {
                label: label.to_string(),
                a: auc_with_ci(&truth[k], &a[k])?,
                b: auc_with_ci(&truth[k], &b[k])?,
                test,
            }),
            Err(RocError::OneClass(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(rows)
}

/// A p-value for a table: three decimals, or scientific notation below 0.001.
fn format_p(p: f64) -> String {
    if p >= 0.001 { format!("{p:.3}") } else { format!("{p:.1e}") }
}

/// The comparison as the paper's Table 2: an `Average` row, then one row per label with both AUCs (95 % CI), z, p
/// and the `*`/`**` marks on the better model's AUC.
pub fn comparison_markdown(rows: &[ComparisonRow], name_a: &str, name_b: &str) -> String {
    let mean = |f: &dyn Fn(&ComparisonRow) -> f64| rows.iter().map(f).sum::<f64>() / rows.len().max(1) as f64;
    let mut out = format!("| disease | AUC {name_a} | AUC {name_b} | z | p |\n|---|---|---|---|---|\n");
    out += &format!("| Average | {:.4} | {:.4} | | |\n", mean(&|r| r.a.auc), mean(&|r| r.b.auc));
    for r in rows {
        let marks = r.test.marks();
        let (mark_a, mark_b) = if r.test.auc_a > r.test.auc_b { (marks, "") } else { ("", marks) };
        out += &format!(
            "| {} | {:.4} ({:.3}–{:.3}){} | {:.4} ({:.3}–{:.3}){} | {:.2} | {} |\n",
            r.label.replace('_', " "),
            r.a.auc,
            r.a.ci_low,
            r.a.ci_high,
            if mark_a.is_empty() { String::new() } else { format!(" {mark_a}") },
            r.b.auc,
            r.b.ci_low,
            r.b.ci_high,
            if mark_b.is_empty() { String::new() } else { format!(" {mark_b}") },
            r.test.z,
            format_p(r.test.p),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Random scores on a coarse grid so that ties are frequent, correlated between a and b.
    fn random_case(rng: &mut StdRng, len: usize) -> (Vec<bool>, Vec<f64>, Vec<f64>) {
        let truth: Vec<bool> = (0..len).map(|_| rng.random_bool(0.3)).collect();
        let a: Vec<f64> = truth
            .iter()
            .map(|&t| {
                let centre: f64 = if t { 0.6 } else { 0.4 };
                ((centre + rng.random_range(-0.5..0.5)) * 20.0).round() / 20.0
            })
            .collect();
        let b: Vec<f64> = a.iter().map(|&x: &f64| ((x + rng.random_range(-0.3..0.3)) * 10.0).round() / 10.0).collect();
        (truth, a, b)
    }

    #[test]
    fn fast_delong_matches_brute_force_with_ties() {
        let mut rng = StdRng::seed_from_u64(2014);
        for case in 0..200 {
            let len = rng.random_range(4..400);
            let (truth, a, b) = random_case(&mut rng, len);
            let (fast, slow) = match (delong(&truth, &a, &b), delong_brute_force(&truth, &a, &b)) {
                (Ok(f), Ok(s)) => (f, s),
                (Err(e1), Err(e2)) => {
                    assert_eq!(e1.to_string().contains("positive"), e2.to_string().contains("positive"));
                    continue;
                }
                other => panic!("case {case}: fast and brute force disagree on validity: {other:?}"),
            };
            for (x, y, what) in [
                (fast.auc_a, slow.auc_a, "auc_a"),
                (fast.auc_b, slow.auc_b, "auc_b"),
                (fast.var_a, slow.var_a, "var_a"),
                (fast.var_b, slow.var_b, "var_b"),
                (fast.covariance, slow.covariance, "cov"),
                (fast.p, slow.p, "p"),
            ] {
                assert!((x - y).abs() <= 1e-12, "case {case} {what}: fast {x} vs brute force {y}");
            }
            if fast.z.is_finite() {
                assert!((fast.z - slow.z).abs() <= 1e-9 * fast.z.abs().max(1.0), "case {case} z");
            }
        }
    }

    #[test]
    fn auc_known_values() {
        let truth = [true, true, false, false];
        assert_eq!(roc_auc(&truth, &[0.9, 0.8, 0.2, 0.1]).unwrap(), 1.0);
        assert_eq!(roc_auc(&truth, &[0.1, 0.2, 0.8, 0.9]).unwrap(), 0.0);
        assert_eq!(roc_auc(&truth, &[0.5, 0.5, 0.5, 0.5]).unwrap(), 0.5);
        // Pairs (pos, neg): (0.9,0.7)=1 (0.9,0.3)=1 (0.3,0.7)=0 (0.3,0.3)=½ → 2.5/4.
        assert_eq!(roc_auc(&truth, &[0.9, 0.3, 0.7, 0.3]).unwrap(), 0.625);
        assert!(matches!(roc_auc(&[true, true], &[0.1, 0.2]), Err(RocError::OneClass(_))));
        assert!(matches!(roc_auc(&[true, false], &[0.1]), Err(RocError::Length { .. })));
        assert!(matches!(roc_auc(&[true, false], &[0.1, f64::NAN]), Err(RocError::NaN(_))));
    }

    #[test]
    fn identical_scores_give_z_zero_and_p_one() {
        let truth = [true, false, true, false, true];
        let s = [0.9, 0.1, 0.4, 0.5, 0.7];
        let t = delong(&truth, &s, &s).unwrap();
        assert_eq!(t.z, 0.0);
        assert_eq!(t.p, 1.0);
        assert_eq!(t.marks(), "");
    }

    #[test]
    fn p_values_and_marks() {
        assert!((two_sided_p(1.959_963_984_540_054) - 0.05).abs() < 1e-12);
        assert!((two_sided_p(-2.575_829_303_548_901) - 0.01).abs() < 1e-12);
        assert_eq!(significance_marks(0.004), "**");
        assert_eq!(significance_marks(0.03), "*");
        assert_eq!(significance_marks(0.2), "");
    }

    #[test]
    fn confidence_interval_contains_auc_and_shrinks_with_n() {
        let mut rng = StdRng::seed_from_u64(5);
        let (t1, a1, _) = random_case(&mut rng, 100);
        let (t2, a2, _) = random_case(&mut rng, 10_000);
        let small = auc_with_ci(&t1, &a1).unwrap();
        let large = auc_with_ci(&t2, &a2).unwrap();
        for e in [small, large] {
            assert!(e.ci_low <= e.auc && e.auc <= e.ci_high);
        }
        assert!(large.ci_high - large.ci_low < small.ci_high - small.ci_low);
    }

    #[test]
    fn roc_and_youden() {
        let truth = [true, true, false, true, false, false];
        let scores = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1];
        let curve = roc_curve(&truth, &scores).unwrap();
        assert_eq!(curve.first().unwrap().tpr, 0.0);
        assert_eq!((curve.last().unwrap().fpr, curve.last().unwrap().tpr), (1.0, 1.0));
        // Threshold 0.6: TPR 1, FPR 1/3 → J = 2/3, the maximum.
        assert_eq!(youden_threshold(&truth, &scores).unwrap(), 0.6);
        // Trapezoid area of the curve equals the rank AUC.
        let area: f64 = curve.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum();
        assert!((area - roc_auc(&truth, &scores).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn comparison_table_marks_the_better_model() {
        let mut rng = StdRng::seed_from_u64(9);
        let len = 2000;
        let truth: Vec<bool> = (0..len).map(|_| rng.random_bool(0.4)).collect();
        // b separates the classes much better than a on label 0; label 1 has one class only and is skipped.
        let a: Vec<f64> = truth.iter().map(|&t| f64::from(u8::from(t)) * 0.2 + rng.random_range(0.0..1.0)).collect();
        let b: Vec<f64> = truth.iter().map(|&t| f64::from(u8::from(t)) * 1.0 + rng.random_range(0.0..1.0)).collect();
        let rows = compare_models(
            &["Atelectasis", "Hernia"],
            &[truth.clone(), vec![false; len]],
            &[a.clone(), a],
            &[b.clone(), b],
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].test.p < 0.01 && rows[0].b.auc > rows[0].a.auc);
        let md = comparison_markdown(&rows, "color", "gray");
        assert!(md.starts_with("| disease | AUC color | AUC gray | z | p |"), "{md}");
        let line = md.lines().find(|l| l.starts_with("| Atelectasis")).unwrap();
        assert!(line.contains(") **"), "{line}");
        assert!(md.contains("| Average |"));
    }
}
