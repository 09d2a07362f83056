//! The HTTP client side: one keep-alive client, latency at concurrency 1, saturated closed-loop throughput and the
//! RSS soak. Every loop is bounded in count and time, and every request goes to a loopback address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::Mutex;

use super::BenchError;
use super::stats::{Summary, median};

/// Longest one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One benchmark input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// `png` or `dicom`.
    pub kind: &'static str,
    pub content_type: &'static str,
    pub bytes: Bytes,
}

/// A server's base URL and the client that talks to it.
#[derive(Debug, Clone)]
pub struct Target {
    base: String,
    client: reqwest::Client,
}

impl Target {
    /// A target at `base` (`http://127.0.0.1:PORT`); refuses anything that is not loopback.
    pub fn new(base: &str) -> Result<Target, BenchError> {
        let base = base.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).map_err(|e| BenchError::Setup(format!("bad URL {base:?}: {e}")))?;
        let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if url.scheme() != "http" || !loopback {
            return Err(BenchError::Setup(format!(
                "{base}: the benchmark only talks plain HTTP to loopback addresses"
            )));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(1024)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| BenchError::Setup(format!("HTTP client: {e}")))?;
        Ok(Target { base, client })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Polls `GET /readyz` every 100 ms until it answers 200, for at most `timeout`; `alive` is asked in between
    /// (a server that died will never be ready).
    pub async fn wait_ready(&self, timeout: Duration, mut alive: impl FnMut() -> bool) -> Result<(), String> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base);
        loop {
            if let Ok(response) = self.client.get(&url).timeout(Duration::from_secs(5)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if !alive() {
                return Err("the server exited while loading".into());
            }
            if started.elapsed() > timeout {
                return Err(format!("/readyz not 200 within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET path` as JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let response = self.client.get(format!("{}{path}", self.base)).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// One `POST /predict?model=…` with the raw file as body.
    pub async fn predict(&self, model: &str, input: &Input) -> Result<Sample, String> {
        self.predict_with(model, "", input).await
    }

    /// [`Target::predict`] with more query parameters (`extra` starts with `&`, or is empty).
    pub async fn predict_with(&self, model: &str, extra: &str, input: &Input) -> Result<Sample, String> {
        let url = format!("{}/predict?model={model}{extra}", self.base);
        let started = Instant::now();
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, input.content_type)
            .body(input.bytes.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let latency = started.elapsed();
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
        }
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))?;
        Ok(Sample::from_response(latency, &json))
    }
}

/// One answered request: the client-side latency and what the server said about its own time.
#[derive(Debug, Clone)]
pub struct Sample {
    pub latency: Duration,
    pub timing: Timing,
    pub batch_size: Option<usize>,
    pub provider: Option<String>,
    pub probabilities: Vec<f64>,
}

/// The server's `timing_ms` of the first result (missing fields stay `None`).
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub decode: Option<f64>,
    pub preprocess: Option<f64>,
    pub queue: Option<f64>,
    pub inference: Option<f64>,
    pub total: Option<f64>,
}

impl Sample {
    fn from_response(latency: Duration, json: &serde_json::Value) -> Sample {
        let result = &json["results"][0];
        let t = &result["timing_ms"];
        let field = |name: &str| t[name].as_f64();
        Sample {
            latency,
            timing: Timing {
                decode: field("decode"),
                preprocess: field("preprocess"),
                queue: field("queue"),
                inference: field("inference"),
                total: field("total"),
            },
            batch_size: result["batch_size"].as_u64().map(|n| n as usize),
            provider: result["provider"].as_str().map(str::to_string),
            probabilities: result["findings"]
                .as_array()
                .map(|findings| findings.iter().filter_map(|f| f["probability"].as_f64()).collect())
                .unwrap_or_default(),
        }
    }
}

/// Medians of the server-reported timings over a series (`None` where the server did not report the field).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerTimingMedians {
    pub decode: Option<f64>,
    pub preprocess: Option<f64>,
    pub queue: Option<f64>,
    pub inference: Option<f64>,
    pub total: Option<f64>,
    pub mean_batch_size: Option<f64>,
}

impl ServerTimingMedians {
    fn of(samples: &[Sample]) -> ServerTimingMedians {
        let med = |pick: fn(&Timing) -> Option<f64>| {
            median(&samples.iter().filter_map(|s| pick(&s.timing)).collect::<Vec<_>>())
        };
        let batches: Vec<f64> = samples.iter().filter_map(|s| s.batch_size.map(|n| n as f64)).collect();
        ServerTimingMedians {
            decode: med(|t| t.decode),
            preprocess: med(|t| t.preprocess),
            queue: med(|t| t.queue),
            inference: med(|t| t.inference),
            total: med(|t| t.total),
            mean_batch_size: (!batches.is_empty()).then(|| batches.iter().sum::<f64>() / batches.len() as f64),
        }
    }
}

/// Latency of one (model, input) series at concurrency 1.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub input: &'static str,
    pub bytes: usize,
    pub warmup: usize,
    /// Client-side: from sending the request to the whole response body, in ms.
    pub client_ms: Summary,
    /// The server's own breakdown (medians, ms).
    pub server_ms: ServerTimingMedians,
    pub provider: Option<String>,
    /// Probabilities of the last response (to compare implementations).
    #[serde(skip)]
    pub probabilities: Vec<f64>,
}

/// Sequential requests: `warmup` untimed, then `requests` timed, each waiting for the previous one.
pub async fn latency(
    target: &Target,
    model: &str,
    input: &Input,
    warmup: usize,
    requests: usize,
) -> Result<Latency, BenchError> {
    let fail = |e: String| BenchError::Http(format!("{} {model} {}: {e}", target.base, input.kind));
    for _ in 0..warmup {
        target.predict(model, input).await.map_err(fail)?;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        samples.push(target.predict(model, input).await.map_err(fail)?);
    }
    Ok(summarize(input, warmup, &samples))
}

/// The latency summary of a series of requests.
fn summarize(input: &Input, warmup: usize, samples: &[Sample]) -> Latency {
    let latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    Latency {
        input: input.kind,
        bytes: input.bytes.len(),
        warmup,
        client_ms: Summary::of_durations(&latencies).expect("at least one request"),
        server_ms: ServerTimingMedians::of(samples),
        provider: samples.last().and_then(|s| s.provider.clone()),
        probabilities: samples.last().map(|s| s.probabilities.clone()).unwrap_or_default(),
    }
}

/// The queries [`explain_cost`] compares: none, the class activation maps, and the maps with three overlays.
pub const EXPLAIN_QUERIES: [&str; 3] = ["", "&explain=cam", "&explain=cam&overlay=png"];

/// The cost of `?explain=cam` at concurrency 1: requests without it, with it, and with overlays, in rotating order
/// (each round sends all three, the first one changing from round to round), so that drift and any order effect hit
/// the three alike.
pub async fn explain_cost(
    target: &Target,
    model: &str,
    input: &Input,
    warmup: usize,
    requests: usize,
) -> Result<ExplainCost, BenchError> {
    let fail = |e: String| BenchError::Http(format!("{} {model} {} explain: {e}", target.base, input.kind));
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..warmup + requests {
        for k in 0..EXPLAIN_QUERIES.len() {
            let which = (round + k) % EXPLAIN_QUERIES.len();
            let sample = target.predict_with(model, EXPLAIN_QUERIES[which], input).await.map_err(fail)?;
            if round >= warmup {
                samples[which].push(sample.latency);
            }
        }
    }
    let summary = |i: usize| Summary::of_durations(&samples[i]).expect("at least one request");
    Ok(ExplainCost { input: input.kind, plain_ms: summary(0), cam_ms: summary(1), overlay_ms: summary(2) })
}

/// What [`explain_cost`] measured: client-side latency of the same requests without and with explanations.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainCost {
    pub input: &'static str,
    pub plain_ms: Summary,
    /// `explain=cam`: the maps fetched from the same run and returned as 14 grids.
    pub cam_ms: Summary,
    /// `explain=cam&overlay=png`: plus three PNG overlays (512 px) in the response.
    pub overlay_ms: Summary,
}

/// Idle time before each step of [`latency_paired`], longer than ONNX Runtime's spin-before-sleep.
const PAIR_GAP: Duration = Duration::from_millis(30);

/// [`latency`] with one raw ONNX Runtime batch-1 run before each request (warm-up included): returns the server's
/// latency and the raw runs' summary, measured alternately.
pub async fn latency_paired(
    target: &Target,
    model: &str,
    input: &Input,
    warmup: usize,
    requests: usize,
    raw: &mut crate::raw::PairedRaw,
) -> Result<(Latency, Summary), BenchError> {
    let fail = |e: String| BenchError::Http(format!("{} {model} {}: {e}", target.base, input.kind));
    // ONNX Runtime's pool threads spin for a while after a run (its default, in both processes): without a pause the
    // next run would share the cores with the other process's spinning threads and both would be measured slow.
    let settle = || std::thread::sleep(PAIR_GAP);
    for _ in 0..warmup {
        settle();
        raw.run()?;
        settle();
        target.predict(model, input).await.map_err(fail)?;
    }
    let mut samples = Vec::with_capacity(requests);
    let mut raw_times = Vec::with_capacity(requests);
    for _ in 0..requests {
        settle();
        raw_times.push(raw.run()?);
        settle();
        samples.push(target.predict(model, input).await.map_err(fail)?);
    }
    let latency = summarize(input, warmup, &samples);
    Ok((latency, Summary::of_durations(&raw_times).expect("at least one run")))
}

/// Saturated closed-loop throughput of one server and input: `concurrency` clients, each sending its next request as
/// soon as the previous one is answered, measured over one or more windows (each after its own warm-up; the
/// benchmark alternates them with another measurement, see `cxr_bench::alternate`).
///
/// Throughput is completion-anchored ([`anchored`]): the responses completed after the last completion before a
/// window opened, up to the last completion before it closed, over the time between those two completions. A server
/// that answers whole batches at once is then measured in whole batches instead of to ±1 batch (1.5 % of a 30-s
/// window on the development machine), and a server answering one request at a time is measured the same way.
#[derive(Debug, Clone, Serialize)]
pub struct Saturation {
    pub input: &'static str,
    pub concurrency: usize,
    /// Untimed closed-loop seconds before each window.
    pub warmup_s: f64,
    /// The windows' total length.
    pub window_s: f64,
    pub windows: usize,
    /// Successful responses counted by the completion anchors, all windows together.
    pub completed: usize,
    /// Time between the completion anchors, all windows together.
    pub span_s: f64,
    /// Failed requests (any status but 2xx, or a transport error) inside the windows.
    pub errors: usize,
    pub first_error: Option<String>,
    /// `completed / span_s`.
    pub img_per_s: f64,
    /// Client-side latency of the requests completed inside the windows.
    pub client_ms: Option<Summary>,
    pub server_ms: ServerTimingMedians,
}

/// One finished request of a closed loop.
struct Outcome {
    finished: Instant,
    result: Result<Sample, String>,
}

/// Runs `concurrency` closed-loop clients for `warmup + window` (each client's models cycle through `models`,
/// offset by the client's index) and returns every outcome.
async fn closed_loop(
    target: &Target,
    models: &[&str],
    input: &Input,
    concurrency: usize,
    until: Instant,
) -> Vec<Outcome> {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::with_capacity(concurrency);
    for index in 0..concurrency {
        let (target, input, outcomes) = (target.clone(), input.clone(), Arc::clone(&outcomes));
        let models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
        clients.push(tokio::spawn(async move {
            let mut turn = index;
            while Instant::now() < until {
                let model = &models[turn % models.len()];
                turn += 1;
                let result = target.predict(model, &input).await;
                let failed = result.is_err();
                outcomes.lock().await.push(Outcome { finished: Instant::now(), result });
                if failed {
                    // Do not spin on a failing server (e.g. 503 when its queue is full).
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for client in clients {
        let _ = client.await;
    }
    Arc::try_unwrap(outcomes).map(Mutex::into_inner).unwrap_or_default()
}

/// One measured window of a closed loop.
#[derive(Debug, Clone)]
pub struct Window {
    /// Successful responses between the completion anchors, and the time between the anchors.
    pub images: usize,
    pub span: Duration,
    /// The successful responses and the failures completed inside the window.
    samples: Vec<Sample>,
    errors: Vec<String>,
}

/// Completion-anchored count and span of one window, from the sorted completion times of the successful responses
/// (seconds on any clock) and the window's bounds: the responses completed after the last completion at or before
/// `start`, up to and including the last completion at or before `end`, and the time between those two
/// completions. With batches answered together this counts whole batches over whole batch periods; with single
/// requests it counts inter-completion intervals. (Only an edge that falls inside the few milliseconds over which one
/// batch's answers arrive miscounts that batch.) Falls back to the plain count over the window when there is no
/// completion before it or none inside it.
pub fn anchored(finished: &[f64], start: f64, end: f64) -> (usize, f64) {
    let plain = || (finished.iter().filter(|t| **t > start && **t <= end).count(), end - start);
    let first = finished.iter().rev().find(|t| **t <= start);
    let last = finished.iter().rev().find(|t| **t <= end);
    match (first, last) {
        (Some(&a), Some(&b)) if b > a => (finished.iter().filter(|t| **t > a && **t <= b).count(), b - a),
        _ => plain(),
    }
}

/// Saturates one model with `input` for `warmup` and then measures one `window`.
pub async fn saturation_window(
    target: &Target,
    model: &str,
    input: &Input,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Window {
    let started = Instant::now();
    let window_start = started + warmup;
    let window_end = window_start + window;
    let outcomes = closed_loop(target, &[model], input, concurrency, window_end).await;
    let secs = |t: Instant| t.saturating_duration_since(started).as_secs_f64();
    let mut finished: Vec<f64> = outcomes.iter().filter(|o| o.result.is_ok()).map(|o| secs(o.finished)).collect();
    finished.sort_by(f64::total_cmp);
    let (images, span) = anchored(&finished, secs(window_start), secs(window_end));
    let inside = outcomes.into_iter().filter(|o| o.finished >= window_start && o.finished <= window_end);
    let (mut samples, mut errors) = (Vec::new(), Vec::new());
    for outcome in inside {
        match outcome.result {
            Ok(sample) => samples.push(sample),
            Err(error) => errors.push(error),
        }
    }
    Window { images, span: Duration::from_secs_f64(span), samples, errors }
}

impl Saturation {
    /// The saturation measured by `windows` of `window` each, every one after `warmup`.
    pub fn of_windows(
        input: &Input,
        concurrency: usize,
        warmup: Duration,
        window: Duration,
        windows: &[Window],
    ) -> Saturation {
        let completed: usize = windows.iter().map(|w| w.images).sum();
        let span_s: f64 = windows.iter().map(|w| w.span.as_secs_f64()).sum();
        let samples: Vec<Sample> = windows.iter().flat_map(|w| w.samples.iter().cloned()).collect();
        let errors: Vec<&String> = windows.iter().flat_map(|w| &w.errors).collect();
        let latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        Saturation {
            input: input.kind,
            concurrency,
            warmup_s: warmup.as_secs_f64(),
            window_s: window.as_secs_f64() * windows.len() as f64,
            windows: windows.len(),
            completed,
            span_s,
            errors: errors.len(),
            first_error: errors.first().map(|e| e.to_string()),
            img_per_s: if span_s > 0.0 { completed as f64 / span_s } else { 0.0 },
            client_ms: Summary::of_durations(&latencies),
            server_ms: ServerTimingMedians::of(&samples),
        }
    }
}

/// The RSS soak: the server saturated for a long time while its resident memory is sampled.
#[derive(Debug, Clone, Serialize)]
pub struct Soak {
    pub minutes: f64,
    pub concurrency: usize,
    pub models: Vec<String>,
    pub completed: usize,
    pub errors: usize,
    pub img_per_s: f64,
    /// `(seconds since the start, RSS in MiB)` every 10 s.
    pub rss_samples: Vec<(f64, f64)>,
    /// The first sample at or after 60 s.
    pub rss_at_1min_mib: Option<f64>,
    pub rss_end_mib: Option<f64>,
    /// `rss_end / rss_at_1min`.
    pub ratio: Option<f64>,
    pub rss_peak_mib: Option<f64>,
    /// Median of the samples of the second minute ([60 s, 120 s)) and of the last minute: single samples swing
    /// with the allocator's batch buffers, these do not.
    pub rss_median_second_min_mib: Option<f64>,
    pub rss_median_last_min_mib: Option<f64>,
    /// `rss_median_last_min / rss_median_second_min` (soaks of 3 minutes or more).
    pub median_ratio: Option<f64>,
}

/// Saturates the server with both models alternating for `minutes`, sampling `rss()` (KiB) every 10 s.
pub async fn soak(
    target: &Target,
    input: &Input,
    concurrency: usize,
    minutes: f64,
    rss: impl Fn() -> Option<u64> + Send + 'static,
) -> Soak {
    const SAMPLE_EVERY: Duration = Duration::from_secs(10);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(minutes * 60.0);
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut next = started;
        loop {
            if let Some(kib) = rss() {
                samples.push((started.elapsed().as_secs_f64(), kib as f64 / 1024.0));
            }
            next += SAMPLE_EVERY;
            if next > until {
                break;
            }
            tokio::time::sleep_until(next.into()).await;
        }
        samples
    });
    let models = ["color", "gray"];
    let outcomes = closed_loop(target, &models, input, concurrency, until).await;
    let mut rss_samples = sampler.await.unwrap_or_default();
    let completed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let errors = outcomes.len() - completed;
    let elapsed = started.elapsed();
    rss_samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at_1min = rss_samples.iter().find(|(t, _)| *t >= 60.0 - 0.5).map(|(_, mib)| *mib);
    let end = rss_samples.last().map(|(_, mib)| *mib);
    let last_t = rss_samples.last().map_or(0.0, |(t, _)| *t);
    let window = |from: f64, to: f64| {
        median(&rss_samples.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, mib)| *mib).collect::<Vec<_>>())
    };
    let second_min = window(60.0 - 0.5, 120.0 - 0.5);
    let peak = rss_samples.iter().map(|(_, mib)| *mib).max_by(f64::total_cmp);
    let last_min = (last_t >= 180.0 - 1.0).then(|| window(last_t - 60.0 + 0.5, f64::INFINITY)).flatten();
    Soak {
        minutes,
        concurrency,
        models: models.iter().map(|m| m.to_string()).collect(),
        completed,
        errors,
        img_per_s: completed as f64 / elapsed.as_secs_f64(),
        rss_samples,
        rss_at_1min_mib: at_1min,
        rss_end_mib: end,
        ratio: at_1min.zip(end).map(|(a, b)| b / a),
        rss_peak_mib: peak,
        rss_median_second_min_mib: second_min,
        rss_median_last_min_mib: last_min,
        median_ratio: second_min.zip(last_min).map(|(a, b)| b / a),
    }
}

#[cfg(test)]
mod tests {
    use super::anchored;

    #[test]
    fn anchored_windows_count_whole_batches() {
        // A server answering 8 requests together every 0.45 s (the first at 0.1 s), the 8 spread over 2 ms.
        let mut finished: Vec<f64> =
            (0..40).flat_map(|k| (0..8).map(move |i| 0.1 + 0.45 * k as f64 + 0.000_25 * i as f64)).collect();
        finished.sort_by(f64::total_cmp);
        let true_rate = 8.0 / 0.45;
        // (Window edges away from the 2 ms in which one batch's answers arrive; an edge inside them miscounts that batch.)
        for (start, end) in [(1.01, 8.0), (1.2, 8.3), (3.33, 10.2), (0.5, 15.9)] {
            let (n, span) = anchored(&finished, start, end);
            assert!((n as f64 / span - true_rate).abs() < 0.01 * true_rate, "{start}..{end}: {n} in {span}");
            // The plain count over the window misses by up to a batch.
            let plain = finished.iter().filter(|t| **t > start && **t <= end).count() as f64 / (end - start);
            assert!((plain - true_rate).abs() < 8.0 / (end - start) + 1e-9);
        }
    }

    #[test]
    fn anchored_windows_count_single_completions_and_fall_back() {
        // One completion every 0.1 s: 10 per second, whatever the window.
        let finished: Vec<f64> = (1..=100).map(|k| 0.1 * k as f64).collect();
        let (n, span) = anchored(&finished, 2.05, 7.55);
        assert_eq!(n, 55);
        assert!((n as f64 / span - 10.0).abs() < 1e-9);
        // Nothing before the window: the plain count over the window.
        assert_eq!(anchored(&finished, 0.0, 1.0), (10, 1.0));
        assert_eq!(anchored(&[], 0.0, 1.0), (0, 1.0));
    }
}
