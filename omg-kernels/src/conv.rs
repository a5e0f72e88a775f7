//! Stride-1 "same" convolution (odd `k`, zero padding `k/2`, one group) of an NCHW map:
//! the FPN output convolution of OMG-Seg's pixel decoder (3×3, 256 → 256 at stride 4).

use burn::tensor::{Tensor, backend::Backend, module::conv2d, ops::ConvOptions};

/// `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, k, k]` (odd `k`), `bias` `[Cout]` →
/// `[B, Cout, H, W]`, zero padding `k/2`, stride 1.
pub fn conv2d_same<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    {
        let [_, cin, _, _] = x.dims();
        let [_, wcin, kh, kw] = weight.dims();
        if crate::flex::takes(&x)
            && crate::flex::takes(&weight)
            && bias.as_ref().is_none_or(crate::flex::takes)
            && kh == kw
            && kh % 2 == 1
            && wcin == cin
        {
            use crate::flex::{from_flex, into_flex};
            let out = crate::flex::conv::conv2d_same(
                into_flex(x),
                into_flex(weight),
                bias.map(into_flex),
            );
            return from_flex(out);
        }
    }
    conv2d_same_fallback(x, weight, bias)
}

/// [`conv2d_same`] with burn's `conv2d` (the reference of the kernel).
pub fn conv2d_same_fallback<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    let [_, _, k, _] = weight.dims();
    let options = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
    conv2d(x, weight, bias, options)
}
