//! `y = x · W + b` (burn's `Linear`, weight `[in, out]`), with a memory-bound kernel for
//! the few-row case of token-by-token decoding, where every weight is read once per
//! step and the product is a matrix–vector one.

use burn::nn::Linear;
use burn::tensor::{FloatDType, Tensor, backend::Backend, module::linear as burn_linear};

use crate::cast_float;

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

/// `x` `[…, in]` · `weight` `[in, out]` + `bias` `[out]` with a half-precision (bf16 or
/// f16) `weight`, as a PyTorch `Linear` in that dtype: `x` and `bias` are rounded to
/// it, the products summed (in f32 by every backend's half matmul), the result rounded
/// to it and returned in the dtype of `x`. With a weight of the dtype of `x` this is
/// [`linear_with`].
///
/// On Flex, a few f32 rows (decoding) run a kernel that reads the half weight once and
/// widens it in registers: two bytes of memory traffic per weight instead of f32's
/// four, where Flex's own bf16 matmul converts the whole weight to f32 on every call.
/// More rows (prefill) multiply the rounded operands in f32.
pub fn half_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    if x.dtype() == weight.dtype() {
        return linear_with(x, weight, bias);
    }
    #[cfg(feature = "flex")]
    if crate::flex::takes(&x)
        && matches!(
            weight.dtype(),
            burn::tensor::DType::BF16 | burn::tensor::DType::F16
        )
        && bias.as_ref().is_none_or(crate::flex::takes)
    {
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        if rows <= FEW_ROWS {
            use crate::flex::{from_flex, into_flex, into_flex_float};
            let out = crate::flex::gemv::few_rows_half(
                into_flex(x),
                into_flex_float(weight),
                bias.map(into_flex),
            );
            return from_flex(out);
        }
        // Many rows: the product in f32 of the rounded operands. Flex's own half
        // matmuls widen the whole weight on every call too (bf16), or sum in f16 (f16,
        // several ulps off); this sums in f32 for both.
        let half = FloatDType::from(weight.dtype());
        let rounded = |t: Tensor<B, D>| crate::round_to(t, half);
        let bias = bias.map(|b| crate::round_to(b, half));
        let wide = crate::flex::from_flex(crate::flex::gemv::widen(crate::flex::into_flex_float(
            weight,
        )));
        let y = linear_with(rounded(x), wide, bias);
        return rounded(y);
    }
    half_linear_fallback(x, weight, bias)
}

/// [`half_linear`] in burn's ops (the reference of the kernel): a cast ([`cast_float`]),
/// burn's `linear` in the weight's dtype, a cast back.
pub fn half_linear_fallback<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let (x_dtype, half) = (
        FloatDType::from(x.dtype()),
        FloatDType::from(weight.dtype()),
    );
    let bias = bias.map(|b| cast_float(b, half));
    cast_float(burn_linear(cast_float(x, half), weight, bias), x_dtype)
}
