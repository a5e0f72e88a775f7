//! The SwiGLU feed-forward network `w2(silu(w1 x) ⊙ w3 x)`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};

use omg_kernels::{linear, silu_mul};

use crate::config::InternLM2Config;

/// `InternLM2MLP`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// Gate projection `hidden → intermediate`.
    pub w1: Linear<B>,
    /// Down projection `intermediate → hidden`.
    pub w2: Linear<B>,
    /// Up projection `hidden → intermediate`.
    pub w3: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    /// A layer with the sizes of `config` (weights lazily initialised, to be loaded).
    pub fn init(config: &InternLM2Config, device: &B::Device) -> Self {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let linear = |a, b| LinearConfig::new(a, b).with_bias(config.bias).init(device);
        Self {
            w1: linear(h, i),
            w2: linear(i, h),
            w3: linear(h, i),
        }
    }

    /// Applies the FFN to `x` `[batch, T, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = linear(&self.w1, x.clone());
        linear(&self.w2, silu_mul(gate, linear(&self.w3, x)))
    }
}
