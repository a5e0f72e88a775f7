use omg_checkpoint::CheckpointError;

/// Errors of the `[SEG]` decoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecoderError {
    /// Inputs are inconsistent (counts, indices, sizes).
    #[error("invalid decoder input: {0}")]
    Input(String),
    /// Loading weights failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Building a mask output failed.
    #[error(transparent)]
    Mask(#[from] omg_masks::MaskError),
}
