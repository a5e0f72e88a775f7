//! [`ImageHandle`]: a photo encoded once, reused by every query about it.

use burn::tensor::{Tensor, backend::Backend};
use omg_encoder::EncodedImage;
use omg_encoder::preprocess::SquareTransform;

/// A photo encoded once ([`Pipeline::encode`](crate::Pipeline::encode)): the encoder's
/// cached state, the visual tokens the language model reads, and the mapping between
/// the photo's pixels and the model's square frame. Every query about the photo reuses
/// it; the photo is never encoded twice.
///
/// A handle belongs to the pipeline that made it: giving it to another pipeline (a
/// model of other sizes) is refused with an error.
pub struct ImageHandle<B: Backend> {
    encoded: EncodedImage<B>,
    visual_tokens: Tensor<B, 2>,
    transform: SquareTransform,
}

impl<B: Backend> ImageHandle<B> {
    pub(crate) fn new(
        encoded: EncodedImage<B>,
        visual_tokens: Tensor<B, 2>,
        transform: SquareTransform,
    ) -> Self {
        Self {
            encoded,
            visual_tokens,
            transform,
        }
    }

    /// Width of the photo, in pixels.
    pub fn width(&self) -> u32 {
        self.transform.orig_width
    }

    /// Height of the photo, in pixels.
    pub fn height(&self) -> u32 {
        self.transform.orig_height
    }

    /// Number of visual tokens the photo takes in a prompt (pixel tokens, the separator
    /// and the valid object queries).
    pub fn visual_token_count(&self) -> usize {
        self.visual_tokens.dims()[0]
    }

    /// Bytes this handle holds (the encoder's cached state and the visual tokens): what
    /// keeping it, in a cache of photos for example, costs.
    pub fn memory_bytes(&self) -> usize {
        self.encoded.memory_bytes()
            + self.visual_tokens.shape().num_elements() * self.visual_tokens.dtype().size()
    }

    /// The encoder's cached state.
    pub(crate) fn encoded(&self) -> &EncodedImage<B> {
        &self.encoded
    }

    /// The visual tokens spliced at `<image>` `[T, D]`.
    pub(crate) fn visual_tokens(&self) -> &Tensor<B, 2> {
        &self.visual_tokens
    }

    /// Original-pixel ↔ model-frame mapping.
    pub(crate) fn transform(&self) -> SquareTransform {
        self.transform
    }
}
