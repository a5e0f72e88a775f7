//! The decoder loop shared by every way OMG-Seg's mask decoder is driven: panoptic
//! (learned queries), visual prompts (one SAM-style query per prompt) and `[SEG]`
//! queries from the LLM. Each runs the same layers on the cached multi-scale memory;
//! they differ in the queries, in how the cross-attention mask of the next layer is
//! obtained ([`AttentionGuide`]) and in which copy of the layers is used (a
//! [`DecoderStack`]: the main decoder, or a finetuned copy that a caller brings, see
//! [`MaskDecoder::decode_external`](crate::MaskDecoder::decode_external)).

use std::collections::HashMap;

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Bool, Int, Tensor, TensorData, activation::sigmoid, backend::Backend};
use omg_kernels::matmul;

use crate::config::MaskDecoderConfig;
use crate::decoder_layer::{DecoderLayer, LevelMemory, Mlp3, unblock_full_rows};
use crate::error::EncoderError;
use crate::prompt::region_mask::RegionMask;

/// How the cross-attention mask of the next layer is obtained.
#[derive(Debug, Clone)]
pub enum AttentionGuide {
    /// From each query's own mask prediction: blocked where `sigmoid(logit) < 0.5`
    /// after a bilinear resize to the level (panoptic queries, point prompts, `[SEG]`).
    Predicted,
    /// As [`Predicted`](Self::Predicted), and also blocked outside a box (one per
    /// batch element, relative `[x1, y1, x2, y2]`): the official box prompt sets the
    /// resized logits outside `[⌊x1·w⌋, ⌊x2·w + 1⌋) × [⌊y1·h⌋, ⌊y2·h + 1⌋)` to −100.
    Boxes(Vec<[f32; 4]>),
    /// Fixed to a region (one per batch element): blocked outside the region resized
    /// to the level with nearest-neighbour sampling; predictions are ignored.
    Regions(Vec<RegionMask>),
}

impl AttentionGuide {
    /// The prediction-independent part of the mask on an `h × w` level, `[N, 1, h·w]`
    /// (`true` outside the region or box of each batch element); `None` for
    /// [`Predicted`](Self::Predicted). Depends only on the level size, so a decoding
    /// builds it once per level.
    pub fn fixed_mask<B: Backend>(
        &self,
        next: (usize, usize),
        device: &B::Device,
    ) -> Option<Tensor<B, 3, Bool>> {
        let (h, w) = next;
        let outside: Vec<bool> = match self {
            AttentionGuide::Predicted => return None,
            AttentionGuide::Boxes(boxes) => {
                boxes.iter().flat_map(|b| outside_box(*b, h, w)).collect()
            }
            AttentionGuide::Regions(regions) => regions
                .iter()
                .flat_map(|r| r.resize_nearest(h, w).into_iter().map(|inside| !inside))
                .collect(),
        };
        let n = outside.len() / (h * w).max(1);
        Some(
            Tensor::<B, 3, Int>::from_data(
                TensorData::new(
                    outside.into_iter().map(|v| v as i64).collect(),
                    [n, 1, h * w],
                ),
                device,
            )
            .greater_elem(0),
        )
    }

    /// The attention mask `[N, Q, h·w]` (`true` = blocked, before all-blocked rows are
    /// unblocked) for the next level of size `next`, from mask logits `[N, Q, H', W']`.
    pub fn attention_mask<B: Backend>(
        &self,
        mask_logits: &Tensor<B, 4>,
        next: (usize, usize),
    ) -> Tensor<B, 3, Bool> {
        let fixed = self.fixed_mask::<B>(next, &mask_logits.device());
        self.attention_mask_with(mask_logits, next, fixed)
    }

    /// [`attention_mask`](Self::attention_mask) with the level's
    /// [`fixed_mask`](Self::fixed_mask) already built.
    pub fn attention_mask_with<B: Backend>(
        &self,
        mask_logits: &Tensor<B, 4>,
        next: (usize, usize),
        fixed: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3, Bool> {
        let [n, q, _, _] = mask_logits.dims();
        let (h, w) = next;
        let fixed = fixed.map(|f| f.repeat_dim(1, q));
        if let (AttentionGuide::Regions(_), Some(f)) = (self, &fixed) {
            return f.clone();
        }
        let resized = interpolate(
            mask_logits.clone(),
            [h, w],
            InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
        );
        let predicted = sigmoid(resized).lower_elem(0.5).reshape([n, q, h * w]);
        match fixed {
            Some(outside) => predicted.bool_or(outside),
            None => predicted,
        }
    }
}

/// `true` outside the official integer box of relative box `b` on an `h × w` grid.
fn outside_box(b: [f32; 4], h: usize, w: usize) -> Vec<bool> {
    let c = |v: f32| v.clamp(0.0, 1.0);
    let sx = (c(b[0]) * w as f32).floor();
    let sy = (c(b[1]) * h as f32).floor();
    let ex = (c(b[2]) * w as f32 + 1.0).floor();
    let ey = (c(b[3]) * h as f32 + 1.0).floor();
    let mut out = Vec::with_capacity(h * w);
    for i in 0..h {
        for j in 0..w {
            let (y, x) = (i as f32, j as f32);
            out.push(y < sy || y >= ey || x < sx || x >= ex);
        }
    }
    out
}

/// The layers, post-norm and mask embedding of one decoder: the main decoder's
/// (`transformer_decoder`, `mask_embed`), or a finetuned copy of the same shapes that
/// a model decoding its own queries keeps (OMG-LLaVA's `[SEG]` head).
#[derive(Module, Debug)]
pub struct DecoderStack<B: Backend> {
    /// Decoder layers, in order.
    pub layers: Vec<DecoderLayer<B>>,
    /// `post_norm` applied before the mask embedding.
    pub post_norm: LayerNorm<B>,
    /// `mask_embed`.
    pub mask_embed: Mlp3<B>,
}

impl<B: Backend> DecoderStack<B> {
    /// A stack with the sizes of `cfg` (lazily initialised).
    pub fn init(cfg: &MaskDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        Self {
            layers: (0..cfg.num_layers)
                .map(|_| DecoderLayer::init(cfg, device))
                .collect(),
            post_norm: LayerNormConfig::new(c)
                .with_epsilon(cfg.layer_norm_eps)
                .init(device),
            mask_embed: Mlp3::init(c, c, c, device),
        }
    }

    /// Mask logits `[N, Q, H, W]` of queries `q` against `mask_features`
    /// `[N, C, H, W]`, and the post-normed queries.
    pub fn mask_logits(
        &self,
        q: Tensor<B, 3>,
        mask_features: &Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 3>) {
        let [b, nq, c] = q.dims();
        let [_, _, hm, wm] = mask_features.dims();
        let feats = mask_features.clone().reshape([b, c, hm * wm]);
        let (mask, d) = self.mask_logits_flat(q, feats);
        (mask.reshape([b, nq, hm, wm]), d)
    }

    /// Mask logits `[N, Q, P]` of queries `q` against flattened features `[N, C, P]`
    /// (any resolution), and the post-normed queries.
    pub fn mask_logits_flat(
        &self,
        q: Tensor<B, 3>,
        features: Tensor<B, 3>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let d = self.post_norm.forward(q);
        (matmul(self.mask_embed.forward(d.clone()), features), d)
    }

    /// Runs every layer from `query` / `query_pos` `[N, Q, C]` over `levels` (visited
    /// round-robin), predicting masks before the first layer and after each one.
    pub fn decode(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        guide: &AttentionGuide,
    ) -> QueryDecoding<B> {
        let device = mask_features.device();
        let mut fixed: HashMap<(usize, usize), Option<Tensor<B, 3, Bool>>> = HashMap::new();
        let stages_and_query =
            run_layers(&self.layers, levels, query, query_pos.clone(), |q, next| {
                let (mask_logits, _) = self.mask_logits(q, mask_features);
                let level_fixed = fixed
                    .entry(next)
                    .or_insert_with(|| guide.fixed_mask::<B>(next, &device))
                    .clone();
                let attn_mask = guide.attention_mask_with(&mask_logits, next, level_fixed);
                (
                    MaskStage {
                        mask_logits,
                        attn_mask: attn_mask.clone(),
                    },
                    attn_mask,
                )
            });
        QueryDecoding {
            stages: stages_and_query.0,
            query_feat: stages_and_query.1,
            query_pos,
        }
    }

    /// [`decode`](Self::decode) for one query per batch element (a prompt or a `[SEG]`
    /// state), `query` / `query_pos` `[N, 1, C]`, on the cached features of a batch of
    /// images: `mask_features` `[B, C, H, W]`, `levels` of the batch, and
    /// `batch_idxs[i]` the image of query `i`. `what` names the queries in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_per_image(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        batch_idxs: &[usize],
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
        guide: &AttentionGuide,
        what: &str,
    ) -> Result<QueryDecoding<B>, EncoderError> {
        let n = query.dims()[0];
        if n == 0 {
            return Err(EncoderError::Input(format!("no {what} given")));
        }
        if batch_idxs.len() != n {
            return Err(EncoderError::Input(format!(
                "{n} {what}s but {} batch indices",
                batch_idxs.len()
            )));
        }
        let images = mask_features.dims()[0];
        if let Some(&bad) = batch_idxs.iter().find(|&&i| i >= images) {
            return Err(EncoderError::Input(format!(
                "{what} batch index {bad} is out of range for {images} image(s)"
            )));
        }
        let device = mask_features.device();
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new(batch_idxs.iter().map(|&i| i as i64).collect(), [n]),
            &device,
        );
        let feats = mask_features.clone().select(0, idx.clone());
        let levels: Vec<_> = levels.iter().map(|l| l.select(idx.clone())).collect();
        Ok(self.decode(query, query_pos, &feats, &levels, guide))
    }
}

/// The decoder loop: `predict(query, next_level_size)` gives a stage's prediction
/// and the attention mask of the next layer (all-blocked rows are unblocked here).
/// Returns the stages (initial + one per layer) and the final raw queries.
pub fn run_layers<B: Backend, P>(
    layers: &[DecoderLayer<B>],
    levels: &[LevelMemory<B>],
    mut query: Tensor<B, 3>,
    query_pos: Tensor<B, 3>,
    mut predict: impl FnMut(Tensor<B, 3>, (usize, usize)) -> (P, Tensor<B, 3, Bool>),
) -> (Vec<P>, Tensor<B, 3>) {
    let n_levels = levels.len();
    let (first, mut mask) = predict(query.clone(), levels[0].size);
    let mut stages = vec![first];
    for (i, layer) in layers.iter().enumerate() {
        let level = &levels[i % n_levels];
        query = layer.forward(
            query,
            query_pos.clone(),
            level,
            Some(unblock_full_rows(mask)),
        );
        let next = levels[(i + 1) % n_levels].size;
        let (stage, next_mask) = predict(query.clone(), next);
        stages.push(stage);
        mask = next_mask;
    }
    (stages, query)
}

/// Mask prediction of one stage of a query decoding.
#[derive(Debug, Clone)]
pub struct MaskStage<B: Backend> {
    /// Mask logits at the mask-feature resolution `[N, Q, H/4, W/4]`.
    pub mask_logits: Tensor<B, 4>,
    /// Attention mask for the next layer `[N, Q, h·w]` (`true` = blocked), before
    /// all-blocked rows are unblocked.
    pub attn_mask: Tensor<B, 3, Bool>,
}

/// The result of decoding given queries (prompts or `[SEG]`).
#[derive(Debug, Clone)]
pub struct QueryDecoding<B: Backend> {
    /// Stage 0 (the initial queries) then one per layer.
    pub stages: Vec<MaskStage<B>>,
    /// Raw queries after the last layer (not post-normed) `[N, Q, C]`.
    pub query_feat: Tensor<B, 3>,
    /// The query positions `[N, Q, C]`.
    pub query_pos: Tensor<B, 3>,
}

impl<B: Backend> QueryDecoding<B> {
    /// The final mask logits `[N, Q, H/4, W/4]`.
    pub fn final_mask_logits(&self) -> Tensor<B, 4> {
        self.stages[self.stages.len() - 1].mask_logits.clone()
    }
}
