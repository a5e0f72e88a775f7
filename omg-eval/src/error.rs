//! Errors returned by the metric functions and the dataset readers.

use std::path::PathBuf;

use omg_masks::MaskError;

/// Everything that can go wrong when computing a metric or reading a benchmark's
/// annotations. No metric function or reader panics on user input; they return one of
/// these variants instead. The reader variants name the file at fault.
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

    /// The phrase-similarity model of the GCG recall failed (see
    /// [`crate::gcg::PhraseSimilarity`]).
    #[error("phrase similarity: {0}")]
    Similarity(Box<dyn std::error::Error + Send + Sync>),

    /// The METEOR scorer could not be started or answered something unexpected.
    #[error("METEOR: {0}")]
    Meteor(String),

    /// A dataset file (annotation, pickle, image) could not be read: missing,
    /// unreadable, or not a file.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A dataset file was read but its content is not in the official layout: not a
    /// pickle or not JSON, a missing or mistyped key, a polygon with an odd number of
    /// coordinates, an image id that the annotations name but do not list, ...
    #[error("{}: {message}", .path.display())]
    BadFile {
        /// The file whose content is wrong.
        path: PathBuf,
        /// What is wrong, and where in the file when known.
        message: String,
    },

    /// A split name that the benchmark does not have.
    #[error("{}: unknown split {split:?}; valid splits: {valid}", .path.display())]
    UnknownSplit {
        /// The annotation file or folder the split was looked up in.
        path: PathBuf,
        /// The split that was asked for.
        split: String,
        /// The valid split names, comma separated.
        valid: String,
    },
}
