//! Pixel intersection and union of two binary masks: what every mask metric counts.

use ndarray::Zip;
use omg_masks::BinaryMask;
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Pixel counts of two masks of the same size compared with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Overlap {
    /// Pixels set in both masks.
    pub intersection: u64,
    /// Pixels set in either mask.
    pub union: u64,
    /// Pixels set in the first mask.
    pub first_area: u64,
}

impl Overlap {
    /// Counts the overlap of `first` and `second`; `what` names the sample in the error
    /// returned when their sizes differ.
    pub fn of(first: &BinaryMask, second: &BinaryMask, what: &str) -> Result<Self, EvalError> {
        check_same_size(first, second, what)?;
        let mut out = Overlap::default();
        Zip::from(first.array())
            .and(second.array())
            .for_each(|&a, &b| {
                out.intersection += u64::from(a && b);
                out.union += u64::from(a || b);
                out.first_area += u64::from(a);
            });
        Ok(out)
    }
}

/// Returns [`EvalError::SizeMismatch`] unless `actual` has the size of `expected`.
pub(crate) fn check_same_size(
    expected: &BinaryMask,
    actual: &BinaryMask,
    what: &str,
) -> Result<(), EvalError> {
    if expected.array().dim() == actual.array().dim() {
        Ok(())
    } else {
        Err(EvalError::SizeMismatch {
            what: what.to_string(),
            expected_height: expected.height(),
            expected_width: expected.width(),
            actual_height: actual.height(),
            actual_width: actual.width(),
        })
    }
}
