//! `y = x · Wᵀ + b` from a weight in the quantized format of [`crate::quant_format`],
//! without a float copy of `W` on Flex, and in plain burn ops on the other backends.

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::quant_format::{QUANT_GROUP, QuantBits, QuantLayout};

/// `x` `[…, in]` · `Wᵀ` + `bias` → `[…, out]`, with `W` given by quantized `values` and
/// `scales` of `layout` (as made by [`crate::QuantizedMatrix::into_tensors`]).
///
/// # Panics
/// If `x`'s last dim is not `layout.in_features` or the tensors do not have the
/// layout's shapes.
pub fn quant_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    values: Tensor<B, 2, Int>,
    scales: Tensor<B, 2>,
    layout: QuantLayout,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    check_shapes(&x, &values, &scales, layout);
    #[cfg(feature = "flex")]
    if crate::flex::takes(&x)
        && crate::flex::takes(&scales)
        && bias.as_ref().is_none_or(crate::flex::takes)
        && values.dtype()
            == match layout.bits {
                QuantBits::Int8 => burn::tensor::DType::I8,
                QuantBits::Int4 => burn::tensor::DType::U8,
            }
    {
        use crate::flex::{from_flex, into_flex, into_flex_int};
        return from_flex(crate::flex::quant::quant_linear(
            into_flex(x),
            into_flex_int(values),
            into_flex(scales),
            layout,
            bias.map(into_flex),
        ));
    }
    quant_linear_fallback(x, values, scales, layout, bias)
}

fn check_shapes<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    values: &Tensor<B, 2, Int>,
    scales: &Tensor<B, 2>,
    layout: QuantLayout,
) {
    assert_eq!(
        x.dims()[D - 1],
        layout.in_features,
        "quant_linear: input width vs in_features"
    );
    assert_eq!(
        values.dims(),
        [layout.out_features, layout.row_bytes()],
        "quant_linear: values shape"
    );
    assert_eq!(
        scales.dims(),
        [layout.out_features, layout.groups()],
        "quant_linear: scales shape"
    );
}

/// [`quant_linear`] in burn's ops: [`dequantize`], then burn's `linear` (the reference
/// of the kernel, and the path of the other backends).
pub fn quant_linear_fallback<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    values: Tensor<B, 2, Int>,
    scales: Tensor<B, 2>,
    layout: QuantLayout,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    check_shapes(&x, &values, &scales, layout);
    let weight = dequantize(values, scales, layout);
    burn::tensor::module::linear(x, weight.transpose(), bias)
}

/// The `[out, in]` float matrix of quantized `values` and `scales`, in burn's ops.
pub fn dequantize<B: Backend>(
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
