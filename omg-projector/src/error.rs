use omg_checkpoint::CheckpointError;

/// Errors of the `omg-projector` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectorError {
    /// A configuration is invalid.
    #[error("invalid projector configuration: {0}")]
    Config(String),
    /// A size of the configuration is zero.
    #[error("invalid projector configuration: {field} must be positive")]
    ZeroSize {
        /// The configuration field.
        field: &'static str,
    },
    /// Inputs have shapes the projector was not built for.
    #[error("projector input: {0}")]
    Shape(String),
    /// Token ids and the visual blocks, regions or points given to
    /// [`splice`](crate::splice::splice) do not match.
    #[error("splicing: {0}")]
    Splice(String),
    /// Loading weights failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}
