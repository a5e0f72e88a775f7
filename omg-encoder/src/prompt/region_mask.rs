//! A binary region mask given as a prompt (`<region>`): the prompt's query starts at its
//! most interior pixel, and cross-attention is restricted to it on every level.

use crate::error::EncoderError;

/// A binary region mask (row-major, `true` inside) of `height × width` pixels, both at
/// least 1. Its fields are private: [`RegionMask::new`] is the only way to make one, so
/// every mask holds exactly `height · width` values.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionMask {
    height: usize,
    width: usize,
    data: Vec<bool>,
}

impl RegionMask {
    /// A region from row-major values; errors if the length does not match.
    pub fn new(height: usize, width: usize, data: Vec<bool>) -> Result<Self, EncoderError> {
        if height == 0 || width == 0 || data.len() != height * width {
            return Err(EncoderError::Input(format!(
                "a region mask of {height}×{width} needs {} values, got {}",
                height * width,
                data.len()
            )));
        }
        Ok(Self {
            height,
            width,
            data,
        })
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The `height · width` values, row-major.
    pub fn data(&self) -> &[bool] {
        &self.data
    }

    /// Number of pixels inside the region.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    /// torch `F.interpolate(mode='nearest')` to `h × w`: source index
    /// `min(⌊dst · (in/out)⌋, in − 1)` with the scale in f32 (empty when `h` or `w` is 0).
    pub fn resize_nearest(&self, h: usize, w: usize) -> Vec<bool> {
        let sy = self.height as f32 / h as f32;
        let sx = self.width as f32 / w as f32;
        let mut out = Vec::with_capacity(h * w);
        for i in 0..h {
            let si = ((i as f32 * sy).floor() as usize).min(self.height - 1);
            for j in 0..w {
                let sj = ((j as f32 * sx).floor() as usize).min(self.width - 1);
                out.push(self.data[si * self.width + sj]);
            }
        }
        out
    }
}
