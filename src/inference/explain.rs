//! `?explain=cam`: per-finding class activation maps (Zhou et al., CVPR 2016) from the same forward pass.
//!
//! Inception-V3 ends in global average pooling and one linear layer, so the classifier applied at every position of
//! the last feature map is an exact decomposition of the logit: the spatial mean of finding `k`'s map *is* its logit.
//! Every export of `cxr-train` computes these maps in its graph (output `cam`, `[N, 14, g, g]`: one 1 × 1 `Conv`,
//! ~1.8 M multiply-adds per image beside Inception-V3's ~5.7 G); the engine copies them out only for jobs that ask
//! ([`cxr_engine::Maps`]), so a prediction without `explain` gets and returns exactly what it did before. This
//! module turns one image's maps into the response: each grid in the original image's coordinates
//! (the letterbox undone, [`GridMapping`]) and, with `overlay=png`, the top findings drawn over the X-ray.
//!
//! Adopted models have no `cam` output; they keep serving, and a response that asked for maps says so in its
//! warnings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cxr_core::cam::{Film, GridMapping, OVERLAY_MAX_SIDE};
use cxr_core::image::GrayImage;
use cxr_core::labels::LABELS;
use serde::Serialize;

use crate::config::Explain;
use cxr_engine::MapShape;

/// Whether the explained findings come with a picture (`?overlay=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlay {
    /// Grids only.
    #[default]
    None,
    /// A PNG of each of the top findings' maps over the X-ray (base64 in `overlay_png`).
    Png,
}

cxr_core::keywords!(Overlay, "overlay", { None => "none", Png => "png" });

/// Findings drawn as overlays unless `?top=` says otherwise.
pub const DEFAULT_OVERLAY_TOP: usize = 3;

/// What one request asked to be explained, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplainRequest {
    /// Overlays for this many findings, the most probable first (0: none).
    pub overlays: usize,
}

impl ExplainRequest {
    /// The request of `explain` (the server's `--explain` when absent), `overlay` and `top`; `None` when nothing is
    /// to be explained. An overlay or a `top` without maps to draw, or a `top` outside 1..=14, is a client error.
    pub fn resolve(
        explain: Option<Explain>,
        overlay: Option<Overlay>,
        top: Option<usize>,
        default: Explain,
    ) -> Result<Option<ExplainRequest>, String> {
        let explain = explain.unwrap_or(default);
        let overlay = overlay.unwrap_or_default();
        if let Some(top) = top {
            if !(1..=LABELS.len()).contains(&top) {
                return Err(format!("top={top} is not a number of findings from 1 to {}", LABELS.len()));
            }
            if overlay != Overlay::Png {
                return Err("top= counts the findings drawn by overlay=png; add overlay=png".into());
            }
        }
        match (explain, overlay) {
            (Explain::None, Overlay::Png) => Err("overlay=png draws the class activation maps; add explain=cam".into()),
            (Explain::None, Overlay::None) => Ok(None),
            (Explain::Cam, Overlay::None) => Ok(Some(ExplainRequest { overlays: 0 })),
            (Explain::Cam, Overlay::Png) => Ok(Some(ExplainRequest { overlays: top.unwrap_or(DEFAULT_OVERLAY_TOP) })),
        }
    }
}

/// The class activation maps of one model's prediction, in the original image's coordinates.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// Always `cam`.
    pub method: Explain,
    /// Where the grid lies on the original image: `grid` (side `g`), `cell` (its side in original pixels),
    /// `origin` (`[x, y]` of cell (0, 0)'s top-left corner; negative where the letterbox padded) and `image`
    /// (`[width, height]`).
    #[serde(flatten)]
    pub mapping: GridMapping,
    /// One map per finding, in label order.
    pub maps: Vec<FindingMap>,
}

/// One finding's map.
#[derive(Debug, Serialize)]
pub struct FindingMap {
    pub label: &'static str,
    /// The finding's logit, which is the mean of `values`.
    pub logit: f32,
    /// `g` rows of `g` values (row 0 at the top), in logit units: the classifier at each position, bias included.
    pub values: Vec<Vec<f32>>,
    /// The map over the X-ray as a base64 PNG (at most 512 pixels on the longer side), for the top findings of an
    /// `overlay=png` request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay_png: Option<String>,
}

/// Builds the explanation of one prediction: `cam` is the `[14, g, g]` output, `probabilities` and `logits` its
/// prediction's rows, `image` the decoded image (for its size and the overlays). CPU work (the overlays encode PNGs):
/// call it on the blocking pool.
pub fn explain(
    request: ExplainRequest,
    shape: MapShape,
    cam: &[f32],
    probabilities: &[f32],
    logits: &[f32],
    image: &GrayImage,
) -> Explanation {
    let g = shape.grid;
    let mapping = GridMapping::new(image.width(), image.height(), g);
    let mut ranked: Vec<usize> = (0..LABELS.len()).collect();
    ranked.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
    let drawn = &ranked[..request.overlays.min(ranked.len())];
    // The X-ray is shrunk once for all the findings drawn over it.
    let film = (!drawn.is_empty()).then(|| Film::new(image, OVERLAY_MAX_SIDE));
    let maps = LABELS
        .iter()
        .zip(cam.chunks_exact(g * g))
        .zip(logits)
        .enumerate()
        .map(|(k, ((label, map), logit))| FindingMap {
            label,
            logit: *logit,
            values: map.chunks_exact(g).map(<[f32]>::to_vec).collect(),
            overlay_png: film
                .as_ref()
                .filter(|_| drawn.contains(&k))
                .map(|film| BASE64.encode(film.overlay_png(map, &mapping))),
        })
        .collect();
    Explanation { method: Explain::Cam, mapping, maps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_resolve_or_explain_what_is_wrong() {
        let resolve = |e, o, t, d| ExplainRequest::resolve(e, o, t, d);
        assert_eq!(resolve(None, None, None, Explain::None), Ok(None));
        assert_eq!(resolve(None, None, None, Explain::Cam), Ok(Some(ExplainRequest { overlays: 0 })));
        assert_eq!(resolve(Some(Explain::None), None, None, Explain::Cam), Ok(None), "a request can opt out");
        assert_eq!(
            resolve(Some(Explain::Cam), Some(Overlay::Png), None, Explain::None),
            Ok(Some(ExplainRequest { overlays: DEFAULT_OVERLAY_TOP }))
        );
        assert_eq!(
            resolve(Some(Explain::Cam), Some(Overlay::Png), Some(14), Explain::None).unwrap().unwrap().overlays,
            14
        );
        assert!(resolve(None, Some(Overlay::Png), None, Explain::None).unwrap_err().contains("explain=cam"));
        assert!(resolve(Some(Explain::Cam), Some(Overlay::Png), Some(0), Explain::None).is_err());
        assert!(resolve(Some(Explain::Cam), Some(Overlay::Png), Some(15), Explain::None).is_err());
        assert!(resolve(Some(Explain::Cam), None, Some(2), Explain::None).unwrap_err().contains("overlay=png"));
    }

    #[test]
    fn the_explanation_keeps_the_raw_maps_and_draws_the_top_findings() {
        let g = 2;
        let cam: Vec<f32> = (0..LABELS.len() * g * g).map(|i| i as f32 / 10.0).collect();
        let logits: Vec<f32> = cam.chunks_exact(g * g).map(|m| m.iter().sum::<f32>() / 4.0).collect();
        let mut probabilities = vec![0.1f32; LABELS.len()];
        probabilities[5] = 0.9;
        probabilities[2] = 0.8;
        let image = GrayImage::new(30, 20, vec![0.5; 600]).unwrap();
        let shape = MapShape { grid: g, channels: 2048 };
        let e = explain(ExplainRequest { overlays: 2 }, shape, &cam, &probabilities, &logits, &image);
        assert_eq!((e.mapping.grid, e.mapping.origin), (2, [0.0, -5.0]));
        assert_eq!(e.maps[1].values, vec![vec![0.4, 0.5], vec![0.6, 0.7]]);
        let drawn: Vec<&str> = e.maps.iter().filter(|m| m.overlay_png.is_some()).map(|m| m.label).collect();
        assert_eq!(drawn, [LABELS[2], LABELS[5]]);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["method"], "cam");
        assert_eq!(json["cell"], 15.0);
        assert!(json["maps"][0].get("overlay_png").is_none());
    }
}
