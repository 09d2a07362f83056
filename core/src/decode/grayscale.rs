//! The DICOM grayscale pipeline of PS3.3 C.11, independent of any parser: stored values → Modality LUT →
//! VOI LUT → presentation (MONOCHROME1 inversion) → [0, 1].
//!
//! For Bits Stored ≤ 16 the whole chain is a function of the stored code, so it is evaluated once per possible
//! code (at most 65,536 entries, in `f64`) and applied to the pixels as a table look-up. Wider data is
//! evaluated per pixel.

/// How stored sample bits sit in their allocated container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredLayout {
    /// Bits Allocated: 8, 16 or 32.
    pub bits_allocated: u16,
    /// Bits Stored: 1..=bits_allocated.
    pub bits_stored: u16,
    /// High Bit: the most significant stored bit, bits_stored − 1 ≤ high_bit < bits_allocated.
    pub high_bit: u16,
    /// Pixel Representation 1: two's complement samples.
    pub signed: bool,
}

impl StoredLayout {
    /// Bytes per sample in the decoded buffer.
    pub fn bytes_per_sample(&self) -> usize {
        usize::from(self.bits_allocated / 8)
    }

    /// Reads the raw container value of sample `index` (native byte order, like the decoded buffers of
    /// `dicom-pixeldata`). Returns 0 beyond the buffer; callers check the length first.
    #[inline]
    fn raw(&self, data: &[u8], index: usize) -> u32 {
        match self.bits_allocated {
            8 => data.get(index).copied().map_or(0, u32::from),
            16 => data.get(index * 2..index * 2 + 2).map_or(0, |b| u32::from(u16::from_ne_bytes([b[0], b[1]]))),
            _ => data.get(index * 4..index * 4 + 4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        }
    }

    /// The stored value of sample `index`: shifted down so that the high bit is bit `bits_stored − 1`,
    /// masked to Bits Stored, and sign-extended when signed.
    #[inline]
    pub fn stored(&self, data: &[u8], index: usize) -> i64 {
        self.code(self.raw(data, index))
    }

    /// The stored value held in the raw container value `raw` (see [`Self::stored`]).
    #[inline]
    pub fn code(&self, raw: u32) -> i64 {
        let shift = u32::from(self.high_bit + 1 - self.bits_stored);
        let bits = u32::from(self.bits_stored);
        let mask: u64 = (1u64 << bits) - 1;
        let v = (u64::from(raw) >> shift) & mask;
        if self.signed && v >> (bits - 1) & 1 == 1 { v as i64 - (1i64 << bits) } else { v as i64 }
    }

    /// Smallest and largest representable stored values.
    pub fn code_range(&self) -> (i64, i64) {
        let bits = u32::from(self.bits_stored);
        if self.signed { (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1) } else { (0, (1i64 << bits) - 1) }
    }
}

/// A lookup table as defined by a LUT Descriptor and LUT Data (PS3.3 C.11.1.1 / C.11.2.1.1).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lut {
    /// The input value mapped to the first entry; lower inputs map to it too.
    pub first_mapped: i64,
    /// Bits per entry, from the descriptor (widened when the data holds larger values).
    pub bits: u16,
    /// The entries; inputs at or past `first_mapped + len − 1` map to the last.
    pub data: Vec<u16>,
}

impl Lut {
    /// Creates a LUT, widening `bits` when an entry does not fit (a frequent encoder bug). `None` when empty.
    pub fn new(first_mapped: i64, bits: u16, data: Vec<u16>) -> Option<Lut> {
        if data.is_empty() {
            return None;
        }
        let max = data.iter().copied().max().unwrap_or(0);
        let needed = (16 - max.leading_zeros()) as u16;
        let bits = if (1..=16).contains(&bits) { bits.max(needed) } else { 16 };
        Some(Lut { first_mapped, bits, data })
    }

    /// The entry for input `x` (fractional inputs are floored).
    fn entry(&self, x: f64) -> u16 {
        let last = self.data.len() - 1;
        let offset = x.floor() - self.first_mapped as f64;
        let index = if offset.is_nan() || offset <= 0.0 {
            0
        } else if offset >= last as f64 {
            last
        } else {
            offset as usize
        };
        self.data.get(index).copied().unwrap_or(0)
    }

    /// The largest value an entry can hold.
    fn max_output(&self) -> f64 {
        f64::from((1u32 << self.bits) - 1)
    }
}

/// The Modality LUT stage.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Modality {
    /// `m = slope × stored + intercept`.
    Rescale { slope: f64, intercept: f64 },
    /// The first item of the Modality LUT Sequence.
    Lut(Lut),
}

impl Modality {
    pub const IDENTITY: Modality = Modality::Rescale { slope: 1.0, intercept: 0.0 };

    fn apply(&self, stored: i64) -> f64 {
        match self {
            Modality::Rescale { slope, intercept } => stored as f64 * slope + intercept,
            Modality::Lut(lut) => f64::from(lut.entry(stored as f64)),
        }
    }
}

/// The VOI LUT Function of a window (PS3.3 C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// The VOI LUT stage.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Voi {
    /// Window Center/Width with its function. Constructed only with a width valid for the function
    /// (≥ 1 for LINEAR, > 0 otherwise).
    Window { center: f64, width: f64, function: VoiFunction },
    /// The first item of the VOI LUT Sequence; its output is scaled by the largest value of its entry size.
    Lut(Lut),
    /// No VOI in the file: the minimum..maximum of the modality values of this frame map to 0..1.
    MinMax,
}

/// The whole grayscale chain for one frame.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pipeline {
    pub modality: Modality,
    pub voi: Voi,
    /// MONOCHROME1: minimum values are white.
    pub invert: bool,
}

impl Pipeline {
    /// Renders `pixels` stored samples (sample `i` of the buffer is pixel `i`) to intensities in [0, 1].
    pub fn render(&self, data: &[u8], layout: &StoredLayout, pixels: usize) -> Vec<f32> {
        if layout.bits_stored <= 16 {
            self.render_by_table(data, layout, pixels)
        } else {
            self.render_per_pixel(data, layout, pixels)
        }
    }

    fn render_by_table(&self, data: &[u8], layout: &StoredLayout, pixels: usize) -> Vec<f32> {
        if layout.bits_allocated <= 16 {
            return self.render_by_container_table(data, layout, pixels);
        }
        let (lo, hi) = layout.code_range();
        let codes = (hi - lo + 1) as usize;
        let modality: Vec<f64> = (lo..=hi).map(|code| self.modality.apply(code)).collect();
        let range = if self.voi == Voi::MinMax {
            // Only the codes that occur count towards min..max.
            let mut present = vec![false; codes];
            for i in 0..pixels {
                if let Some(p) = present.get_mut((layout.stored(data, i) - lo) as usize) {
                    *p = true;
                }
            }
            min_max(present.iter().zip(&modality).filter(|(p, _)| **p).map(|(_, m)| *m))
        } else {
            (0.0, 0.0)
        };
        let table: Vec<f32> = modality.iter().map(|&m| self.present(m, range)).collect();
        (0..pixels).map(|i| table.get((layout.stored(data, i) - lo) as usize).copied().unwrap_or(0.0)).collect()
    }

    /// The hot path for 8- and 16-bit containers: the table is indexed by the raw container value (256 or 65,536
    /// entries), so masking, shifting and sign extension happen once per possible value instead of once per pixel,
    /// and the pixel loop is a plain look-up over bytes or native-endian `u16`s.
    fn render_by_container_table(&self, data: &[u8], layout: &StoredLayout, pixels: usize) -> Vec<f32> {
        let containers = 1usize << layout.bits_allocated;
        let modality: Vec<f64> = (0..containers as u32).map(|raw| self.modality.apply(layout.code(raw))).collect();
        let range = if self.voi == Voi::MinMax {
            // Only the values that occur count towards min..max.
            let mut present = vec![false; containers];
            for_each_container(data, layout.bits_allocated, pixels, |raw| present[raw] = true);
            min_max(present.iter().zip(&modality).filter(|(p, _)| **p).map(|(_, m)| *m))
        } else {
            (0.0, 0.0)
        };
        let table: Vec<f32> = modality.iter().map(|&m| self.present(m, range)).collect();
        // Fixed-size views of the table: indexing one by a `u8` / `u16` needs no bounds check in the pixel loop.
        let mut out: Vec<f32> = if layout.bits_allocated == 8 {
            let table: &[f32; 1 << 8] = table.as_slice().try_into().expect("one entry per 8-bit value");
            data.iter().take(pixels).map(|&b| table[usize::from(b)]).collect()
        } else {
            let table: &[f32; 1 << 16] = table.as_slice().try_into().expect("one entry per 16-bit value");
            data.chunks_exact(2).take(pixels).map(|c| table[usize::from(u16::from_ne_bytes([c[0], c[1]]))]).collect()
        };
        // A short buffer (callers check the length first) renders the missing pixels black, like `stored`.
        out.resize(pixels, 0.0);
        out
    }

    fn render_per_pixel(&self, data: &[u8], layout: &StoredLayout, pixels: usize) -> Vec<f32> {
        let modality: Vec<f64> = (0..pixels).map(|i| self.modality.apply(layout.stored(data, i))).collect();
        let range = if self.voi == Voi::MinMax { min_max(modality.iter().copied()) } else { (0.0, 0.0) };
        modality.iter().map(|&m| self.present(m, range)).collect()
    }

    /// VOI then presentation for one modality value; `range` is the min..max used by [`Voi::MinMax`].
    fn present(&self, m: f64, (min, max): (f64, f64)) -> f32 {
        let v = match &self.voi {
            Voi::Window { center, width, function } => window(m, *center, *width, *function),
            Voi::Lut(lut) => f64::from(lut.entry(m)) / lut.max_output(),
            Voi::MinMax => {
                if max > min {
                    (m - min) / (max - min)
                } else {
                    0.0
                }
            }
        };
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        (if self.invert { 1.0 - v } else { v }) as f32
    }
}

/// Applies a window to `x`, with output range [0, 1] (PS3.3 C.11.2.1.2 and C.11.2.1.3).
fn window(x: f64, c: f64, w: f64, function: VoiFunction) -> f64 {
    match function {
        VoiFunction::Linear => {
            if x <= c - 0.5 - (w - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                1.0
            } else {
                (x - (c - 0.5)) / (w - 1.0) + 0.5
            }
        }
        VoiFunction::LinearExact => {
            if x <= c - w / 2.0 {
                0.0
            } else if x > c + w / 2.0 {
                1.0
            } else {
                (x - c) / w + 0.5
            }
        }
        VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
    }
}

/// Calls `f` with the raw container value of each of the first `pixels` samples of an 8- or 16-bit buffer
/// (native byte order), stopping early if the buffer is shorter.
#[inline]
fn for_each_container(data: &[u8], bits_allocated: u16, pixels: usize, mut f: impl FnMut(usize)) {
    if bits_allocated == 8 {
        data.iter().take(pixels).for_each(|&b| f(usize::from(b)));
    } else {
        data.chunks_exact(2).take(pixels).for_each(|c| f(usize::from(u16::from_ne_bytes([c[0], c[1]]))));
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_bytes(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    const U12: StoredLayout = StoredLayout { bits_allocated: 16, bits_stored: 12, high_bit: 11, signed: false };

    #[test]
    fn masks_and_sign_extends() {
        let data = u16_bytes(&[0xF800, 0x07FF, 0x0800, 0xFFFF]);
        // Unsigned 12-bit: the top nibble is ignored.
        assert_eq!((0..4).map(|i| U12.stored(&data, i)).collect::<Vec<_>>(), vec![0x800, 0x7FF, 0x800, 0xFFF]);
        let s12 = StoredLayout { signed: true, ..U12 };
        assert_eq!((0..4).map(|i| s12.stored(&data, i)).collect::<Vec<_>>(), vec![-2048, 2047, -2048, -1]);
        // High bit 15 with 12 bits stored: the low nibble is not part of the value.
        let shifted = StoredLayout { high_bit: 15, ..U12 };
        assert_eq!(shifted.stored(&u16_bytes(&[0xABCD]), 0), 0xABC);
    }

    #[test]
    fn linear_window_matches_the_standard() {
        // c = 2048, w = 4096: x ≤ 0 → 0, x > 4095 → 1, linear in between.
        assert_eq!(window(0.0, 2048.0, 4096.0, VoiFunction::Linear), 0.0);
        assert_eq!(window(4096.0, 2048.0, 4096.0, VoiFunction::Linear), 1.0);
        let mid = window(2047.5, 2048.0, 4096.0, VoiFunction::Linear);
        assert!((mid - 0.5).abs() < 1e-12);
        // Width 1: a pure threshold at c − 0.5.
        assert_eq!(window(9.0, 10.0, 1.0, VoiFunction::Linear), 0.0);
        assert_eq!(window(10.0, 10.0, 1.0, VoiFunction::Linear), 1.0);
    }

    #[test]
    fn min_max_uses_present_values_and_inverts() {
        let data = u16_bytes(&[100, 200, 300]);
        let p = Pipeline { modality: Modality::IDENTITY, voi: Voi::MinMax, invert: false };
        assert_eq!(p.render(&data, &U12, 3), vec![0.0, 0.5, 1.0]);
        let p = Pipeline { invert: true, ..p };
        assert_eq!(p.render(&data, &U12, 3), vec![1.0, 0.5, 0.0]);
    }

    #[test]
    fn rescale_then_window() {
        let data = u16_bytes(&[0, 1024, 4095]);
        let p = Pipeline {
            modality: Modality::Rescale { slope: 1.0, intercept: -1024.0 },
            voi: Voi::Window { center: 0.0, width: 1001.0, function: VoiFunction::Linear },
            invert: false,
        };
        let out = p.render(&data, &U12, 3);
        assert_eq!(out[0], 0.0);
        assert!((out[1] - 0.5).abs() < 1e-3, "{}", out[1]);
        assert_eq!(out[2], 1.0);
    }

    #[test]
    fn luts_clamp_and_scale() {
        let lut = Lut::new(10, 8, vec![0, 51, 255]).expect("non-empty");
        let data = u16_bytes(&[0, 11, 12, 99]);
        let p = Pipeline { modality: Modality::IDENTITY, voi: Voi::Lut(lut), invert: false };
        assert_eq!(p.render(&data, &U12, 4), vec![0.0, 0.2, 1.0, 1.0]);
        // An entry wider than the descriptor says widens the output range instead of overflowing it.
        assert_eq!(Lut::new(0, 8, vec![0, 1023]).map(|l| l.bits), Some(10));
        assert_eq!(Lut::new(0, 8, Vec::new()), None);
    }

    #[test]
    fn modality_lut_feeds_voi() {
        let modality = Modality::Lut(Lut::new(0, 16, vec![0, 1000, 2000, 3000]).expect("non-empty"));
        let data = u16_bytes(&[0, 1, 3]);
        let p = Pipeline { modality, voi: Voi::MinMax, invert: false };
        assert_eq!(p.render(&data, &U12, 3), vec![0.0, 1.0 / 3.0, 1.0]);
    }

    #[test]
    fn wide_data_uses_per_pixel_path() {
        let layout = StoredLayout { bits_allocated: 32, bits_stored: 32, high_bit: 31, signed: true };
        let data: Vec<u8> = [-5i32, 0, 5].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let p = Pipeline { modality: Modality::IDENTITY, voi: Voi::MinMax, invert: false };
        assert_eq!(p.render(&data, &layout, 3), vec![0.0, 0.5, 1.0]);
    }
}
