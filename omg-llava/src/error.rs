//! Errors of the `omg-llava` crate.

/// Errors of the composed model and its Pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OmgLlavaError {
    /// The generation's [`CancelToken`](crate::CancelToken) was cancelled.
    #[error("cancelled: the generation was stopped by its cancel token")]
    Cancelled,
    /// A generation setting is out of its range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The setting (e.g. `top_p`).
        option: &'static str,
        /// What is allowed, and what was given.
        reason: String,
    },
    /// Preprocessed pixels do not have the model's input shape.
    #[error("invalid input: expected normalised pixels of shape {expected:?}, got {found:?}")]
    PixelShape {
        /// The shape given.
        found: Vec<usize>,
        /// The shape the model takes.
        expected: Vec<usize>,
    },
    /// An [`ImageHandle`](crate::ImageHandle) made by a pipeline of other sizes.
    #[error(
        "invalid input: the image was encoded by a model of other sizes (input {found_side}² with {found_channels}-channel visual tokens; this model takes {expected_side}² and {expected_channels} channels)"
    )]
    ForeignImage {
        /// The model input side the handle was encoded at.
        found_side: usize,
        /// Channels of the handle's visual tokens.
        found_channels: usize,
        /// This model's input side.
        expected_side: usize,
        /// This model's LLM hidden size.
        expected_channels: usize,
    },
    /// A prompt's markup holds more than one `<image>` (one image per prompt).
    #[error("invalid prompt: a prompt may contain at most one <image>, found {found}")]
    TooManyImages {
        /// `<image>` placeholders found.
        found: usize,
    },
    /// The prompt and the new tokens asked for exceed the LLM's positions.
    #[error(
        "invalid prompt: the prompt is {prompt_tokens} tokens long; with {max_new_tokens} new tokens it exceeds the model's {limit} positions"
    )]
    PromptTooLong {
        /// Tokens of the prompt (visual tokens included).
        prompt_tokens: usize,
        /// New tokens asked for.
        max_new_tokens: usize,
        /// The LLM's `max_position_embeddings`.
        limit: usize,
    },
    /// The prompt's `<region>`/`<mark>` placeholders do not match the regions given.
    #[error(
        "invalid prompt: the prompt has {region_placeholders} <region> and {mark_placeholders} <mark> placeholders but {regions_given} box/mask and {points_given} point regions were given"
    )]
    PlaceholderMismatch {
        /// `<region>` placeholders in the prompt.
        region_placeholders: usize,
        /// `<mark>` placeholders in the prompt.
        mark_placeholders: usize,
        /// Box and mask regions given.
        regions_given: usize,
        /// Point regions given.
        points_given: usize,
    },
    /// A point region lies outside the image (or is not finite).
    #[error("invalid input: point ({x}, {y}) is outside the {width}×{height} image")]
    PointOutside {
        /// The point's x.
        x: f32,
        /// The point's y.
        y: f32,
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
    },
    /// A box region is not `[x1, y1, x2, y2]` with finite `x1 < x2` and `y1 < y2`.
    #[error("invalid input: box {bbox:?} must be [x1, y1, x2, y2] with finite x1 < x2 and y1 < y2")]
    DegenerateBox {
        /// The box as given.
        bbox: [f32; 4],
    },
    /// A box region does not overlap the image.
    #[error("invalid input: box {bbox:?} does not overlap the {width}×{height} image")]
    BoxOutside {
        /// The box as given.
        bbox: [f32; 4],
        /// Width of the image.
        width: u32,
        /// Height of the image.
        height: u32,
    },
    /// A mask region does not have the image's size.
    #[error(
        "invalid input: a region mask must have the image's size {image_width}×{image_height}, got {width}×{height}"
    )]
    RegionMaskSize {
        /// Width of the mask.
        width: usize,
        /// Height of the mask.
        height: usize,
        /// Width of the image.
        image_width: u32,
        /// Height of the image.
        image_height: u32,
    },
    /// A mask region has no pixel set.
    #[error("invalid input: a region mask is empty")]
    EmptyRegionMask,
    /// A region query was given no region.
    #[error("invalid input: no region given")]
    NoRegion,
    /// Two parts of the configuration (or a configuration and the files it describes)
    /// disagree.
    #[error("checkpoint: {field} is {found}, but {expected} is needed ({why})")]
    InconsistentConfig {
        /// The setting at fault (e.g. `projector.llm_hidden_size`).
        field: &'static str,
        /// Its value.
        found: usize,
        /// The value the rest of the bundle needs.
        expected: usize,
        /// Where the expected value comes from.
        why: &'static str,
    },
    /// A configuration file cannot be read or parsed.
    #[error("checkpoint: cannot read the configuration {}: {reason}", path.display())]
    InvalidConfigFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O or JSON error.
        reason: String,
    },
    /// The bundle path is not a readable directory.
    #[error("checkpoint: {} is not a readable directory{}", dir.display(), reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    NotADirectory {
        /// The path given.
        dir: std::path::PathBuf,
        /// The I/O error, when listing it failed.
        reason: Option<String>,
    },
    /// The class-embedding file does not hold exactly one tensor.
    #[error("checkpoint: {}: expected one class-embedding tensor, found {found}", path.display())]
    ClassEmbeddingTensors {
        /// The file.
        path: std::path::PathBuf,
        /// Tensors found in it.
        found: usize,
    },
    /// Downloading a bundle from the Hugging Face hub failed.
    #[error("hub download of {what} failed: {reason}")]
    Hub {
        /// The file or step.
        what: String,
        /// The hub client's error.
        reason: String,
    },
    /// A result could not be read back from the device (a backend failure).
    #[error("reading a result back from the device failed: {0}")]
    ReadBack(String),
    /// A prompt holds a token id the LLM's embedding table has no row for.
    #[error("invalid prompt: token id {id} has no embedding (vocabulary of {vocab})")]
    TokenOutsideVocabulary {
        /// The id.
        id: i64,
        /// Rows of the embedding table.
        vocab: usize,
    },
    /// A file or folder a checkpoint bundle needs is not in its directory.
    #[error("checkpoint: no {what} found in {}", dir.display())]
    MissingBundleFile {
        /// What is missing (e.g. `OMG-Seg checkpoint (omg_seg*.pth)`).
        what: String,
        /// The bundle directory.
        dir: std::path::PathBuf,
    },
    /// A photo is larger than the pipeline's [`crate::ImageLimits`].
    #[error(
        "invalid input: the image is {width}×{height}; the limit is {} px a side and {} pixels (raise it with Pipeline::with_image_limits if the memory is there)",
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
    Llm(omg_llm::LlmError),
    /// The visual encoder failed.
    #[error(transparent)]
    Encoder(#[from] omg_encoder::EncoderError),
    /// The projector failed.
    #[error(transparent)]
    Projector(#[from] omg_projector::ProjectorError),
    /// The `[SEG]` decoder failed.
    #[error(transparent)]
    Decoder(#[from] omg_decoder::DecoderError),
    /// A mask could not be built or decoded (RLE, picture, size).
    #[error(transparent)]
    Mask(#[from] omg_masks::MaskError),
    /// Reading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] omg_checkpoint::CheckpointError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] omg_llm::tokenizer::TokenizerError),
}

impl From<omg_llm::LlmError> for OmgLlavaError {
    fn from(e: omg_llm::LlmError) -> Self {
        match e {
            omg_llm::LlmError::TokenOutsideVocabulary { id, vocab } => {
                Self::TokenOutsideVocabulary { id, vocab }
            }
            other => Self::Llm(other),
        }
    }
}
