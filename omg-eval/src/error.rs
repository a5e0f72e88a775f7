//! Errors returned by the metric functions.

use omg_masks::MaskError;

/// Everything that can go wrong when computing a metric. No metric function panics on
/// user input; they return one of these variants instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A prediction and its ground truth (or two masks compared with each other) do not
    /// have the same size.
    #[error(
        "{what}: mask size mismatch: expected {expected_height}x{expected_width} (HxW), got {actual_height}x{actual_width}"
    )]
    SizeMismatch {
        /// Which sample or image the masks belong to.
        what: String,
        /// Height of the ground-truth mask.
        expected_height: usize,
        /// Width of the ground-truth mask.
        expected_width: usize,
        /// Height of the mask that does not match.
        actual_height: usize,
        /// Width of the mask that does not match.
        actual_width: usize,
    },

    /// A mask could not be built or decoded (for example a corrupt COCO RLE).
    #[error("{what}: {source}")]
    Mask {
        /// Which sample or image the mask belongs to.
        what: String,
        /// The underlying mask error.
        #[source]
        source: MaskError,
    },

    /// A metric was asked for over a set that has nothing to average.
    #[error("{0}: nothing to evaluate")]
    Empty(String),

    /// The input breaks a rule of the metric's definition (a caption sample without
    /// references, a similarity matrix of the wrong shape, a non-finite score, ...).
    #[error("invalid input: {0}")]
    Invalid(String),

    /// The METEOR scorer could not be started or answered something unexpected.
    #[error("METEOR: {0}")]
    Meteor(String),
}
