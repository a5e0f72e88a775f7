use std::path::PathBuf;

use crate::tokenizer::TokenizerError;
use omg_checkpoint::CheckpointError;

/// Errors of the `omg-llm` crate.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A configuration is invalid; the message says what is allowed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Loading weights failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Tokenizing failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// An input to a forward pass or to generation is invalid.
    #[error("invalid input: {0}")]
    Input(String),
    /// The sequence would exceed the capacity of the KV cache.
    #[error("sequence of {needed} tokens exceeds the KV cache capacity of {capacity} tokens")]
    ContextOverflow {
        /// Tokens the request needs.
        needed: usize,
        /// Tokens the cache can hold.
        capacity: usize,
    },
}
