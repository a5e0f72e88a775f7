//! `y = x · Wᵀ + b` from a quantized `W` (format: [`crate::quant_format`]) and a
//! quantized `x`, multiplied in integers on CPUs with AVX-512 VNNI or AVX2.
//!
//! The input rows are quantized first ([`activations`]): int16 (under int8 weights) or
//! int8 (under int4) with one f32 scale per group of 64 input channels, the groups of
//! the weight. Each group's product is then an exact integer `Σ q_x · q_w`, scaled by
//! `s_x · s_w` into the f32 sum of the row:
//!
//! `y[r, c] = Σ_g  s_x[r, g] · s_w[c, g] · Σ_{k ∈ g} q_x[r, k] · q_w[c, k]`.
//!
//! Five implementations compute it, with a GEMV for a few rows (decoding) and a GEMM
//! for more (prefill):
//!
//! * [`vnni_int8`] (x86-64 with AVX-512 VNNI, int8 weights): 16-bit pairs multiplied
//!   and summed by `vpdpwssd`, the GEMM register-tiled over the packed rows as stored;
//! * [`vnni_int4`] (the same CPUs, int4 weights): bytes multiplied and summed four at a
//!   time by `vpdpbusd`, tiled the same way;
//! * [`avx2_gemv`] (x86-64 with AVX2 and FMA but not AVX-512 VNNI, and
//!   `OMG_KERNELS_ISA=avx2|no-f16c`): the GEMV of both, in integers with `vpmaddwd`
//!   (int8) and `vpmaddubsw` (int4);
//! * [`avx2_gemm`] (the same CPUs): the GEMM of both with the same instructions,
//!   register-tiled over the rows laid out as for the AVX-512 GEMMs ([`lanes`]);
//! * [`portable`] (every other CPU and `OMG_KERNELS_ISA=portable`): the same products
//!   in f32, `s_x q_x` (exact) against the weight's groups unpacked to `s_w q_w`.
//!
//! No float copy of the whole `W` exists at any time. The scales are f32 or f16
//! ([`crate::QuantLayout::scale_dtype`]); f16 ones are widened row by row where they
//! are read (the whole matrix's at once on the portable path).

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2_gemm;
#[cfg(target_arch = "x86_64")]
mod avx2_gemv;
#[cfg(target_arch = "x86_64")]
mod lanes;
mod portable;
#[cfg(target_arch = "x86_64")]
mod tiling;
#[cfg(target_arch = "x86_64")]
mod vnni_int4;
#[cfg(target_arch = "x86_64")]
mod vnni_int8;
mod weights;

use burn_flex::FlexTensor;

use self::activations::QuantRows;
use self::weights::{Packed, Scales};
use super::{add_bias, f32s, new_f32};
use crate::quant_format::{QuantBits, QuantLayout, activation_level};

/// `x` `[…, in]`, `values`/`scales` of `layout`, `bias` `[out]` → `[…, out]`.
pub(crate) fn quant_linear(
    x: FlexTensor,
    values: FlexTensor,
    scales: FlexTensor,
    layout: QuantLayout,
    bias: Option<FlexTensor>,
) -> FlexTensor {
    let mut shape = x.layout().shape().to_vec();
    let n = layout.out_features;
    let rows = shape[..shape.len() - 1].iter().product::<usize>();
    let xs = f32s(&x);
    // The sizes every unsafe block below relies on, checked always (`crate::quant`
    // checked the shapes already): `Packed::new` checks the weight's.
    assert!(
        shape.last() == Some(&layout.in_features)
            && xs.len() == rows * layout.in_features
            && bias.as_ref().is_none_or(|b| b.layout().num_elements() == n),
        "quant_linear kernel: x {shape:?} for {layout:?}"
    );
    let scales = match scales.dtype() {
        burn::tensor::DType::F16 => Scales::F16(
            scales
                .as_slice::<half::f16>()
                .expect("contiguous f16 scales (the dispatch checked their dtype)"),
        ),
        _ => Scales::F32(f32s(&scales)),
    };
    let weights = Packed::new(values.bytes(), scales, layout);
    let level = activation_level(layout.bits);
    let rows_q = QuantRows::quantize(xs, rows, layout.in_features, level);
    let mut out = product(&rows_q, &weights);
    if let Some(bias) = bias.as_ref().map(f32s) {
        add_bias(&mut out, bias);
    }
    *shape.last_mut().expect("non-empty shape") = n;
    new_f32(out, &shape)
}

/// `[rows, out]` products of quantized rows and weights, by the fastest implementation
/// this CPU (and `OMG_KERNELS_ISA`) allows.
fn product(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        let isa = super::isa::isa();
        if isa.avx512_vnni {
            return match w.layout.bits {
                QuantBits::Int8 => vnni_int8::product(x, w),
                QuantBits::Int4 => vnni_int4::product(x, w),
            };
        }
        if isa.avx2_fma && x.rows > 0 {
            return if x.rows <= crate::linear::FEW_ROWS {
                avx2_gemv::gemv(x, w)
            } else {
                avx2_gemm::gemm(x, w)
            };
        }
    }
    portable::product(x, w)
}
