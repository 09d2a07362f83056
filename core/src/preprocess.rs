//! [`GrayImage`] → the normalised model input. This module is the project's preprocessing contract: the server
//! and the training pipeline both call it, so a model sees exactly the same pixels in training and in serving.
//!
//! # Method
//! 1. **Letterbox.** A non-square `W × H` image is placed on a black (0.0) square of side `S = max(W, H)`, at
//!    offset `((S − W) / 2, (S − H) / 2)` rounded down. Nothing is cropped, so no anatomy is lost, and the
//!    aspect ratio is kept. The padded square is never materialised: padding is folded into the resampling
//!    weights (a tap on a padding pixel contributes 0 and is simply dropped).
//! 2. **Resize** the square to `N × N` (`N` = `input_size`, 299 for Inception-v3) with a separable triangle
//!    (linear) filter, the same kernel as PIL's `BILINEAR` and torchvision's `antialias=True`: output pixel `i`
//!    has its centre at source coordinate `(i + 0.5) · S/N`; when downscaling (`S > N`) the triangle is
//!    stretched by `S/N` so that every source pixel contributes (antialiasing), when upscaling it is plain
//!    bilinear interpolation. Weights are normalised to sum to 1 over the padded square, computed in `f64`
//!    once per axis and stored as `f32`. The two passes run on `f32` rows, the one along the longer side first
//!    (vertical first for square and portrait images), which bounds the intermediate buffer by
//!    `N × min(W, H)`; both passes are linear, so the order only changes `f32` rounding. The result matches
//!    Pillow's `Image.resize((N, N), BILINEAR)` of the letterboxed image (mode `F`) to about 1e-7.
//! 3. **Normalise** every value: `x' = (x − mean) / std` ([`Normalization`]; Inception's 0.5/0.5 maps [0, 1] to
//!    [−1, 1], so padding becomes −1).
//! 4. **Channels.** The 1-channel ("gray") model takes the plane as is; the 3-channel ("color", pseudo-color)
//!    model takes the same plane stacked three times, in CHW order.

use crate::card::Normalization;
use crate::image::GrayImage;

/// One-line statement of the method above, written into every model card so consumers outside this codebase
/// can reproduce the input exactly.
pub const PREPROCESSING_DESCRIPTION: &str = "gray image in [0,1] (DICOM: modality LUT, first VOI window or VOI LUT, \
    MONOCHROME1 inverted; PNG/JPEG: Luma 0.299R+0.587G+0.114B) -> letterbox to a centred black square (no crop) -> \
    separable antialiased triangle (bilinear) resize to input_size x input_size, pixel-centre aligned -> \
    (x - mean) / std -> 1 channel (gray) or the same plane stacked to 3 channels (color), CHW";

/// Turns gray images into normalised `C × N × N` model inputs; see the module documentation for the method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessor {
    input_size: usize,
    normalization: Normalization,
}

impl Preprocessor {
    /// A preprocessor producing `input_size × input_size` planes normalised with `normalization`.
    ///
    /// # Panics
    /// If `input_size` is 0 or `normalization.std` is 0 or not finite (configuration errors, never input data).
    pub fn new(input_size: usize, normalization: Normalization) -> Self {
        assert!(input_size > 0, "input_size must be positive");
        assert!(
            normalization.std.is_finite() && normalization.std != 0.0 && normalization.mean.is_finite(),
            "normalization must have a finite mean and a finite non-zero std"
        );
        Preprocessor { input_size, normalization }
    }

    /// Output side length `N`.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// The normalisation applied after resizing.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// Number of values in one plane: `N²`.
    pub fn plane_len(&self) -> usize {
        self.input_size * self.input_size
    }

    /// The letterboxed, resized and normalised `N × N` plane, row-major.
    pub fn plane(&self, img: &GrayImage) -> Vec<f32> {
        let mut out = vec![0.0; self.plane_len()];
        self.write_plane(img, &mut out);
        out
    }

    /// The `channels × N × N` (CHW) input: the plane repeated `channels` times (1 for gray, 3 for color).
    pub fn tensor(&self, img: &GrayImage, channels: usize) -> Vec<f32> {
        let mut out = vec![0.0; channels * self.plane_len()];
        self.write_tensor(img, channels, &mut out);
        out
    }

    /// Writes the `channels × N × N` input into `out`, e.g. one slot of a batch buffer.
    ///
    /// # Panics
    /// If `out.len() != channels × N²` (a caller bug, never input data).
    pub fn write_tensor(&self, img: &GrayImage, channels: usize, out: &mut [f32]) {
        let plane = self.plane_len();
        assert_eq!(out.len(), channels * plane, "output buffer must hold channels × input_size² values");
        if channels == 0 {
            return;
        }
        let (first, rest) = out.split_at_mut(plane);
        self.write_plane(img, first);
        for chunk in rest.chunks_exact_mut(plane) {
            chunk.copy_from_slice(first);
        }
    }

    /// Writes one plane into `out`, which holds exactly `N²` values.
    fn write_plane(&self, img: &GrayImage, out: &mut [f32]) {
        let n = self.input_size;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let side = w.max(h);
        let Normalization { mean, std } = self.normalization;
        let inv_std = 1.0 / std;
        if w == 0 || h == 0 {
            out.fill((0.0 - mean) * inv_std);
            return;
        }
        let cols = AxisWeights::new(side, (side - w) / 2, w, n);
        let rows = AxisWeights::new(side, (side - h) / 2, h, n);
        let src = img.data();

        // Resize the longer axis first so the intermediate buffer holds at most N × min(W, H) values: a
        // 100-megapixel strip must not need N × 100 M floats.
        if h >= w {
            let mut tmp = vec![0.0f32; n * w];
            vertical_pass(src, w, &rows, &mut tmp);
            horizontal_pass(&tmp, w, &cols, out);
        } else {
            let mut tmp = vec![0.0f32; h * n];
            horizontal_pass(src, w, &cols, &mut tmp);
            out.fill(0.0);
            vertical_pass(&tmp, n, &rows, out);
        }
        for v in out.iter_mut() {
            *v = (*v - mean) * inv_std;
        }
    }
}

/// Resamples columns: output row `i` (of `width` values, in `dst`, which starts zeroed) is the weighted sum of
/// the source rows selected by `weights`.
fn vertical_pass(src: &[f32], width: usize, weights: &AxisWeights, dst: &mut [f32]) {
    for (i, dst_row) in dst.chunks_exact_mut(width).enumerate() {
        let (first, taps) = weights.taps(i);
        for (k, &wk) in taps.iter().enumerate() {
            let y = first + k;
            let src_row = &src[y * width..(y + 1) * width];
            for (d, &s) in dst_row.iter_mut().zip(src_row) {
                *d += wk * s;
            }
        }
    }
}

/// Resamples rows: every source row of `width` values becomes one row of `dst` with one value per output
/// column of `weights`.
fn horizontal_pass(src: &[f32], width: usize, weights: &AxisWeights, dst: &mut [f32]) {
    let n = weights.len();
    for (src_row, dst_row) in src.chunks_exact(width).zip(dst.chunks_exact_mut(n)) {
        for (j, d) in dst_row.iter_mut().enumerate() {
            let (first, taps) = weights.taps(j);
            let window = &src_row[first..first + taps.len()];
            *d = taps.iter().zip(window).map(|(a, b)| a * b).sum();
        }
    }
}

/// Resampling weights for one axis: for every output index, the first real source index and its weights.
///
/// Built over the padded axis of length `side`, where the real pixels occupy `[offset, offset + len)`. The
/// weights are normalised over the whole padded axis; taps on padding are then dropped, since they multiply 0.
struct AxisWeights {
    /// Per output index: (first source index in real-pixel coordinates, start in `weights`, tap count).
    spans: Vec<(usize, usize, usize)>,
    weights: Vec<f32>,
}

impl AxisWeights {
    fn new(side: usize, offset: usize, len: usize, out: usize) -> Self {
        let scale = side as f64 / out as f64;
        let filter_scale = scale.max(1.0);
        // The triangle kernel has radius 1, stretched by the downscale factor.
        let support = filter_scale;
        let mut spans = Vec::with_capacity(out);
        let mut weights = Vec::with_capacity(out * (2 * support.ceil() as usize + 2));
        let mut scratch = Vec::new();
        for i in 0..out {
            let center = (i as f64 + 0.5) * scale;
            // Same tap range as PIL's precompute_coeffs: [center − support, center + support), rounded.
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(side);
            scratch.clear();
            let mut sum = 0.0f64;
            for x in lo..hi {
                let t = ((x as f64 + 0.5 - center) / filter_scale).abs();
                let wgt = (1.0 - t).max(0.0);
                scratch.push(wgt);
                sum += wgt;
            }
            // Keep only taps on real pixels; the others read padding, which is 0.
            let real_lo = lo.max(offset);
            let real_hi = hi.min(offset + len);
            let start = weights.len();
            if real_lo < real_hi && sum > 0.0 {
                for x in real_lo..real_hi {
                    weights.push((scratch[x - lo] / sum) as f32);
                }
                spans.push((real_lo - offset, start, real_hi - real_lo));
            } else {
                spans.push((0, start, 0));
            }
        }
        AxisWeights { spans, weights }
    }

    /// Number of output positions.
    fn len(&self) -> usize {
        self.spans.len()
    }

    /// First source index and the weights of output index `i`.
    #[inline]
    fn taps(&self, i: usize) -> (usize, &[f32]) {
        let (first, start, count) = self.spans[i];
        (first, &self.weights[start..start + count])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: Normalization = Normalization { mean: 0.0, std: 1.0 };

    fn image(w: u32, h: u32, f: impl Fn(u32, u32) -> f32) -> GrayImage {
        let data = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect();
        GrayImage::new(w, h, data).expect("valid shape")
    }

    fn at(plane: &[f32], n: usize, x: usize, y: usize) -> f32 {
        plane[y * n + x]
    }

    #[test]
    fn constant_image_stays_constant_after_normalisation() {
        let p = Preprocessor::new(299, Normalization::INCEPTION);
        let out = p.plane(&image(1024, 1024, |_, _| 0.8));
        assert_eq!(out.len(), 299 * 299);
        for v in out {
            assert!((v - 0.6).abs() < 1e-5, "{v}");
        }
    }

    #[test]
    fn tensor_sizes_and_stacking() {
        let p = Preprocessor::new(17, Normalization::INCEPTION);
        let img = image(40, 30, |x, y| ((x * 7 + y * 3) % 11) as f32 / 10.0);
        let plane = p.plane(&img);
        let gray = p.tensor(&img, 1);
        let color = p.tensor(&img, 3);
        assert_eq!(gray, plane);
        assert_eq!(color.len(), 3 * 17 * 17);
        for c in 0..3 {
            assert_eq!(&color[c * 289..(c + 1) * 289], &plane[..]);
        }
        let mut batch = vec![f32::NAN; 2 * 3 * 289];
        p.write_tensor(&img, 3, &mut batch[3 * 289..]);
        assert_eq!(&batch[3 * 289..], &color[..]);
        assert!(batch[..3 * 289].iter().all(|v| v.is_nan()), "the other batch slot is untouched");
    }

    #[test]
    fn mirror_symmetric_input_gives_symmetric_output() {
        let p = Preprocessor::new(31, IDENTITY);
        let img = image(100, 100, |x, y| {
            let dx = (x as f32 - 49.5).abs();
            let dy = (y as f32 - 49.5).abs();
            (dx * 0.01 + dy * 0.003).min(1.0)
        });
        let out = p.plane(&img);
        for y in 0..31 {
            for x in 0..31 {
                assert!((at(&out, 31, x, y) - at(&out, 31, 30 - x, y)).abs() < 1e-5);
                assert!((at(&out, 31, x, y) - at(&out, 31, x, 30 - y)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn non_square_input_gets_black_bars() {
        // A 200×100 white image in a 200×200 square: rows 0..50 and 150..200 are padding.
        let p = Preprocessor::new(20, IDENTITY);
        let out = p.plane(&image(200, 100, |_, _| 1.0));
        for x in 0..20 {
            for y in 0..4 {
                assert_eq!(at(&out, 20, x, y), 0.0, "top bar at ({x}, {y})");
                assert_eq!(at(&out, 20, x, 19 - y), 0.0, "bottom bar at ({x}, {})", 19 - y);
            }
            for y in 6..14 {
                assert!((at(&out, 20, x, y) - 1.0).abs() < 1e-5, "image at ({x}, {y})");
            }
        }
        // Portrait input: the bars are left and right.
        let out = p.plane(&image(100, 200, |_, _| 1.0));
        assert_eq!(at(&out, 20, 0, 10), 0.0);
        assert_eq!(at(&out, 20, 19, 10), 0.0);
        assert!((at(&out, 20, 10, 10) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn one_pixel_wide_and_tall_inputs() {
        let p = Preprocessor::new(9, IDENTITY);
        for img in [image(1, 50, |_, _| 1.0), image(50, 1, |_, _| 1.0), image(1, 1, |_, _| 1.0)] {
            let out = p.plane(&img);
            assert_eq!(out.len(), 81);
            assert!(out.iter().all(|v| v.is_finite() && (0.0..=1.0 + 1e-6).contains(v)));
            // The centre of the square is image, whatever the orientation.
            assert!(at(&out, 9, 4, 4) > 0.0);
        }
        // A 1×50 column occupies the middle column of the 50×50 square: the corners are black.
        let out = p.plane(&image(1, 50, |_, _| 1.0));
        assert_eq!(at(&out, 9, 0, 4), 0.0);
        assert_eq!(at(&out, 9, 8, 4), 0.0);
    }

    #[test]
    fn upscaling_a_tiny_image_interpolates() {
        let p = Preprocessor::new(8, IDENTITY);
        let out = p.plane(&image(2, 2, |x, _| x as f32));
        // Bilinear: the left quarter is the left pixel, the right quarter the right pixel, a ramp between.
        assert_eq!(at(&out, 8, 0, 0), 0.0);
        assert_eq!(at(&out, 8, 7, 0), 1.0);
        for x in 1..8 {
            assert!(at(&out, 8, x, 3) >= at(&out, 8, x - 1, 3));
        }
        assert!((at(&out, 8, 3, 3) + at(&out, 8, 4, 3) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn downscaled_checkerboard_averages_to_half() {
        let p = Preprocessor::new(299, IDENTITY);
        let out = p.plane(&image(1024, 1024, |x, y| ((x + y) % 2) as f32));
        for v in out {
            assert!((v - 0.5).abs() < 0.05, "{v}");
        }
    }

    #[test]
    fn empty_image_is_all_background() {
        let p = Preprocessor::new(4, Normalization::INCEPTION);
        let out = p.plane(&GrayImage::new(0, 0, Vec::new()).expect("valid shape"));
        assert_eq!(out, vec![-1.0; 16]);
    }

    /// Expected values from Pillow 13: the image pasted on a black square at `((S − W) // 2, (S − H) // 2)`,
    /// then `Image.fromarray(square, "F").resize((N, N), Image.BILINEAR)`.
    #[test]
    fn matches_pil_bilinear_on_letterboxed_input() {
        let pattern = |x: u32, y: u32| ((x * 7 + y * 13) % 10) as f32 / 9.0;
        #[rustfmt::skip]
        let downscaled: [f32; 25] = [
            0.07961704, 0.08112875, 0.10582011, 0.13051146, 0.05139834,
            0.319224, 0.39814815, 0.49074075, 0.5489969, 0.4810406,
            0.6010582, 0.3888889, 0.44444445, 0.5351852, 0.5968254,
            0.34060848, 0.3607253, 0.22685185, 0.2816358, 0.35824513,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        #[rustfmt::skip]
        let upscaled: [f32; 36] = [
            0.0, 0.19444445, 0.5833334, 0.5833334, 0.19444445, 0.0,
            0.083333336, 0.20833334, 0.45833337, 0.43750003, 0.14583334, 0.0,
            0.25, 0.2361111, 0.20833334, 0.14583334, 0.048611112, 0.0,
            0.4166667, 0.33333334, 0.16666667, 0.0625, 0.020833334, 0.0,
            0.5833334, 0.5, 0.33333334, 0.1875, 0.0625, 0.0,
            0.6666667, 0.5833334, 0.4166667, 0.25, 0.083333336, 0.0,
        ];
        for (w, h, n, expected) in [(11, 6, 5, &downscaled[..]), (2, 3, 6, &upscaled[..])] {
            let out = Preprocessor::new(n, IDENTITY).plane(&image(w, h, pattern));
            for (i, (a, b)) in out.iter().zip(expected).enumerate() {
                assert!((a - b).abs() < 1e-6, "{w}x{h}→{n}, index {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn transposed_input_gives_transposed_output() {
        // Landscape and portrait inputs run the two passes in opposite orders; the results must still agree.
        let p = Preprocessor::new(13, IDENTITY);
        let f = |x: u32, y: u32| ((x * 31 + y * 17) % 23) as f32 / 22.0;
        let landscape = p.plane(&image(37, 23, f));
        let portrait = p.plane(&image(23, 37, |x, y| f(y, x)));
        for y in 0..13 {
            for x in 0..13 {
                assert!((at(&landscape, 13, x, y) - at(&portrait, 13, y, x)).abs() < 1e-6);
            }
        }
        // A long strip only needs a small intermediate buffer (N × 1 here, not N × 2,000,000). Letterboxed into
        // a 2,000,000-pixel square, the one row is a sliver: the output is almost black, and finite.
        let strip = p.plane(&image(2_000_000, 1, |x, _| (x % 2) as f32));
        assert!(strip.iter().all(|v| (0.0..1e-3).contains(v)));
        assert!(at(&strip, 13, 6, 6) > 0.0);
    }

    #[test]
    fn description_names_the_method() {
        for needle in ["letterbox", "triangle", "(x - mean) / std", "3 channels"] {
            assert!(PREPROCESSING_DESCRIPTION.contains(needle), "{needle}");
        }
        assert!(!PREPROCESSING_DESCRIPTION.contains("  "), "line continuations must not leave double spaces");
    }

    #[test]
    fn same_size_is_identity() {
        let p = Preprocessor::new(5, IDENTITY);
        let img = image(5, 5, |x, y| (x * 5 + y) as f32 / 24.0);
        let out = p.plane(&img);
        for (a, b) in out.iter().zip(img.data()) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
