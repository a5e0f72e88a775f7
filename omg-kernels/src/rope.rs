//! Rotary position embedding in the rotate-half (NeoX) form:
//! `x · cos + cat(−x₂, x₁) · sin`, `x₁`, `x₂` the halves of the head dim.

use burn::tensor::{Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, require};

/// `x` `[B, H, T, D]` (any strides, e.g. a head view of a fused projection, `D` even),
/// `cos`, `sin` `[1, 1, T, D]` → `[B, H, T, D]`.
///
/// # Panics
/// If `D` is odd or `cos` or `sin` is not `[1, 1, T, D]`.
pub fn rotate_half_rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    dispatch(Rope, (x, cos, sin))
}

/// [`rotate_half_rope`] in burn's ops (the reference of the kernel), with the same shape
/// check.
pub fn rotate_half_rope_fallback<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    fallback(Rope, (x, cos, sin))
}

/// [`rotate_half_rope`] as a kernel entry.
struct Rope;

impl<B: Backend> Entry<B> for Rope {
    type Operands = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);
    type Output = Tensor<B, 4>;

    fn name(&self) -> &'static str {
        "rotate_half_rope"
    }

    fn check(&self, at: Site, (x, cos, sin): &Self::Operands) {
        let dims = x.dims();
        let [_, _, t, d] = dims;
        require(at, d % 2 == 0, || {
            format!("x is {dims:?}, expected [B, H, T, D] with D even")
        });
        let expected = [Dim::Eq(1), Dim::Eq(1), Dim::Is("T", t), Dim::Is("D", d)];
        expect(at, "cos", &cos.dims(), &expected, &[("x", &dims)]);
        expect(at, "sin", &sin.dims(), &expected, &[("x", &dims)]);
    }

    fn kernel_takes(&self, (x, cos, sin): &Self::Operands) -> bool {
        is_f32(x) && is_f32(cos) && is_f32(sin)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (x, cos, sin): (FlexTensor, FlexTensor, FlexTensor)) -> FlexTensor {
        crate::flex::rope::rotate_half(x, cos, sin)
    }

    fn fallback(self, (x, cos, sin): Self::Operands) -> Tensor<B, 4> {
        let [b, h, t, d] = x.dims();
        let half = d / 2;
        let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
        let x2 = x.clone().slice([0..b, 0..h, 0..t, half..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos + rotated * sin
    }
}
