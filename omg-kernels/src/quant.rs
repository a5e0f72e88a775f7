//! `y = x · Wᵀ + b` from a weight in the quantized format of [`crate::quant_format`],
//! without a float copy of `W` on Flex, and in plain burn ops on the other backends.

use burn::tensor::{DType, Int, Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32};
use crate::quant_format::{QUANT_GROUP, QuantBits, QuantLayout};

/// `x` `[…, in]` · `Wᵀ` + `bias` → `[…, out]`, with `W` given by quantized `values` and
/// `scales` of `layout` (as made by [`crate::QuantizedMatrix::into_tensors`]).
///
/// # Panics
/// If `x`'s last dim is not `layout.in_features` or the tensors do not have the
/// layout's shapes (`values` `[out, row_bytes]`, `scales` `[out, groups]`, `bias`
/// `[out]`).
pub fn quant_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    values: Tensor<B, 2, Int>,
    scales: Tensor<B, 2>,
    layout: QuantLayout,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    dispatch(QuantLinear::<D> { layout }, (x, values, scales, bias))
}

/// [`quant_linear`] in burn's ops: [`dequantize`], then burn's `linear` (the reference
/// of the kernel, and the path of the other backends), with the same shape check.
pub fn quant_linear_fallback<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    values: Tensor<B, 2, Int>,
    scales: Tensor<B, 2>,
    layout: QuantLayout,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    fallback(QuantLinear::<D> { layout }, (x, values, scales, bias))
}

/// [`quant_linear`] as a kernel entry.
struct QuantLinear<const D: usize> {
    layout: QuantLayout,
}

impl<B: Backend, const D: usize> Entry<B> for QuantLinear<D> {
    /// `x`, `values`, `scales`, `bias`.
    type Operands = (
        Tensor<B, D>,
        Tensor<B, 2, Int>,
        Tensor<B, 2>,
        Option<Tensor<B, 1>>,
    );
    type Output = Tensor<B, D>;

    fn name(&self) -> &'static str {
        "quant_linear"
    }

    fn check(&self, at: Site, (x, values, scales, bias): &Self::Operands) {
        let layout = self.layout;
        let expected = [Dim::Lead, Dim::Is("in", layout.in_features)];
        expect(at, "x", &x.dims(), &expected, &[("layout", &layout)]);
        check_matrix(at, values, scales, layout);
        if let Some(bias) = bias {
            let expected = [Dim::Is("out", layout.out_features)];
            expect(at, "bias", &bias.dims(), &expected, &[("layout", &layout)]);
        }
    }

    fn kernel_takes(&self, (x, values, scales, bias): &Self::Operands) -> bool {
        // the packed values as bytes: i8 for int8, u8 for int4
        let packed = match self.layout.bits {
            QuantBits::Int8 => DType::I8,
            QuantBits::Int4 => DType::U8,
        };
        is_f32(x) && is_f32(scales) && bias.as_ref().is_none_or(is_f32) && values.dtype() == packed
    }

    #[cfg(feature = "flex")]
    fn kernel(
        self,
        (x, values, scales, bias): (FlexTensor, FlexTensor, FlexTensor, Option<FlexTensor>),
    ) -> FlexTensor {
        crate::flex::quant::quant_linear(x, values, scales, self.layout, bias)
    }

    fn fallback(self, (x, values, scales, bias): Self::Operands) -> Tensor<B, D> {
        let weight = dequantize_checked(values, scales, self.layout);
        burn::tensor::module::linear(x, weight.transpose(), bias)
    }
}

/// Panics unless `values` is `[out, row_bytes]` and `scales` `[out, groups]` of `layout`.
fn check_matrix<B: Backend>(
    at: Site,
    values: &Tensor<B, 2, Int>,
    scales: &Tensor<B, 2>,
    layout: QuantLayout,
) {
    let n = layout.out_features;
    let expected = [Dim::Is("out", n), Dim::Is("row_bytes", layout.row_bytes())];
    expect(
        at,
        "values",
        &values.dims(),
        &expected,
        &[("layout", &layout)],
    );
    let expected = [Dim::Is("out", n), Dim::Is("groups", layout.groups())];
    expect(
        at,
        "scales",
        &scales.dims(),
        &expected,
        &[("layout", &layout)],
    );
}

/// The `[out, in]` float matrix of quantized `values` and `scales`, in burn's ops.
///
/// # Panics
/// If `values` is not `[out, row_bytes]` or `scales` not `[out, groups]` of `layout`.
pub fn dequantize<B: Backend>(
    values: Tensor<B, 2, Int>,
    scales: Tensor<B, 2>,
    layout: QuantLayout,
) -> Tensor<B, 2> {
    check_matrix(Site::entry("dequantize"), &values, &scales, layout);
    dequantize_checked(values, scales, layout)
}

/// [`dequantize`] of checked operands.
fn dequantize_checked<B: Backend>(
    values: Tensor<B, 2, Int>,
    scales: Tensor<B, 2>,
    layout: QuantLayout,
) -> Tensor<B, 2> {
    let QuantLayout {
        bits,
        out_features: n,
        in_features: k,
    } = layout;
    let groups = layout.groups();
    // values as exact small floats (0..255 or −127..127)
    let v = values.float();
    let q = match bits {
        QuantBits::Int8 => v,
        QuantBits::Int4 => {
            // a byte b = lo + 16·hi
            let hi_of = |b: Tensor<B, 2>| (b / 16.0).floor();
            let unpack = |b: Tensor<B, 2>, len: usize| {
                let hi = hi_of(b.clone());
                let lo = b - hi.clone() * 16.0;
                let [rows, h] = lo.dims();
                Tensor::cat(vec![lo, hi], 1).slice([0..rows, 0..len.min(2 * h)])
            };
            let full = k / QUANT_GROUP;
            let mut parts = Vec::new();
            if full > 0 {
                let bytes = v.clone().slice([0..n, 0..full * QUANT_GROUP / 2]);
                let b3 = bytes.reshape([n, full, QUANT_GROUP / 2]);
                let hi = (b3.clone() / 16.0).floor();
                let lo = b3 - hi.clone() * 16.0;
                parts.push(Tensor::cat(vec![lo, hi], 2).reshape([n, full * QUANT_GROUP]));
            }
            let rem = k % QUANT_GROUP;
            if rem > 0 {
                let start = full * QUANT_GROUP / 2;
                let bytes = v.slice([0..n, start..start + rem.div_ceil(2)]);
                parts.push(unpack(bytes, rem));
            }
            Tensor::cat(parts, 1) - 8.0
        }
    };
    let per_column = scales
        .unsqueeze_dim::<3>(2)
        .repeat_dim(2, QUANT_GROUP)
        .reshape([n, groups * QUANT_GROUP])
        .slice([0..n, 0..k]);
    q * per_column
}
