//! The three tensors OMG-LLaVA takes from its visual encoder
//! (`OMGSegVisualEncoder.forward`): pixel-shuffled stride-32 CLIP tokens concatenated
//! with the perception prior, `[query_feat | query_pos]` of every object query, and
//! the prior's attention mask.

use burn::tensor::{Tensor, backend::Backend};
use omg_encoder::EncodedImage;

use crate::error::ProjectorError;
use crate::perception_prior::{PerceptionPrior, perception_prior, pixel_shuffle_tokens};
use crate::visual_projector::{ProjectorOutput, VisualProjector};

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

/// The encoder outputs of a batch of encoded images (`OMGSegVisualEncoder.forward`):
/// the perception prior from the last panoptic stage's class and mask logits and
/// the final queries, and the pixel-shuffled coarsest backbone level. The token
/// cell (twice the coarsest stride, 64 for ConvNeXt) is taken from the shapes.
/// `smooth_ratio` as [`perception_prior`].
pub fn visual_encoder_outputs<B: Backend>(
    encoded: &EncodedImage<B>,
    smooth_ratio: f32,
) -> Result<VisualEncoderOutputs<B>, ProjectorError> {
    let last = encoded
        .queries
        .stages
        .last()
        .ok_or_else(|| ProjectorError::Shape("the encoder decoding has no stage".into()))?;
    let (Some(cls_logits), Some(mask_logits)) = (last.cls_logits.clone(), last.mask_logits.clone())
    else {
        return Err(ProjectorError::Shape(
            "the last decoder stage has no class or mask logits".into(),
        ));
    };
    let coarsest = encoded
        .backbone_levels
        .last()
        .ok_or_else(|| ProjectorError::Shape("the encoder has no backbone level".into()))?
        .clone();
    let (h, w) = encoded.input_size;
    let [_, _, ch, cw] = coarsest.dims();
    if ch == 0 || cw == 0 || !h.is_multiple_of(ch) || w / cw != h / ch || !w.is_multiple_of(cw) {
        return Err(ProjectorError::Shape(format!(
            "the coarsest backbone level {ch}×{cw} does not tile the {h}×{w} input"
        )));
    }
    let cell = 2 * (h / ch);
    let query_feat = encoded.queries.query_feat.clone();
    let query_pos = encoded.queries.query_pos.clone();
    let prior = perception_prior(
        cls_logits,
        mask_logits,
        query_feat.clone(),
        query_pos.clone(),
        (h, w),
        cell,
        smooth_ratio,
    );
    let clip = pixel_shuffle_tokens(coarsest);
    let clip_feature_with_prior = Tensor::cat(vec![clip.clone(), prior.pixel_query.clone()], 2);
    Ok(VisualEncoderOutputs {
        clip,
        prior,
        clip_feature_with_prior,
        query_pos_feat: Tensor::cat(vec![query_feat, query_pos], 2),
    })
}

/// An image's visual tokens with everything they were made from.
#[derive(Debug, Clone)]
pub struct ProjectedImage<B: Backend> {
    /// What the encoder hands to the projector.
    pub outputs: VisualEncoderOutputs<B>,
    /// The projector's output (tokens spliced at `<image>`, valid queries).
    pub projected: ProjectorOutput<B>,
}

/// Encoder outputs → visual tokens: [`visual_encoder_outputs`] then the
/// [`VisualProjector`]. What the Pipeline runs on every encoded image.
pub fn project_image<B: Backend>(
    projector: &VisualProjector<B>,
    encoded: &EncodedImage<B>,
    smooth_ratio: f32,
) -> Result<ProjectedImage<B>, ProjectorError> {
    let outputs = visual_encoder_outputs(encoded, smooth_ratio)?;
    let projected = projector.forward(
        outputs.clip_feature_with_prior.clone(),
        outputs.query_pos_feat.clone(),
        outputs.prior.attn_mask.clone(),
    )?;
    Ok(ProjectedImage { outputs, projected })
}
