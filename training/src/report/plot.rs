//! ROC curve PNGs (plotters): one chart per label with both models' curves, their AUCs and the chance diagonal.
//!
//! Text needs a TrueType font. plotters' `ab_glyph` renderer is given the first of `$CXR_FONT`, DejaVu Sans or
//! Liberation Sans found on the system (`scripts/setup-system.sh` installs Debian's `fonts-dejavu-core`); without
//! one the charts are drawn without text and a warning says so.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::cause::Cause;
use crate::roc::RocPoint;

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a system font for plotters once; `true` when text can be drawn.
fn font_available() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let candidates =
            std::env::var("CXR_FONT").ok().into_iter().chain(FONT_CANDIDATES.iter().map(|s| s.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps registered fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        tracing::warn!("no TrueType font found (set CXR_FONT): ROC charts are drawn without text");
        false
    })
}

/// One model's curve on a chart.
pub struct Curve<'a> {
    pub name: &'a str,
    pub auc: f64,
    pub points: &'a [RocPoint],
}

/// Draws `curves` (at most a few) into a 640×640 PNG at `path`.
pub fn roc_png(path: &Path, title: &str, curves: &[Curve<'_>]) -> Result<(), Cause> {
    let text = font_available();
    let root = BitMapBackend::new(path, (640, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(Cause::other)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16).x_label_area_size(if text { 44 } else { 8 }).y_label_area_size(if text { 56 } else { 8 });
    if text {
        builder.caption(title, ("sans-serif", 24));
    }
    let mut chart = builder.build_cartesian_2d(0f64..1f64, 0f64..1f64).map_err(Cause::other)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("1 − specificity (false positive rate)").y_desc("sensitivity (true positive rate)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(Cause::other)?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3))).map_err(Cause::other)?;
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    for (curve, color) in curves.iter().zip(colors.iter().cycle()) {
        let style = color.stroke_width(2);
        let series = chart
            .draw_series(LineSeries::new(curve.points.iter().map(|p| (p.fpr, p.tpr)), style))
            .map_err(Cause::other)?;
        if text {
            series
                .label(format!("{} (AUC {:.3})", curve.name, curve.auc))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 18))
            .draw()
            .map_err(Cause::other)?;
    }
    root.present().map_err(Cause::other)
}
