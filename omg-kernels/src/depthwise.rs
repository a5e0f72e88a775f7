//! Depthwise convolution of a channels-last (NHWC) map, stride 1, zero padding `k / 2`
//! (odd `k`): ConvNeXt's `conv_dw` without leaving the layout the rest of its block uses.

use burn::tensor::{Tensor, backend::Backend, module::conv2d, ops::ConvOptions};

/// `x` `[B, H, W, C]`, `weight` `[C, 1, k, k]` (PyTorch's depthwise layout, odd `k`),
/// `bias` `[C]` → `[B, H, W, C]`:
/// `out[b, h, w, c] = bias[c] + Σ_{i,j} x[b, h+i−k/2, w+j−k/2, c] · weight[c, 0, i, j]`,
/// zeros outside the map.
pub fn depthwise_conv2d_nhwc<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if crate::flex::takes(&x)
        && crate::flex::takes(&weight)
        && bias.as_ref().is_none_or(crate::flex::takes)
    {
        use crate::flex::{from_flex, into_flex};
        let out = crate::flex::depthwise::depthwise_nhwc(
            into_flex(x),
            into_flex(weight),
            bias.map(into_flex),
        );
        return from_flex(out);
    }
    depthwise_conv2d_nhwc_fallback(x, weight, bias)
}

/// [`depthwise_conv2d_nhwc`] through burn's `conv2d` on an NCHW view (the reference).
pub fn depthwise_conv2d_nhwc_fallback<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    let [_, _, _, c] = x.dims();
    let [_, _, kh, kw] = weight.dims();
    let options = ConvOptions::new([1, 1], [kh / 2, kw / 2], [1, 1], c);
    conv2d(x.permute([0, 3, 1, 2]), weight, bias, options).permute([0, 2, 3, 1])
}
