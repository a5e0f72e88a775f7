//! Masks from user files: a picture whose non-zero pixels are the mask, read with a
//! bound on the memory it may take.

use std::io::Cursor;

use image::{ImageReader, Limits};

use crate::{BinaryMask, MaskError};

/// Default bound on the pixels a mask decoded from user data may have
/// ([`BinaryMask::from_rle`], [`BinaryMask::from_image_bytes`]): 2²⁸ (268 M) pixels,
/// 256 MiB of `bool`s, far above any photo the pipeline accepts (16.8 M pixels by
/// default) and far below what a 100-byte corrupt RLE or PNG header could ask for.
pub const DEFAULT_DECODE_PIXELS: u64 = 1 << 28;

/// Returns [`MaskError::ExceedsLimit`] when `height × width` exceeds `max_pixels`.
pub(super) fn check_limit(height: u64, width: u64, max_pixels: u64) -> Result<(), MaskError> {
    if height.checked_mul(width).is_some_and(|p| p <= max_pixels) {
        Ok(())
    } else {
        Err(MaskError::ExceedsLimit {
            height,
            width,
            max_pixels,
        })
    }
}

impl BinaryMask {
    /// Reads a mask from an encoded picture (PNG, JPEG: the formats the `image` crate
    /// was built with), as the CLI's `--mask` does: a pixel is inside when it is not
    /// transparent and any colour channel is non-zero, at the picture's own bit depth
    /// (a 16-bit value of 1 counts). Grayscale, RGB, RGBA, 8- and 16-bit pictures are
    /// accepted.
    ///
    /// The picture's size is read from its header and checked against `max_pixels`
    /// (see [`DEFAULT_DECODE_PIXELS`]) before its pixels are decoded, and the decoder's
    /// own allocations are bounded by the same amount.
    ///
    /// # Errors
    ///
    /// [`MaskError::Image`] when the bytes are not a picture the decoder can read
    /// (truncated, corrupt, unknown format), [`MaskError::ExceedsLimit`] when the
    /// picture has more than `max_pixels` pixels, [`MaskError::TooLarge`] past the
    /// COCO RLE limit.
    pub fn from_image_bytes(bytes: &[u8], max_pixels: u64) -> Result<BinaryMask, MaskError> {
        let format = image::guess_format(bytes)?;
        let (width, height) =
            ImageReader::with_format(Cursor::new(bytes), format).into_dimensions()?;
        check_limit(u64::from(height), u64::from(width), max_pixels)?;
        let mut limits = Limits::default();
        // RGBA at 16 bits a channel is the most a decoded pixel takes, with room for
        // the conversion below.
        limits.max_alloc = Some(max_pixels.saturating_mul(16));
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        reader.limits(limits);
        let picture = reader.decode()?;
        let data = picture
            .to_rgba16()
            .pixels()
            .map(|p| p.0[3] != 0 && p.0[..3].iter().any(|&c| c != 0))
            .collect();
        BinaryMask::from_vec(height as usize, width as usize, data)
    }
}
