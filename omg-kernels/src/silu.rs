//! SwiGLU's gate, `silu(gate) ⊙ up` (`silu(x) = x · sigmoid(x)`).

use burn::tensor::{Tensor, activation::silu, backend::Backend};

/// `silu(gate) ⊙ up` for same-shaped `gate` and `up`.
pub fn silu_mul<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    if crate::flex::takes(&gate) && crate::flex::takes(&up) && gate.dims() == up.dims() {
        use crate::flex::{from_flex, into_flex};
        return from_flex(crate::flex::silu::silu_mul(into_flex(gate), into_flex(up)));
    }
    silu_mul_fallback(gate, up)
}

/// [`silu_mul`] in burn's ops (the reference of the kernel).
pub fn silu_mul_fallback<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    silu(gate) * up
}
