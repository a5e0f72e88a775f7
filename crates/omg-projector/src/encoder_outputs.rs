//! The three tensors OMG-LLaVA takes from its visual encoder
//! (`OMGSegVisualEncoder.forward`): pixel-shuffled stride-32 CLIP tokens concatenated
//! with the perception prior, `[query_feat | query_pos]` of every object query, and
//! the prior's attention mask.

use burn::tensor::{Tensor, backend::Backend};

use crate::perception_prior::{PerceptionPrior, perception_prior, pixel_shuffle_tokens};

/// What the visual encoder hands to the projector.
#[derive(Debug, Clone)]
pub struct VisualEncoderOutputs<B: Backend> {
    /// Pixel-shuffled stride-32 features `[B, hw, 4·C4]`.
    pub clip: Tensor<B, 3>,
    /// The perception prior (`pixel_query`, `attn_mask`, winners).
    pub prior: PerceptionPrior<B>,
    /// `[clip | pixel_query]` `[B, hw, 4·C4 + 2C]`.
    pub clip_feature_with_prior: Tensor<B, 3>,
    /// `[query_feat | query_pos]` `[B, Q, 2C]`.
    pub query_pos_feat: Tensor<B, 3>,
}

/// Builds the encoder outputs from the last decoder stage (`mask_cls` `[B, Q, K+1]`,
/// `mask_logits` `[B, Q, h, w]`), the final queries and positions `[B, Q, C]` and the
/// coarsest backbone level `[B, C4, H/32, W/32]`; `input_size`, `cell` and
/// `smooth_ratio` as [`perception_prior`].
#[allow(clippy::too_many_arguments)]
pub fn visual_encoder_outputs<B: Backend>(
    mask_cls: Tensor<B, 3>,
    mask_logits: Tensor<B, 4>,
    query_feat: Tensor<B, 3>,
    query_pos: Tensor<B, 3>,
    coarsest: Tensor<B, 4>,
    input_size: (usize, usize),
    cell: usize,
    smooth_ratio: f32,
) -> VisualEncoderOutputs<B> {
    let prior = perception_prior(
        mask_cls,
        mask_logits,
        query_feat.clone(),
        query_pos.clone(),
        input_size,
        cell,
        smooth_ratio,
    );
    let clip = pixel_shuffle_tokens(coarsest);
    let clip_feature_with_prior = Tensor::cat(vec![clip.clone(), prior.pixel_query.clone()], 2);
    VisualEncoderOutputs {
        clip,
        prior,
        clip_feature_with_prior,
        query_pos_feat: Tensor::cat(vec![query_feat, query_pos], 2),
    }
}
