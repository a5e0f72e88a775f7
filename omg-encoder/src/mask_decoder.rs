//! The OMG-Seg mask decoder (`Mask2FormerVideoSemSamHead` in panoptic mode): learned
//! queries refined layer by layer with masked cross-attention over the pixel decoder's
//! levels (visited round-robin), self-attention and an FFN (mmdet
//! `Mask2FormerTransformerDecoderLayer`, post-norm, cross-attention first), with a
//! prediction head after every layer: masks from `mask_embed`, open-vocabulary class
//! logits from mask pooling, and the attention mask of the next layer.

use std::collections::HashMap;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Bool, Tensor, activation::sigmoid, backend::Backend};
use omg_kernels::matmul;

use crate::class_embedding::ClassEmbedding;
use crate::config::MaskDecoderConfig;
use crate::decoder_layer::{LevelMemory, Mlp3};
use crate::decoding::{AttentionGuide, DecoderStack, run_layers};
use crate::position_encoding::sine_3d_single_frame;

/// What the head predicts from the queries after one decoder stage.
#[derive(Debug, Clone)]
pub struct StagePrediction<B: Backend> {
    /// Class logits `[B, Q, K+1]` (last column: background, always 0); `None` for the
    /// stages the heads did not run on (see [`StageHeads`]).
    pub cls_logits: Option<Tensor<B, 3>>,
    /// IoU head output `[B, Q, 1]` (unused by OMG-LLaVA); `None` as `cls_logits`.
    pub iou: Option<Tensor<B, 3>>,
    /// Mask logits at the mask-feature resolution `[B, Q, H/4, W/4]`; `None` as
    /// `cls_logits`.
    pub mask_logits: Option<Tensor<B, 4>>,
    /// Cross-attention mask for the next layer `[B, Q, h·w]` (`true` = blocked), before
    /// all-blocked rows are unblocked.
    pub attn_mask: Tensor<B, 3, Bool>,
}

/// Which decoder stages produce full outputs: mask logits at the mask-feature resolution,
/// class logits (mask pooling, class embedding) and IoU.
///
/// The official decoder computes them after every stage, for its training losses; at
/// inference only the last stage's are used (panoptic output, perception prior), so
/// [`MaskDecoder::forward`] computes them on the last stage only. Every stage computes
/// its attention mask for the next layer either way; without full outputs it computes
/// it directly at the next level's size, `mask_embed · resize(mask_features)` — the
/// same values as the official `resize(mask_embed · mask_features)` (bilinear resizing
/// is linear), up to f32 rounding, in a fraction of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StageHeads {
    /// The last stage only (inference).
    #[default]
    Last,
    /// Every stage, as the official code (to compare each stage with it).
    Every,
}

/// The decoder's outputs in panoptic mode.
#[derive(Debug, Clone)]
pub struct DecoderOutput<B: Backend> {
    /// Stage 0 (the initial queries) then one per layer.
    pub stages: Vec<StagePrediction<B>>,
    /// Query features after the last layer (not post-normed) `[B, Q, C]`.
    pub query_feat: Tensor<B, 3>,
    /// Query positions `[B, Q, C]` (the learned `query_embed`).
    pub query_pos: Tensor<B, 3>,
}

/// The mask decoder with its prediction heads.
#[derive(Module, Debug)]
pub struct MaskDecoder<B: Backend> {
    /// `query_feat`: initial content queries.
    pub query_feat: Embedding<B>,
    /// `query_embed`: query positions (constant through the layers).
    pub query_embed: Embedding<B>,
    /// `level_embed`: added to each level's memory.
    pub level_embed: Embedding<B>,
    /// `transformer_decoder.layers`, `transformer_decoder.post_norm` and `mask_embed`.
    pub decoder: DecoderStack<B>,
    /// `iou_embed`.
    pub iou_embed: Mlp3<B>,
    /// `cls_proj`: pooled feature → CLIP space.
    pub cls_proj: Mlp3<B>,
    /// `mask_pooling_proj.0` (LayerNorm).
    pub mask_pooling_norm: LayerNorm<B>,
    /// `mask_pooling_proj.1` (Linear).
    pub mask_pooling_proj: Linear<B>,
    #[module(skip)]
    config: MaskDecoderConfig,
}

impl<B: Backend> MaskDecoder<B> {
    /// A decoder with the sizes of `cfg` (weights lazily initialised).
    pub fn init(cfg: &MaskDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        Self {
            query_feat: EmbeddingConfig::new(cfg.num_queries, c).init(device),
            query_embed: EmbeddingConfig::new(cfg.num_queries, c).init(device),
            level_embed: EmbeddingConfig::new(cfg.num_levels, c).init(device),
            decoder: DecoderStack::init(cfg, device),
            iou_embed: Mlp3::init(c, c, 1, device),
            cls_proj: Mlp3::init(c, c, cfg.clip_dim, device),
            mask_pooling_norm: LayerNormConfig::new(c)
                .with_epsilon(cfg.layer_norm_eps)
                .init(device),
            mask_pooling_proj: LinearConfig::new(c, c).init(device),
            config: cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MaskDecoderConfig {
        &self.config
    }

    /// Cross-attention keys of every level (coarse to fine) from the pixel decoder's
    /// memory: `memory + level_embed[l]`, with the 3-D sine positions.
    pub fn level_memory(&self, memory: &[Tensor<B, 4>]) -> Vec<LevelMemory<B>> {
        let c = self.config.feat_channels;
        let embed = self.level_embed.weight.val();
        memory
            .iter()
            .enumerate()
            .map(|(l, m)| {
                let [b, _, h, w] = m.dims();
                let key = m.clone().flatten::<3>(2, 3).swap_dims(1, 2)
                    + embed.clone().slice([l..l + 1, 0..c]).reshape([1, 1, c]);
                let key_pos = sine_3d_single_frame::<B>(h, w, c / 2, &m.device())
                    .flatten::<3>(2, 3)
                    .swap_dims(1, 2)
                    .repeat_dim(0, b);
                LevelMemory::new(key, key_pos, (h, w))
            })
            .collect()
    }

    /// The prediction head on queries `q` `[B, Q, C]`: masks against `mask_features`
    /// `[B, C, H, W]`, class logits through `classes`, and the attention mask resized
    /// to `next` `(h, w)`.
    pub fn predict(
        &self,
        q: Tensor<B, 3>,
        mask_features: &Tensor<B, 4>,
        classes: &ClassEmbedding<B>,
        next: (usize, usize),
    ) -> StagePrediction<B> {
        let [b, nq, c] = q.dims();
        let [_, _, hm, wm] = mask_features.dims();
        let (mask_logits, d) = self.decoder.mask_logits(q, mask_features);
        let attn_mask = AttentionGuide::Predicted.attention_mask(&mask_logits, next);
        let feats = mask_features.clone().reshape([b, c, hm * wm]);

        // Mask pooling: mean of the features where the mask logit is positive.
        let bin = mask_logits
            .clone()
            .reshape([b, nq, hm * wm])
            .greater_elem(0.0)
            .float();
        let denom = bin.clone().sum_dim(2) + 1e-8;
        let pooled = matmul(bin, feats.swap_dims(1, 2)) / denom; // [b, nq, c]
        let pooled = self
            .mask_pooling_proj
            .forward(self.mask_pooling_norm.forward(pooled));
        let cls_logits = classes.logits(
            self.cls_proj.forward(pooled + d.clone()),
            self.config.logit_scale,
        );
        let iou = self.iou_embed.forward(d);
        let (cls_logits, iou, mask_logits) = (Some(cls_logits), Some(iou), Some(mask_logits));
        StagePrediction {
            cls_logits,
            iou,
            mask_logits,
            attn_mask,
        }
    }

    /// The attention mask of a stage without full outputs: mask logits computed directly
    /// at the next level's size from `features` `[B, C, h·w]` (the mask features resized
    /// there), thresholded as the official `sigmoid(·) < 0.5`.
    fn attention_only(&self, q: Tensor<B, 3>, features: &Tensor<B, 3>) -> StagePrediction<B> {
        let (logits, _) = self.decoder.mask_logits_flat(q, features.clone());
        StagePrediction {
            cls_logits: None,
            iou: None,
            mask_logits: None,
            attn_mask: sigmoid(logits).lower_elem(0.5),
        }
    }

    /// Runs every layer from the learned queries (panoptic mode), with the class heads on
    /// the last stage ([`StageHeads::Last`]).
    pub fn forward(
        &self,
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        classes: &ClassEmbedding<B>,
    ) -> DecoderOutput<B> {
        self.forward_with(mask_features, levels, classes, StageHeads::Last)
    }

    /// [`forward`](Self::forward) with the class heads on the stages `heads` names.
    pub fn forward_with(
        &self,
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        classes: &ClassEmbedding<B>,
        heads: StageHeads,
    ) -> DecoderOutput<B> {
        let b = mask_features.dims()[0];
        let query_feat = self
            .query_feat
            .weight
            .val()
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, b);
        let query_pos = self
            .query_embed
            .weight
            .val()
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, b);
        self.run(query_feat, query_pos, mask_features, levels, classes, heads)
    }

    /// Runs every layer from given queries `[N, Q, C]` and positions, with the class
    /// heads after the stages `heads` names.
    pub fn run(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        classes: &ClassEmbedding<B>,
        heads: StageHeads,
    ) -> DecoderOutput<B> {
        let last = self.decoder.layers.len();
        let mut stage = 0;
        // mask features resized to each level's size, for attention masks without full
        // outputs: [B, C, h·w]
        let mut resized: HashMap<(usize, usize), Tensor<B, 3>> = HashMap::new();
        let (stages, query) = run_layers(
            &self.decoder.layers,
            levels,
            query,
            query_pos.clone(),
            |q, next| {
                let with_heads = heads == StageHeads::Every || stage == last;
                stage += 1;
                let p = if with_heads {
                    self.predict(q, mask_features, classes, next)
                } else {
                    let features = resized
                        .entry(next)
                        .or_insert_with(|| resize_features(mask_features, next));
                    self.attention_only(q, features)
                };
                let mask = p.attn_mask.clone();
                (p, mask)
            },
        );
        DecoderOutput {
            stages,
            query_feat: query,
            query_pos,
        }
    }
}

/// `mask_features` `[B, C, H, W]` resized bilinearly (`align_corners = False`, as the
/// official attention-mask resize) to `size`, flattened to `[B, C, h·w]`.
fn resize_features<B: Backend>(mask_features: &Tensor<B, 4>, size: (usize, usize)) -> Tensor<B, 3> {
    let [b, c, _, _] = mask_features.dims();
    interpolate(
        mask_features.clone(),
        [size.0, size.1],
        InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
    )
    .reshape([b, c, size.0 * size.1])
}
