//! COCO run-length encoding, compatible with pycocotools' compressed RLE.
//!
//! A COCO RLE describes a `height x width` binary mask by the lengths of its runs in
//! column-major (Fortran) order: first a run of zeros (possibly of length 0), then
//! alternating runs of ones and zeros. The compressed form stores those run lengths
//! in a printable string, as pycocotools' `rleToString`/`rleFrString` do:
//!
//! * from the fourth run on (`i > 2`) the value stored is the difference to the run
//!   two places earlier (`counts[i] - counts[i - 2]`, which may be negative);
//! * each value is written as a little-endian sequence of 5-bit groups, one per
//!   character; bit `0x20` of a character says that another group follows, and on the
//!   last group bit `0x10` is the sign bit (the value is sign-extended from it);
//! * every character is offset by 48, so the alphabet is ASCII `'0'` (48) to `'o'` (111).
//!
//! This module is an independent re-implementation of that algorithm.

use serde::{Deserialize, Serialize};

use crate::MaskError;

/// Character offset of the string encoding (`'0'`).
const OFFSET: u8 = 48;
/// Bit flagging that another 5-bit group follows.
const MORE: u8 = 0x20;
/// Sign bit of the last 5-bit group.
const SIGN: u8 = 0x10;
/// Payload bits of one character.
const PAYLOAD: u8 = 0x1f;
/// Longest accepted encoding of one value: 8 groups = 40 bits, enough for any difference
/// of two `u32` run lengths (which needs 34 signed bits).
const MAX_CHARS_PER_VALUE: u32 = 8;

/// A compressed COCO RLE, serialised exactly like pycocotools' dict
/// `{"size": [height, width], "counts": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CocoRle {
    /// Mask size as `[height, width]` in pixels (pycocotools order).
    pub size: [u32; 2],
    /// Column-major run lengths, compressed with pycocotools' string encoding.
    pub counts: String,
}

impl CocoRle {
    /// Builds a compressed RLE from uncompressed column-major run lengths (first run
    /// counts zeros). The runs are not checked against the size here; [`CocoRle::runs`]
    /// and [`BinaryMask::from_rle`](crate::BinaryMask::from_rle) check them.
    pub fn from_runs(height: u32, width: u32, runs: &[u32]) -> Self {
        Self {
            size: [height, width],
            counts: encode_counts(runs),
        }
    }

    /// Mask height in pixels (`size[0]`).
    pub fn height(&self) -> u32 {
        self.size[0]
    }

    /// Mask width in pixels (`size[1]`).
    pub fn width(&self) -> u32 {
        self.size[1]
    }

    /// Decodes the `counts` string to uncompressed column-major run lengths and checks
    /// that they cover exactly `height * width` pixels.
    pub fn runs(&self) -> Result<Vec<u32>, MaskError> {
        let runs = decode_counts(&self.counts)?;
        let total: u64 = runs.iter().map(|&r| u64::from(r)).sum();
        let expected = u64::from(self.size[0]) * u64::from(self.size[1]);
        if total != expected {
            return Err(MaskError::CorruptRle(format!(
                "runs cover {total} pixels but size {}x{} has {expected}",
                self.size[0], self.size[1]
            )));
        }
        Ok(runs)
    }

    /// Number of foreground pixels, computed from the runs without decoding the mask.
    /// Same as [`area_from_rle`].
    pub fn area(&self) -> Result<u64, MaskError> {
        area_from_rle(self)
    }
}

/// Number of foreground pixels of a compressed RLE (the sum of the odd-indexed runs),
/// like pycocotools' `mask.area`. Fails if the string is corrupt or the runs do not
/// cover the declared size.
pub fn area_from_rle(rle: &CocoRle) -> Result<u64, MaskError> {
    let runs = rle.runs()?;
    Ok(runs.iter().skip(1).step_by(2).map(|&r| u64::from(r)).sum())
}

/// Compresses column-major run lengths into a pycocotools counts string
/// (the algorithm of `rleToString`).
pub fn encode_counts(runs: &[u32]) -> String {
    let mut out = String::with_capacity(runs.len() * 2);
    for (i, &run) in runs.iter().enumerate() {
        let mut x = i64::from(run);
        if i > 2 {
            x -= i64::from(runs[i - 2]);
        }
        loop {
            // `x & 0x1f` is in 0..=31, so the cast is lossless.
            let mut c = (x & i64::from(PAYLOAD)) as u8;
            x >>= 5; // arithmetic shift: keeps the sign
            let more = if c & SIGN != 0 { x != -1 } else { x != 0 };
            if more {
                c |= MORE;
            }
            out.push(char::from(c + OFFSET));
            if !more {
                break;
            }
        }
    }
    out
}

/// Decodes a pycocotools counts string into column-major run lengths (the algorithm of
/// `rleFrString`). Rejects characters outside `'0'..='o'`, a value cut off at the end of
/// the string, over-long values and run lengths that are negative or exceed `u32`.
/// It does not know the mask size; use [`CocoRle::runs`] to check the total as well.
pub fn decode_counts(s: &str) -> Result<Vec<u32>, MaskError> {
    let bytes = s.as_bytes();
    let mut runs: Vec<u32> = Vec::with_capacity(bytes.len());
    let mut p = 0usize;
    while p < bytes.len() {
        let start = p;
        let mut x: i64 = 0;
        let mut k: u32 = 0;
        loop {
            let Some(&b) = bytes.get(p) else {
                return Err(MaskError::CorruptRle(format!(
                    "value starting at byte {start} is cut off by the end of the string"
                )));
            };
            if !(OFFSET..=OFFSET + 0x3f).contains(&b) {
                return Err(MaskError::CorruptRle(format!(
                    "byte {p} ({:?}) is outside the RLE alphabet '0'..='o'",
                    char::from(b)
                )));
            }
            if k >= MAX_CHARS_PER_VALUE {
                return Err(MaskError::CorruptRle(format!(
                    "value starting at byte {start} is longer than {MAX_CHARS_PER_VALUE} characters"
                )));
            }
            let c = b - OFFSET;
            x |= i64::from(c & PAYLOAD) << (5 * k);
            p += 1;
            k += 1;
            if c & MORE == 0 {
                if c & SIGN != 0 {
                    // Sign-extend from the last group (5 * k <= 40 bits, no overflow).
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        let m = runs.len();
        if m > 2 {
            x += i64::from(runs[m - 2]);
        }
        let run = u32::try_from(x).map_err(|_| {
            MaskError::CorruptRle(format!(
                "run {m} (value starting at byte {start}) decodes to {x}, outside 0..={}",
                u32::MAX
            ))
        })?;
        runs.push(run);
    }
    Ok(runs)
}
