//! Errors of the `omg-llava` crate.

/// Errors of the composed model and its Pipeline.
#[derive(Debug, thiserror::Error)]
pub enum OmgLlavaError {
    /// A prompt is inconsistent with the images, regions or points given, or too long.
    #[error("invalid prompt: {0}")]
    Prompt(String),
    /// An image, region or option given by the caller is invalid.
    #[error("invalid input: {0}")]
    Input(String),
    /// A checkpoint bundle is incomplete or inconsistent.
    #[error("checkpoint: {0}")]
    Bundle(String),
    /// The language model failed.
    #[error(transparent)]
    Llm(#[from] omg_llm::LlmError),
    /// The visual encoder failed.
    #[error(transparent)]
    Encoder(#[from] omg_encoder::EncoderError),
    /// The projector failed.
    #[error(transparent)]
    Projector(#[from] omg_projector::ProjectorError),
    /// The `[SEG]` decoder failed.
    #[error(transparent)]
    Decoder(#[from] omg_decoder::DecoderError),
    /// Reading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] omg_checkpoint::CheckpointError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] omg_llm::tokenizer::TokenizerError),
}
