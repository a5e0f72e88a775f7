//! mmcv `FFN` as the transformer layers use it: `x + fc2(relu(fc1(x)))`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, activation::relu, backend::Backend};
use omg_kernels::linear;

/// Two linears with a ReLU between and the identity added back.
#[derive(Module, Debug)]
pub struct Ffn<B: Backend> {
    /// `ffn.layers.0.0`: `C → hidden`.
    pub fc1: Linear<B>,
    /// `ffn.layers.1`: `hidden → C`.
    pub fc2: Linear<B>,
}

impl<B: Backend> Ffn<B> {
    /// An FFN of width `channels` with `hidden` inner units (lazily initialised).
    pub fn init(channels: usize, hidden: usize, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(channels, hidden).init(device),
            fc2: LinearConfig::new(hidden, channels).init(device),
        }
    }

    /// `x + fc2(relu(fc1(x)))`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x.clone() + linear(&self.fc2, relu(linear(&self.fc1, x)))
    }
}

/// The official key suffix of a parameter path inside an [`Ffn`] (`fc1`, `weight` →
/// `layers.0.0.weight`; `fc2` → `layers.1.…`).
pub fn official_suffix(fc: &str, param: &str) -> String {
    match fc {
        "fc1" => format!("layers.0.0.{param}"),
        _ => format!("layers.1.{param}"),
    }
}
