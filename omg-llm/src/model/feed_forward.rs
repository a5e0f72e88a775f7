//! The SwiGLU feed-forward network `w2(silu(w1 x) ⊙ w3 x)`.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use omg_kernels::silu_mul;

use super::linear::LlmLinear;

use crate::LlmWeights;
use crate::config::InternLM2Config;

/// `InternLM2MLP`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// Gate projection `hidden → intermediate`.
    pub w1: LlmLinear<B>,
    /// Down projection `intermediate → hidden`.
    pub w2: LlmLinear<B>,
    /// Up projection `hidden → intermediate`.
    pub w3: LlmLinear<B>,
}

impl<B: Backend> FeedForward<B> {
    /// A layer with the sizes of `config` (weights lazily initialised, to be loaded).
    pub fn init(config: &InternLM2Config, weights: LlmWeights, device: &B::Device) -> Self {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let linear = |a, b| LlmLinear::init(a, b, config.bias, weights.layer_storage(), device);
        Self {
            w1: linear(h, i),
            w2: linear(i, h),
            w3: linear(h, i),
        }
    }

    /// Applies the FFN to `x` `[batch, T, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.w1.forward(x.clone());
        self.w2.forward(silu_mul(gate, self.w3.forward(x)))
    }
}
