//! The building blocks of OMG-Seg's mask decoder (mmdet
//! `Mask2FormerTransformerDecoderLayer`: post-norm, cross-attention first), shared by
//! every way the decoder is driven: [`DecoderLayer`] with its
//! [`MultiheadAttention`], the prediction [`Mlp3`], the per-level cross-attention keys
//! ([`LevelMemory`]) and the official all-blocked-row rule ([`unblock_full_rows`]).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Int, Tensor, activation::relu, backend::Backend};

use omg_kernels::{linear, linear_with, masked_attention};

use crate::config::MaskDecoderConfig;
use crate::ffn::Ffn;

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
        let x = relu(linear(&self.fc0, x));
        linear(&self.fc2, relu(linear(&self.fc1, x)))
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

    /// `query + out_proj(attn(query + query_pos, key_with_pos, value))`, where
    /// `key_with_pos` is the official `key + key_pos` (added by the caller, once per
    /// level for the cross-attention); `mask` `[B, Nq, Nk]` is `true` where attention is
    /// forbidden.
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        key_with_pos: Tensor<B, 3>,
        value: Tensor<B, 3>,
        mask: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3> {
        let c = query.dims()[2];
        let (h, dh) = (self.num_heads, c / self.num_heads);
        let w = self.in_proj.weight.val();
        let bias = self.in_proj.bias.as_ref().map(|p| p.val());
        let part = |x: Tensor<B, 3>, i: usize| {
            linear_with(
                x,
                w.clone().slice([0..c, i * c..(i + 1) * c]),
                bias.clone().map(|bb| bb.slice(i * c..(i + 1) * c)),
            )
        };
        let q = part(query.clone() + query_pos, 0) * (1.0 / (dh as f64).sqrt());
        let k = part(key_with_pos, 1);
        let v = part(value, 2);
        let out = masked_attention(q, k, v, h, mask);
        query + linear(&self.out_proj, out)
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
            memory.key_with_pos.clone(),
            memory.key.clone(),
            cross_mask,
        ));
        let q = self.norm1.forward(self.self_attn.forward(
            q.clone(),
            query_pos.clone(),
            q.clone() + query_pos,
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
    /// `key + key_pos`, what every layer's cross-attention keys are projected from
    /// (computed once per level rather than once per layer).
    pub key_with_pos: Tensor<B, 3>,
    /// `(h, w)` of the level.
    pub size: (usize, usize),
}

impl<B: Backend> LevelMemory<B> {
    /// The memory of a level from its tokens and their positions `[B, hw, C]`.
    pub fn new(key: Tensor<B, 3>, key_pos: Tensor<B, 3>, size: (usize, usize)) -> Self {
        Self {
            key_with_pos: key.clone() + key_pos.clone(),
            key,
            key_pos,
            size,
        }
    }

    /// The rows of the given batch indices (one per prompt or `[SEG]` query).
    pub fn select(&self, batch_idxs: Tensor<B, 1, Int>) -> Self {
        Self {
            key: self.key.clone().select(0, batch_idxs.clone()),
            key_pos: self.key_pos.clone().select(0, batch_idxs.clone()),
            key_with_pos: self.key_with_pos.clone().select(0, batch_idxs),
            size: self.size,
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
