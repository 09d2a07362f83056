//! The decoded gray image every decoder produces and every preprocessing step consumes.
//!
//! A [`GrayImage`] is a single-channel `f32` raster in row-major order whose values are display intensities in
//! [0, 1]: 0 is black, 1 is white, whatever the source format was (8/16-bit PNG, JPEG, any DICOM bit depth after
//! its grayscale pipeline). Keeping one type with one value range is what lets the server and the training
//! pipeline share [`crate::preprocess`] without caring where the pixels came from.

use std::fmt;

/// A row-major, single-channel image with `f32` intensities in [0, 1].
///
/// The constructor only checks that the buffer length matches the dimensions; the [0, 1] range is a contract
/// kept by the decoders in [`crate::decode`] rather than re-checked on every construction.
#[derive(Clone, PartialEq)]
pub struct GrayImage {
    width: u32,
    height: u32,
    data: Vec<f32>,
}

/// A pixel buffer whose length does not match `width × height`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pixel buffer holds {len} values but a {width}x{height} image needs width × height of them")]
pub struct ShapeError {
    pub width: u32,
    pub height: u32,
    pub len: usize,
}

impl GrayImage {
    /// Wraps a row-major buffer of `width × height` intensities.
    ///
    /// Returns [`ShapeError`] when `data.len() != width × height` (including when the product overflows).
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self, ShapeError> {
        let expected = (width as usize).checked_mul(height as usize);
        if expected != Some(data.len()) {
            return Err(ShapeError { width, height, len: data.len() });
        }
        Ok(GrayImage { width, height, data })
    }

    /// Width in pixels (number of columns).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels (number of rows).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The intensities, row by row.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the image and returns its buffer.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// One row of the image, or `None` when `y` is out of range.
    pub fn row(&self, y: u32) -> Option<&[f32]> {
        if y >= self.height {
            return None;
        }
        let w = self.width as usize;
        let start = y as usize * w;
        self.data.get(start..start + w)
    }

    /// `true` when the image has no pixels.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl fmt::Debug for GrayImage {
    // The pixel buffer is deliberately left out: it is large and printing it helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrayImage").field("width", &self.width).field("height", &self.height).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_matching_length() {
        let img = GrayImage::new(3, 2, vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5]).expect("valid shape");
        assert_eq!((img.width(), img.height()), (3, 2));
        assert_eq!(img.row(1), Some(&[0.3, 0.4, 0.5][..]));
        assert_eq!(img.row(2), None);
        assert_eq!(img.into_data().len(), 6);
    }

    #[test]
    fn rejects_wrong_length() {
        let err = GrayImage::new(3, 2, vec![0.0; 5]).expect_err("wrong length");
        assert_eq!(err.len, 5);
        assert!(GrayImage::new(u32::MAX, u32::MAX, Vec::new()).is_err());
    }

    #[test]
    fn empty_image_is_allowed() {
        let img = GrayImage::new(0, 5, Vec::new()).expect("zero width is a valid shape");
        assert!(img.is_empty());
    }
}
