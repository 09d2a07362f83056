//! The reports of finished runs: [`evaluate`] (a run's test-split predictions, per-class AUC with confidence
//! intervals and Youden thresholds → `evaluation.json`), [`compare`] (two evaluated runs → the paper's Table 2 by
//! DeLong's test) and [`plot`] (their ROC curves as PNG). The statistics themselves are in [`crate::roc`].

pub mod compare;
pub mod evaluate;
pub mod plot;
