//! `y = x · Wᵀ + b` from a weight in the quantized format of [`crate::quant_format`],
//! with the input rows quantized too (one scale per group of 64 input channels, as the
//! weight): integer products without a float copy of `W` on Flex, the same arithmetic
//! in plain burn ops on the other backends.

use burn::tensor::{DType, Int, Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32};
use crate::quant_format::{QUANT_GROUP, QuantBits, QuantLayout, activation_level};

/// `x` `[…, in]` · `Wᵀ` + `bias` → `[…, out]`, with `W` given by quantized `values` and
/// `scales` of `layout` (as made by [`crate::QuantizedMatrix::into_tensors`]).
///
/// Each row of `x` is quantized in groups of [`QUANT_GROUP`] input channels, as the
/// weight: `s = absmax / L` and `q = round_half_even(x · (1/s))` in `[−L, L]` (0 where
/// `s = 0`), with `L` = [`activation_level`]`(layout.bits)`: int16 values (L = 32767)
/// under an int8 weight, which keeps the error of int8 weights alone, and int8 values
/// (L = 127) under an int4 weight (the arithmetic of llama.cpp's `Q4_0 × Q8_0`). A
/// group's product `Σ q_x · q_w` is then exact, and the result is
/// `Σ_g s_x · s_w · Σ q_x · q_w` in f32. A row is quantized on its own, whatever the
/// other rows hold.
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

/// [`quant_linear`] in burn's ops: the rows of `x` quantized and [`dequantize`]d, the
/// weight [`dequantize`]d, then burn's `linear` (the reference of the kernel, and the path
/// of the other backends), with the same shape check.
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
        // the scales as f32, or f16 (int4 weights on Flex)
        let scales_ok = is_f32(scales) || scales.dtype() == DType::F16;
        is_f32(x) && scales_ok && bias.as_ref().is_none_or(is_f32) && values.dtype() == packed
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
        let x = quantized_rows(x, activation_level(self.layout.bits));
        burn::tensor::module::linear(x, weight.transpose(), bias)
    }
}

/// `x` `[…, in]` with each row's groups of [`QUANT_GROUP`] values replaced by
/// `s · q` as [`quant_linear`] quantizes them with `level`.
fn quantized_rows<B: Backend, const D: usize>(x: Tensor<B, D>, level: f32) -> Tensor<B, D> {
    let dims = x.dims();
    let k = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    if rows == 0 || k == 0 {
        return x;
    }
    let groups = k.div_ceil(QUANT_GROUP);
    let padded = groups * QUANT_GROUP;
    let x2 = x.reshape([rows, k]);
    let x2 = if padded > k {
        let zeros = Tensor::zeros([rows, padded - k], &x2.device());
        Tensor::cat(vec![x2, zeros], 1)
    } else {
        x2
    };
    let x3 = x2.reshape([rows, groups, QUANT_GROUP]);
    let scale = x3.clone().abs().max_dim(2) / level;
    let inverse = scale
        .clone()
        .recip()
        .mask_fill(scale.clone().equal_elem(0.0), 0.0);
    let q = (x3 * inverse).round().clamp(-level, level);
    (q * scale)
        .reshape([rows, padded])
        .slice([0..rows, 0..k])
        .reshape(dims)
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
    // f16 scales (int4 on Flex) as the values' float type
    let scales = if scales.dtype() == v.dtype() {
        scales
    } else {
        scales.cast(v.dtype())
    };
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
