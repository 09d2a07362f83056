//! What the server observes about itself: the Prometheus registry ([`metrics`]) and the live A/B window of paired
//! color/gray results ([`ab`]), fed by `model=both` predictions and by shadow runs (`crate::inference`);
//! [`procfs`] reads process and machine resource usage.
//!
//! Architecture invariant: this layer sits above the engine and below the server state; it knows nothing of HTTP
//! routes or request handling. The engine reports to it through [`WorkerObserver`](cxr_engine::WorkerObserver),
//! which [`metrics::ModelMetrics`] implements, so the engine never imports it.

pub mod ab;
pub mod metrics;
pub mod procfs;

use std::time::Duration;

/// A duration in milliseconds with microsecond resolution, for JSON.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
