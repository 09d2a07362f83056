//! The results of one run ([`Report`], written as JSON) and their markdown rendering: the summary table, the
//! ratios against the targets (BENCHMARKS.md), the server's time breakdown, gray/color next to the paper's Table 4, and
//! the soak.

use std::fmt::Write as _;

use cxr_core::card::ModelVariant;
use cxr_serve::telemetry::procfs;
use serde::Serialize;

use crate::stats::Summary;

use super::config::Plan;
use super::http::{ExplainCost, Latency, Saturation, Soak};
use super::raw::{PairedThroughput, RawModel};

/// The paper's Table 4 (Xie & Richmond 2018): inference time per image on a GPU, in ms.
pub const PAPER_COLOR_MS: f64 = 8.0;
pub const PAPER_GRAY_MS: f64 = 6.4;

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_utc: String,
    pub wall_s: f64,
    pub machine: Machine,
    pub plan: Plan,
    pub device: String,
    pub models_dir: String,
    pub inputs: Vec<InputFile>,
    /// Empty with `--no-raw`.
    pub raw: Vec<RawModel>,
    pub server: Option<ServerRun>,
    pub python: Vec<PythonModel>,
    pub soak: Option<Soak>,
    pub ratios: Vec<ModelRatios>,
    pub gray_over_color: GrayOverColor,
    pub targets: Vec<TargetCheck>,
    pub notes: Vec<String>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_mib: Option<f64>,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started and when it ended: a busy machine shows here.
    pub loadavg_start: String,
    pub loadavg_end: String,
    /// Share of all CPU time that was busy during one second just before the run (nothing of the benchmark's
    /// running yet), in percent: other work on the machine.
    pub busy_before_pct: Option<f64>,
    /// Share of all CPU time during the run used by processes other than the benchmark and the servers it started
    /// (machine-wide busy time from `/proc/stat` minus this process's and its reaped children's), in percent.
    pub other_work_during_run_pct: Option<f64>,
    pub ort_dylib: String,
    pub ort_version: String,
    pub ort_build_info: String,
    pub intra_threads: usize,
}

impl Machine {
    pub fn probe(ort_dylib: &str, ort_build_info: &str, intra_threads: usize) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_string();
        let mem_total_mib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
        });
        let ort_version = ort_build_info
            .split(|c: char| c == ',' || c.is_whitespace())
            .find_map(|part| part.strip_prefix("git-branch=rel-"))
            .map(str::to_string)
            .or_else(|| ort_dylib.rsplit_once(".so.").map(|(_, v)| v.to_string()))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            mem_total_mib,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            busy_before_pct: busy_pct(std::time::Duration::from_secs(1)),
            other_work_during_run_pct: None,
            ort_dylib: ort_dylib.to_string(),
            ort_version,
            ort_build_info: ort_build_info.to_string(),
            intra_threads,
        }
    }
}

/// Busy share of all CPUs over `window` from `/proc/stat` (everything but idle and iowait), in percent.
pub fn busy_pct(window: std::time::Duration) -> Option<f64> {
    let (total0, idle0) = procfs::machine_cpu_ticks()?;
    std::thread::sleep(window);
    let (total1, idle1) = procfs::machine_cpu_ticks()?;
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(100.0 * (total - (idle1 - idle0).min(total)) as f64 / total as f64)
}

/// Machine-wide and own CPU time at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    total: u64,
    busy: u64,
    own: u64,
}

impl CpuSnapshot {
    pub fn take() -> Option<CpuSnapshot> {
        let (total, idle) = procfs::machine_cpu_ticks()?;
        // This process and its reaped children (the Python reference server runs as a child).
        let own = procfs::cpu_ticks(true)?;
        Some(CpuSnapshot { total, busy: total.saturating_sub(idle), own })
    }

    /// Percent of all CPU time between `self` and `later` that others used.
    pub fn others_pct(&self, later: &CpuSnapshot) -> Option<f64> {
        let total = later.total.checked_sub(self.total).filter(|t| *t > 0)?;
        let busy = later.busy.saturating_sub(self.busy);
        let own = later.own.saturating_sub(self.own);
        Some(100.0 * busy.saturating_sub(own) as f64 / total as f64)
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    read_trimmed("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// One input file.
#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    pub kind: &'static str,
    pub path: String,
    pub bytes: usize,
}

/// The `cxr-serve` part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRun {
    /// `spawned` (this run started the binary) or the `--url` it was given.
    pub origin: String,
    pub binary: Option<String>,
    pub args: Vec<String>,
    pub startup_s: Option<f64>,
    pub models: Vec<ServerModel>,
    /// Server RSS right after the measurements (MiB), when it is our child.
    pub rss_mib: Option<f64>,
}

/// One model behind the server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerModel {
    pub model: ModelVariant,
    pub latency: Vec<Latency>,
    /// Closed loop with the PNG (the input the Python reference can take).
    pub saturation: Saturation,
    /// Closed loop with the DICOM.
    pub saturation_dicom: Option<Saturation>,
    /// The c=1 DICOM requests measured alternately with raw ORT-default batch-1 runs.
    pub paired: Option<PairedLatency>,
    /// Raw ONNX Runtime with the sweep's best options at its best batch size, in windows alternating with the
    /// DICOM saturation windows.
    pub paired_raw_tput: Option<PairedThroughput>,
    /// The PNG at concurrency 1 without and with `explain=cam` (and overlays), alternating.
    pub explain: Option<ExplainCost>,
}

/// Server requests and raw ONNX Runtime runs, one after the other in turn, so that machine drift hits both alike.
#[derive(Debug, Clone, Serialize)]
pub struct PairedLatency {
    pub input: &'static str,
    /// The server's client-side latency (the same requests as the DICOM `latency` entry).
    pub server_client_ms: Summary,
    /// ONNX Runtime with its default options, batch 1, run before each request.
    pub raw_b1_ms: Summary,
}

impl ServerModel {
    pub fn latency(&self, input: &str) -> Option<&Latency> {
        self.latency.iter().find(|l| l.input == input)
    }
}

/// The Python reference server with one model.
#[derive(Debug, Clone, Serialize)]
pub struct PythonModel {
    pub model: ModelVariant,
    pub startup_s: f64,
    pub latency: Latency,
    pub saturation: Saturation,
    pub rss_mib: Option<f64>,
    /// Largest |Δ probability| between the Python reference and cxr-serve on the PNG (same model, same input):
    /// the two pipelines compute the same thing.
    pub max_abs_diff_vs_server: Option<f64>,
}

/// The ratios of one model that the targets (BENCHMARKS.md "Targets") are about.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRatios {
    pub model: ModelVariant,
    /// Server p50 at c=1 (client side, PNG) / raw `Session::run` batch-1 median.
    pub server_p50_png_over_raw_b1: Option<f64>,
    pub server_p50_dicom_over_raw_b1: Option<f64>,
    /// The server's own `timing_ms.inference` median (PNG, c=1) / raw batch-1 median: the session itself.
    pub server_inference_over_raw_b1: Option<f64>,
    /// Saturated server img/s (PNG) / raw best img/s (any batch size).
    pub server_tput_over_raw_best: Option<f64>,
    /// Saturated server img/s (DICOM) / raw best img/s: the raw windows alternating with the server's when
    /// measured so, else the sweep's best cell.
    pub server_tput_dicom_over_raw_best: Option<f64>,
    /// Saturated server img/s (DICOM) / the sweep's best cell (the highest of a dozen separate measurements).
    pub server_tput_dicom_over_raw_sweep_best: Option<f64>,
    /// Saturated server img/s / saturated Python reference img/s (PNG, their windows alternating).
    pub server_tput_over_python: Option<f64>,
    /// Python reference p50 / server p50 (PNG, c=1).
    pub python_p50_over_server_p50: Option<f64>,
    /// (decode + preprocess) / inference, medians of the server's timings at c=1, in percent.
    pub decode_preprocess_pct_png: Option<f64>,
    /// p50 with `explain=cam` / p50 without (PNG, c=1, alternating).
    pub explain_cam_over_plain: Option<f64>,
    /// p50 with `explain=cam&overlay=png` / p50 without.
    pub explain_overlay_over_plain: Option<f64>,
    pub decode_preprocess_pct_dicom: Option<f64>,
}

/// Gray divided by color, per quantity (latency < 1 and throughput > 1 mean gray is faster).
#[derive(Debug, Clone, Serialize)]
pub struct GrayOverColor {
    pub raw_b1_latency: Option<f64>,
    pub raw_best_tput: Option<f64>,
    pub server_p50_png: Option<f64>,
    pub server_p50_dicom: Option<f64>,
    pub server_inference_png: Option<f64>,
    pub server_tput: Option<f64>,
    pub python_p50: Option<f64>,
    pub python_tput: Option<f64>,
    /// The paper's Table 4: 6.4 ms / 8.0 ms (GPU, per image).
    pub paper_latency: f64,
}

/// One target (BENCHMARKS.md "Targets") against the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub model: Option<ModelVariant>,
    pub value: Option<f64>,
    pub target: String,
    /// `None` when not measured.
    pub met: Option<bool>,
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

impl Report {
    /// The latency anchor: ONNX Runtime's default options (the better of its two thread settings) at batch 1.
    pub fn raw(&self, model: ModelVariant) -> Option<&RawModel> {
        self.raw
            .iter()
            .filter(|r| r.model == model && r.options.is_ort_default())
            .min_by(|a, b| a.batch1_ms.p50.total_cmp(&b.batch1_ms.p50))
    }

    /// The throughput anchor: the best images/s any raw session reached (any options, any batch size).
    pub fn raw_best(&self, model: ModelVariant) -> Option<&RawModel> {
        self.raw.iter().filter(|r| r.model == model).max_by(|a, b| a.best.img_per_s.total_cmp(&b.best.img_per_s))
    }

    pub fn server(&self, model: ModelVariant) -> Option<&ServerModel> {
        self.server.as_ref().and_then(|s| s.models.iter().find(|m| m.model == model))
    }

    pub fn python(&self, model: ModelVariant) -> Option<&PythonModel> {
        self.python.iter().find(|p| p.model == model)
    }

    /// Fills `ratios`, `gray_over_color` and `targets` from the measurements.
    pub fn derive(&mut self) {
        let mut ratios = Vec::new();
        for model in ModelVariant::ALL {
            let raw_b1 = self.raw(model).map(|r| r.batch1_ms.p50);
            let raw_best = self.raw_best(model).map(|r| r.best.img_per_s);
            let server = self.server(model);
            let p50 = |input: &str| server.and_then(|s| s.latency(input)).map(|l| l.client_ms.p50);
            let share = |input: &str| {
                let l = server.and_then(|s| s.latency(input))?;
                let (d, p, i) = (l.server_ms.decode?, l.server_ms.preprocess?, l.server_ms.inference?);
                (i > 0.0).then(|| 100.0 * (d + p) / i)
            };
            let server_tput = server.map(|s| s.saturation.img_per_s);
            let server_dicom_tput = server.and_then(|s| s.saturation_dicom.as_ref()).map(|s| s.img_per_s);
            let python = self.python(model);
            ratios.push(ModelRatios {
                model,
                server_p50_png_over_raw_b1: div(p50("png"), raw_b1),
                // Paired (alternating) measurement when there is one; else the separate phases.
                server_p50_dicom_over_raw_b1: match server.and_then(|s| s.paired.as_ref()) {
                    Some(p) => div(Some(p.server_client_ms.p50), Some(p.raw_b1_ms.p50)),
                    None => div(p50("dicom"), raw_b1),
                },
                server_inference_over_raw_b1: div(
                    server.and_then(|s| s.latency("png")).and_then(|l| l.server_ms.inference),
                    raw_b1,
                ),
                server_tput_over_raw_best: div(server_tput, raw_best),
                server_tput_dicom_over_raw_best: div(
                    server_dicom_tput,
                    server.and_then(|s| s.paired_raw_tput.as_ref()).map(|r| r.img_per_s).or(raw_best),
                ),
                server_tput_dicom_over_raw_sweep_best: div(server_dicom_tput, raw_best),
                server_tput_over_python: div(server_tput, python.map(|p| p.saturation.img_per_s)),
                python_p50_over_server_p50: div(python.map(|p| p.latency.client_ms.p50), p50("png")),
                decode_preprocess_pct_png: share("png"),
                explain_cam_over_plain: server
                    .and_then(|s| s.explain.as_ref())
                    .and_then(|e| div(Some(e.cam_ms.p50), Some(e.plain_ms.p50))),
                explain_overlay_over_plain: server
                    .and_then(|s| s.explain.as_ref())
                    .and_then(|e| div(Some(e.overlay_ms.p50), Some(e.plain_ms.p50))),
                decode_preprocess_pct_dicom: share("dicom"),
            });
        }

        let g_over_c =
            |pick: &dyn Fn(ModelVariant) -> Option<f64>| div(pick(ModelVariant::Gray), pick(ModelVariant::Color));
        self.gray_over_color = GrayOverColor {
            raw_b1_latency: g_over_c(&|m| self.raw(m).map(|r| r.batch1_ms.p50)),
            raw_best_tput: g_over_c(&|m| self.raw_best(m).map(|r| r.best.img_per_s)),
            server_p50_png: g_over_c(&|m| self.server(m).and_then(|s| s.latency("png")).map(|l| l.client_ms.p50)),
            server_p50_dicom: g_over_c(&|m| self.server(m).and_then(|s| s.latency("dicom")).map(|l| l.client_ms.p50)),
            server_inference_png: g_over_c(&|m| {
                self.server(m).and_then(|s| s.latency("png")).and_then(|l| l.server_ms.inference)
            }),
            server_tput: g_over_c(&|m| self.server(m).map(|s| s.saturation.img_per_s)),
            python_p50: g_over_c(&|m| self.python(m).map(|p| p.latency.client_ms.p50)),
            python_tput: g_over_c(&|m| self.python(m).map(|p| p.saturation.img_per_s)),
            paper_latency: PAPER_GRAY_MS / PAPER_COLOR_MS,
        };

        let mut targets = Vec::new();
        let mut check = |name: &str,
                         model: Option<ModelVariant>,
                         value: Option<f64>,
                         target: &str,
                         ok: fn(f64) -> bool| {
            targets.push(TargetCheck { name: name.into(), model, value, target: target.into(), met: value.map(ok) });
        };
        for r in &ratios {
            let m = Some(r.model);
            check(
                "server p50 (DICOM, c=1) / ORT-default batch-1, alternating",
                m,
                r.server_p50_dicom_over_raw_b1,
                "<= 1.05",
                |v| v <= 1.05,
            );
            check(
                "server saturated img/s (DICOM) / raw best img/s, alternating",
                m,
                r.server_tput_dicom_over_raw_best,
                ">= 0.95",
                |v| v >= 0.95,
            );
            check(
                "server saturated img/s / Python img/s (PNG), alternating",
                m,
                r.server_tput_over_python,
                ">= 1.15",
                |v| v >= 1.15,
            );
            check("decode+preprocess / inference, PNG 1024² (%)", m, r.decode_preprocess_pct_png, "<= 5 %", |v| {
                v <= 5.0
            });
            check("decode+preprocess / inference, DICOM 1024² (%)", m, r.decode_preprocess_pct_dicom, "<= 5 %", |v| {
                v <= 5.0
            });
            check(
                "server p50 with explain=cam / without (PNG, c=1), alternating",
                m,
                r.explain_cam_over_plain,
                "<= 1.05",
                |v| v <= 1.05,
            );
        }
        if let Some(soak) = &self.soak {
            // Within 5 % either way.
            check("soak RSS end / RSS at 1 min", None, soak.ratio, "within 5 %", |v| (v - 1.0).abs() <= 0.05);
            check("soak RSS median last minute / median second minute", None, soak.median_ratio, "within 5 %", |v| {
                (v - 1.0).abs() <= 0.05
            });
        }
        self.ratios = ratios;
        self.targets = targets;
    }

    /// The markdown summary printed at the end of a run (and pasted into BENCHMARKS.md).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "### cxr-bench {} ({}, {:.0} s)\n", self.started_utc, mode(self), self.wall_s);
        let _ = writeln!(
            out,
            "Machine: {} CPUs, {}, {} MiB RAM, Linux {}; ONNX Runtime {} ({}), device `{}`, intra-op threads {}; \
             CPU busy just before the run {}, used by other processes during the run {}; load average at start {} / \
             at end {}.\n",
            m.nproc,
            m.cpu_model,
            m.mem_total_mib.map_or("?".into(), |v| format!("{v:.0}")),
            m.kernel,
            m.ort_version,
            providers(self),
            self.device,
            m.intra_threads,
            m.busy_before_pct.map_or("?".into(), |p| format!("{p:.0} %")),
            m.other_work_during_run_pct.map_or("?".into(), |p| format!("{p:.0} %")),
            m.loadavg_start,
            m.loadavg_end,
        );
        let p = &self.plan;
        let _ = writeln!(
            out,
            "Plan: c=1 latency {} requests after {} warm-up per (model, input); saturation {} clients closed loop, \
             {:.0} s per (server, model, input) in {} windows of {:.1} s, each after {:.0} s warm-up, alternating \
             with the compared side (PNG: the Python reference, DICOM: raw ORT at its best batch); raw ORT {} \
             batch-1 runs, {:.1} s per batch size {:?}; server --max-batch {}.\n",
            p.requests,
            p.warmup,
            p.concurrency,
            p.duration_secs,
            p.saturation_windows,
            p.window().as_secs_f64(),
            p.saturation_warmup_secs,
            p.raw_iters,
            p.raw_batch_secs,
            p.batch_sizes,
            p.max_batch
        );

        // Summary table.
        out.push_str(
            "| model | raw ORT-default b1 ms (p50 / p95) | raw best img/s (batch, options) | server PNG ms p50 / p95 / p99 | \
             server DICOM ms p50 / p95 / p99 | server sat. img/s (mean batch) | Python PNG p50 ms | Python img/s |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for model in ModelVariant::ALL {
            let raw = self.raw(model);
            let raw_best = self.raw_best(model);
            let server = self.server(model);
            let python = self.python(model);
            let lat = |input: &str| {
                server.and_then(|s| s.latency(input)).map_or("–".into(), |l| {
                    format!("{:.1} / {:.1} / {:.1}", l.client_ms.p50, l.client_ms.p95, l.client_ms.p99)
                })
            };
            let _ = writeln!(
                out,
                "| {model} | {} | {} | {} | {} | {} | {} | {} |",
                raw.map_or("–".into(), |r| format!("{:.1} / {:.1}", r.batch1_ms.p50, r.batch1_ms.p95)),
                raw_best.map_or("–".into(), |r| format!(
                    "{:.2} ({}, {})",
                    r.best.img_per_s,
                    r.best.batch,
                    r.options.label()
                )),
                lat("png"),
                lat("dicom"),
                server.map_or("–".into(), |s| format!(
                    "{:.2} ({})",
                    s.saturation.img_per_s,
                    s.saturation.server_ms.mean_batch_size.map_or("?".into(), |b| format!("{b:.1}"))
                )),
                python.map_or("–".into(), |p| format!("{:.1}", p.latency.client_ms.p50)),
                python.map_or("–".into(), |p| format!("{:.2}", p.saturation.img_per_s)),
            );
        }

        // Raw throughput per batch size.
        if !self.raw.is_empty() {
            out.push_str("\nRaw ONNX Runtime `Session::run`, per batch size (median ms per call → img/s):\n\n");
            out.push_str("| model | session options |");
            let sizes: Vec<usize> = self.raw[0].points.iter().map(|p| p.batch).collect();
            for n in &sizes {
                let _ = write!(out, " batch {n} |");
            }
            out.push_str("\n|---|---|");
            out.push_str(&"---|".repeat(sizes.len()));
            out.push('\n');
            for raw in &self.raw {
                let _ = write!(out, "| {} | {} |", raw.model, raw.options.label());
                for point in &raw.points {
                    let _ = write!(out, " {:.1} ms → {:.2} img/s |", point.median_ms, point.img_per_s);
                }
                out.push('\n');
            }
        }

        // Ratios and targets.
        out.push_str(
            "\nRatios against the targets (ORT-default anchors):\n\n| ratio | target | color | gray |\n|---|---|---|---|\n",
        );
        let names: Vec<(&str, &str)> = {
            let mut seen = Vec::new();
            for t in &self.targets {
                if t.model.is_some() && !seen.iter().any(|(n, _): &(&str, &str)| *n == t.name) {
                    seen.push((t.name.as_str(), t.target.as_str()));
                }
            }
            seen
        };
        for (name, target) in names {
            let cell = |model: ModelVariant| {
                self.targets.iter().find(|t| t.name == name && t.model == Some(model)).map_or("–".into(), |t| match (
                    t.value, t.met,
                ) {
                    (Some(v), Some(met)) => format!("{v:.3} {}", if met { "✅" } else { "❌" }),
                    _ => "–".into(),
                })
            };
            let _ =
                writeln!(out, "| {name} | {target} | {} | {} |", cell(ModelVariant::Color), cell(ModelVariant::Gray));
        }
        let extra = |pick: fn(&ModelRatios) -> Option<f64>| {
            let cell = |model| {
                self.ratios.iter().find(|r| r.model == model).and_then(pick).map_or("–".into(), |v| format!("{v:.3}"))
            };
            (cell(ModelVariant::Color), cell(ModelVariant::Gray))
        };
        let (c, g) = extra(|r| r.server_tput_dicom_over_raw_sweep_best);
        let _ = writeln!(
            out,
            "| server saturated img/s (DICOM) / best raw sweep cell (not alternating) | (info) | {c} | {g} |"
        );
        let (c, g) = extra(|r| r.server_tput_over_raw_best);
        let _ = writeln!(
            out,
            "| server saturated img/s (PNG) / raw best img/s (PNG decode included) | (info) | {c} | {g} |"
        );
        let (c, g) = extra(|r| r.server_p50_png_over_raw_b1);
        let _ =
            writeln!(out, "| server p50 (PNG, c=1) / ORT-default batch-1 (PNG decode included) | (info) | {c} | {g} |");
        let (c, g) = extra(|r| r.server_inference_over_raw_b1);
        let _ = writeln!(out, "| server `timing_ms.inference` (PNG, c=1) / raw batch-1 | (info) | {c} | {g} |");
        let (c, g) = extra(|r| r.explain_overlay_over_plain);
        let _ = writeln!(
            out,
            "| server p50 with explain=cam&overlay=png (3 PNGs) / without (PNG, c=1) | (info) | {c} | {g} |"
        );
        let (c, g) = extra(|r| r.python_p50_over_server_p50);
        let _ = writeln!(out, "| Python p50 / server p50 (PNG, c=1) | (info) | {c} | {g} |");

        for model in ModelVariant::ALL {
            if let Some(p) = self.server(model).and_then(|s| s.paired.as_ref()) {
                let _ = writeln!(
                    out,
                    "\n{model}, c=1 {} alternating with ORT-default batch-1 runs: server p50 {:.1} ms (p95 {:.1}), raw \
                     p50 {:.1} ms (p95 {:.1}).",
                    p.input, p.server_client_ms.p50, p.server_client_ms.p95, p.raw_b1_ms.p50, p.raw_b1_ms.p95
                );
            }
            if let Some((s, r)) =
                self.server(model).and_then(|s| s.saturation_dicom.as_ref().zip(s.paired_raw_tput.as_ref()))
            {
                let _ = writeln!(
                    out,
                    "\n{model}, saturated DICOM alternating with raw ORT ({}, batch {}), {} windows each: server {:.2} \
                     img/s ({} responses in {:.1} s), raw {:.2} img/s ({} images in {:.1} s of runs).",
                    r.options.label(),
                    r.batch,
                    r.windows,
                    s.img_per_s,
                    s.completed,
                    s.span_s,
                    r.img_per_s,
                    r.images,
                    r.run_s
                );
            }
        }

        // Server breakdown.
        out.push_str(
            "\nServer-reported time at c=1 (medians, ms) — `total` runs from the complete request body to the result; \
             client p50 − total is HTTP + upload + JSON:\n\n\
             | model | input | decode | preprocess | queue | inference | total | client p50 |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let opt = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
        for model in ModelVariant::ALL {
            if let Some(server) = self.server(model) {
                for l in &server.latency {
                    let s = &l.server_ms;
                    let _ = writeln!(
                        out,
                        "| {model} | {} ({} kB) | {} | {} | {} | {} | {} | {:.2} |",
                        l.input,
                        l.bytes / 1000,
                        opt(s.decode),
                        opt(s.preprocess),
                        opt(s.queue),
                        opt(s.inference),
                        opt(s.total),
                        l.client_ms.p50
                    );
                }
            }
        }
        for python in &self.python {
            let s = &python.latency.server_ms;
            let _ = writeln!(
                out,
                "| {} (Python ref) | png | {} | {} | – | {} | {} | {:.2} |",
                python.model,
                opt(s.decode),
                opt(s.preprocess),
                opt(s.inference),
                opt(s.total),
                python.latency.client_ms.p50
            );
        }

        // Saturation detail.
        out.push_str(
            "\nSaturation (closed loop; PNG unless marked DICOM): responses completed between each window's completion \
             anchors and the time between them (all windows), errors, client latency under load:\n\n\
             | server | model | img/s | completed in s | errors | client p50 / p99 ms | mean batch |\n\
             |---|---|---|---|---|---|---|\n",
        );
        let sat_row = |out: &mut String, who: &str, model: ModelVariant, s: &Saturation| {
            let _ = writeln!(
                out,
                "| {who} | {model} | {:.2} | {} in {:.1} | {} | {} | {} |",
                s.img_per_s,
                s.completed,
                s.span_s,
                s.errors,
                s.client_ms.map_or("–".into(), |c| format!("{:.0} / {:.0}", c.p50, c.p99)),
                opt(s.server_ms.mean_batch_size)
            );
        };
        for model in ModelVariant::ALL {
            if let Some(s) = self.server(model) {
                sat_row(&mut out, "cxr-serve", model, &s.saturation);
                if let Some(dicom) = &s.saturation_dicom {
                    sat_row(&mut out, "cxr-serve (DICOM)", model, dicom);
                }
            }
        }
        for python in &self.python {
            sat_row(&mut out, "Python ref", python.model, &python.saturation);
        }
        for python in &self.python {
            if let Some(diff) = python.max_abs_diff_vs_server {
                let _ = writeln!(
                    out,
                    "\nPython reference vs cxr-serve, {} model, same PNG: max |Δ probability| = {diff:.2e}.",
                    python.model
                );
            }
        }

        // Gray / color.
        let g = &self.gray_over_color;
        out.push_str(
            "\nGray / color (latency < 1 or throughput > 1: gray is faster), beside the paper's Table 4 \
             (GPU, 8.0 ms color vs 6.4 ms gray per image):\n\n| quantity | gray / color |\n|---|---|\n",
        );
        for (name, v) in [
            ("paper Table 4 latency (GPU)", Some(g.paper_latency)),
            ("raw ORT batch-1 latency", g.raw_b1_latency),
            ("raw ORT best throughput", g.raw_best_tput),
            ("server p50 PNG (c=1)", g.server_p50_png),
            ("server p50 DICOM (c=1)", g.server_p50_dicom),
            ("server inference PNG (c=1)", g.server_inference_png),
            ("server saturated throughput", g.server_tput),
            ("Python ref p50", g.python_p50),
            ("Python ref throughput", g.python_tput),
        ] {
            let _ = writeln!(out, "| {name} | {} |", v.map_or("–".into(), |v| format!("{v:.3}")));
        }

        if let Some(soak) = &self.soak {
            let _ = writeln!(
                out,
                "\nSoak: {:.1} min saturated ({} clients, color and gray alternating), {:.2} img/s, {} errors; RSS at \
                 1 min {} MiB, at the end {} MiB, ratio {}; median of the second minute {} MiB, of the last minute {} \
                 MiB, ratio {}; peak {} MiB.",
                soak.minutes,
                soak.concurrency,
                soak.img_per_s,
                soak.errors,
                opt(soak.rss_at_1min_mib),
                opt(soak.rss_end_mib),
                soak.ratio.map_or("– (soak shorter than 1 min or no RSS)".into(), |r| format!("{r:.3}")),
                opt(soak.rss_median_second_min_mib),
                opt(soak.rss_median_last_min_mib),
                soak.median_ratio.map_or("– (soak shorter than 3 min)".into(), |r| format!("{r:.3}")),
                opt(soak.rss_peak_mib),
            );
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

fn mode(report: &Report) -> &'static str {
    if report.plan.quick { "quick run" } else { "full run" }
}

/// The execution providers that actually ran (raw sessions and the server's responses).
fn providers(report: &Report) -> String {
    let mut names: Vec<String> = report.raw.iter().map(|r| r.provider.clone()).collect();
    if let Some(server) = &report.server {
        names.extend(server.models.iter().flat_map(|m| m.latency.iter().filter_map(|l| l.provider.clone())));
    }
    names.sort();
    names.dedup();
    if names.is_empty() { "provider unknown".into() } else { names.join(", ") }
}
