use std::path::PathBuf;

/// Errors raised while reading or applying a checkpoint.
///
/// Every variant names the file and, where one is involved, the tensor key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed checkpoint of the expected format.
    #[error("malformed checkpoint {path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor the model needs is absent from every given source.
    #[error("missing tensor `{key}` (looked in {sources})")]
    MissingKey {
        /// The official key name.
        key: String,
        /// Where it was looked for.
        sources: String,
    },
    /// The checkpoint holds a tensor that nothing consumes and that is not on a
    /// documented ignore list.
    #[error(
        "unexpected tensor `{key}` in {source_name}: not used by the model and not on the ignore list"
    )]
    UnexpectedKey {
        /// The official key name.
        key: String,
        /// The source it came from.
        source_name: String,
    },
    /// A tensor has a different shape than the model configuration implies.
    #[error("tensor `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The official key name.
        key: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype the loader cannot convert to floats.
    #[error("tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDType {
        /// The official key name.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// A floating-point weight holds a NaN or an infinity (found by the opt-in
    /// [`FiniteCheck`](crate::FiniteCheck)).
    #[error("tensor `{key}` in {source_name} holds {value} at flat index {index}")]
    NonFinite {
        /// The official key name.
        key: String,
        /// The source it came from.
        source_name: String,
        /// Row-major index of the first non-finite element.
        index: usize,
        /// That element (NaN, inf or -inf).
        value: f64,
    },
    /// The loaded tensors could not be applied to the model.
    #[error("applying weights failed: {0}")]
    Apply(String),
}
