use std::path::PathBuf;

use crate::tokenizer::TokenizerError;
use omg_checkpoint::CheckpointError;

/// Errors of the `omg-llm` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A prepared LLM file ([`crate::prepared`]) cannot stand for the model asked for:
    /// it is of another format, precision or architecture, or was made from other files.
    #[error("prepared LLM file {path}: {message}")]
    Prepared {
        /// The prepared file.
        path: PathBuf,
        /// What does not match.
        message: String,
    },
    /// Tokenizing failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// An input to a forward pass or to generation is invalid.
    #[error("invalid input: {0}")]
    Input(String),
    /// The backend (or this device of it) cannot hold the asked weight precision, e.g.
    /// bf16 on wgpu (WGSL has no bf16) or f16 on an adapter without `SHADER_F16`.
    #[error(
        "LLM weights in {weights} are not supported by the {backend} backend on this device; choose another precision (f32, int8, int4, or f16/bf16 where supported)"
    )]
    UnsupportedPrecision {
        /// The asked precision.
        weights: crate::LlmWeights,
        /// The backend's name for the device.
        backend: String,
    },
    /// A token id has no row in the embedding table.
    #[error("token id {id} has no embedding (vocabulary of {vocab})")]
    TokenOutsideVocabulary {
        /// The id.
        id: i64,
        /// Rows of the embedding table.
        vocab: usize,
    },
    /// The sequence would exceed the capacity of the KV cache.
    #[error("sequence of {needed} tokens exceeds the KV cache capacity of {capacity} tokens")]
    ContextOverflow {
        /// Tokens the request needs.
        needed: usize,
        /// Tokens the cache can hold.
        capacity: usize,
    },
}
