//! `y = x · W + b` (burn's `Linear`, weight `[in, out]`), with a memory-bound kernel for
//! the few-row case of token-by-token decoding, where every weight is read once per
//! step and the product is a matrix–vector one.

use burn::nn::Linear;
use burn::tensor::{DType, FloatDType, Tensor, backend::Backend, module::linear as burn_linear};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::cast_float;
use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32};

/// Most input rows (product of the leading dims) the few-row kernel takes; more rows
/// run a register-tiled AVX-512 kernel where the CPU has AVX-512, else burn's matmul.
pub const FEW_ROWS: usize = 8;

/// `layer` applied to `x` `[…, in]` → `[…, out]`, as `Linear::forward`.
///
/// # Panics
/// If the last dim of `x` is not the layer's input width.
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let operands = (x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()));
    dispatch(Affine::<D> { name: "linear" }, operands)
}

/// `x` `[…, in]` · `weight` `[in, out]` + `bias` `[out]` → `[…, out]`.
///
/// # Panics
/// If the operands do not have these shapes.
pub fn linear_with<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    dispatch(
        Affine::<D> {
            name: "linear_with",
        },
        (x, weight, bias),
    )
}

/// [`linear_with`] as burn's `linear` (the reference of the kernel), with the same shape
/// check.
pub fn linear_fallback<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    fallback(Affine::<D> { name: "linear" }, (x, weight, bias))
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
///
/// # Panics
/// If the operands do not have these shapes.
pub fn half_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    if x.dtype() == weight.dtype() {
        return dispatch(
            Affine::<D> {
                name: "half_linear",
            },
            (x, weight, bias),
        );
    }
    dispatch(HalfLinear::<D>, (x, weight, bias))
}

/// [`half_linear`] in burn's ops (the reference of the kernel): a cast ([`cast_float`]),
/// burn's `linear` in the weight's dtype, a cast back; with the same shape check.
pub fn half_linear_fallback<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    fallback(HalfLinear::<D>, (x, weight, bias))
}

/// `x`, `weight`, `bias` of a linear layer.
type LinearOperands<B, const D: usize> = (Tensor<B, D>, Tensor<B, 2>, Option<Tensor<B, 1>>);

/// Panics unless `x` is `[…, in]` and `bias` `[out]` for `weight` `[in, out]`.
fn check_linear<B: Backend, const D: usize>(at: Site, (x, weight, bias): &LinearOperands<B, D>) {
    let wd = weight.dims();
    let expected = [Dim::Lead, Dim::Is("in", wd[0])];
    expect(at, "x", &x.dims(), &expected, &[("weight", &wd)]);
    if let Some(bias) = bias {
        expect(
            at,
            "bias",
            &bias.dims(),
            &[Dim::Is("out", wd[1])],
            &[("weight", &wd)],
        );
    }
}

/// The input rows of `x` `[…, in]` (the product of its leading dims).
fn rows(dims: &[usize]) -> usize {
    dims[..dims.len().saturating_sub(1)].iter().product()
}

/// [`linear_with`] (and [`linear`], [`half_linear`] with a weight of the dtype of `x`) as a
/// kernel entry named `name`: the few-row kernel, or burn's `linear`.
struct Affine<const D: usize> {
    name: &'static str,
}

impl<B: Backend, const D: usize> Entry<B> for Affine<D> {
    type Operands = LinearOperands<B, D>;
    type Output = Tensor<B, D>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self, at: Site, operands: &Self::Operands) {
        check_linear(at, operands);
    }

    fn kernel_takes(&self, (x, weight, bias): &Self::Operands) -> bool {
        (rows(&x.dims()) <= FEW_ROWS || many_rows_kernel())
            && is_f32(x)
            && is_f32(weight)
            && bias.as_ref().is_none_or(is_f32)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (x, weight, bias): (FlexTensor, FlexTensor, Option<FlexTensor>)) -> FlexTensor {
        #[cfg(target_arch = "x86_64")]
        if rows(x.layout().shape()) > FEW_ROWS {
            return crate::flex::sgemm::many_rows(x, weight, bias);
        }
        crate::flex::gemv::few_rows(x, weight, bias)
    }

    fn fallback(self, (x, weight, bias): Self::Operands) -> Tensor<B, D> {
        burn_linear(x, weight, bias)
    }
}

/// Whether the Flex kernel takes more than [`FEW_ROWS`] f32 rows: on x86-64 CPUs with
/// AVX2 and FMA (and `OMG_KERNELS_ISA` allowing them).
pub(crate) fn many_rows_kernel() -> bool {
    #[cfg(all(feature = "flex", target_arch = "x86_64"))]
    {
        crate::flex::sgemm::available()
    }
    #[cfg(not(all(feature = "flex", target_arch = "x86_64")))]
    {
        false
    }
}

/// [`half_linear`] with a weight of another dtype than `x` as a kernel entry.
struct HalfLinear<const D: usize>;

impl<B: Backend, const D: usize> Entry<B> for HalfLinear<D> {
    type Operands = LinearOperands<B, D>;
    type Output = Tensor<B, D>;

    fn name(&self) -> &'static str {
        "half_linear"
    }

    fn check(&self, at: Site, operands: &Self::Operands) {
        check_linear(at, operands);
    }

    fn kernel_takes(&self, (x, weight, bias): &Self::Operands) -> bool {
        is_f32(x)
            && matches!(weight.dtype(), DType::BF16 | DType::F16)
            && bias.as_ref().is_none_or(is_f32)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (x, weight, bias): (FlexTensor, FlexTensor, Option<FlexTensor>)) -> FlexTensor {
        use burn::tensor::TensorPrimitive;
        use burn_flex::Flex;

        if rows(x.layout().shape()) <= FEW_ROWS {
            return crate::flex::gemv::few_rows_half(x, weight, bias);
        }
        // Many rows: the product in f32 of the rounded operands. Flex's own half
        // matmuls widen the whole weight on every call too (bf16), or sum in f16 (f16,
        // several ulps off); this sums in f32 for both.
        let half = weight.dtype();
        let round = |t: FlexTensor| crate::flex::cast::round_to(t, half);
        let float = |t: FlexTensor| TensorPrimitive::Float(t);
        let x = Tensor::<Flex, D>::from_primitive(float(round(x)));
        let bias = bias.map(|b| Tensor::<Flex, 1>::from_primitive(float(round(b))));
        let wide = crate::flex::gemv::widen(weight);
        let wide = Tensor::<Flex, 2>::from_primitive(float(wide));
        round(burn_linear(x, wide, bias).into_primitive().tensor())
    }

    fn fallback(self, (x, weight, bias): Self::Operands) -> Tensor<B, D> {
        let (x_dtype, half) = (
            FloatDType::from(x.dtype()),
            FloatDType::from(weight.dtype()),
        );
        let bias = bias.map(|b| cast_float(b, half));
        cast_float(burn_linear(cast_float(x, half), weight, bias), x_dtype)
    }
}
