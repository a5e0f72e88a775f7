//! SwiGLU's gate, `silu(gate) ⊙ up` (`silu(x) = x · sigmoid(x)`).

use burn::tensor::{Tensor, activation::silu, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32};

/// `silu(gate) ⊙ up` for same-shaped `gate` and `up`.
///
/// # Panics
/// If `up` does not have the shape of `gate` (no broadcasting).
pub fn silu_mul<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    dispatch(SiluMul::<D>, (gate, up))
}

/// [`silu_mul`] in burn's ops (the reference of the kernel), with the same shape check.
pub fn silu_mul_fallback<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    fallback(SiluMul::<D>, (gate, up))
}

/// [`silu_mul`] as a kernel entry.
struct SiluMul<const D: usize>;

impl<B: Backend, const D: usize> Entry<B> for SiluMul<D> {
    type Operands = (Tensor<B, D>, Tensor<B, D>);
    type Output = Tensor<B, D>;

    fn name(&self) -> &'static str {
        "silu_mul"
    }

    fn check(&self, at: Site, (gate, up): &Self::Operands) {
        let g = gate.dims();
        let expected = g.map(Dim::Eq);
        expect(at, "up", &up.dims(), &expected, &[("gate", &g)]);
    }

    fn kernel_takes(&self, (gate, up): &Self::Operands) -> bool {
        is_f32(gate) && is_f32(up)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (gate, up): (FlexTensor, FlexTensor)) -> FlexTensor {
        crate::flex::silu::silu_mul(gate, up)
    }

    fn fallback(self, (gate, up): Self::Operands) -> Tensor<B, D> {
        silu(gate) * up
    }
}
