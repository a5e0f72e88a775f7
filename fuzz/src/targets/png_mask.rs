//! Region masks from pictures (`BinaryMask::from_image_bytes`, the CLI's `--mask`):
//! arbitrary bytes, with a small pixel bound so that declared sizes are tested too.

use omg_masks::{BinaryMask, MaskError};

const MAX_PIXELS: u64 = 1 << 22;

/// The `png_mask` target: runs on any bytes, panics only if a check fails.
pub fn png_mask(data: &[u8]) {
    match BinaryMask::from_image_bytes(data, MAX_PIXELS) {
        Ok(mask) => {
            assert!((mask.height() * mask.width()) as u64 <= MAX_PIXELS);
            assert!(mask.area() <= (mask.height() * mask.width()) as u64);
        }
        Err(MaskError::Image(_) | MaskError::ExceedsLimit { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}
