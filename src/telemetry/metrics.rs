//! Prometheus metrics, served at `GET /metrics` in the text exposition format 0.0.4.
//!
//! [`Metrics`] owns its own [`Registry`] (never the process-global one), so that several servers can run in one
//! process (the integration tests do) without sharing counters. [`crate::state::AppState`] holds it; the pieces that
//! measure something get either the whole [`Metrics`] or, for the engine's worker threads, the per-model
//! [`ModelMetrics`] handles.
//!
//! Every name starts with `cxr_`. Durations are seconds in histograms with [`latency_buckets`] (1 ms to ~16 s).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `cxr_http_requests_total` | counter | `route`, `method`, `status` | responses by route template (or `unmatched`) |
//! | `cxr_http_request_duration_seconds` | histogram | `route` | request handling time |
//! | `cxr_http_requests_in_flight` | gauge | | requests being handled (the scrape included) |
//! | `cxr_errors_total` | counter | `type` | problem responses, by problem type slug |
//! | `cxr_decode_duration_seconds` | histogram | `model` | decoding the image each model ran on |
//! | `cxr_preprocess_duration_seconds` | histogram | `model` | resizing and normalising |
//! | `cxr_queue_wait_seconds` | histogram | `model` | from queueing a job to the start of its batch |
//! | `cxr_inference_duration_seconds` | histogram | `model` | one ONNX Runtime run (one observation per batch) |
//! | `cxr_end_to_end_duration_seconds` | histogram | `model` | from the complete body to the model's result |
//! | `cxr_batch_size` | histogram | `model` | images per session run |
//! | `cxr_queue_depth` | gauge | `model` | jobs waiting for the worker (read at scrape time) |
//! | `cxr_pending_requests` | gauge | `model` | admitted requests still decoding/preprocessing |
//! | `cxr_dropped_jobs_total` | counter | `model` | jobs skipped because their client went away |
//! | `cxr_cold_batch_shapes_total` | counter | `model` | session runs at a padded batch size not warmed at startup (must stay 0) |
//! | `cxr_model_info` | gauge (1) | `model`, `version`, `provider`, `trained` | the loaded models |
//! | `cxr_shadow_duration_seconds` | histogram | `model` | shadow runs, from the complete body to the result |
//! | `cxr_shadow_failures_total` | counter | `model` | shadow runs that failed (logged) |
//! | `cxr_shadow_skipped_total` | counter | `model` | shadow runs skipped because the model's queue was full |
//! | `cxr_ab_abs_diff` | histogram | `label`, `source` | per-finding \|p_gray − p_color\| of paired results |
//! | `cxr_ab_top_finding_total` | counter | `agree`, `source` | whether both models ranked the same finding first |
//! | `cxr_process_resident_memory_bytes` | gauge | | resident set size, from `/proc/self/statm` at scrape time |
//! | `cxr_process_cpu_seconds_total` | counter | | user + system CPU time, from `/proc/self/stat` |
//!
//! `source` is `both` (a `model=both` request) or `shadow` (a shadow run beside a single-model request).

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use cxr_core::card::ModelVariant;
use cxr_core::labels::LABELS;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Counter, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::ab::{AbStats, Comparison, ModelSide, Source};
use super::procfs;
use crate::problem::ProblemKind;
use cxr_engine::{Engine, WorkerObserver};

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The `route` label of requests that matched no route (their raw paths would make the label unbounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Histogram buckets for durations: 1 ms doubling up to 16.384 s (15 buckets, plus `+Inf`).
pub fn latency_buckets() -> Vec<f64> {
    (0..15).map(|k| 0.001 * f64::from(1u32 << k)).collect()
}

/// Histogram buckets for batch sizes, up to the largest GPU batches.
fn batch_size_buckets() -> Vec<f64> {
    vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 256.0]
}

/// Histogram buckets for probability differences, from numerical noise to complete disagreement.
fn abs_diff_buckets() -> Vec<f64> {
    vec![1e-6, 1e-5, 1e-4, 1e-3, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
}

/// Every metric of one server, registered in its own registry.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    errors: IntCounterVec,
    decode: HistogramVec,
    preprocess: HistogramVec,
    end_to_end: HistogramVec,
    queue_wait: HistogramVec,
    inference: HistogramVec,
    batch_size: HistogramVec,
    queue_depth: IntGaugeVec,
    pending: IntGaugeVec,
    dropped_jobs: IntCounterVec,
    cold_shapes: IntCounterVec,
    model_info: IntGaugeVec,
    shadow_duration: HistogramVec,
    shadow_failures: IntCounterVec,
    shadow_skipped: IntCounterVec,
    ab_abs_diff: HistogramVec,
    ab_top_finding: IntCounterVec,
    dicomweb: DicomWebMetrics,
}

/// What happened to a result object on its way to the PACS (`cxr_dicomweb_results_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Entered the outbound queue.
    Queued,
    /// Accepted by the PACS.
    Pushed,
    /// Refused by the PACS for good (a 4xx other than 408 / 429).
    Failed,
    /// Never queued: the queue was full.
    Dropped,
}

cxr_core::keywords!(DeliveryOutcome, "delivery outcome", {
    Queued => "queued",
    Pushed => "pushed",
    Failed => "failed",
    Dropped => "dropped",
});

/// The DICOMweb intake's and the delivery's metrics.
#[derive(Debug, Clone)]
struct DicomWebMetrics {
    instances: IntCounterVec,
    results: IntCounterVec,
    retries: IntCounter,
    queue: IntGauge,
    push_duration: Histogram,
}

impl DicomWebMetrics {
    fn new(r: &Registrar) -> DicomWebMetrics {
        DicomWebMetrics {
            instances: r.counter(
                "cxr_dicomweb_instances_total",
                "Instances received by STOW-RS, by outcome (accepted, or the failure reason's name).",
                &["outcome"],
            ),
            results: r.counter(
                "cxr_dicomweb_results_total",
                "Result objects (SR, Secondary Capture) by delivery outcome: queued, pushed, failed, dropped.",
                &["outcome"],
            ),
            retries: r.add(
                IntCounter::new("cxr_dicomweb_push_retries_total", "Pushes to the PACS that will be retried.")
                    .expect("valid metric definition"),
            ),
            queue: r.add(
                IntGauge::new("cxr_dicomweb_queue_depth", "Result objects waiting to be pushed to the PACS.")
                    .expect("valid metric definition"),
            ),
            push_duration: r.add(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "cxr_dicomweb_push_duration_seconds",
                        "Time of one successful STOW-RS push of a result object to the PACS.",
                    )
                    .buckets(latency_buckets()),
                )
                .expect("valid metric definition"),
            ),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered and the per-model and per-problem series created at zero (so
    /// that rates and absent series are not confused).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let metrics = Metrics {
            http_requests: r.counter(
                "cxr_http_requests_total",
                "HTTP responses by route template, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: r.histogram(
                "cxr_http_request_duration_seconds",
                "Time to handle an HTTP request, by route template.",
                &["route"],
                latency_buckets(),
            ),
            http_in_flight: r.add(
                IntGauge::with_opts(Opts::new("cxr_http_requests_in_flight", "HTTP requests being handled."))
                    .expect("valid metric definition"),
            ),
            errors: r.counter(
                "cxr_errors_total",
                "Problem responses by problem type (the slug of its URI).",
                &["type"],
            ),
            decode: r.model_latency(
                "cxr_decode_duration_seconds",
                "Time to decode the image a model ran on (a model=both request counts for each model).",
            ),
            preprocess: r.model_latency(
                "cxr_preprocess_duration_seconds",
                "Time to resize and normalise the image for a model.",
            ),
            end_to_end: r.model_latency(
                "cxr_end_to_end_duration_seconds",
                "Time from the complete request body to a model's result.",
            ),
            queue_wait: r.model_latency(
                "cxr_queue_wait_seconds",
                "Time a job waited from entering its model's queue to the start of its batch.",
            ),
            inference: r.model_latency(
                "cxr_inference_duration_seconds",
                "Wall time of one ONNX Runtime session run (one observation per batch).",
            ),
            batch_size: r.histogram(
                "cxr_batch_size",
                "Images stacked into one ONNX Runtime session run.",
                &["model"],
                batch_size_buckets(),
            ),
            queue_depth: r.model_gauge("cxr_queue_depth", "Jobs waiting in a model's queue (read at scrape time)."),
            pending: r.model_gauge(
                "cxr_pending_requests",
                "Requests admitted for a model whose image is still being decoded or preprocessed.",
            ),
            dropped_jobs: r
                .model_counter("cxr_dropped_jobs_total", "Queued jobs dropped unrun because their client went away."),
            cold_shapes: r.model_counter(
                "cxr_cold_batch_shapes_total",
                "Session runs at a padded batch size that was not warmed before ready (should stay 0).",
            ),
            model_info: r.gauge(
                "cxr_model_info",
                "The loaded models (value 1).",
                &["model", "version", "provider", "trained"],
            ),
            shadow_duration: r.model_latency(
                "cxr_shadow_duration_seconds",
                "Shadow runs: time from the complete request body to the shadow model's result.",
            ),
            shadow_failures: r.model_counter("cxr_shadow_failures_total", "Shadow runs that failed (see the log)."),
            shadow_skipped: r.model_counter(
                "cxr_shadow_skipped_total",
                "Shadow runs skipped because the shadow model's queue was full.",
            ),
            ab_abs_diff: r.histogram(
                "cxr_ab_abs_diff",
                "Absolute difference between the gray and color probability of one finding, per paired result.",
                &["label", "source"],
                abs_diff_buckets(),
            ),
            ab_top_finding: r.counter(
                "cxr_ab_top_finding_total",
                "Paired results by whether both models ranked the same finding highest.",
                &["agree", "source"],
            ),
            dicomweb: DicomWebMetrics::new(&r),
            registry,
        };
        metrics
            .registry
            .register(Box::new(ProcessCollector::new()))
            .expect("the process metrics are registered once per registry");
        metrics.create_series();
        metrics
    }

    /// Creates the label combinations known in advance, at zero.
    fn create_series(&self) {
        for variant in ModelVariant::ALL {
            let model = [variant.as_str()];
            for histogram in [
                &self.decode,
                &self.preprocess,
                &self.end_to_end,
                &self.queue_wait,
                &self.inference,
                &self.batch_size,
                &self.shadow_duration,
            ] {
                histogram.with_label_values(&model);
            }
            for counter in [&self.dropped_jobs, &self.cold_shapes, &self.shadow_failures, &self.shadow_skipped] {
                counter.with_label_values(&model);
            }
            self.queue_depth.with_label_values(&model);
            self.pending.with_label_values(&model);
        }
        for kind in ProblemKind::ALL {
            self.errors.with_label_values(&[kind.slug()]);
        }
        for source in [Source::Both, Source::Shadow] {
            for agree in ["true", "false"] {
                self.ab_top_finding.with_label_values(&[agree, source.as_str()]);
            }
        }
        for outcome in DeliveryOutcome::ALL {
            self.dicomweb.results.with_label_values(&[outcome.as_str()]);
        }
        self.dicomweb.instances.with_label_values(&["accepted"]);
        for reason in cxr_core::results::stow::FailureReason::ALL {
            self.dicomweb.instances.with_label_values(&[reason.as_str()]);
        }
    }

    /// The registry, for callers that gather it themselves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles one model's worker reports to.
    pub fn model(&self, variant: ModelVariant) -> ModelMetrics {
        let model = [variant.as_str()];
        ModelMetrics {
            queue_wait: self.queue_wait.with_label_values(&model),
            inference: self.inference.with_label_values(&model),
            batch_size: self.batch_size.with_label_values(&model),
            dropped_jobs: self.dropped_jobs.with_label_values(&model),
            cold_shapes: self.cold_shapes.with_label_values(&model),
        }
    }

    /// Publishes `cxr_model_info` for the loaded models.
    pub fn describe_models(&self, engine: &Engine) {
        for model in engine.models() {
            let info = model.info();
            let trained = if info.card.trained { "true" } else { "false" };
            self.model_info
                .with_label_values(&[info.variant.as_str(), &info.card.version, info.provider.as_str(), trained])
                .set(1);
        }
    }

    /// The text exposition of every metric; the gauges that mirror the engine's state are read first.
    pub fn render(&self, engine: Option<&Engine>) -> Result<String, prometheus::Error> {
        if let Some(engine) = engine {
            for model in engine.models() {
                let variant = [model.info().variant.as_str()];
                self.queue_depth.with_label_values(&variant).set(saturating_i64(model.queue_depth()));
                self.pending.with_label_values(&variant).set(saturating_i64(model.pending()));
            }
        }
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// Counts a request in flight until the returned guard is dropped (also when the request is cancelled).
    pub fn in_flight(&self) -> InFlight {
        self.http_in_flight.inc();
        InFlight(self.http_in_flight.clone())
    }

    /// Records one answered request; `route` is the matched route template or [`UNMATCHED_ROUTE`].
    pub fn observe_request(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::HEAD => "HEAD",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.http_requests.with_label_values(&[route, method, status.as_str()]).inc();
        self.http_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// Counts a problem response by its type slug.
    pub fn count_problem(&self, slug: &str) {
        self.errors.with_label_values(&[slug]).inc();
    }

    pub fn observe_decode(&self, variant: ModelVariant, elapsed: Duration) {
        self.decode.with_label_values(&[variant.as_str()]).observe(elapsed.as_secs_f64());
    }

    pub fn observe_preprocess(&self, variant: ModelVariant, elapsed: Duration) {
        self.preprocess.with_label_values(&[variant.as_str()]).observe(elapsed.as_secs_f64());
    }

    pub fn observe_end_to_end(&self, variant: ModelVariant, elapsed: Duration) {
        self.end_to_end.with_label_values(&[variant.as_str()]).observe(elapsed.as_secs_f64());
    }

    /// A completed shadow run of `variant`.
    pub fn observe_shadow(&self, variant: ModelVariant, end_to_end: Duration) {
        self.shadow_duration.with_label_values(&[variant.as_str()]).observe(end_to_end.as_secs_f64());
    }

    /// A shadow run of `variant` that failed.
    pub fn shadow_failed(&self, variant: ModelVariant) {
        self.shadow_failures.with_label_values(&[variant.as_str()]).inc();
    }

    /// A shadow run of `variant` skipped because its queue was full.
    pub fn shadow_skipped(&self, variant: ModelVariant) {
        self.shadow_skipped.with_label_values(&[variant.as_str()]).inc();
    }

    /// An instance received by STOW-RS: `accepted`, or the failure reason's name.
    pub fn dicomweb_instance(&self, outcome: &str) {
        self.dicomweb.instances.with_label_values(&[outcome]).inc();
    }

    /// `n` result objects that met `outcome` on their way to the PACS.
    pub fn delivery(&self, outcome: DeliveryOutcome, n: u64) {
        self.dicomweb.results.with_label_values(&[outcome.as_str()]).inc_by(n);
    }

    /// A push that failed for now and will be retried.
    pub fn delivery_retry(&self) {
        self.dicomweb.retries.inc();
    }

    /// The objects waiting in the outbound queue.
    pub fn set_delivery_queue(&self, queued: usize) {
        self.dicomweb.queue.set(saturating_i64(queued));
    }

    /// One successful push.
    pub fn observe_push(&self, elapsed: Duration) {
        self.dicomweb.push_duration.observe(elapsed.as_secs_f64());
    }

    /// Records the agreement of one pair of color and gray results.
    pub fn observe_comparison(&self, comparison: &Comparison, source: Source) {
        for (label, diff) in LABELS.iter().zip(&comparison.abs_diff) {
            self.ab_abs_diff.with_label_values(&[label, source.as_str()]).observe(f64::from(*diff));
        }
        let agree = if comparison.top_finding_agrees { "true" } else { "false" };
        self.ab_top_finding.with_label_values(&[agree, source.as_str()]).inc();
    }
}

/// Records a pair in the window and in the `cxr_ab_*` metrics.
pub fn record_pair(ab: &AbStats, metrics: &Metrics, source: Source, color: &ModelSide<'_>, gray: &ModelSide<'_>) {
    let comparison = ab.record(source, color, gray);
    metrics.observe_comparison(&comparison, source);
}

/// Decrements `cxr_http_requests_in_flight` when dropped.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What one model's worker thread reports: cheap clones of the labelled series.
#[derive(Clone)]
pub struct ModelMetrics {
    queue_wait: Histogram,
    inference: Histogram,
    batch_size: Histogram,
    dropped_jobs: IntCounter,
    cold_shapes: IntCounter,
}

/// The engine's workers report through [`ModelMetrics`].
impl WorkerObserver for ModelMetrics {
    /// One job's wait between entering the queue and the start of its batch.
    fn queue_wait(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// One session run of `size` images.
    fn batch(&self, size: usize, inference: Duration) {
        self.batch_size.observe(size as f64);
        self.inference.observe(inference.as_secs_f64());
    }

    /// A job dropped because its client went away.
    fn job_dropped(&self) {
        self.dropped_jobs.inc();
    }

    /// A session run at a padded batch size that was not warmed before the model became ready.
    fn cold_shape(&self) {
        self.cold_shapes.inc();
    }
}

/// Registers the metrics it makes in one registry (one call per metric, so [`Metrics::new`] reads as the list).
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        register(self.0, collector)
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(counter_vec(name, help, labels))
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(gauge_vec(name, help, labels))
    }

    fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
        self.add(histogram_vec(name, help, labels, buckets))
    }

    /// A per-model counter.
    fn model_counter(&self, name: &str, help: &str) -> IntCounterVec {
        self.counter(name, help, &["model"])
    }

    /// A per-model gauge.
    fn model_gauge(&self, name: &str, help: &str) -> IntGaugeVec {
        self.gauge(name, help, &["model"])
    }

    /// A per-model duration histogram with [`latency_buckets`].
    fn model_latency(&self, name: &str, help: &str) -> HistogramVec {
        self.histogram(name, help, &["model"], latency_buckets())
    }
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry.register(Box::new(collector.clone())).expect("metric names are unique within the registry");
    collector
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric definition")
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Resident memory and CPU time of this process, read from `/proc` whenever the registry is gathered. On a system
/// without `/proc` the two series are simply absent.
struct ProcessCollector {
    resident: IntGauge,
    cpu: Counter,
    descs: Vec<Desc>,
    /// Serialises scrapes so that two of them never add the same CPU time twice.
    update: Mutex<()>,
}

impl ProcessCollector {
    fn new() -> ProcessCollector {
        let resident = IntGauge::new("cxr_process_resident_memory_bytes", "Resident memory of the server process.")
            .expect("valid metric definition");
        let cpu = Counter::new("cxr_process_cpu_seconds_total", "User and system CPU time of the server process.")
            .expect("valid metric definition");
        let descs = resident.desc().into_iter().chain(cpu.desc()).cloned().collect();
        ProcessCollector { resident, cpu, descs, update: Mutex::new(()) }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _serialised = self.update.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut families = Vec::new();
        if let Some(bytes) = procfs::resident_bytes(None) {
            self.resident.set(saturating_i64(bytes));
            families.extend(self.resident.collect());
        }
        if let Some(seconds) = procfs::cpu_seconds() {
            // A counter only moves forward: add what was used since the last scrape.
            let delta = seconds - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            families.extend(self.cpu.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_span_a_millisecond_to_over_ten_seconds() {
        let buckets = latency_buckets();
        assert_eq!(buckets.first(), Some(&0.001));
        assert!(buckets.last().is_some_and(|&b| b > 10.0 && b < 20.0), "{buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn registries_are_independent() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.count_problem("not-found");
        let text = |m: &Metrics| m.render(None).unwrap();
        assert!(text(&a).contains("cxr_errors_total{type=\"not-found\"} 1"), "{}", text(&a));
        assert!(text(&b).contains("cxr_errors_total{type=\"not-found\"} 0"), "{}", text(&b));
    }

    #[test]
    fn worker_handles_report_into_the_registry() {
        let metrics = Metrics::new();
        let gray = metrics.model(ModelVariant::Gray);
        gray.batch(3, Duration::from_millis(20));
        gray.queue_wait(Duration::from_millis(1));
        gray.job_dropped();
        let text = metrics.render(None).unwrap();
        assert!(text.contains("cxr_batch_size_count{model=\"gray\"} 1"), "{text}");
        assert!(text.contains("cxr_batch_size_sum{model=\"gray\"} 3"), "{text}");
        assert!(text.contains("cxr_dropped_jobs_total{model=\"gray\"} 1"), "{text}");
        assert!(text.contains("cxr_dropped_jobs_total{model=\"color\"} 0"), "{text}");
    }

    #[test]
    fn process_usage_is_read_from_procfs() {
        let text = Metrics::new().render(None).unwrap();
        if std::path::Path::new("/proc/self/statm").exists() {
            let line = text.lines().find(|l| l.starts_with("cxr_process_resident_memory_bytes ")).expect(&text);
            let bytes: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(bytes > 1e6, "{line}");
            assert!(text.contains("cxr_process_cpu_seconds_total "), "{text}");
        }
    }
}
