//! Live A/B statistics of the color and gray models, served at `GET /v1/ab`.
//!
//! Every time both models classify the same image — a `model=both` request, or a shadow run beside a single-model
//! request (see [`crate::inference::shadow`]) — the pair becomes a [`PairedSample`]: each model's latency (queue wait plus
//! inference, and end to end from the complete request body), whether both ranked the same finding highest, and
//! the largest and mean |p_gray − p_color| over the 14 findings. [`AbStats`] keeps the last
//! [`DEFAULT_WINDOW`] samples in a ring buffer and summarises them on demand ([`AbSummary`]):
//!
//! - latency percentiles p50/p95/p99 per model (linear interpolation between order statistics);
//! - the gray/color latency ratio as a ratio of medians, with a 95 % percentile-bootstrap confidence interval
//!   ([`BOOTSTRAP_RESAMPLES`] resamples of the *pairs*, so the correlation between the two models' latencies on the
//!   same request is kept). The generator is seeded with [`BOOTSTRAP_SEED`], so the same samples always give the
//!   same interval;
//! - mean and max |Δp| and the top-finding agreement rate.
//!
//! The summary is cached until the next sample arrives: a resampling over a full window takes a fraction of a
//! second, which `GET /v1/ab` spends on the blocking pool.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cxr_core::stats::percentile;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::millis;

/// Paired samples kept for the summary.
pub const DEFAULT_WINDOW: usize = 10_000;
/// Bootstrap resamples behind each confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1_000;
/// Seed of the bootstrap's generator: the same samples always give the same interval.
pub const BOOTSTRAP_SEED: u64 = 0x00C0_FFEE_0A0B;

/// Where a pair of results came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A `model=both` request: both results went to the client.
    Both,
    /// A shadow run: the second model ran in the background on the same preprocessed image.
    Shadow,
}

impl Source {
    /// The name used in metric labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Both => "both",
            Source::Shadow => "shadow",
        }
    }
}

/// One model's result on an image, as compared by [`AbStats::record`].
#[derive(Debug, Clone, Copy)]
pub struct ModelSide<'a> {
    /// Probabilities in label order.
    pub probabilities: &'a [f32],
    /// Queue wait plus inference: the time the model itself cost.
    pub model_latency: Duration,
    /// From the complete request body to this model's result (decode and preprocessing included).
    pub end_to_end: Duration,
}

/// How two results on the same image differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// |p_gray − p_color| per finding, in label order.
    pub abs_diff: Vec<f32>,
    /// Whether both models ranked the same finding highest.
    pub top_finding_agrees: bool,
    pub max_abs_diff: f32,
    pub mean_abs_diff: f32,
}

/// Compares the color and gray probabilities of one image.
pub fn compare(color: &[f32], gray: &[f32]) -> Comparison {
    let abs_diff: Vec<f32> = color.iter().zip(gray).map(|(c, g)| (g - c).abs()).collect();
    let max_abs_diff = abs_diff.iter().copied().fold(0.0, f32::max);
    let mean_abs_diff = if abs_diff.is_empty() { 0.0 } else { abs_diff.iter().sum::<f32>() / abs_diff.len() as f32 };
    Comparison { top_finding_agrees: argmax(color) == argmax(gray), abs_diff, max_abs_diff, mean_abs_diff }
}

/// Index of the largest value (the first on ties); `None` for an empty slice.
fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .fold(None, |best, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// One paired observation, latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedSample {
    pub source: Source,
    pub color_model_ms: f64,
    pub gray_model_ms: f64,
    pub color_end_to_end_ms: f64,
    pub gray_end_to_end_ms: f64,
    pub top_finding_agrees: bool,
    pub max_abs_diff: f32,
    pub mean_abs_diff: f32,
}

/// The live A/B window: a bounded ring buffer of paired samples.
pub struct AbStats {
    state: Mutex<Window>,
}

struct Window {
    samples: VecDeque<PairedSample>,
    capacity: usize,
    /// Samples ever recorded (evicted ones included); also the version of `cached`.
    recorded: u64,
    cached: Option<(u64, Arc<AbSummary>)>,
}

impl Default for AbStats {
    fn default() -> Self {
        AbStats::new(DEFAULT_WINDOW)
    }
}

impl AbStats {
    /// An empty window keeping the last `capacity` samples (at least one).
    pub fn new(capacity: usize) -> AbStats {
        let capacity = capacity.max(1);
        AbStats {
            state: Mutex::new(Window {
                samples: VecDeque::with_capacity(capacity.min(DEFAULT_WINDOW)),
                capacity,
                recorded: 0,
                cached: None,
            }),
        }
    }

    /// Compares a pair of results, adds it to the window and returns the comparison.
    pub fn record(&self, source: Source, color: &ModelSide<'_>, gray: &ModelSide<'_>) -> Comparison {
        let comparison = compare(color.probabilities, gray.probabilities);
        self.push(PairedSample {
            source,
            color_model_ms: millis(color.model_latency),
            gray_model_ms: millis(gray.model_latency),
            color_end_to_end_ms: millis(color.end_to_end),
            gray_end_to_end_ms: millis(gray.end_to_end),
            top_finding_agrees: comparison.top_finding_agrees,
            max_abs_diff: comparison.max_abs_diff,
            mean_abs_diff: comparison.mean_abs_diff,
        });
        comparison
    }

    /// Adds a sample, evicting the oldest when the window is full.
    pub fn push(&self, sample: PairedSample) {
        let mut window = self.lock();
        if window.samples.len() == window.capacity {
            window.samples.pop_front();
        }
        window.samples.push_back(sample);
        window.recorded += 1;
    }

    /// Samples in the window.
    pub fn len(&self) -> usize {
        self.lock().samples.len()
    }

    /// Whether no sample was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The summary of the current window (computed outside the lock, cached until the next sample).
    pub fn summary(&self) -> Arc<AbSummary> {
        let (version, samples, capacity) = {
            let window = self.lock();
            if let Some((version, summary)) = &window.cached
                && *version == window.recorded
            {
                return Arc::clone(summary);
            }
            (window.recorded, window.samples.iter().copied().collect::<Vec<_>>(), window.capacity)
        };
        let summary = Arc::new(summarize(&samples, capacity, version));
        let mut window = self.lock();
        if window.recorded == version {
            window.cached = Some((version, Arc::clone(&summary)));
        }
        summary
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Body of `GET /v1/ab`. With no samples, `count` is 0 and every statistic is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbSummary {
    /// Paired samples in the window.
    pub count: usize,
    /// Most samples the window keeps (the oldest are evicted first).
    pub window: usize,
    /// Samples recorded since the server started, evicted ones included.
    pub recorded_total: u64,
    /// Where the samples in the window came from.
    pub sources: SourceCounts,
    /// Latency percentiles per model.
    pub latency_ms: Option<ModelLatencies>,
    /// Median gray latency over median color latency, with its bootstrap interval.
    pub gray_color_latency_ratio: Option<LatencyRatios>,
    /// Mean over the samples of the mean |Δp| over the 14 findings.
    pub mean_abs_diff: Option<f64>,
    /// Largest |Δp| of any finding in any sample.
    pub max_abs_diff: Option<f64>,
    /// Fraction of samples whose highest-ranked finding is the same for both models.
    pub top_finding_agreement: Option<f64>,
}

/// Samples by [`Source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SourceCounts {
    pub both: usize,
    pub shadow: usize,
}

/// Latencies of both models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelLatencies {
    pub color: Latencies,
    pub gray: Latencies,
}

/// One model's latency percentiles under two definitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latencies {
    /// Queue wait plus inference.
    pub model: Percentiles,
    /// From the complete request body to the model's result.
    pub end_to_end: Percentiles,
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The gray/color ratio of median latencies under both latency definitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyRatios {
    /// Of queue wait plus inference; `null` when the color median is 0.
    pub model: Option<RatioEstimate>,
    /// Of end-to-end latency; `null` when the color median is 0.
    pub end_to_end: Option<RatioEstimate>,
    /// Bootstrap resamples behind each interval.
    pub resamples: usize,
    /// Seed of the bootstrap's generator.
    pub seed: u64,
}

/// A ratio with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatioEstimate {
    /// The ratio of medians on the samples themselves (below 1: gray is faster).
    pub estimate: f64,
    /// The 2.5th and 97.5th percentiles of the bootstrap distribution.
    pub ci95: [f64; 2],
}

/// Summarises a window of samples (oldest first).
pub fn summarize(samples: &[PairedSample], window: usize, recorded_total: u64) -> AbSummary {
    let count = samples.len();
    let shadow = samples.iter().filter(|s| s.source == Source::Shadow).count();
    let sources = SourceCounts { both: count - shadow, shadow };
    if count == 0 {
        return AbSummary {
            count,
            window,
            recorded_total,
            sources,
            latency_ms: None,
            gray_color_latency_ratio: None,
            mean_abs_diff: None,
            max_abs_diff: None,
            top_finding_agreement: None,
        };
    }
    let column = |f: fn(&PairedSample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let color_model = column(|s| s.color_model_ms);
    let gray_model = column(|s| s.gray_model_ms);
    let color_e2e = column(|s| s.color_end_to_end_ms);
    let gray_e2e = column(|s| s.gray_end_to_end_ms);
    let latencies = |model: &[f64], e2e: &[f64]| Latencies { model: percentiles(model), end_to_end: percentiles(e2e) };
    let [model_ratio, e2e_ratio] =
        bootstrap_ratios([(&gray_model, &color_model), (&gray_e2e, &color_e2e)], BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    let agreeing = samples.iter().filter(|s| s.top_finding_agrees).count();
    AbSummary {
        count,
        window,
        recorded_total,
        sources,
        latency_ms: Some(ModelLatencies {
            color: latencies(&color_model, &color_e2e),
            gray: latencies(&gray_model, &gray_e2e),
        }),
        gray_color_latency_ratio: Some(LatencyRatios {
            model: model_ratio,
            end_to_end: e2e_ratio,
            resamples: BOOTSTRAP_RESAMPLES,
            seed: BOOTSTRAP_SEED,
        }),
        mean_abs_diff: Some(samples.iter().map(|s| f64::from(s.mean_abs_diff)).sum::<f64>() / count as f64),
        max_abs_diff: Some(samples.iter().map(|s| f64::from(s.max_abs_diff)).fold(0.0, f64::max)),
        top_finding_agreement: Some(agreeing as f64 / count as f64),
    }
}

/// p50, p95 and p99 of a non-empty sample of milliseconds, rounded to the microsecond.
fn percentiles(values: &[f64]) -> Percentiles {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let at = |p: f64| (percentile(&sorted, p) * 1e3).round() / 1e3;
    Percentiles { p50: at(50.0), p95: at(95.0), p99: at(99.0) }
}

/// The median, reordering `values` in place; `NaN` when empty.
fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lower, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        // The other middle value is the largest of the lower half.
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + upper) / 2.0
    }
}

/// Ratios of medians `median(numerator) / median(denominator)` for several pairs of columns of the same paired
/// samples, each with a percentile-bootstrap 95 % interval. Every resample draws one set of row indices (with
/// replacement) and applies it to all columns, keeping the pairing. `None` where the denominator's median is not
/// positive.
pub fn bootstrap_ratios<const K: usize>(
    columns: [(&[f64], &[f64]); K],
    resamples: usize,
    seed: u64,
) -> [Option<RatioEstimate>; K] {
    let ratio = |numerator: &mut [f64], denominator: &mut [f64]| {
        let (top, bottom) = (median_in_place(numerator), median_in_place(denominator));
        (bottom > 0.0 && top.is_finite()).then(|| top / bottom)
    };
    let estimates = columns.map(|(numerator, denominator)| ratio(&mut numerator.to_vec(), &mut denominator.to_vec()));
    let n = columns.iter().map(|(a, b)| a.len().min(b.len())).min().unwrap_or(0);
    if n == 0 {
        return [None; K];
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let mut indices = vec![0usize; n];
    let mut numerator = vec![0.0; n];
    let mut denominator = vec![0.0; n];
    let mut distributions: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(resamples));
    for _ in 0..resamples {
        for index in indices.iter_mut() {
            *index = rng.random_range(0..n);
        }
        for (k, (top, bottom)) in columns.iter().enumerate() {
            for (slot, &i) in indices.iter().enumerate() {
                numerator[slot] = top[i];
                denominator[slot] = bottom[i];
            }
            if let Some(r) = ratio(&mut numerator, &mut denominator) {
                distributions[k].push(r);
            }
        }
    }
    let mut result = [None; K];
    for (k, slot) in result.iter_mut().enumerate() {
        let (Some(estimate), distribution) = (estimates[k], &mut distributions[k]) else { continue };
        if distribution.is_empty() {
            continue;
        }
        distribution.sort_unstable_by(f64::total_cmp);
        *slot = Some(RatioEstimate { estimate, ci95: [percentile(distribution, 2.5), percentile(distribution, 97.5)] });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(source: Source, color_ms: f64, gray_ms: f64) -> PairedSample {
        PairedSample {
            source,
            color_model_ms: color_ms,
            gray_model_ms: gray_ms,
            color_end_to_end_ms: color_ms + 10.0,
            gray_end_to_end_ms: gray_ms + 10.0,
            top_finding_agrees: true,
            max_abs_diff: 0.1,
            mean_abs_diff: 0.05,
        }
    }

    #[test]
    fn medians_of_odd_and_even_samples() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median_in_place(&mut []).is_nan());
    }

    /// A small deterministic generator for synthetic data, independent of the bootstrap's.
    fn noise(state: &mut u64) -> f64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` synthetic pairs: color latencies spread over 80–160 ms with a long tail, gray 0.8 × color times
    /// independent ±10 % noise (so gray is about 20 % faster).
    fn synthetic_pairs(n: usize, state: &mut u64) -> (Vec<f64>, Vec<f64>) {
        let color: Vec<f64> = (0..n).map(|_| 80.0 + 80.0 * noise(state) + 40.0 * noise(state).powi(8)).collect();
        let gray = color.iter().map(|c| 0.8 * c * (0.9 + 0.2 * noise(state))).collect();
        (gray, color)
    }

    #[test]
    fn the_bootstrap_interval_contains_the_true_ratio() {
        // The population's ratio of medians, from a very large draw of the same process.
        let mut state = 42;
        let (mut gray_all, mut color_all) = synthetic_pairs(400_000, &mut state);
        let truth = median_in_place(&mut gray_all) / median_in_place(&mut color_all);
        assert!((truth - 0.8).abs() < 0.01, "{truth}");

        let (gray, color) = synthetic_pairs(400, &mut state);
        let [estimate] = bootstrap_ratios([(&gray, &color)], BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
        let estimate = estimate.expect("positive medians");
        let [low, high] = estimate.ci95;
        assert!(low <= truth && truth <= high, "{truth} not in {estimate:?}");
        assert!(low <= estimate.estimate && estimate.estimate <= high, "{estimate:?}");
        assert!(high - low < 0.1, "a 400-pair interval is narrow: {estimate:?}");

        // More pairs, a narrower interval, still around the truth.
        let (gray_many, color_many) = synthetic_pairs(4_000, &mut state);
        let [many] = bootstrap_ratios([(&gray_many, &color_many)], BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
        let many = many.unwrap();
        assert!(many.ci95[0] <= truth && truth <= many.ci95[1], "{truth} not in {many:?}");
        assert!(many.ci95[1] - many.ci95[0] < high - low, "{many:?} vs {estimate:?}");
    }

    #[test]
    fn the_interval_covers_the_truth_in_most_repetitions() {
        // A 95 % interval must miss the truth only occasionally: out of 40 independent 200-pair experiments, allow
        // at most 6 misses (the expected count is 2; 7 or more has probability 0.34 % for a true 95 % interval).
        let mut state = 7;
        let (mut gray_all, mut color_all) = synthetic_pairs(400_000, &mut state);
        let truth = median_in_place(&mut gray_all) / median_in_place(&mut color_all);
        let misses = (0..40)
            .filter(|&experiment| {
                let (gray, color) = synthetic_pairs(200, &mut state);
                let [estimate] = bootstrap_ratios([(&gray, &color)], 400, experiment);
                let [low, high] = estimate.unwrap().ci95;
                !(low <= truth && truth <= high)
            })
            .count();
        println!("{misses} of 40 bootstrap intervals missed the true ratio {truth:.4}");
        assert!(misses <= 6, "{misses} of 40 intervals missed {truth}");
    }

    #[test]
    fn the_bootstrap_is_deterministic_and_tolerates_a_zero_median() {
        let color = [10.0, 12.0, 11.0, 13.0, 9.0];
        let gray = [8.0, 9.0, 9.5, 10.0, 7.0];
        let a = bootstrap_ratios([(&gray[..], &color[..])], 200, 7);
        let b = bootstrap_ratios([(&gray[..], &color[..])], 200, 7);
        assert_eq!(a, b);
        let zeros = [0.0; 5];
        assert_eq!(bootstrap_ratios([(&gray[..], &zeros[..])], 200, 7), [None]);
        let none: [Option<RatioEstimate>; 1] = bootstrap_ratios([(&[][..], &[][..])], 200, 7);
        assert_eq!(none, [None]);
    }

    #[test]
    fn the_window_is_bounded_and_keeps_the_newest() {
        let stats = AbStats::new(4);
        for i in 0..10 {
            let source = if i < 7 { Source::Both } else { Source::Shadow };
            stats.push(sample(source, f64::from(i), f64::from(i)));
        }
        assert_eq!(stats.len(), 4);
        let summary = stats.summary();
        assert_eq!((summary.count, summary.window, summary.recorded_total), (4, 4, 10));
        assert_eq!(summary.sources, SourceCounts { both: 1, shadow: 3 });
        // Samples 6..=9 remain.
        let latency = summary.latency_ms.as_ref().unwrap();
        assert_eq!(latency.color.model.p50, 7.5);
        assert_eq!(latency.gray.end_to_end.p50, 17.5);
    }

    #[test]
    fn an_empty_window_summarises_to_nulls() {
        let summary = AbStats::default().summary();
        assert_eq!(summary.count, 0);
        assert_eq!(summary.window, DEFAULT_WINDOW);
        let json = serde_json::to_value(&*summary).unwrap();
        for key in ["latency_ms", "gray_color_latency_ratio", "mean_abs_diff", "max_abs_diff", "top_finding_agreement"]
        {
            assert!(json[key].is_null(), "{key}: {json}");
        }
        assert_eq!(json["sources"], serde_json::json!({"both": 0, "shadow": 0}));
    }

    #[test]
    fn recorded_pairs_are_compared_and_summarised() {
        let stats = AbStats::new(100);
        let color = [0.1, 0.9, 0.2];
        let gray = [0.2, 0.6, 0.2];
        fn side(probabilities: &[f32], ms: u64) -> ModelSide<'_> {
            ModelSide {
                probabilities,
                model_latency: Duration::from_millis(ms),
                end_to_end: Duration::from_millis(ms + 5),
            }
        }
        let comparison = stats.record(Source::Both, &side(&color, 100), &side(&gray, 80));
        assert!(comparison.top_finding_agrees);
        assert!((comparison.max_abs_diff - 0.3).abs() < 1e-6);
        assert!((comparison.mean_abs_diff - 0.4 / 3.0).abs() < 1e-6);
        let disagreeing = stats.record(Source::Shadow, &side(&[0.9, 0.1, 0.0], 100), &side(&[0.1, 0.9, 0.0], 80));
        assert!(!disagreeing.top_finding_agrees);

        let summary = stats.summary();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.top_finding_agreement, Some(0.5));
        assert!((summary.max_abs_diff.unwrap() - 0.8).abs() < 1e-6);
        let ratio = summary.gray_color_latency_ratio.as_ref().unwrap().model.unwrap();
        assert!((ratio.estimate - 0.8).abs() < 1e-9, "{ratio:?}");
        assert!(ratio.ci95[0] <= 0.8 && 0.8 <= ratio.ci95[1], "{ratio:?}");
        // Cached until the next sample.
        assert!(Arc::ptr_eq(&summary, &stats.summary()));
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5]), Some(1));
        assert_eq!(argmax(&[]), None);
    }
}
