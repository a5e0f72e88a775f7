//! # omg-masks
//!
//! Binary masks in image pixels, as OMG-LLaVA's outputs and region prompts use them, with
//! COCO RLE (byte-identical to pycocotools) and PNG / overlay pictures. This crate has no
//! tensor library: tools that read or write masks (RLE files, mask pictures) use it
//! without building the model.
//!
//! * [`BinaryMask`]: a `height x width` boolean mask indexed `[y, x]`.
//! * [`CocoRle`]: pycocotools' compressed RLE dict `{"size": [h, w], "counts": "..."}`.
//! * [`BBox`]: tight pixel bounding box of a mask.
//! * [`overlay_many`], [`palette`]: visualisation helpers.

mod error;
mod export;
mod import;
mod rle;

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

pub use error::MaskError;
pub use export::{overlay_many, palette};
pub use import::DEFAULT_DECODE_PIXELS;
pub use rle::{CocoRle, area_from_rle, decode_counts, encode_counts};

/// Largest number of pixels (and of rows or columns) a mask may have: COCO RLE stores
/// sizes and run lengths as unsigned 32-bit integers.
pub const MAX_PIXELS: u64 = u32::MAX as u64;

/// A binary mask in image pixels: shape `(height, width)`, indexed `[y, x]`.
///
/// Invariant: `height`, `width` and `height * width` are at most [`MAX_PIXELS`], so the
/// mask always has a valid COCO RLE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMask {
    mask: Array2<bool>,
}

/// Tight bounding box of the foreground pixels of a mask, in pixels: the box covers
/// columns `x..x + width` and rows `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BBox {
    /// Left-most foreground column.
    pub x: u32,
    /// Top-most foreground row.
    pub y: u32,
    /// Number of columns covered (at least 1).
    pub width: u32,
    /// Number of rows covered (at least 1).
    pub height: u32,
}

impl BBox {
    /// Corners as `[x0, y0, x1, y1]` with exclusive ends: `x1 = x + width`,
    /// `y1 = y + height`.
    pub fn to_xyxy(&self) -> [u32; 4] {
        [
            self.x,
            self.y,
            self.x.saturating_add(self.width),
            self.y.saturating_add(self.height),
        ]
    }
}

/// Checks the size invariant of [`BinaryMask`].
fn check_size(height: usize, width: usize) -> Result<(), MaskError> {
    let fits = |n: usize| u64::try_from(n).is_ok_and(|n| n <= MAX_PIXELS);
    let pixels = height.checked_mul(width);
    if fits(height) && fits(width) && pixels.is_some_and(fits) {
        Ok(())
    } else {
        Err(MaskError::TooLarge { height, width })
    }
}

impl BinaryMask {
    /// Wraps a boolean array of shape `(height, width)` indexed `[y, x]`.
    ///
    /// Fails with [`MaskError::TooLarge`] if the mask has more than [`MAX_PIXELS`]
    /// pixels (the limit of COCO RLE).
    pub fn from_array(mask: Array2<bool>) -> Result<Self, MaskError> {
        let (height, width) = mask.dim();
        check_size(height, width)?;
        Ok(Self { mask })
    }

    /// Builds a mask from a row-major buffer of `height * width` pixels
    /// (pixel `[y, x]` is `data[y * width + x]`).
    ///
    /// Fails with [`MaskError::BadLength`] if the buffer has the wrong length, or
    /// [`MaskError::TooLarge`] as [`BinaryMask::from_array`].
    pub fn from_vec(height: usize, width: usize, data: Vec<bool>) -> Result<Self, MaskError> {
        let expected = height.saturating_mul(width);
        if height.checked_mul(width) != Some(data.len()) {
            return Err(MaskError::BadLength {
                height,
                width,
                expected,
                actual: data.len(),
            });
        }
        check_size(height, width)?;
        let mask =
            Array2::from_shape_vec((height, width), data).map_err(|_| MaskError::BadLength {
                height,
                width,
                expected,
                actual: expected,
            })?;
        Ok(Self { mask })
    }

    /// Mask height in pixels (number of rows).
    pub fn height(&self) -> usize {
        self.mask.nrows()
    }

    /// Mask width in pixels (number of columns).
    pub fn width(&self) -> usize {
        self.mask.ncols()
    }

    /// The underlying `(height, width)` array, indexed `[y, x]`.
    pub fn array(&self) -> &Array2<bool> {
        &self.mask
    }

    /// Consumes the mask and returns the underlying `(height, width)` array.
    pub fn into_array(self) -> Array2<bool> {
        self.mask
    }

    /// Number of foreground (`true`) pixels.
    pub fn area(&self) -> u64 {
        self.mask.iter().filter(|&&v| v).count() as u64
    }

    /// Tight bounding box of the foreground pixels, or `None` for an empty mask.
    pub fn bbox(&self) -> Option<BBox> {
        let mut bounds: Option<(usize, usize, usize, usize)> = None; // x0, y0, x1, y1 (inclusive)
        for ((y, x), &v) in self.mask.indexed_iter() {
            if v {
                bounds = Some(match bounds {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
        let (x0, y0, x1, y1) = bounds?;
        // The size invariant guarantees every coordinate fits in u32.
        let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Some(BBox {
            x: to_u32(x0),
            y: to_u32(y0),
            width: to_u32(x1 - x0 + 1),
            height: to_u32(y1 - y0 + 1),
        })
    }

    /// Intersection over union with another mask of the same size. Two empty masks have
    /// an IoU of `0.0` (as in pycocotools).
    ///
    /// Fails with [`MaskError::SizeMismatch`] if the sizes differ.
    pub fn iou(&self, other: &BinaryMask) -> Result<f64, MaskError> {
        self.check_same_size(other.height(), other.width())?;
        let mut inter = 0u64;
        let mut union = 0u64;
        Zip::from(&self.mask).and(&other.mask).for_each(|&a, &b| {
            inter += u64::from(a && b);
            union += u64::from(a || b);
        });
        Ok(if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        })
    }

    /// Encodes the mask as a pycocotools-compatible compressed COCO RLE (byte-for-byte
    /// the `counts` that `pycocotools.mask.encode(np.asfortranarray(mask))` produces).
    pub fn to_rle(&self) -> CocoRle {
        let mut runs: Vec<u32> = Vec::new();
        let mut current = false;
        let mut count = 0u32;
        // The transposed view iterates the pixels in column-major (Fortran) order.
        for &v in self.mask.t().iter() {
            if v != current {
                runs.push(count);
                count = 0;
                current = v;
            }
            count += 1;
        }
        runs.push(count);
        // The size invariant guarantees both dimensions fit in u32.
        let h = u32::try_from(self.height()).unwrap_or(u32::MAX);
        let w = u32::try_from(self.width()).unwrap_or(u32::MAX);
        CocoRle::from_runs(h, w, &runs)
    }

    /// Decodes a compressed COCO RLE of at most [`DEFAULT_DECODE_PIXELS`] pixels (see
    /// [`from_rle_with_limit`](Self::from_rle_with_limit)).
    ///
    /// Fails with [`MaskError::CorruptRle`] if the counts string is malformed or its runs
    /// do not cover exactly `height * width` pixels, [`MaskError::ExceedsLimit`] past
    /// the bound, or [`MaskError::TooLarge`].
    pub fn from_rle(rle: &CocoRle) -> Result<BinaryMask, MaskError> {
        Self::from_rle_with_limit(rle, DEFAULT_DECODE_PIXELS)
    }

    /// Decodes a compressed COCO RLE of at most `max_pixels` pixels: a few bytes of RLE
    /// can declare a size of billions of pixels, so the size is checked before the
    /// mask is allocated.
    ///
    /// # Errors
    ///
    /// As [`from_rle`](Self::from_rle), with `max_pixels` as the bound.
    pub fn from_rle_with_limit(rle: &CocoRle, max_pixels: u64) -> Result<BinaryMask, MaskError> {
        let (h, w) = (rle.height(), rle.width());
        import::check_limit(u64::from(h), u64::from(w), max_pixels)?;
        let too_large = || MaskError::TooLarge {
            height: usize::try_from(h).unwrap_or(usize::MAX),
            width: usize::try_from(w).unwrap_or(usize::MAX),
        };
        let height = usize::try_from(h).map_err(|_| too_large())?;
        let width = usize::try_from(w).map_err(|_| too_large())?;
        check_size(height, width)?;
        let runs = rle.runs()?;
        let mut mask = Array2::from_elem((height, width), false);
        {
            let mut transposed = mask.view_mut().reversed_axes();
            let mut cells = transposed.iter_mut();
            let mut value = false;
            for run in runs {
                if value {
                    for cell in cells.by_ref().take(run as usize) {
                        *cell = true;
                    }
                } else if run > 0 {
                    // Skip the zero run (the array starts all false).
                    let _ = cells.nth(run as usize - 1);
                }
                value = !value;
            }
        }
        Ok(BinaryMask { mask })
    }

    /// Returns [`MaskError::SizeMismatch`] unless this mask is `height x width`.
    fn check_same_size(&self, height: usize, width: usize) -> Result<(), MaskError> {
        if (height, width) == (self.height(), self.width()) {
            Ok(())
        } else {
            Err(MaskError::SizeMismatch {
                expected_height: self.height(),
                expected_width: self.width(),
                actual_height: height,
                actual_width: width,
            })
        }
    }
}
