//! Exact GELU, `0.5 · x · (1 + erf(x / √2))` (PyTorch `nn.GELU()` without approximation).

use burn::tensor::{Tensor, activation, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Entry, Site, dispatch, fallback, is_f32};

/// Exact GELU of every element of `x`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    dispatch(Gelu::<D>, x)
}

/// [`gelu`] in burn's own op (the reference of the kernels).
pub fn gelu_fallback<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    fallback(Gelu::<D>, x)
}

/// [`gelu`] as a kernel entry: any shape.
struct Gelu<const D: usize>;

impl<B: Backend, const D: usize> Entry<B> for Gelu<D> {
    type Operands = Tensor<B, D>;
    type Output = Tensor<B, D>;

    fn name(&self) -> &'static str {
        "gelu"
    }

    fn check(&self, _: Site, _: &Tensor<B, D>) {}

    fn kernel_takes(&self, x: &Tensor<B, D>) -> bool {
        is_f32(x)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, x: FlexTensor) -> FlexTensor {
        crate::flex::gelu::gelu(x)
    }

    fn fallback(self, x: Tensor<B, D>) -> Tensor<B, D> {
        activation::gelu(x)
    }
}
