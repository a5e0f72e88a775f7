//! Image export of masks: grayscale PNG files and colour overlays.

use std::path::Path;

use image::{GrayImage, ImageFormat, RgbImage};

use crate::{BinaryMask, MaskError};

/// Hand-picked, well separated colours used first by [`palette`].
const BASE_PALETTE: [[u8; 3]; 20] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
    [0, 128, 128],
    [220, 190, 255],
    [170, 110, 40],
    [255, 250, 200],
    [128, 0, 0],
    [170, 255, 195],
    [128, 128, 0],
    [255, 215, 180],
    [0, 0, 128],
    [128, 128, 128],
];

/// The `i`-th colour of a deterministic palette of distinct colours: 20 hand-picked
/// colours, then hues spaced by the golden ratio with varying saturation and value.
pub fn palette(i: usize) -> [u8; 3] {
    if let Some(c) = BASE_PALETTE.get(i) {
        return *c;
    }
    let j = (i - BASE_PALETTE.len()) as f64;
    let hue = (j * 0.618_033_988_749_895 + 0.1).fract();
    let saturation = [0.85, 0.6, 0.95][(i / 3) % 3];
    let value = [0.95, 0.75, 0.55][i % 3];
    hsv_to_rgb(hue, saturation, value)
}

/// HSV (all in `[0, 1]`) to 8-bit RGB.
fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [u8; 3] {
    let h6 = h * 6.0;
    let sector = h6.floor();
    let f = h6 - sector;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    let (r, g, b) = match (sector as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    let to_u8 = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
    [to_u8(r), to_u8(g), to_u8(b)]
}

/// Checks that `alpha` is a finite value in `[0, 1]`.
fn check_alpha(alpha: f32) -> Result<(), MaskError> {
    if alpha.is_finite() && (0.0..=1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(MaskError::InvalidAlpha(alpha))
    }
}

/// Blends `color` over the pixels of `out` where `mask` is set, in place. Sizes must
/// already have been checked.
fn blend_into(out: &mut RgbImage, mask: &BinaryMask, color: [u8; 3], alpha: f32) {
    let array = mask.array();
    for (x, y, px) in out.enumerate_pixels_mut() {
        if array
            .get((y as usize, x as usize))
            .copied()
            .unwrap_or(false)
        {
            for (dst, &c) in px.0.iter_mut().zip(color.iter()) {
                let blended = (1.0 - alpha) * f32::from(*dst) + alpha * f32::from(c);
                *dst = blended.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

impl BinaryMask {
    /// Writes the mask as an 8-bit grayscale PNG: 255 for foreground, 0 for background.
    ///
    /// Fails with [`MaskError::Image`] if the file cannot be written (or the mask has a
    /// zero dimension, which PNG cannot store).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), MaskError> {
        let (height, width) = (self.height(), self.width());
        let pixels: Vec<u8> = self
            .array()
            .iter()
            .map(|&v| if v { 255 } else { 0 })
            .collect();
        let len = pixels.len();
        let bad_length = || MaskError::BadLength {
            height,
            width,
            expected: height.saturating_mul(width),
            actual: len,
        };
        // The size invariant guarantees both dimensions fit in u32.
        let w = u32::try_from(width).map_err(|_| bad_length())?;
        let h = u32::try_from(height).map_err(|_| bad_length())?;
        let img = GrayImage::from_raw(w, h, pixels).ok_or_else(bad_length)?;
        img.save_with_format(path, ImageFormat::Png)?;
        Ok(())
    }

    /// Returns a copy of `image` with `color` alpha-blended over the masked pixels
    /// (`out = (1 - alpha) * image + alpha * color`, rounded); other pixels are unchanged.
    ///
    /// Fails with [`MaskError::SizeMismatch`] if the image is not the size of the mask,
    /// or [`MaskError::InvalidAlpha`] unless `alpha` is in `[0, 1]`.
    pub fn overlay(
        &self,
        image: &RgbImage,
        color: [u8; 3],
        alpha: f32,
    ) -> Result<RgbImage, MaskError> {
        overlay_many(image, &[(self, color)], alpha)
    }
}

/// Returns a copy of `image` with each mask's colour alpha-blended over its pixels, in
/// order (later masks are blended over earlier ones where they overlap).
///
/// Fails with [`MaskError::SizeMismatch`] if any mask is not the size of the image, or
/// [`MaskError::InvalidAlpha`] unless `alpha` is in `[0, 1]`; the image is then not
/// touched.
pub fn overlay_many(
    image: &RgbImage,
    masks: &[(&BinaryMask, [u8; 3])],
    alpha: f32,
) -> Result<RgbImage, MaskError> {
    check_alpha(alpha)?;
    let (img_w, img_h) = image.dimensions();
    let (img_h, img_w) = (img_h as usize, img_w as usize);
    for (mask, _) in masks {
        if (mask.height(), mask.width()) != (img_h, img_w) {
            return Err(MaskError::SizeMismatch {
                expected_height: mask.height(),
                expected_width: mask.width(),
                actual_height: img_h,
                actual_width: img_w,
            });
        }
    }
    let mut out = image.clone();
    for (mask, color) in masks {
        blend_into(&mut out, mask, *color, alpha);
    }
    Ok(out)
}
