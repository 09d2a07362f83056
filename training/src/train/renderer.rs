//! The console and CSV side of a run: an indicatif progress bar per split with images/s and ETA, one summary line
//! per epoch (also when stderr is not a terminal, e.g. in CI logs), and `metrics.csv` with one row per epoch.
//!
//! burn-train's own CLI renderer prints a debug line per batch and no rates; its TUI needs a terminal. This
//! renderer implements its renderer traits instead.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Progress bars, epoch lines and `metrics.csv`.
pub struct ProgressRenderer {
    csv: PathBuf,
    total_epochs: usize,
    epoch: usize,
    names: HashMap<MetricId, String>,
    /// Latest value per `split/metric` this epoch (the epoch's final value once it arrives).
    values: BTreeMap<String, f64>,
    columns: Option<Vec<String>>,
    bar: Option<ProgressBar>,
    split: String,
    split_items: usize,
    split_start: Instant,
    split_rates: BTreeMap<String, f64>,
}

impl ProgressRenderer {
    pub fn new(csv: PathBuf, total_epochs: usize, start_epoch: usize) -> Self {
        ProgressRenderer {
            csv,
            total_epochs,
            epoch: start_epoch + 1,
            names: HashMap::new(),
            values: BTreeMap::new(),
            columns: None,
            bar: None,
            split: String::new(),
            split_items: 0,
            split_start: Instant::now(),
            split_rates: BTreeMap::new(),
        }
    }

    fn record(&mut self, split: &str, state: MetricState) {
        if let MetricState::Numeric(entry, Some(value)) = state {
            let name = self.names.get(&entry.metric_id).cloned().unwrap_or_else(|| format!("{:?}", entry.metric_id));
            let key = format!("{split}/{name}");
            // The epoch's final value overrides running values; running values never override it.
            let is_final = matches!(value, NumericEntry::Final(_));
            if is_final || !self.values.contains_key(&format!("{key}#final")) {
                self.values.insert(key.clone(), value.current());
            }
            if is_final {
                self.values.insert(format!("{key}#final"), 1.0);
            }
        }
    }

    fn write_row(&mut self) {
        let values: BTreeMap<String, f64> = self
            .values
            .iter()
            .filter(|(k, _)| !k.ends_with("#final"))
            .map(|(k, v)| (k.clone(), *v))
            .chain(self.split_rates.iter().map(|(k, v)| (format!("{k}/images_per_second"), *v)))
            .collect();
        let columns = self.columns.get_or_insert_with(|| values.keys().cloned().collect()).clone();
        let new_file = !self.csv.exists();
        let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&self.csv) else {
            tracing::warn!(path = %self.csv.display(), "cannot write metrics.csv");
            return;
        };
        if new_file {
            let _ = writeln!(file, "epoch,{}", columns.join(","));
        }
        let row: Vec<String> =
            columns.iter().map(|c| values.get(c).map(|v| format!("{v:.6}")).unwrap_or_default()).collect();
        let _ = writeln!(file, "{},{}", self.epoch, row.join(","));
        let summary: Vec<String> = values.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        eprintln!("epoch {}/{}: {}", self.epoch, self.total_epochs, summary.join(", "));
    }
}

impl MetricsRendererTraining for ProgressRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record("train", state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record("valid", state);
    }
}

impl MetricsRendererEvaluation for ProgressRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record("test", state);
    }
}

impl TrainingProgressLogger for ProgressRenderer {
    fn start(&mut self, total_epochs: usize, starting_epoch: usize, _total_items: Option<usize>, _label: Option<&str>) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
    }

    /// `epoch` is the 1-based epoch that just ended.
    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        self.write_row();
        self.values.clear();
        self.split_rates.clear();
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        let bar = ProgressBar::new(total_items as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} images, {per_sec}, ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {}/{} {split}", self.epoch, self.total_epochs));
        self.bar = Some(bar);
        self.split = split.to_string();
        self.split_items = 0;
        self.split_start = Instant::now();
    }

    fn update_split(&mut self, items_processed: usize) {
        self.split_items = items_processed;
        if let Some(bar) = &self.bar {
            bar.set_position(items_processed as u64);
        }
    }

    fn end_split(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let seconds = self.split_start.elapsed().as_secs_f64();
        self.split_rates.insert(self.split.clone(), self.split_items as f64 / seconds.max(1e-9));
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn log_event_training(&mut self, event: String) {
        tracing::info!("{event}");
    }
}

impl EvaluationProgressLogger for ProgressRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.update_split(items_processed);
    }

    fn end_test(&mut self) {
        self.end_split();
    }

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, event: String) {
        tracing::info!("{event}");
    }
}

impl MetricsRenderer for ProgressRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id.clone(), definition.name.to_string());
    }
}
