use omg_checkpoint::CheckpointError;

/// Errors of the `omg-encoder` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    /// A configuration is invalid; the message says what is allowed.
    #[error("invalid encoder configuration: {0}")]
    Config(String),
    /// An input image or tensor is invalid.
    #[error("invalid input: {0}")]
    Input(String),
    /// Loading weights failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A tensor does not have the shape an operation needs.
    #[error("shape mismatch for {what}: expected {expected}, got {actual:?}")]
    ShapeMismatch {
        /// Which tensor (and operation) was checked.
        what: String,
        /// The expected shape, in words (e.g. `[Q, 134]`).
        expected: String,
        /// The shape that was passed.
        actual: Vec<usize>,
    },
}
