//! Errors of loading a BERT folder and embedding phrases.

use std::path::PathBuf;

use omg_checkpoint::CheckpointError;

/// Everything that can go wrong when loading a BERT folder or embedding a phrase. The
/// loader checks every file and every weight before it returns a model, so an error
/// leaves nothing half-loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BertError {
    /// A file of the folder could not be read (missing, unreadable, not a file).
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON, or describes a model this encoder does not run
    /// (an activation other than `gelu`, relative position embeddings, sizes that do
    /// not divide, ...).
    #[error("{}: {message}", .path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer files could not be read or built.
    #[error("{}: tokenizer: {message}", .path.display())]
    Tokenizer {
        /// The tokenizer file (or the folder when neither file exists).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights are missing, mis-shaped or of an unsupported dtype.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The tokenizer produced a token id the model has no embedding for (the tokenizer
    /// and the weights come from different models).
    #[error("token id {id} is outside the model's vocabulary of {vocab_size} tokens")]
    TokenOutOfVocabulary {
        /// The token id.
        id: u32,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// A phrase has more tokens than the model has positions (after the truncation to
    /// 512 tokens that the official evaluation asks for).
    #[error("{tokens} tokens, but the model has {max_positions} positions")]
    TooManyTokens {
        /// The phrase's number of tokens.
        tokens: usize,
        /// The model's `max_position_embeddings`.
        max_positions: usize,
    },
    /// Encoding a phrase failed in the tokenizer.
    #[error("tokenizing {text:?}: {message}")]
    Encode {
        /// The phrase (its first 80 characters).
        text: String,
        /// What the tokenizer said.
        message: String,
    },
    /// The backend returned the embedding in a form it cannot be read back from.
    #[error("reading the embedding back from the backend: {0}")]
    Backend(String),
}
