//! Errors returned by the binary-mask API.

/// Everything that can go wrong when building, comparing, encoding or exporting a
/// [`BinaryMask`](crate::BinaryMask). None of the mask functions panic on user input;
/// they return one of these variants instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaskError {
    /// The flat pixel buffer does not hold `height * width` values.
    #[error("bad mask length: a {height}x{width} mask needs {expected} pixels, got {actual}")]
    BadLength {
        /// Requested mask height in pixels.
        height: usize,
        /// Requested mask width in pixels.
        width: usize,
        /// `height * width` (saturating).
        expected: usize,
        /// Length of the buffer that was passed in.
        actual: usize,
    },

    /// Two masks, or a mask and an image, do not have the same size.
    #[error(
        "size mismatch: expected {expected_height}x{expected_width} (HxW), got {actual_height}x{actual_width}"
    )]
    SizeMismatch {
        /// Height of the reference mask or image.
        expected_height: usize,
        /// Width of the reference mask or image.
        expected_width: usize,
        /// Height of the mask or image that does not match.
        actual_height: usize,
        /// Width of the mask or image that does not match.
        actual_width: usize,
    },

    /// The mask has more pixels than COCO RLE can describe (run lengths and sizes are
    /// 32-bit unsigned integers in pycocotools).
    #[error(
        "mask too large: {height}x{width} exceeds the COCO RLE limit of {} pixels and {} rows/columns",
        u32::MAX,
        u32::MAX
    )]
    TooLarge {
        /// Mask height in pixels.
        height: usize,
        /// Mask width in pixels.
        width: usize,
    },

    /// A COCO RLE `counts` string could not be decoded, or its runs do not cover the
    /// declared size exactly.
    #[error("corrupt COCO RLE: {0}")]
    CorruptRle(String),

    /// The blending factor of an overlay is not a finite number in `[0, 1]`.
    #[error("invalid overlay alpha {0}: expected a finite value in [0, 1]")]
    InvalidAlpha(f32),

    /// A mask decoded from user data (an RLE, a picture) would exceed the bound the
    /// caller set (by default [`DEFAULT_DECODE_PIXELS`](crate::DEFAULT_DECODE_PIXELS)).
    #[error("mask of {height}x{width} exceeds the limit of {max_pixels} pixels for decoded masks")]
    ExceedsLimit {
        /// Declared height in pixels.
        height: u64,
        /// Declared width in pixels.
        width: u64,
        /// The bound.
        max_pixels: u64,
    },

    /// Reading or writing an image file failed.
    #[error("image I/O error: {0}")]
    Image(#[from] image::ImageError),
}
