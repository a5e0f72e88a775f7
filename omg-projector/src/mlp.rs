//! The projector MLP shared by `Naive_Proj` and xtuner's `ProjectorModel`:
//! `Linear`, then `GELU, Linear` repeated (`nn.Sequential` indices 0, 2, 4, …).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use omg_kernels::gelu;

/// `Linear(in→out)` followed by `depth − 1` × (`GELU`, `Linear(out→out)`); GELU is
/// the exact (erf) form, as transformers' `ACT2FN["gelu"]`.
#[derive(Module, Debug)]
pub struct ProjectorMlp<B: Backend> {
    /// The linears in order (official `Sequential` index `2·i`).
    pub linears: Vec<Linear<B>>,
}

impl<B: Backend> ProjectorMlp<B> {
    /// An MLP `c_in → c_out` with `depth ≥ 1` linears (lazily initialised).
    pub fn init(c_in: usize, c_out: usize, depth: usize, bias: bool, device: &B::Device) -> Self {
        let linears = (0..depth.max(1))
            .map(|i| {
                LinearConfig::new(if i == 0 { c_in } else { c_out }, c_out)
                    .with_bias(bias)
                    .init(device)
            })
            .collect();
        Self { linears }
    }

    /// Applies the MLP on the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut y = self.linears[0].forward(x);
        for l in &self.linears[1..] {
            y = l.forward(gelu(y));
        }
        y
    }
}

/// The official key suffix (`"{2·i}.weight"`) of a [`ProjectorMlp`] parameter path
/// `linears.{i}.{weight|bias}`.
pub fn official_suffix(path: &str) -> Option<String> {
    let mut parts = path.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("linears"), Some(i), Some(p), None) => {
            let i: usize = i.parse().ok()?;
            Some(format!("{}.{p}", 2 * i))
        }
        _ => None,
    }
}
