//! `y = x · W + b` (burn's `Linear`, weight `[in, out]`), with a memory-bound kernel for
//! the few-row case of token-by-token decoding, where every weight is read once per
//! step and the product is a matrix–vector one.

use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend, module::linear as burn_linear};

/// Most input rows (product of the leading dims) the few-row kernel takes; more rows
/// run burn's matmul (compute-bound, where it is the right tool).
pub const FEW_ROWS: usize = 8;

/// `layer` applied to `x` `[…, in]` → `[…, out]`, as `Linear::forward`.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    linear_with(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// `x` `[…, in]` · `weight` `[in, out]` + `bias` `[out]` → `[…, out]`.
pub fn linear_with<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    {
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        if rows <= FEW_ROWS
            && crate::flex::takes(&x)
            && crate::flex::takes(&weight)
            && bias.as_ref().is_none_or(crate::flex::takes)
        {
            use crate::flex::{from_flex, into_flex};
            let out =
                crate::flex::gemv::few_rows(into_flex(x), into_flex(weight), bias.map(into_flex));
            return from_flex(out);
        }
    }
    linear_fallback(x, weight, bias)
}

/// [`linear_with`] as burn's `linear` (the reference of the kernel).
pub fn linear_fallback<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    burn_linear(x, weight, bias)
}
