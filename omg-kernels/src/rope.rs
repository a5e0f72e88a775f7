//! Rotary position embedding in the rotate-half (NeoX) form:
//! `x · cos + cat(−x₂, x₁) · sin`, `x₁`, `x₂` the halves of the head dim.

use burn::tensor::{Tensor, backend::Backend};

/// `x` `[B, H, T, D]` (any strides, e.g. a head view of a fused projection), `cos`,
/// `sin` `[1, 1, T, D]` → `[B, H, T, D]`.
pub fn rotate_half_rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    {
        let [_, _, t, d] = x.dims();
        if crate::flex::takes(&x)
            && crate::flex::takes(&cos)
            && crate::flex::takes(&sin)
            && d % 2 == 0
            && cos.dims() == [1, 1, t, d]
            && sin.dims() == [1, 1, t, d]
        {
            use crate::flex::{from_flex, into_flex};
            let out = crate::flex::rope::rotate_half(into_flex(x), into_flex(cos), into_flex(sin));
            return from_flex(out);
        }
    }
    rotate_half_rope_fallback(x, cos, sin)
}

/// [`rotate_half_rope`] in burn's ops (the reference of the kernel).
pub fn rotate_half_rope_fallback<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [b, h, t, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, half..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos + rotated * sin
}
