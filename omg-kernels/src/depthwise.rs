//! Depthwise convolution of a channels-last (NHWC) map, stride 1, zero padding `k / 2`
//! (odd `k`): ConvNeXt's `conv_dw` without leaving the layout the rest of its block uses.

use burn::tensor::{Tensor, backend::Backend, module::conv2d, ops::ConvOptions};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, odd_square};

/// `x` `[B, H, W, C]`, `weight` `[C, 1, k, k]` (PyTorch's depthwise layout, odd `k`),
/// `bias` `[C]` → `[B, H, W, C]`:
/// `out[b, h, w, c] = bias[c] + Σ_{i,j} x[b, h+i−k/2, w+j−k/2, c] · weight[c, 0, i, j]`,
/// zeros outside the map.
///
/// # Panics
/// If the operands do not have these shapes (`k` odd, the same for both filter dims).
pub fn depthwise_conv2d_nhwc<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    dispatch(Depthwise, (x, weight, bias))
}

/// [`depthwise_conv2d_nhwc`] through burn's `conv2d` on an NCHW view (the reference),
/// with the same shape check.
pub fn depthwise_conv2d_nhwc_fallback<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    fallback(Depthwise, (x, weight, bias))
}

/// [`depthwise_conv2d_nhwc`] as a kernel entry.
struct Depthwise;

impl<B: Backend> Entry<B> for Depthwise {
    type Operands = (Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>);
    type Output = Tensor<B, 4>;

    fn name(&self) -> &'static str {
        "depthwise_conv2d_nhwc"
    }

    fn check(&self, at: Site, (x, weight, bias): &Self::Operands) {
        let (xd, wd) = (x.dims(), weight.dims());
        let c = xd[3];
        let expected = [Dim::Is("C", c), Dim::Eq(1), Dim::Any("k"), Dim::Any("k")];
        expect(at, "weight", &wd, &expected, &[("x", &xd)]);
        odd_square(at, &wd);
        if let Some(bias) = bias {
            expect(at, "bias", &bias.dims(), &[Dim::Is("C", c)], &[("x", &xd)]);
        }
    }

    fn kernel_takes(&self, (x, weight, bias): &Self::Operands) -> bool {
        is_f32(x) && is_f32(weight) && bias.as_ref().is_none_or(is_f32)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (x, weight, bias): (FlexTensor, FlexTensor, Option<FlexTensor>)) -> FlexTensor {
        crate::flex::depthwise::depthwise_nhwc(x, weight, bias)
    }

    fn fallback(self, (x, weight, bias): Self::Operands) -> Tensor<B, 4> {
        let [_, _, _, c] = x.dims();
        let [_, _, kh, kw] = weight.dims();
        let options = ConvOptions::new([1, 1], [kh / 2, kw / 2], [1, 1], c);
        conv2d(x.permute([0, 3, 1, 2]), weight, bias, options).permute([0, 2, 3, 1])
    }
}
