//! One InternLM2 decoder layer (pre-norm attention and FFN with residuals).

use burn::module::Module;
use burn::nn::{RmsNorm, RmsNormConfig};
use burn::tensor::{Tensor, backend::Backend};

use super::attention::Attention;
use super::cache::KvCache;
use super::feed_forward::FeedForward;
use super::rope::RopeTables;
use crate::LlmWeights;
use crate::config::InternLM2Config;

/// `InternLM2DecoderLayer`:
/// `h = x + wo(attn(attention_norm(x)))`, `y = h + ffn(ffn_norm(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Self-attention.
    pub attention: Attention<B>,
    /// SwiGLU FFN.
    pub feed_forward: FeedForward<B>,
    /// RMSNorm before attention.
    pub attention_norm: RmsNorm<B>,
    /// RMSNorm before the FFN.
    pub ffn_norm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// A layer with the sizes of `config` (weights lazily initialised, to be loaded).
    pub fn init(config: &InternLM2Config, weights: LlmWeights, device: &B::Device) -> Self {
        let norm = || {
            RmsNormConfig::new(config.hidden_size)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
        };
        Self {
            attention: Attention::init(config, weights, device),
            feed_forward: FeedForward::init(config, weights, device),
            attention_norm: norm(),
            ffn_norm: norm(),
        }
    }

    /// Applies the layer to `x` `[batch, T, hidden]` starting at position `start`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        start: usize,
        cache: Option<(&mut KvCache<B>, usize)>,
        left_padding: &[usize],
    ) -> Tensor<B, 3> {
        let h = x.clone()
            + self.attention.forward(
                self.attention_norm.forward(x),
                rope,
                start,
                cache,
                left_padding,
            );
        h.clone() + self.feed_forward.forward(self.ffn_norm.forward(h))
    }
}
