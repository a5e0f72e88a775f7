//! Errors of the `omg-llava` crate.

/// Errors of the composed model and its Pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A photo is larger than the pipeline's [`crate::ImageLimits`].
    #[error(
        "the image is {width}×{height}; the limit is {} px a side and {} pixels (raise it with Pipeline::with_image_limits if the memory is there)",
        limits.max_side,
        limits.max_pixels
    )]
    ImageTooLarge {
        /// Width of the photo.
        width: u32,
        /// Height of the photo.
        height: u32,
        /// The limits it exceeds.
        limits: crate::ImageLimits,
    },
    /// A photo cannot be preprocessed (zero-sized, a bad buffer or model size).
    #[error("image: {0}")]
    Image(#[from] omg_encoder::preprocess::PreprocessError),
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
