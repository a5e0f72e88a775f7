//! Rotary position embedding exactly as `InternLM2RotaryEmbedding` and its scaled
//! variants compute it: rotate-half (NeoX) form, `inv_freq[i] = 1/θ^(2i/d)`,
//! `cos/sin = cat(freqs, freqs)`, all in f32.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use omg_kernels::grouped_heads;

use crate::config::{InternLM2Config, RopeScaling, RopeScalingKind};

/// The rotary embedding of one model (no learned parameters).
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    head_dim: usize,
    theta: f64,
    scaling: Option<RopeScaling>,
    max_position_embeddings: usize,
}

impl RotaryEmbedding {
    /// The rotary embedding `config` describes.
    pub fn new(config: &InternLM2Config) -> Self {
        Self {
            head_dim: config.head_dim(),
            theta: config.rope_theta,
            scaling: config.rope_scaling,
            max_position_embeddings: config.max_position_embeddings,
        }
    }

    /// The base the official code uses when the key/value sequence is `kv_len` long:
    /// θ itself, or for dynamic NTK scaling past `max_position_embeddings`
    /// `θ·(factor·L/max − (factor−1))^(d/(d−2))`.
    pub fn base_for(&self, kv_len: usize) -> f64 {
        match self.scaling {
            Some(RopeScaling {
                kind: RopeScalingKind::Dynamic,
                factor,
            }) if kv_len > self.max_position_embeddings => {
                let d = self.head_dim as f64;
                let ratio = factor * kv_len as f64 / self.max_position_embeddings as f64;
                self.theta * (ratio - (factor - 1.0)).powf(d / (d - 2.0))
            }
            _ => self.theta,
        }
    }

    /// `cos` and `sin` tables `[len, head_dim]` for positions `start..start+len`
    /// of a sequence whose keys/values will span `kv_len` positions.
    pub fn tables(&self, start: usize, len: usize, kv_len: usize) -> (Vec<f32>, Vec<f32>) {
        let half = self.head_dim / 2;
        let base = self.base_for(kv_len) as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / self.head_dim as f32))
            .collect();
        let pos_scale = match self.scaling {
            Some(RopeScaling {
                kind: RopeScalingKind::Linear,
                factor,
            }) => 1.0 / factor as f32,
            _ => 1.0,
        };
        let mut cos = Vec::with_capacity(len * self.head_dim);
        let mut sin = Vec::with_capacity(len * self.head_dim);
        for p in start..start + len {
            let t = if pos_scale == 1.0 {
                p as f32
            } else {
                p as f32 * pos_scale
            };
            for _ in 0..2 {
                for &f in &inv_freq {
                    let a = t * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        (cos, sin)
    }

    /// The tables of [`Self::tables`] as tensors `[1, 1, len, head_dim]`.
    pub fn tensors<B: Backend>(
        &self,
        start: usize,
        len: usize,
        kv_len: usize,
        device: &B::Device,
    ) -> RopeTables<B> {
        let (cos, sin) = self.tables(start, len, kv_len);
        let shape = [1, 1, len, self.head_dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

/// `cos`/`sin` for the positions of one forward pass, `[1, 1, T, head_dim]`.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
}

impl<B: Backend> RopeTables<B> {
    /// Slots `first … first + count − 1` of each key/value group of a fused projection
    /// `qkv` `[batch, T, kv_heads, slots, head_dim]`, rotated: `[batch, kv_heads·count,
    /// T, head_dim]` (see [`grouped_heads`]).
    pub fn rotated_heads(&self, qkv: Tensor<B, 5>, first: usize, count: usize) -> Tensor<B, 4> {
        let tables = (self.cos.clone(), self.sin.clone());
        grouped_heads(qkv, first, count, Some(tables))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_ntk_changes_the_base_only_past_max_positions() {
        let mut c = InternLM2Config::internlm2_chat_7b();
        let rope = RotaryEmbedding::new(&c);
        assert_eq!(rope.base_for(32768), 1e6);
        // 2·65536/32768 − 1 = 3; 3^(128/126)
        let expected = 1e6 * 3f64.powf(128.0 / 126.0);
        assert!((rope.base_for(65536) - expected).abs() < 1e-6 * expected);
        c.rope_scaling = None;
        assert_eq!(RotaryEmbedding::new(&c).base_for(65536), 1e6);
    }

    #[test]
    fn tables_follow_cat_freqs_freqs() {
        let mut c = InternLM2Config::internlm2_chat_7b();
        c.hidden_size = 8;
        c.num_attention_heads = 1;
        c.num_key_value_heads = Some(1);
        let rope = RotaryEmbedding::new(&c);
        let (cos, sin) = rope.tables(3, 1, 4);
        // head_dim 8 → inv_freq = [1, θ^-1/4, θ^-1/2, θ^-3/4]
        let inv = [
            1.0f32,
            1e6f32.powf(-0.25),
            1e6f32.powf(-0.5),
            1e6f32.powf(-0.75),
        ];
        for i in 0..8 {
            let a = 3.0 * inv[i % 4];
            assert!((cos[i] - a.cos()).abs() < 1e-6);
            assert!((sin[i] - a.sin()).abs() < 1e-6);
        }
    }
}
