//! Decoding queries that come from outside OMG-Seg (OMG-LLaVA's `[SEG]` states, mapped
//! to a content and a positional query) on the cached features of encoded images: the
//! interface another model uses to ask OMG-Seg's mask decoder for masks.
//!
//! The caller brings the queries and, optionally, its own copy of the decoder stack (a
//! task-finetuned [`DecoderStack`] with the same shapes); without one, the mask
//! decoder's own stack runs. Attention masks are predicted stage by stage, as for the
//! learned queries.

use burn::tensor::{Tensor, backend::Backend};

use crate::decoder_layer::LevelMemory;
use crate::decoding::{AttentionGuide, DecoderStack, QueryDecoding};
use crate::error::EncoderError;
use crate::mask_decoder::MaskDecoder;
use crate::omg_seg::EncodedImage;

/// The cached features external queries are decoded on: mask features at stride 4
/// `[B, C, H/4, W/4]` and the cross-attention keys of every level, for a batch of `B`
/// images.
#[derive(Debug, Clone, Copy)]
pub struct QueryMemory<'a, B: Backend> {
    /// Mask features `[B, C, H/4, W/4]`.
    pub mask_features: &'a Tensor<B, 4>,
    /// Cross-attention keys of every level, as [`MaskDecoder::level_memory`] makes them.
    pub levels: &'a [LevelMemory<B>],
}

impl<B: Backend> EncodedImage<B> {
    /// What external queries are decoded on (see [`MaskDecoder::decode_external`]).
    pub fn query_memory(&self) -> QueryMemory<'_, B> {
        QueryMemory {
            mask_features: &self.mask_features,
            levels: &self.levels,
        }
    }
}

impl<B: Backend> MaskDecoder<B> {
    /// Decodes `query` / `query_pos` `[N, 1, C]` (one query per element, `C` the
    /// decoder width) on `memory`, query `i` on image `batch_idxs[i]`, through `stack`
    /// (this decoder's own stack when `None`): per-stage masks `[N, 1, H/4, W/4]` and
    /// the final queries. `what` names the queries in errors (e.g. `"[SEG] state"`).
    ///
    /// # Errors
    ///
    /// [`EncoderError::Input`] when there is no query, the shapes do not match the
    /// decoder width, or an index names no image of the batch.
    pub fn decode_external(
        &self,
        stack: Option<&DecoderStack<B>>,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        batch_idxs: &[usize],
        memory: QueryMemory<'_, B>,
        what: &str,
    ) -> Result<QueryDecoding<B>, EncoderError> {
        let c = self.config().feat_channels;
        let [n, one, width] = query.dims();
        if one != 1 || width != c || query_pos.dims() != [n, 1, c] {
            return Err(EncoderError::Input(format!(
                "{what}: queries {:?} and positions {:?} must both be [N, 1, {c}]",
                query.dims(),
                query_pos.dims()
            )));
        }
        stack.unwrap_or(&self.decoder).decode_per_image(
            query,
            query_pos,
            batch_idxs,
            memory.mask_features,
            memory.levels,
            &AttentionGuide::Predicted,
            what,
        )
    }
}
