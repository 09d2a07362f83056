//! Class activation maps (Zhou et al., CVPR 2016) in the original image's coordinates, and their overlay on the
//! X-ray.
//!
//! An exported model's `cam` output holds, per finding, a `g × g` grid over the *model input* (`g` = 8 at 299²):
//! the classifier applied at every position of the last feature map, bias included, so the mean of finding `k`'s
//! grid is its logit. The model input is the letterboxed square of side `S = max(W, H)` ([`crate::preprocess`]):
//! the image sits at offset `((S − W) / 2, (S − H) / 2)` of that square. [`GridMapping`] undoes the letterbox: cell
//! `(row, col)` covers the original pixels `x ∈ [origin_x + col·cell, origin_x + (col+1)·cell)` and likewise for
//! `y`, where `origin = (−offset_x, −offset_y)` and `cell = S / g`. Cells over padding lie partly or wholly outside
//! the image.
//!
//! [`Film::overlay`] draws one map on the image the usual way: the grid is upsampled bilinearly between cell centres
//! (clamped at the border), scaled to [0, 1] between the map's own minimum and maximum, coloured with the Turbo
//! colormap and blended over the X-ray with an opacity that grows with the value, so cold regions show the film.

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::{FilterType, resize};
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Luma, Rgb, RgbImage};
use serde::Serialize;

use crate::image::GrayImage;

/// Where a model's `g × g` map lies on the original image (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GridMapping {
    /// The side `g` of the grid.
    pub grid: usize,
    /// The side of one cell, in original pixels: `max(W, H) / g`.
    pub cell: f64,
    /// The top-left corner of cell `(0, 0)` in original pixel coordinates `(x, y)`; negative along the axis the
    /// letterbox padded.
    pub origin: [f64; 2],
    /// The original image's width and height, in pixels.
    pub image: [u32; 2],
}

impl GridMapping {
    /// The mapping of a `grid × grid` map of a `width × height` image, for the letterbox of
    /// [`crate::preprocess::Preprocessor`] (same integer offsets).
    pub fn new(width: u32, height: u32, grid: usize) -> GridMapping {
        let side = width.max(height);
        let offset = |len: u32| f64::from((side - len) / 2);
        GridMapping {
            grid,
            cell: f64::from(side) / grid.max(1) as f64,
            origin: [-offset(width), -offset(height)],
            image: [width, height],
        }
    }

    /// The cell `(row, col)` that holds original pixel coordinates `(x, y)`, clamped to the grid.
    pub fn cell_of(&self, x: f64, y: f64) -> (usize, usize) {
        let index = |v: f64, origin: f64| (((v - origin) / self.cell).floor().max(0.0) as usize).min(self.grid - 1);
        (index(y, self.origin[1]), index(x, self.origin[0]))
    }

    /// The value of a row-major `g × g` `map` at original coordinates `(x, y)`: bilinear between cell centres,
    /// constant beyond the outer centres.
    pub fn sample(&self, map: &[f32], x: f64, y: f64) -> f32 {
        bilinear(map, self.grid, self.axis(y, self.origin[1]), self.axis(x, self.origin[0]))
    }

    /// Along one axis, the cell whose centre precedes original coordinate `v` and the weight of the next one.
    fn axis(&self, v: f64, origin: f64) -> (usize, f32) {
        let u = ((v - origin) / self.cell - 0.5).clamp(0.0, (self.grid - 1) as f64);
        let i = u.floor() as usize;
        (i, (u - i as f64) as f32)
    }
}

/// The value of a row-major `g × g` `map` between four cell centres: `row` and `column` are each a cell index and
/// the weight of the next cell along that axis ([`GridMapping::axis`]; the last cell is its own next).
fn bilinear(map: &[f32], g: usize, (row, fy): (usize, f32), (col, fx): (usize, f32)) -> f32 {
    let (next_row, next_col) = ((row + 1).min(g - 1), (col + 1).min(g - 1));
    let at = |r: usize, c: usize| map[r * g + c];
    let top = at(row, col) * (1.0 - fx) + at(row, next_col) * fx;
    let bottom = at(next_row, col) * (1.0 - fx) + at(next_row, next_col) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Largest side of an overlay unless asked otherwise: enough to read the anatomy, small enough for a JSON field.
pub const OVERLAY_MAX_SIDE: u32 = 512;

/// Opacity of the hottest point of an overlay; it falls linearly to 0 at the map's minimum.
const MAX_OPACITY: f32 = 0.6;

/// The X-ray as the overlays show it: shrunk once so that its longer side is at most `max_side`, then reused for
/// every finding drawn over it.
pub struct Film {
    gray: ImageBuffer<Luma<u8>, Vec<u8>>,
    /// Overlay pixels per original pixel (≤ 1).
    scale: f64,
}

impl Film {
    /// The film of `image` for overlays of at most `max_side` pixels on the longer side.
    pub fn new(image: &GrayImage, max_side: u32) -> Film {
        let (width, height) = (image.width(), image.height());
        let scale = (f64::from(max_side.max(1)) / f64::from(width.max(height).max(1))).min(1.0);
        let size = |len: u32| ((f64::from(len) * scale).round() as u32).max(1);
        let (out_w, out_h) = (size(width), size(height));
        let full: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_raw(
            width,
            height,
            image.data().iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect(),
        )
        .expect("a GrayImage holds width × height values");
        let gray =
            if (out_w, out_h) == (width, height) { full } else { resize(&full, out_w, out_h, FilterType::Triangle) };
        Film { gray, scale }
    }

    /// `map` (row-major `g × g`, placed by `mapping`) drawn over the film (see the module documentation).
    pub fn overlay(&self, map: &[f32], mapping: &GridMapping) -> RgbImage {
        let (low, high) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let span = if high > low { high - low } else { f32::INFINITY };
        // The map scaled to [0, 1], then upsampled to the film: bilinear weights are computed once per column and
        // once per row, and the colour of each of 256 levels once, so a pixel costs a few multiplications.
        let unit: Vec<f32> = map.iter().map(|v| (v - low) / span).collect();
        let (width, height) = self.gray.dimensions();
        let axis = |len: u32, origin: f64| -> Vec<(usize, f32)> {
            (0..len).map(|p| mapping.axis((f64::from(p) + 0.5) / self.scale, origin)).collect()
        };
        let (columns, rows) = (axis(width, mapping.origin[0]), axis(height, mapping.origin[1]));
        let palette: Vec<[f32; 3]> = (0..=255u32)
            .map(|level| {
                let c = colorous::TURBO.eval_continuous(f64::from(level) / 255.0);
                [f32::from(c.r), f32::from(c.g), f32::from(c.b)]
            })
            .collect();
        let g = mapping.grid;
        let mut out = RgbImage::new(width, height);
        for (py, row) in rows.iter().enumerate() {
            for (px, column) in columns.iter().enumerate() {
                let t = bilinear(&unit, g, *row, *column).clamp(0.0, 1.0);
                let color = palette[(t * 255.0).round() as usize];
                let alpha = MAX_OPACITY * t;
                let gray = f32::from(self.gray.get_pixel(px as u32, py as u32).0[0]) * (1.0 - alpha);
                let blend = |c: f32| (gray + c * alpha).round().clamp(0.0, 255.0) as u8;
                out.put_pixel(px as u32, py as u32, Rgb([blend(color[0]), blend(color[1]), blend(color[2])]));
            }
        }
        out
    }

    /// [`Film::overlay`], encoded as PNG with fast compression (the picture travels once, inside a response).
    pub fn overlay_png(&self, map: &[f32], mapping: &GridMapping) -> Vec<u8> {
        let rgb = self.overlay(map, mapping);
        let mut png = Vec::new();
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, PngFilter::Sub)
            .write_image(rgb.as_raw(), rgb.width(), rgb.height(), ExtendedColorType::Rgb8)
            .expect("encoding an in-memory RGB image as PNG cannot fail");
        png
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Normalization;
    use crate::preprocess::Preprocessor;

    #[test]
    fn the_mapping_undoes_the_letterbox() {
        // Landscape 400 × 200: the square is 400, the image sits 100 rows down.
        let m = GridMapping::new(400, 200, 8);
        assert_eq!((m.cell, m.origin), (50.0, [0.0, -100.0]));
        assert_eq!(m.cell_of(0.0, 0.0), (2, 0), "the first image row is in grid row 2");
        assert_eq!(m.cell_of(399.0, 199.0), (5, 7));
        // Portrait, odd padding: offsets round down like the preprocessor's.
        let m = GridMapping::new(101, 200, 4);
        assert_eq!(m.origin, [-49.0, 0.0]);
    }

    #[test]
    fn the_mapping_agrees_with_the_preprocessor() {
        // A bright pixel block in a landscape image lands in the input square where the mapping says it does.
        let (w, h, n) = (120u32, 60u32, 60usize);
        let mut data = vec![0.0f32; (w * h) as usize];
        for y in 20..30 {
            for x in 90..100 {
                data[(y * w + x) as usize] = 1.0;
            }
        }
        let image = GrayImage::new(w, h, data).unwrap();
        let plane = Preprocessor::new(n, Normalization { mean: 0.0, std: 1.0 }).plane(&image);
        let (argmax, _) = plane.iter().enumerate().fold((0, f32::MIN), |b, (i, v)| if *v > b.1 { (i, *v) } else { b });
        // Model-input pixel → grid of one cell per input pixel → original coordinates of that cell's centre.
        let m = GridMapping::new(w, h, n);
        let (row, col) = (argmax / n, argmax % n);
        let (x, y) = (m.origin[0] + (col as f64 + 0.5) * m.cell, m.origin[1] + (row as f64 + 0.5) * m.cell);
        assert!((90.0..100.0).contains(&x) && (20.0..30.0).contains(&y), "({x}, {y})");
    }

    #[test]
    fn sampling_hits_cell_centres_and_interpolates_between() {
        let m = GridMapping::new(20, 20, 2); // cells of 10 px, centres at 5 and 15
        let map = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(m.sample(&map, 5.0, 5.0), 0.0);
        assert_eq!(m.sample(&map, 15.0, 15.0), 3.0);
        assert_eq!(m.sample(&map, 10.0, 5.0), 0.5);
        assert_eq!(m.sample(&map, 0.0, 0.0), 0.0, "clamped beyond the outer centres");
        assert_eq!(GridMapping::new(5, 5, 1).sample(&[7.0], 1.0, 4.0), 7.0);
    }

    #[test]
    fn the_overlay_is_hot_where_the_map_is_high() {
        let image = GrayImage::new(64, 32, vec![0.5; 64 * 32]).unwrap();
        let m = GridMapping::new(64, 32, 2);
        // Grid rows 0 and 1 cover y −16..16 and 16..48; the image spans y 0..32. High at the top-right cell.
        let map = [0.0, 4.0, 0.0, 0.0];
        let rgb = Film::new(&image, 512).overlay(&map, &m);
        assert_eq!(rgb.dimensions(), (64, 32));
        let warmth = |x: u32, y: u32| {
            let Rgb([r, _, b]) = *rgb.get_pixel(x, y);
            i32::from(r) - i32::from(b)
        };
        assert!(warmth(60, 2) > 60, "hot corner: {:?}", rgb.get_pixel(60, 2));
        assert_eq!(*rgb.get_pixel(2, 30), Rgb([128, 128, 128]), "the coldest point shows the film unchanged");
        let png = Film::new(&image, 16).overlay_png(&map, &m);
        let decoded = image::load_from_memory(&png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (16, 8), "shrunk to the longer side's limit");
    }
}
