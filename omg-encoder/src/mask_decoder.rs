//! The OMG-Seg mask decoder (`Mask2FormerVideoSemSamHead` in panoptic mode): learned
//! queries refined layer by layer with masked cross-attention over the pixel decoder's
//! levels (visited round-robin), self-attention and an FFN (mmdet
//! `Mask2FormerTransformerDecoderLayer`, post-norm, cross-attention first), with a
//! prediction head after every layer: masks from `mask_embed`, open-vocabulary class
//! logits from mask pooling, and the attention mask of the next layer.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Tensor, backend::Backend};

use crate::class_embedding::ClassEmbedding;
use crate::config::MaskDecoderConfig;
use crate::decoder_layer::{LevelMemory, Mlp3};
use crate::decoding::{AttentionGuide, DecoderStack, run_layers};
use crate::position_encoding::sine_3d_single_frame;

/// What the head predicts from the queries after one decoder stage.
#[derive(Debug, Clone)]
pub struct StagePrediction<B: Backend> {
    /// Class logits `[B, Q, K+1]` (last column: background, always 0).
    pub cls_logits: Tensor<B, 3>,
    /// IoU head output `[B, Q, 1]` (unused by OMG-LLaVA).
    pub iou: Tensor<B, 3>,
    /// Mask logits at the mask-feature resolution `[B, Q, H/4, W/4]`.
    pub mask_logits: Tensor<B, 4>,
    /// Cross-attention mask for the next layer `[B, Q, h·w]` (`true` = blocked), before
    /// all-blocked rows are unblocked.
    pub attn_mask: Tensor<B, 3, Bool>,
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
                LevelMemory {
                    key,
                    key_pos,
                    size: (h, w),
                }
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
        let feats = mask_features.clone().reshape([b, c, hm * wm]);

        // Mask pooling: mean of the features where the mask logit is positive.
        let bin = mask_logits
            .clone()
            .reshape([b, nq, hm * wm])
            .greater_elem(0.0)
            .float();
        let denom = bin.clone().sum_dim(2) + 1e-8;
        let pooled = (bin / denom).matmul(feats.swap_dims(1, 2)); // [b, nq, c]
        let pooled = self
            .mask_pooling_proj
            .forward(self.mask_pooling_norm.forward(pooled));
        let cls_logits = classes.logits(
            self.cls_proj.forward(pooled + d.clone()),
            self.config.logit_scale,
        );
        let iou = self.iou_embed.forward(d);
        let attn_mask = AttentionGuide::Predicted.attention_mask(&mask_logits, next);
        StagePrediction {
            cls_logits,
            iou,
            mask_logits,
            attn_mask,
        }
    }

    /// Runs every layer from the learned queries (panoptic mode).
    pub fn forward(
        &self,
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        classes: &ClassEmbedding<B>,
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
        self.run(query_feat, query_pos, mask_features, levels, classes)
    }

    /// Runs every layer from given queries `[N, Q, C]` and positions, with the class
    /// head after every stage.
    pub fn run(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        classes: &ClassEmbedding<B>,
    ) -> DecoderOutput<B> {
        let (stages, query) = run_layers(
            &self.decoder.layers,
            levels,
            query,
            query_pos.clone(),
            |q, next| {
                let p = self.predict(q, mask_features, classes, next);
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
