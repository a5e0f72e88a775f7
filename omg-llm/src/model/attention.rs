//! Grouped-query self-attention with the fused, per-KV-group packed `wqkv`.

use burn::module::Module;
use burn::tensor::{Bool, Tensor, activation::softmax, backend::Backend};

use super::cache::KvCache;
use super::linear::LlmLinear;
use super::rope::RopeTables;
use crate::LlmWeights;
use crate::config::InternLM2Config;

/// `InternLM2Attention`: `wqkv` (rows packed per KV head `h` as
/// `[q_{h·g} … q_{h·g+g−1}, k_h, v_h]`, each `head_dim` rows), RoPE on q and k,
/// causal softmax attention with scale `1/√head_dim`, and the output projection `wo`.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Fused query/key/value projection, `hidden → (heads + 2·kv_heads)·head_dim`.
    pub wqkv: LlmLinear<B>,
    /// Output projection, `heads·head_dim → hidden`.
    pub wo: LlmLinear<B>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// A layer with the sizes of `config` (weights lazily initialised, to be loaded).
    pub fn init(config: &InternLM2Config, weights: LlmWeights, device: &B::Device) -> Self {
        let h = config.hidden_size;
        let storage = weights.layer_storage();
        Self {
            wqkv: LlmLinear::init(h, config.qkv_dim(), config.bias, storage, device),
            wo: LlmLinear::init(
                config.num_attention_heads * config.head_dim(),
                h,
                config.bias,
                storage,
                device,
            ),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.kv_heads(),
            head_dim: config.head_dim(),
        }
    }

    /// Attention over `x` `[batch, T, hidden]` whose first position is `start`.
    /// With a cache, the new keys/values are appended to it (layer `layer`) and the
    /// queries attend to every cached position.
    ///
    /// `left_padding` (empty, or one count per row) marks the first positions of each
    /// row as padding: no query sees them (a padding query sees itself only, so its
    /// output stays finite). Positions are shared by the rows, so a row padded by `p`
    /// has its RoPE positions shifted by `p`, which leaves its attention scores as
    /// they are (RoPE scores depend on position differences only).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        start: usize,
        cache: Option<(&mut KvCache<B>, usize)>,
        left_padding: &[usize],
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let (kv, d) = (self.num_kv_heads, self.head_dim);
        let g = self.num_heads / kv;

        // [b, t, kv, g+2, d]: per KV group the g query heads, then k, then v.
        let qkv = self.wqkv.forward(x).reshape([b, t, kv, g + 2, d]);
        let q = qkv
            .clone()
            .slice([0..b, 0..t, 0..kv, 0..g, 0..d])
            .reshape([b, t, kv * g, d])
            .swap_dims(1, 2);
        let k = qkv
            .clone()
            .slice([0..b, 0..t, 0..kv, g..g + 1, 0..d])
            .reshape([b, t, kv, d])
            .swap_dims(1, 2);
        let v = qkv
            .slice([0..b, 0..t, 0..kv, g + 1..g + 2, 0..d])
            .reshape([b, t, kv, d])
            .swap_dims(1, 2);

        let q = rope.apply(q);
        let k = rope.apply(k);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        let s = k.dims()[2];

        // Grouped-query attention without repeating k/v: the g query heads of a KV
        // group are stacked along the query axis ([b, kv, g·t, d]).
        let q = q.reshape([b, kv, g * t, d]);
        let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt();
        let padded = left_padding.iter().any(|&p| p > 0);
        let scores = if t > 1 || padded {
            let pads = if padded { left_padding } else { &[0] };
            let mask = attention_mask::<B>(t, s, start, g, pads, &scores.device());
            scores.mask_fill(mask, f32::NEG_INFINITY)
        } else {
            scores
        };
        let probs = softmax(scores, 3);
        let out = probs
            .matmul(v)
            .reshape([b, kv * g, t, d])
            .swap_dims(1, 2)
            .reshape([b, t, kv * g * d]);
        self.wo.forward(out)
    }
}

/// `True` where query row `j·t + i` of batch row `r` (position `start + i`, for each of
/// the `g` heads of a group) must not see key position `s_idx`: a later key, or a
/// padding key `s_idx < left_padding[r]` (a padding query sees itself only);
/// `[left_padding.len(), 1, g·t, s]` (one row of zero padding: the causal mask, broadcast
/// over the batch).
fn attention_mask<B: Backend>(
    t: usize,
    s: usize,
    start: usize,
    g: usize,
    left_padding: &[usize],
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let b = left_padding.len();
    let mut mask = Vec::with_capacity(b * g * t * s);
    for &pad in left_padding {
        for _ in 0..g {
            for i in 0..t {
                let q = start + i;
                for j in 0..s {
                    let padding = if q < pad { j != q } else { j < pad };
                    mask.push(j > q || padding);
                }
            }
        }
    }
    Tensor::<B, 4, Bool>::from_data(
        burn::tensor::TensorData::new(mask, [b, 1, g * t, s]),
        device,
    )
}
