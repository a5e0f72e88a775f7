//! The quantization format of the weights: int8 or int4 values with one scale per
//! group of [`QUANT_GROUP`] consecutive input channels of an output row (symmetric,
//! absmax), made and read on the host (the products are in `quant`).
//!
//! Storage of a `[out, in]` matrix (the official `torch.nn.Linear` layout, so a
//! checkpoint row is quantized as it is read, with no transpose):
//!
//! * **int8**: one byte per weight (`i8`, `q ∈ [−127, 127]`, `w ≈ q · scale`);
//! * **int4**: two weights per byte (`q ∈ [−7, 7]`, stored as `q + 8`). In a group of
//!   `L` weights with `h = ⌈L/2⌉`, byte `j` holds weight `j` in its low nibble and weight
//!   `j + h` in its high nibble, so both halves unpack into contiguous runs;
//! * **scales**: `[out, ⌈in / QUANT_GROUP⌉]`, `scale = absmax / 127` (int8, an f32) or
//!   `absmax / 7` (int4, stored rounded to the nearest f16; the values are rounded
//!   against the exact scale, as llama.cpp's `Q4_0` does); the last group of a row may be
//!   shorter. An int4 weight thus takes 4.25
//!   bits (64 values in 32 bytes and a 2-byte scale), an int8 one 8.5 bits.
//!
//! As burn tensors the values are a `[out, row_bytes]` int tensor (`I8` for int8, `U8`
//! for int4 on Flex; the backend's default int type elsewhere, one byte value per
//! element) and the scales a `[out, groups]` float tensor ([`QuantLayout::scale_dtype`]
//! on Flex, so that an int4 product streams 2-byte scales; the backend's default float
//! type elsewhere, holding the same values).

use burn::tensor::{
    Bytes, DType, Int, Tensor, TensorCreationOptions, TensorData, backend::Backend,
};

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

/// The largest magnitude of the quantized *input* values of a product with weights of
/// `bits` (see [`crate::quant_linear`]): 32767 (int16) for int8 weights, so that the
/// input adds almost no error to the weight's own; 127 (int8) for int4 weights, whose
/// error is far larger, so that their products stay byte products.
pub fn activation_level(bits: QuantBits) -> f32 {
    match bits {
        QuantBits::Int8 => 32767.0,
        QuantBits::Int4 => 127.0,
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

    /// The dtype the scales are stored in on Flex: f32 for int8, f16 for int4.
    pub fn scale_dtype(&self) -> DType {
        match self.bits {
            QuantBits::Int8 => DType::F32,
            QuantBits::Int4 => DType::F16,
        }
    }

    /// Bytes of the values and the scales together, as Flex holds them.
    pub fn storage_bytes(&self) -> usize {
        self.out_features * (self.row_bytes() + self.scale_dtype().size() * self.groups())
    }
}

/// A quantized matrix in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    /// Its shape and format.
    pub layout: QuantLayout,
    /// `[out, row_bytes]` packed values (int8 as the bytes of `i8`).
    pub values: Vec<u8>,
    /// `[out, groups]` scales (for int4, values an f16 holds exactly).
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
        let mut values = vec![0u8; out_features * layout.row_bytes()];
        let mut scales = vec![0.0f32; out_features * layout.groups()];
        Self::quantize_into(weight, layout, &mut values, &mut scales);
        Self {
            layout,
            values,
            scales,
        }
    }

    /// Quantizes the rows of `weight` (row-major, `layout.in_features` values each)
    /// into `values` and `scales`, sized for those rows in `layout`'s format: a block
    /// of rows of a larger matrix goes straight into its place in that matrix.
    ///
    /// # Panics
    /// If the buffers do not hold whole rows, the same number in each.
    pub fn quantize_into(
        weight: &[f32],
        layout: QuantLayout,
        values: &mut [u8],
        scales: &mut [f32],
    ) {
        let (in_features, bits) = (layout.in_features, layout.bits);
        let (row_bytes, groups) = (layout.row_bytes(), layout.groups());
        let rows = weight.len().checked_div(in_features).unwrap_or(0);
        assert!(
            rows * in_features == weight.len()
                && values.len() == rows * row_bytes
                && scales.len() == rows * groups,
            "quantize_into: {} values of width {in_features} into {} bytes and {} scales",
            weight.len(),
            values.len(),
            scales.len()
        );
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

    /// The values and scales as burn tensors on `device` (see the module docs). The
    /// values are copied once: burn's storage takes a `Vec<u8>` only by copying it into
    /// 16-byte-aligned memory (a loader that must not copy hands [`QuantLayout::tensors`]
    /// bytes it placed itself); int4 scales are converted to f16 on Flex.
    pub fn into_tensors<B: Backend>(self, device: &B::Device) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
        let l = self.layout;
        let scales = TensorData::new(self.scales, [l.out_features, l.groups()]);
        l.tensors::<B>(Bytes::from_bytes_vec(self.values), scales, device)
    }
}

impl QuantLayout {
    /// The burn tensors of a matrix of this layout from its packed `values` (`[out,
    /// row_bytes]` bytes, e.g. shared with a memory-mapped file, which Flex then reads
    /// in place) and its `scales` (`[out, groups]`, f32 or f16). Flex takes scales of
    /// [`QuantLayout::scale_dtype`] as they are (also in place) and converts others;
    /// other backends convert them to their float type.
    ///
    /// # Panics
    /// When `values` or `scales` do not hold exactly this layout's bytes and scales.
    pub fn tensors<B: Backend>(
        &self,
        values: Bytes,
        scales: TensorData,
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
        let l = *self;
        assert!(
            values.len() == l.out_features * l.row_bytes()
                && matches!(scales.dtype, DType::F32 | DType::F16)
                && scales.shape.as_slice() == [l.out_features, l.groups()],
            "quantized tensors of {l:?}: {} value bytes, scales {:?} {:?}",
            values.len(),
            scales.dtype,
            scales.shape
        );
        let packed = match l.bits {
            QuantBits::Int8 => DType::I8,
            QuantBits::Int4 => DType::U8,
        };
        let data = TensorData::from_bytes(values, [l.out_features, l.row_bytes()], packed);
        if crate::has_fast_kernels::<B>() {
            let scales = if scales.dtype == l.scale_dtype() {
                scales
            } else {
                scales.convert_dtype(l.scale_dtype())
            };
            let options = TensorCreationOptions::new(device.clone()).with_dtype(l.scale_dtype());
            (
                Tensor::from_data(data, (device, packed)),
                Tensor::from_data(scales, options),
            )
        } else {
            (
                Tensor::from_data(data, device),
                Tensor::from_data(scales, device),
            )
        }
    }
}

/// `a.round() as i32` (halves away from zero) for `|a| < 2³¹`, in operations that
/// vectorize: the largest float below ½ is added to `|a|` and the sum truncated, which
/// rounds every float as `round` does (the sum can only reach the next integer when
/// `|a|`'s fraction is at least ½). NaN gives 0, as `NaN as i32` does.
#[inline(always)]
fn round_half_away(a: f32) -> i32 {
    const BELOW_HALF: f32 = f32::from_bits(0x3EFF_FFFF);
    let magnitude = (a.abs() + BELOW_HALF) as i32;
    if a < 0.0 { -magnitude } else { magnitude }
}

/// The largest `|v|` of `values` (NaNs ignored, as `f32::max` does), in 16 lanes so
/// that it vectorizes.
#[inline(always)]
fn absmax(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut blocks = values.chunks_exact(16);
    for block in &mut blocks {
        for (m, v) in lanes.iter_mut().zip(block) {
            *m = m.max(v.abs());
        }
    }
    let tail = blocks
        .remainder()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    lanes.iter().fold(tail, |m, &v| m.max(v))
}

/// Quantizes one row into its packed bytes and scales (`vals` and `scales` sized for
/// it by the caller), with AVX2 vectors where the CPU has them: the same operations,
/// so the same bytes.
fn quantize_row(row: &[f32], bits: QuantBits, vals: &mut [u8], scales: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        /// [`quantize_row_with`] compiled for AVX2.
        #[target_feature(enable = "avx2")]
        fn avx2(row: &[f32], bits: QuantBits, vals: &mut [u8], scales: &mut [f32]) {
            quantize_row_with(row, bits, vals, scales)
        }
        // SAFETY: the CPU has AVX2 (checked just above); the function only takes
        // slices, whose bounds are checked as in the portable build.
        unsafe { avx2(row, bits, vals, scales) };
        return;
    }
    quantize_row_with(row, bits, vals, scales)
}

#[inline(always)]
fn quantize_row_with(row: &[f32], bits: QuantBits, vals: &mut [u8], scales: &mut [f32]) {
    let level = bits.max_level();
    for (g, chunk) in row.chunks(QUANT_GROUP).enumerate() {
        let absmax = absmax(chunk);
        // the values are rounded against the exact scale; int4 stores it as an f16
        let scale = absmax / level;
        scales[g] = match bits {
            QuantBits::Int8 => scale,
            QuantBits::Int4 => f16_scale(scale),
        };
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let max = level as i32;
        let q = |v: f32| round_half_away(v * inv).clamp(-max, max);
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

/// `scale` rounded to the nearest f16 (the largest finite f16 past it, so that a stored
/// scale is never infinite).
#[inline(always)]
fn f16_scale(scale: f32) -> f32 {
    let rounded = burn::tensor::f16::from_f32(scale).to_f32();
    if rounded.is_finite() {
        rounded
    } else {
        burn::tensor::f16::MAX.to_f32()
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

#[cfg(test)]
mod tests {
    use super::round_half_away;

    /// `f32::round` on the values where a shortcut would go wrong: halves, the floats
    /// next to them, and a dense sweep of the range the quantizers use.
    #[test]
    fn round_half_away_is_round() {
        let check = |a: f32| assert_eq!(round_half_away(a), a.round() as i32, "{a:e}");
        for k in -300..=300 {
            let half = k as f32 + 0.5;
            for ulps in -3i32..=3 {
                let bits = half.to_bits() as i32 + ulps;
                check(f32::from_bits(bits as u32));
                check(-f32::from_bits(bits as u32));
            }
            check(k as f32);
        }
        // every 61st float in [0, 256)
        let end = 256.0f32.to_bits();
        for bits in (0..end).step_by(61) {
            check(f32::from_bits(bits));
            check(-f32::from_bits(bits));
        }
        check(f32::from_bits(0x3EFF_FFFF));
        assert_eq!(round_half_away(f32::NAN), 0);
    }
}
