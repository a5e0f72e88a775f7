//! [`ImageLimits`]: the largest photo a [`crate::Pipeline`] accepts.
//!
//! Preprocessing pads a photo to the square of its longer side, and every mask is
//! upsampled back to that square before it is cropped: a 20000 × 200 photo decodes in
//! a few MB but needs 1.6 GB per f32 mask. The limits bound that memory with an error
//! that names them, instead of an out-of-memory abort.

use serde::{Deserialize, Serialize};

use crate::error::OmgLlavaError;

/// The largest photo accepted: by its longer side (which sets the padded square) and by
/// its pixel count. The defaults take any photo of a phone or a DSLR up to 4096 px a
/// side (16.8 MP); raise them with [`crate::Pipeline::with_image_limits`] when the
/// memory is there (each mask of the last step then takes `4 · side²` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageLimits {
    /// Longest accepted side, in pixels.
    pub max_side: u32,
    /// Most accepted pixels (width · height).
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_side: 4096,
            max_pixels: 4096 * 4096,
        }
    }
}

impl ImageLimits {
    /// Limits of `max_side` pixels a side and `max_pixels` pixels.
    pub fn new(max_side: u32, max_pixels: u64) -> Self {
        Self {
            max_side,
            max_pixels,
        }
    }

    /// Checks a `width × height` photo: [`OmgLlavaError::ImageTooLarge`] past a limit.
    pub fn check(&self, width: u32, height: u32) -> Result<(), OmgLlavaError> {
        let pixels = u64::from(width) * u64::from(height);
        if width.max(height) > self.max_side || pixels > self.max_pixels {
            return Err(OmgLlavaError::ImageTooLarge {
                width,
                height,
                limits: *self,
            });
        }
        Ok(())
    }
}
