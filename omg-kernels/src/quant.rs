//! Weight-only quantized linear layers: int8 or int4 values with one f32 scale per
//! group of [`QUANT_GROUP`] consecutive input channels of an output row (symmetric,
//! absmax), and `y = x · Wᵀ + b` computed from them without a float copy of `W`.
//!
//! Storage of a `[out, in]` matrix (the official `torch.nn.Linear` layout, so a
//! checkpoint row is quantized as it is read, with no transpose):
//!
//! * **int8**: one byte per weight (`i8`, `q ∈ [−127, 127]`, `w ≈ q · scale`);
//! * **int4**: two weights per byte (`q ∈ [−7, 7]`, stored as `q + 8`). In a group of
//!   `L` weights with `h = ⌈L/2⌉`, byte `j` holds weight `j` in its low nibble and weight
//!   `j + h` in its high nibble, so both halves unpack into contiguous runs;
//! * **scales**: `[out, ⌈in / QUANT_GROUP⌉]` f32, `scale = absmax / 127` (int8) or
//!   `absmax / 7` (int4); the last group of a row may be shorter.
//!
//! As burn tensors the values are a `[out, row_bytes]` int tensor (`I8` for int8, `U8`
//! for int4 on Flex; the backend's default int type elsewhere, one byte value per
//! element) and the scales a `[out, groups]` float tensor.

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

/// Input channels that share one scale.
pub const QUANT_GROUP: usize = 64;

/// Bits per quantized weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantBits {
    /// 8-bit values, one byte each.
    Int8,
    /// 4-bit values, two per byte.
    Int4,
}

impl QuantBits {
    /// The largest magnitude of a quantized value (127 or 7).
    pub fn max_level(self) -> f32 {
        match self {
            Self::Int8 => 127.0,
            Self::Int4 => 7.0,
        }
    }
}

/// Shape and format of a quantized `[out, in]` matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantLayout {
    /// Bits per weight.
    pub bits: QuantBits,
    /// Rows (output features).
    pub out_features: usize,
    /// Columns (input features).
    pub in_features: usize,
}

impl QuantLayout {
    /// Scale groups per row.
    pub fn groups(&self) -> usize {
        self.in_features.div_ceil(QUANT_GROUP)
    }

    /// Bytes of one packed row.
    pub fn row_bytes(&self) -> usize {
        match self.bits {
            QuantBits::Int8 => self.in_features,
            QuantBits::Int4 => {
                (self.in_features / QUANT_GROUP) * (QUANT_GROUP / 2)
                    + (self.in_features % QUANT_GROUP).div_ceil(2)
            }
        }
    }

    /// Bytes of the values and the scales together.
    pub fn storage_bytes(&self) -> usize {
        self.out_features * (self.row_bytes() + 4 * self.groups())
    }
}

/// A quantized matrix in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    /// Its shape and format.
    pub layout: QuantLayout,
    /// `[out, row_bytes]` packed values (int8 as the bytes of `i8`).
    pub values: Vec<u8>,
    /// `[out, groups]` scales.
    pub scales: Vec<f32>,
}

impl QuantizedMatrix {
    /// Quantizes a row-major `[out, in]` f32 matrix.
    ///
    /// # Panics
    /// If `weight.len() != out · in`.
    pub fn quantize(
        weight: &[f32],
        bits: QuantBits,
        out_features: usize,
        in_features: usize,
    ) -> Self {
        assert_eq!(
            weight.len(),
            out_features * in_features,
            "a [{out_features}, {in_features}] weight needs {} values",
            out_features * in_features
        );
        let layout = QuantLayout {
            bits,
            out_features,
            in_features,
        };
        let (row_bytes, groups) = (layout.row_bytes(), layout.groups());
        let mut values = vec![0u8; out_features * row_bytes];
        let mut scales = vec![0.0f32; out_features * groups];
        let quantize_row = |(n, (vals, scs)): (usize, (&mut [u8], &mut [f32]))| {
            quantize_row(
                &weight[n * in_features..(n + 1) * in_features],
                bits,
                vals,
                scs,
            )
        };
        if row_bytes > 0 && groups > 0 {
            #[cfg(feature = "flex")]
            {
                use rayon::prelude::*;
                values
                    .par_chunks_mut(row_bytes)
                    .zip(scales.par_chunks_mut(groups))
                    .enumerate()
                    .for_each(quantize_row);
            }
            #[cfg(not(feature = "flex"))]
            values
                .chunks_mut(row_bytes)
                .zip(scales.chunks_mut(groups))
                .enumerate()
                .for_each(quantize_row);
        }
        Self {
            layout,
            values,
            scales,
        }
    }

    /// The row-major `[out, in]` f32 matrix the values and scales stand for.
    pub fn dequantize(&self) -> Vec<f32> {
        let l = self.layout;
        let (row_bytes, groups) = (l.row_bytes(), l.groups());
        let mut out = vec![0.0f32; l.out_features * l.in_features];
        if l.in_features == 0 {
            return out;
        }
        for (n, row) in out.chunks_mut(l.in_features).enumerate() {
            let vals = &self.values[n * row_bytes..(n + 1) * row_bytes];
            for (g, &scale) in self.scales[n * groups..(n + 1) * groups].iter().enumerate() {
                let k0 = g * QUANT_GROUP;
                let len = QUANT_GROUP.min(l.in_features - k0);
                dequantize_group(l.bits, vals, g, len, scale, &mut row[k0..k0 + len]);
            }
        }
        out
    }

    /// The values and scales as burn tensors on `device` (see the module docs).
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
        let l = self.layout;
        let shape = [l.out_features, l.row_bytes()];
        let data = match l.bits {
            QuantBits::Int8 => TensorData::new(
                self.values.iter().map(|&b| b as i8).collect::<Vec<_>>(),
                shape,
            ),
            QuantBits::Int4 => TensorData::new(self.values.clone(), shape),
        };
        let values = if crate::has_fast_kernels::<B>() {
            let dtype = match l.bits {
                QuantBits::Int8 => DType::I8,
                QuantBits::Int4 => DType::U8,
            };
            Tensor::from_data(data, (device, dtype))
        } else {
            Tensor::from_data(data, device)
        };
        let scales = Tensor::from_data(
            TensorData::new(self.scales.clone(), [l.out_features, l.groups()]),
            device,
        );
        (values, scales)
    }
}

/// Quantizes one row into its packed bytes and scales.
fn quantize_row(row: &[f32], bits: QuantBits, vals: &mut [u8], scales: &mut [f32]) {
    let level = bits.max_level();
    for (g, chunk) in row.chunks(QUANT_GROUP).enumerate() {
        let absmax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = absmax / level;
        scales[g] = scale;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let q = |v: f32| (v * inv).round().clamp(-level, level) as i32;
        match bits {
            QuantBits::Int8 => {
                for (b, &v) in vals[g * QUANT_GROUP..].iter_mut().zip(chunk) {
                    *b = q(v) as i8 as u8;
                }
            }
            QuantBits::Int4 => {
                let h = chunk.len().div_ceil(2);
                let bytes = &mut vals[g * QUANT_GROUP / 2..g * QUANT_GROUP / 2 + h];
                for (j, b) in bytes.iter_mut().enumerate() {
                    let lo = (q(chunk[j]) + 8) as u8;
                    let hi = chunk.get(j + h).map_or(8, |&v| (q(v) + 8) as u8);
                    *b = lo | (hi << 4);
                }
            }
        }
    }
}

/// Writes `scale · q` of group `g` (of `len` weights) of a packed row into `dst`.
#[inline(always)]
pub(crate) fn dequantize_group(
    bits: QuantBits,
    row: &[u8],
    g: usize,
    len: usize,
    scale: f32,
    dst: &mut [f32],
) {
    match bits {
        QuantBits::Int8 => {
            for (d, &b) in dst[..len].iter_mut().zip(&row[g * QUANT_GROUP..]) {
                *d = (b as i8) as f32 * scale;
            }
        }
        QuantBits::Int4 => {
            let h = len.div_ceil(2);
            let bytes = &row[g * QUANT_GROUP / 2..g * QUANT_GROUP / 2 + h];
            let (lo, hi) = dst[..len].split_at_mut(h);
            for (d, &b) in lo.iter_mut().zip(bytes) {
                *d = ((b & 15) as i32 - 8) as f32 * scale;
            }
            for (d, &b) in hi.iter_mut().zip(bytes) {
                *d = ((b >> 4) as i32 - 8) as f32 * scale;
            }
        }
    }
}

/// `x` `[…, in]` · `Wᵀ` + `bias` → `[…, out]`, with `W` given by quantized `values` and
/// `scales` of `layout` (as made by [`QuantizedMatrix::to_tensors`]).
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
                QuantBits::Int8 => DType::I8,
                QuantBits::Int4 => DType::U8,
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
