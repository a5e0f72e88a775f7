//! The OMG-Seg mask decoder (`Mask2FormerVideoSemSamHead` in panoptic mode): learned
//! queries refined layer by layer with masked cross-attention over the pixel decoder's
//! levels (visited round-robin), self-attention and an FFN (mmdet
//! `Mask2FormerTransformerDecoderLayer`, post-norm, cross-attention first), with a
//! prediction head after every layer: masks from `mask_embed`, open-vocabulary class
//! logits from mask pooling, and the attention mask of the next layer.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::module::linear;
use burn::tensor::{Bool, Int, Tensor, activation::relu, activation::softmax, backend::Backend};

use crate::class_embedding::ClassEmbedding;
use crate::config::MaskDecoderConfig;
use crate::decoding::{AttentionGuide, DecoderParts, run_layers};
use crate::ffn::Ffn;
use crate::position_encoding::sine_3d_single_frame;

/// Linear → ReLU → Linear → ReLU → Linear (official `.0`, `.2`, `.4`).
#[derive(Module, Debug)]
pub struct Mlp3<B: Backend> {
    /// First linear (`.0`).
    pub fc0: Linear<B>,
    /// Second linear (`.2`).
    pub fc1: Linear<B>,
    /// Output linear (`.4`).
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp3<B> {
    /// An MLP `c_in → hidden → hidden → c_out` (lazily initialised).
    pub fn init(c_in: usize, hidden: usize, c_out: usize, device: &B::Device) -> Self {
        Self {
            fc0: LinearConfig::new(c_in, hidden).init(device),
            fc1: LinearConfig::new(hidden, hidden).init(device),
            fc2: LinearConfig::new(hidden, c_out).init(device),
        }
    }

    /// Applies the MLP.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2
            .forward(relu(self.fc1.forward(relu(self.fc0.forward(x)))))
    }
}

/// `torch.nn.MultiheadAttention` as mmcv's wrapper calls it: positions are added to
/// queries and keys (not values) and the input query is added back.
#[derive(Module, Debug)]
pub struct MultiheadAttention<B: Backend> {
    /// Fused `in_proj_weight` / `in_proj_bias` (q, k, v rows), `C → 3C`.
    pub in_proj: Linear<B>,
    /// `out_proj`.
    pub out_proj: Linear<B>,
    num_heads: usize,
}

impl<B: Backend> MultiheadAttention<B> {
    fn init(c: usize, num_heads: usize, device: &B::Device) -> Self {
        Self {
            in_proj: LinearConfig::new(c, 3 * c).init(device),
            out_proj: LinearConfig::new(c, c).init(device),
            num_heads,
        }
    }

    /// `query + out_proj(attn(query + query_pos, key + key_pos, value))`; `mask`
    /// `[B, Nq, Nk]` is `true` where attention is forbidden.
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        key: Tensor<B, 3>,
        key_pos: Tensor<B, 3>,
        value: Tensor<B, 3>,
        mask: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3> {
        let [b, nq, c] = query.dims();
        let nk = key.dims()[1];
        let (h, dh) = (self.num_heads, c / self.num_heads);
        let w = self.in_proj.weight.val();
        let bias = self.in_proj.bias.as_ref().map(|p| p.val());
        let part = |x: Tensor<B, 3>, i: usize| {
            linear(
                x,
                w.clone().slice([0..c, i * c..(i + 1) * c]),
                bias.clone().map(|bb| bb.slice(i * c..(i + 1) * c)),
            )
        };
        let heads = |x: Tensor<B, 3>, n: usize| x.reshape([b, n, h, dh]).swap_dims(1, 2);
        let q = heads(part(query.clone() + query_pos, 0), nq) * (1.0 / (dh as f64).sqrt());
        let k = heads(part(key + key_pos, 1), nk);
        let v = heads(part(value, 2), nk);
        let scores = q.matmul(k.swap_dims(2, 3));
        let scores = match mask {
            Some(m) => scores.mask_fill(
                m.unsqueeze_dim::<4>(1).expand([b, h, nq, nk]),
                f32::NEG_INFINITY,
            ),
            None => scores,
        };
        let out = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, nq, c]);
        query + self.out_proj.forward(out)
    }
}

/// One decoder layer: `LN0(q + cross)`, `LN1(q + self)`, `LN2(q + FFN)`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// `cross_attn.attn`.
    pub cross_attn: MultiheadAttention<B>,
    /// `self_attn.attn`.
    pub self_attn: MultiheadAttention<B>,
    /// `ffn`.
    pub ffn: Ffn<B>,
    /// `norms.0`, after cross-attention.
    pub norm0: LayerNorm<B>,
    /// `norms.1`, after self-attention.
    pub norm1: LayerNorm<B>,
    /// `norms.2`, after the FFN.
    pub norm2: LayerNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// A layer with the sizes of `cfg` (lazily initialised).
    pub fn init(cfg: &MaskDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        let ln = || {
            LayerNormConfig::new(c)
                .with_epsilon(cfg.layer_norm_eps)
                .init(device)
        };
        Self {
            cross_attn: MultiheadAttention::init(c, cfg.num_heads, device),
            self_attn: MultiheadAttention::init(c, cfg.num_heads, device),
            ffn: Ffn::init(c, cfg.ffn_channels, device),
            norm0: ln(),
            norm1: ln(),
            norm2: ln(),
        }
    }

    /// Applies the layer.
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        memory: &LevelMemory<B>,
        cross_mask: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3> {
        let q = self.norm0.forward(self.cross_attn.forward(
            query,
            query_pos.clone(),
            memory.key.clone(),
            memory.key_pos.clone(),
            memory.key.clone(),
            cross_mask,
        ));
        let q = self.norm1.forward(self.self_attn.forward(
            q.clone(),
            query_pos.clone(),
            q.clone(),
            query_pos,
            q,
            None,
        ));
        self.norm2.forward(self.ffn.forward(q))
    }
}

/// Keys of one level for cross-attention: `memory + level_embed` `[B, hw, C]` and its
/// 3-D sine positions `[B, hw, C]`, with the map size.
#[derive(Debug, Clone)]
pub struct LevelMemory<B: Backend> {
    /// Tokens (also the values).
    pub key: Tensor<B, 3>,
    /// Positional encoding of the tokens.
    pub key_pos: Tensor<B, 3>,
    /// `(h, w)` of the level.
    pub size: (usize, usize),
}

impl<B: Backend> LevelMemory<B> {
    /// The rows of the given batch indices (one per prompt or `[SEG]` query).
    pub fn select(&self, batch_idxs: Tensor<B, 1, Int>) -> Self {
        Self {
            key: self.key.clone().select(0, batch_idxs.clone()),
            key_pos: self.key_pos.clone().select(0, batch_idxs),
            size: self.size,
        }
    }
}

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
    /// `transformer_decoder.layers`.
    pub layers: Vec<DecoderLayer<B>>,
    /// `transformer_decoder.post_norm`.
    pub post_norm: LayerNorm<B>,
    /// `mask_embed`.
    pub mask_embed: Mlp3<B>,
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
            layers: (0..cfg.num_layers)
                .map(|_| DecoderLayer::init(cfg, device))
                .collect(),
            post_norm: LayerNormConfig::new(c)
                .with_epsilon(cfg.layer_norm_eps)
                .init(device),
            mask_embed: Mlp3::init(c, c, c, device),
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

    /// The main decoder's layers, post-norm and mask embedding.
    pub fn parts(&self) -> DecoderParts<'_, B> {
        DecoderParts {
            layers: &self.layers,
            post_norm: &self.post_norm,
            mask_embed: &self.mask_embed,
        }
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
        let (mask_logits, d) = self.parts().mask_logits(q, mask_features);
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
        let (stages, query) =
            run_layers(&self.layers, levels, query, query_pos.clone(), |q, next| {
                let p = self.predict(q, mask_features, classes, next);
                let mask = p.attn_mask.clone();
                (p, mask)
            });
        DecoderOutput {
            stages,
            query_feat: query,
            query_pos,
        }
    }
}

/// Rows of an attention mask that block everything are unblocked (attend everywhere),
/// as the official `attn_mask & (attn_mask.sum(-1) != len)` does.
pub fn unblock_full_rows<B: Backend>(mask: Tensor<B, 3, Bool>) -> Tensor<B, 3, Bool> {
    let len = mask.dims()[2] as f32;
    let blocked = mask.clone().float();
    let full = blocked
        .clone()
        .sum_dim(2)
        .greater_equal_elem(len - 0.5)
        .float(); // [b, q, 1]
    (blocked * (full.neg() + 1.0)).greater_elem(0.5)
}
