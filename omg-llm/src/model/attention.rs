//! Grouped-query self-attention with the fused, per-KV-group packed `wqkv`.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use omg_kernels::{causal_attention, grouped_heads};

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
    /// With a cache, the new keys/values are appended to it (layer `layer`) and each
    /// query attends to every cached position up to its own; without one, the
    /// positions of `x` attend causally among themselves.
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
        // [b, heads, t, d] and [b, kv, t, d]
        let q = rope.rotated_heads(qkv.clone(), 0, g);
        let k = rope.rotated_heads(qkv.clone(), g, 1);
        let v = grouped_heads(qkv, g + 1, 1, None);
        // with a cache: all of its positions (the first `start + t` filled), else these
        let (k, v, keys) = match cache {
            Some((cache, layer)) => {
                let (k, v) = cache.append(layer, k, v);
                (k, v, start + t)
            }
            None => (k, v, t),
        };
        self.wo
            .forward(causal_attention(q, k, v, keys, left_padding))
    }
}
