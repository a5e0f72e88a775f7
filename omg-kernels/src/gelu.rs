//! Exact GELU, `0.5 · x · (1 + erf(x / √2))` (PyTorch `nn.GELU()` without approximation).

use burn::tensor::{Tensor, activation, backend::Backend};

/// Exact GELU of every element of `x`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    if crate::flex::takes(&x) {
        let x = crate::flex::into_flex(x);
        return crate::flex::from_flex(crate::flex::gelu::gelu(x));
    }
    gelu_fallback(x)
}

/// [`gelu`] in burn's own op (the reference of the kernels).
pub fn gelu_fallback<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    activation::gelu(x)
}
