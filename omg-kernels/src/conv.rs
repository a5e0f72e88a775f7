//! Stride-1 "same" convolution (odd `k`, zero padding `k/2`, one group) of an NCHW map:
//! the FPN output convolution of OMG-Seg's pixel decoder (3×3, 256 → 256 at stride 4).

use burn::tensor::{Tensor, backend::Backend, module::conv2d, ops::ConvOptions};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, odd_square};

/// `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, k, k]` (odd `k`), `bias` `[Cout]` →
/// `[B, Cout, H, W]`, zero padding `k/2`, stride 1.
///
/// # Panics
/// If the operands do not have these shapes (`k` odd, the same for both filter dims).
pub fn conv2d_same<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    dispatch(ConvSame, (x, weight, bias))
}

/// [`conv2d_same`] with burn's `conv2d` (the reference of the kernel), with the same
/// shape check.
pub fn conv2d_same_fallback<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    fallback(ConvSame, (x, weight, bias))
}

/// [`conv2d_same`] as a kernel entry.
struct ConvSame;

impl<B: Backend> Entry<B> for ConvSame {
    type Operands = (Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>);
    type Output = Tensor<B, 4>;

    fn name(&self) -> &'static str {
        "conv2d_same"
    }

    fn check(&self, at: Site, (x, weight, bias): &Self::Operands) {
        let (xd, wd) = (x.dims(), weight.dims());
        let expected = [
            Dim::Any("Cout"),
            Dim::Is("Cin", xd[1]),
            Dim::Any("k"),
            Dim::Any("k"),
        ];
        expect(at, "weight", &wd, &expected, &[("x", &xd)]);
        odd_square(at, &wd);
        if let Some(bias) = bias {
            expect(
                at,
                "bias",
                &bias.dims(),
                &[Dim::Is("Cout", wd[0])],
                &[("weight", &wd)],
            );
        }
    }

    fn kernel_takes(&self, (x, weight, bias): &Self::Operands) -> bool {
        is_f32(x) && is_f32(weight) && bias.as_ref().is_none_or(is_f32)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (x, weight, bias): (FlexTensor, FlexTensor, Option<FlexTensor>)) -> FlexTensor {
        crate::flex::conv::conv2d_same(x, weight, bias)
    }

    fn fallback(self, (x, weight, bias): Self::Operands) -> Tensor<B, 4> {
        let [_, _, k, _] = weight.dims();
        let options = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
        conv2d(x, weight, bias, options)
    }
}
