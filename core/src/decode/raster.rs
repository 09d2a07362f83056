//! PNG and JPEG decoding through the `image` crate.
//!
//! The header is parsed first ([`ImageReader::into_decoder`]) so that the dimensions are checked against
//! [`DecodeLimits`] before the pixel buffer is allocated; `image`'s own [`Limits`] additionally bound every
//! allocation the decoders make (ancillary chunks included).

use std::io::Cursor;

use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageError, ImageReader, Limits};

use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, InputInfo, guard_panics, jpeg_markers, png_gray};
use crate::image::GrayImage;

use super::LUMA;

pub(super) fn decode(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    // The X-ray PNG (gray, non-interlaced, nothing but image data) has a faster path; it declines everything else.
    if format == ImageFormat::Png
        && let Some(decoded) = png_gray::decode(bytes, limits)
    {
        return Ok(decoded);
    }
    decode_with_image(bytes, format, limits)
}

/// [`decode`] through `image` alone.
pub(super) fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<Decoded, DecodeError> {
    let (dynamic, info) = decode_dynamic(bytes, format, limits)?;
    let image = GrayImage::new(info.width, info.height, to_gray(&dynamic))
        .map_err(|_| DecodeError::corrupt(format, "decoded buffer does not match the image size"))?;
    Ok(Decoded { image, info })
}

/// The R, G and B planes in [0, 1] (a gray file gives three equal planes). For training on color photographs
/// (ImageNet pretraining); X-rays always go through [`decode`].
pub(super) fn decode_rgb(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<[GrayImage; 3], DecodeError> {
    let (dynamic, info) = decode_dynamic(bytes, format, limits)?;
    let rgb = dynamic.into_rgb32f();
    let plane = |c: usize| {
        let data =
            rgb.as_raw().chunks_exact(3).map(|p| if p[c].is_nan() { 0.0 } else { p[c].clamp(0.0, 1.0) }).collect();
        GrayImage::new(info.width, info.height, data)
            .map_err(|_| DecodeError::corrupt(format, "decoded buffer does not match the image size"))
    };
    Ok([plane(0)?, plane(1)?, plane(2)?])
}

fn decode_dynamic(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<(DynamicImage, InputInfo), DecodeError> {
    let image_format = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Dicom => return Err(DecodeError::UnsupportedFormat),
    };
    // The JPEG decoder fills a truncated stream with gray and reports success; refuse such files up front.
    if format == ImageFormat::Jpeg && !jpeg_markers::is_complete(bytes) {
        return Err(DecodeError::corrupt(format, "truncated JPEG: no end-of-image marker after the scan data"));
    }
    guard_panics(format, || {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
        reader.limits(image_limits(limits));
        let decoder = reader.into_decoder().map_err(|e| map_error(format, e, None, limits))?;

        let (width, height) = decoder.dimensions();
        limits.check(width, height)?;
        let original = decoder.original_color_type();

        let dynamic =
            DynamicImage::from_decoder(decoder).map_err(|e| map_error(format, e, Some((width, height)), limits))?;
        // A decoder that disagrees with its own header would break the buffer arithmetic below.
        if (dynamic.width(), dynamic.height()) != (width, height) {
            return Err(DecodeError::corrupt(format, "decoded size differs from the header"));
        }
        let info = InputInfo {
            format,
            width,
            height,
            bits_stored: bits_per_sample(original),
            photometric: Some(photometric_term(original).to_string()),
            frames: None,
            transfer_syntax: None,
        };
        Ok((dynamic, info))
    })
}

/// `image` limits derived from the pixel budget ([`DecodeLimits::max_decoded_bytes`]). The dimensions
/// themselves are checked by [`DecodeLimits::check`] right after the header is parsed (an `image` dimension
/// limit would fail before the size is known).
fn image_limits(limits: &DecodeLimits) -> Limits {
    let mut out = Limits::default();
    out.max_alloc = Some(u64::try_from(limits.max_decoded_bytes()).unwrap_or(u64::MAX));
    out
}

fn map_error(format: ImageFormat, err: ImageError, dims: Option<(u32, u32)>, limits: &DecodeLimits) -> DecodeError {
    match err {
        ImageError::Limits(_) => match dims {
            Some((width, height)) => DecodeError::TooManyPixels { width, height, max_pixels: limits.max_pixels },
            // Before the size is known, a limit error means the header asked for an absurd allocation.
            None => DecodeError::corrupt(format, format!("header exceeds decoding limits: {err}")),
        },
        other => DecodeError::corrupt(format, other.to_string()),
    }
}

/// Bits per sample of the stored image, when `image` knows them.
fn bits_per_sample(color: ExtendedColorType) -> Option<u16> {
    let channels = u16::from(color.channel_count());
    if channels == 0 {
        return None;
    }
    Some(color.bits_per_pixel() / channels)
}

/// The DICOM term for the stored color model.
fn photometric_term(color: ExtendedColorType) -> &'static str {
    match color {
        ExtendedColorType::Cmyk8 | ExtendedColorType::Cmyk16 => "CMYK",
        other if other.channel_count() <= 2 => "MONOCHROME2",
        _ => "RGB",
    }
}

/// Converts any decoded image to intensities in [0, 1] (see the module documentation of [`super`]).
fn to_gray(img: &DynamicImage) -> Vec<f32> {
    const S8: f32 = 1.0 / 255.0;
    const S16: f32 = 1.0 / 65535.0;
    match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&v| f32::from(v) * S8).collect(),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).map(|p| f32::from(p[0]) * S8).collect(),
        DynamicImage::ImageRgb8(b) => luma_u8(b.as_raw(), 3),
        DynamicImage::ImageRgba8(b) => luma_u8(b.as_raw(), 4),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| f32::from(v) * S16).collect(),
        DynamicImage::ImageLumaA16(b) => b.as_raw().chunks_exact(2).map(|p| f32::from(p[0]) * S16).collect(),
        DynamicImage::ImageRgb16(b) => luma_u16(b.as_raw(), 3),
        DynamicImage::ImageRgba16(b) => luma_u16(b.as_raw(), 4),
        DynamicImage::ImageRgb32F(b) => luma_f32(b.as_raw(), 3),
        DynamicImage::ImageRgba32F(b) => luma_f32(b.as_raw(), 4),
        // `DynamicImage` is non-exhaustive; a future variant goes through `image`'s own f32 RGB conversion.
        other => luma_f32(other.to_rgb32f().as_raw(), 3),
    }
}

#[inline]
fn luma(r: f32, g: f32, b: f32) -> f32 {
    LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
}

fn luma_u8(raw: &[u8], stride: usize) -> Vec<f32> {
    raw.chunks_exact(stride)
        .map(|p| (luma(f32::from(p[0]), f32::from(p[1]), f32::from(p[2])) / 255.0).clamp(0.0, 1.0))
        .collect()
}

fn luma_u16(raw: &[u16], stride: usize) -> Vec<f32> {
    raw.chunks_exact(stride)
        .map(|p| (luma(f32::from(p[0]), f32::from(p[1]), f32::from(p[2])) / 65535.0).clamp(0.0, 1.0))
        .collect()
}

fn luma_f32(raw: &[f32], stride: usize) -> Vec<f32> {
    raw.chunks_exact(stride)
        .map(|p| {
            let y = luma(p[0], p[1], p[2]);
            // NaN would survive clamp; map it to black.
            if y.is_nan() { 0.0 } else { y.clamp(0.0, 1.0) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgb};

    fn encode_png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
        out.into_inner()
    }

    #[test]
    fn gray8_and_rgb8_png() {
        let gray = DynamicImage::ImageLuma8(ImageBuffer::from_raw(2, 1, vec![0u8, 255]).expect("buffer"));
        let d = decode(&encode_png(&gray), ImageFormat::Png, &DecodeLimits::default()).expect("decodes");
        assert_eq!(d.image.data(), &[0.0, 1.0]);
        assert_eq!(d.info.bits_stored, Some(8));
        assert_eq!(d.info.photometric.as_deref(), Some("MONOCHROME2"));

        let rgb: ImageBuffer<Rgb<u8>, _> = ImageBuffer::from_raw(1, 1, vec![255u8, 0, 0]).expect("buffer");
        let d = decode(&encode_png(&DynamicImage::ImageRgb8(rgb)), ImageFormat::Png, &DecodeLimits::default())
            .expect("decodes");
        assert!((d.image.data()[0] - 0.299).abs() < 1e-6);
        assert_eq!(d.info.photometric.as_deref(), Some("RGB"));
    }

    #[test]
    fn rgb_planes_keep_color() {
        let rgb: ImageBuffer<Rgb<u8>, _> = ImageBuffer::from_raw(2, 1, vec![255u8, 0, 0, 0, 51, 255]).expect("buffer");
        let [r, g, b] =
            decode_rgb(&encode_png(&DynamicImage::ImageRgb8(rgb)), ImageFormat::Png, &DecodeLimits::default())
                .expect("decodes");
        let close = |a: &[f32], b: [f32; 2]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(r.data(), [1.0, 0.0]) && close(g.data(), [0.0, 0.2]) && close(b.data(), [0.0, 1.0]));
        let gray = DynamicImage::ImageLuma8(ImageBuffer::from_raw(1, 1, vec![51u8]).expect("buffer"));
        let planes = decode_rgb(&encode_png(&gray), ImageFormat::Png, &DecodeLimits::default()).expect("decodes");
        assert!(planes.iter().all(|p| (p.data()[0] - 0.2).abs() < 1e-6));
    }

    #[test]
    fn gray16_png() {
        let b: ImageBuffer<Luma<u16>, _> = ImageBuffer::from_raw(2, 1, vec![0u16, 32768]).expect("buffer");
        let d = decode(&encode_png(&DynamicImage::ImageLuma16(b)), ImageFormat::Png, &DecodeLimits::default())
            .expect("decodes");
        assert!((d.image.data()[1] - 32768.0 / 65535.0).abs() < 1e-7);
        assert_eq!(d.info.bits_stored, Some(16));
    }

    #[test]
    fn alpha_is_ignored() {
        let la = DynamicImage::ImageLumaA8(ImageBuffer::from_raw(1, 1, vec![128u8, 0]).expect("buffer"));
        let d = decode(&encode_png(&la), ImageFormat::Png, &DecodeLimits::default()).expect("decodes");
        assert_eq!(d.image.data(), &[128.0 / 255.0]);
        let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_raw(1, 1, vec![0u8, 0, 255, 7]).expect("buffer"));
        let d = decode(&encode_png(&rgba), ImageFormat::Png, &DecodeLimits::default()).expect("decodes");
        assert!((d.image.data()[0] - 0.114).abs() < 1e-6);
    }

    #[test]
    fn limit_checked_from_header() {
        let gray = DynamicImage::ImageLuma8(ImageBuffer::from_raw(20, 10, vec![7u8; 200]).expect("buffer"));
        let err = decode(&encode_png(&gray), ImageFormat::Png, &DecodeLimits::new(199)).expect_err("too big");
        assert_eq!(err, DecodeError::TooManyPixels { width: 20, height: 10, max_pixels: 199 });
    }
}
