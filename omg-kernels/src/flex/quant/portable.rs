//! The products on CPUs with neither AVX-512 VNNI nor AVX2 and FMA (and under
//! `OMG_KERNELS_ISA=portable`): the same arithmetic as the integer kernels, in f32. The
//! quantized input rows are turned back into floats (`s_x · q_x`, exact in f32) and multiplied with the
//! weight's groups unpacked to `s_w · q_w`, so each product `s_x q_x · s_w q_w` is the
//! integer one scaled, summed in f32.
//!
//! * A few input rows (decoding): every output channel's packed row is read once; each
//!   group is unpacked into 64 floats, dotted with each input row in eight f32 lanes
//!   (AVX2 and FMA where the CPU has them), and the partial sums scaled into the row's
//!   accumulators. No float copy of `W` exists at any time.
//! * More rows (prefill): blocks of output channels are unpacked into an f32 buffer that
//!   a `gemm` call multiplies in place (`W` is never whole in f32 either).

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::activations::QuantRows;
use super::weights::Packed;
use crate::flex::{by_channel, madd, multiversion};
use crate::linear::FEW_ROWS;
use crate::quant_format::{QUANT_GROUP, QuantLayout, dequantize_group};

/// Output channels per parallel task of the few-row path.
const CHANNELS: usize = 32;
/// Output channels unpacked per gemm call of the many-row path.
const BLOCK: usize = 512;

/// `[rows, out]` products.
pub(crate) fn product(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    let (rows, k) = (x.rows, w.layout.in_features);
    // the rows as floats: s · q, exact in f32 (|q| ≤ 32767 < 2²⁴)
    let mut xs = vec![0.0f32; rows * k];
    if k > 0 {
        for (r, dst) in xs.chunks_exact_mut(k).enumerate() {
            let (q, scales) = (x.row(r), x.row_scales(r));
            for (g, (d, q)) in dst
                .chunks_mut(QUANT_GROUP)
                .zip(q.chunks(QUANT_GROUP))
                .enumerate()
            {
                for (d, &q) in d.iter_mut().zip(q) {
                    *d = q as f32 * scales[g];
                }
            }
        }
    }
    let (vs, ss, l) = (w.values, w.scales, w.layout);
    // the sizes the unsafe blocks below rely on (`whole_groups`' loads, gemm's operands)
    assert!(
        xs.len() == rows * k
            && ss.len() == l.out_features * l.groups()
            && vs.len() == l.out_features * l.row_bytes()
    );
    if rows <= FEW_ROWS {
        few_rows(&xs, vs, ss, l, rows)
    } else {
        many_rows(&xs, vs, ss, l, rows)
    }
}

fn few_rows(xs: &[f32], vs: &[u8], ss: &[f32], l: QuantLayout, rows: usize) -> Vec<f32> {
    by_channel(rows, l.out_features, CHANNELS, |c0, dst| {
        let task = Task {
            layout: l,
            rows,
            c0,
        };
        run(xs, vs, ss, task, dst)
    })
}

/// Channels `c0..` (as many as `dst` holds) of a few-row product.
#[derive(Clone, Copy)]
struct Task {
    layout: QuantLayout,
    rows: usize,
    c0: usize,
}

/// `Σ x·w` of 64 elements in eight lanes (four independent accumulator vectors, so
/// the multiply-adds do not wait on each other).
#[inline(always)]
fn dot64<const FMA: bool>(x: &[f32; QUANT_GROUP], w: &[f32; QUANT_GROUP]) -> [f32; 8] {
    let mut acc = [[0.0f32; 8]; 4];
    for c in 0..QUANT_GROUP / 8 {
        let a = &mut acc[c % 4];
        for l in 0..8 {
            a[l] = madd::<FMA>(x[c * 8 + l], w[c * 8 + l], a[l]);
        }
    }
    let mut lanes = [0.0f32; 8];
    for l in 0..8 {
        lanes[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    lanes
}

#[inline(always)]
fn body<const FMA: bool>(xs: &[f32], vs: &[u8], ss: &[f32], t: Task, dst: &mut [f32]) {
    let Task { layout, rows, c0 } = t;
    let (k, row_bytes, groups) = (layout.in_features, layout.row_bytes(), layout.groups());
    // the group's values as floats, unscaled: the scale multiplies each row's partial sum
    let mut w = [0.0f32; QUANT_GROUP];
    for (i, ys) in dst.chunks_exact_mut(rows).enumerate() {
        let c = c0 + i;
        let packed = &vs[c * row_bytes..(c + 1) * row_bytes];
        let mut acc = [[0.0f32; 8]; FEW_ROWS];
        let scales = &ss[c * groups..(c + 1) * groups];
        // whole groups with AVX2 intrinsics where this copy was compiled for them
        #[cfg(target_arch = "x86_64")]
        let done = if FMA {
            let full = k / QUANT_GROUP;
            // SAFETY: FMA is true only in the copy `run` calls after `isa` reported AVX2
            // and FMA; the sizes are `whole_groups`' contract, which it asserts.
            unsafe { avx2::whole_groups(xs, k, rows, packed, scales, layout.bits, full, &mut acc) };
            full
        } else {
            0
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        for (g, &scale) in scales.iter().enumerate().skip(done) {
            let k0 = g * QUANT_GROUP;
            let len = QUANT_GROUP.min(k - k0);
            dequantize_group(layout.bits, packed, g, len, 1.0, &mut w);
            for (r, lanes) in acc[..rows].iter_mut().enumerate() {
                let x = &xs[r * k + k0..r * k + k0 + len];
                let partial = match <&[f32; QUANT_GROUP]>::try_from(x) {
                    Ok(x) => dot64::<FMA>(x, &w),
                    Err(_) => {
                        let mut p = [0.0f32; 8];
                        for (j, (&a, &b)) in x.iter().zip(&w[..len]).enumerate() {
                            p[j % 8] = madd::<FMA>(a, b, p[j % 8]);
                        }
                        p
                    }
                };
                for l in 0..8 {
                    lanes[l] = madd::<FMA>(partial[l], scale, lanes[l]);
                }
            }
        }
        for (y, lanes) in ys.iter_mut().zip(&acc) {
            *y = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
                + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        }
    }
}

multiversion!(
    body_avx2,
    body,
    (xs: &[f32], vs: &[u8], ss: &[f32], t: Task, dst: &mut [f32])
);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::quant_format::{QUANT_GROUP, QuantBits};

    /// The 64 values of an int8 group at `p`, as f32 (unscaled).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn int8_group(p: *const u8) -> [__m256; 8] {
        let mut w = [_mm256_setzero_ps(); 8];
        for (i, v) in w.iter_mut().enumerate() {
            // SAFETY: the caller guarantees 64 readable bytes at `p`.
            let bytes = unsafe { _mm_loadl_epi64(p.add(8 * i) as *const __m128i) };
            *v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
        }
        w
    }

    /// Eight packed nibbles (the low 8 bytes of `b`) minus 8, as f32.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn nibbles(b: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_sub_epi32(
            _mm256_cvtepu8_epi32(b),
            _mm256_set1_epi32(8),
        ))
    }

    /// The 64 values of an int4 group at `p` (32 bytes: byte j holds value j in its low
    /// nibble and value j + 32 in its high one), as f32 (unscaled).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn int4_group(p: *const u8) -> [__m256; 8] {
        let mask = _mm_set1_epi8(0x0F);
        let mut w = [_mm256_setzero_ps(); 8];
        for half in 0..2 {
            // SAFETY: the caller guarantees 32 readable bytes at `p`.
            let v = unsafe { _mm_loadu_si128(p.add(16 * half) as *const __m128i) };
            let lo = _mm_and_si128(v, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
            w[2 * half] = nibbles(lo);
            w[2 * half + 1] = nibbles(_mm_srli_si128(lo, 8));
            w[4 + 2 * half] = nibbles(hi);
            w[4 + 2 * half + 1] = nibbles(_mm_srli_si128(hi, 8));
        }
        w
    }

    /// Adds `scale_g · Σ x·q` of the first `full` whole groups of one output channel to
    /// each row's eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA. The sizes (`packed` holds `full` whole groups, `scales`
    /// at least `full` scales, every row of `xs`, `rows` rows of `k`, at least `full·64`
    /// values) are asserted: a violation panics.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn whole_groups(
        xs: &[f32],
        k: usize,
        rows: usize,
        packed: &[u8],
        scales: &[f32],
        bits: QuantBits,
        full: usize,
        acc: &mut [[f32; 8]],
    ) {
        // the sizes the loads below rely on, checked always
        let group_bytes = match bits {
            QuantBits::Int8 => QUANT_GROUP,
            QuantBits::Int4 => QUANT_GROUP / 2,
        };
        assert!(
            scales.len() >= full
                && packed.len() >= full * group_bytes
                && full * QUANT_GROUP <= k
                && xs.len() >= rows * k
                && acc.len() >= rows,
            "whole_groups: operands too short for {full} groups of {rows} rows"
        );
        for (g, &scale) in scales[..full].iter().enumerate() {
            // SAFETY (all loads below): the group's bytes lie inside `packed` (g < full,
            // asserted above), each x row's 64 values of the group inside `xs`
            // (r·k + g·64 + 63 < rows·k).
            let w = unsafe {
                match bits {
                    QuantBits::Int8 => int8_group(packed.as_ptr().add(g * QUANT_GROUP)),
                    QuantBits::Int4 => int4_group(packed.as_ptr().add(g * QUANT_GROUP / 2)),
                }
            };
            let s = _mm256_set1_ps(scale);
            for (r, lanes) in acc[..rows].iter_mut().enumerate() {
                // SAFETY: the 64 loads of x end at r·k + g·64 + 63 < rows·k ≤ xs.len()
                // (asserted above); `lanes` holds 8 f32.
                unsafe {
                    let x = xs.as_ptr().add(r * k + g * QUANT_GROUP);
                    let mut p0 = _mm256_mul_ps(_mm256_loadu_ps(x), w[0]);
                    let mut p1 = _mm256_mul_ps(_mm256_loadu_ps(x.add(8)), w[1]);
                    p0 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(16)), w[2], p0);
                    p1 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(24)), w[3], p1);
                    p0 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(32)), w[4], p0);
                    p1 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(40)), w[5], p1);
                    p0 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(48)), w[6], p0);
                    p1 = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(56)), w[7], p1);
                    let a = _mm256_loadu_ps(lanes.as_ptr());
                    let sum = _mm256_fmadd_ps(_mm256_add_ps(p0, p1), s, a);
                    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
                }
            }
        }
    }
}

fn many_rows(xs: &[f32], vs: &[u8], ss: &[f32], l: QuantLayout, rows: usize) -> Vec<f32> {
    let (k, n) = (l.in_features, l.out_features);
    let (row_bytes, groups) = (l.row_bytes(), l.groups());
    let mut out = vec![0.0f32; rows * n];
    if k == 0 || n == 0 {
        return out;
    }
    let threads = rayon::current_num_threads();
    let mut buffer = vec![0.0f32; BLOCK.min(n) * k];
    for n0 in (0..n).step_by(BLOCK) {
        let width = BLOCK.min(n - n0);
        let block = &mut buffer[..width * k];
        block.par_chunks_mut(k).enumerate().for_each(|(i, wrow)| {
            let c = n0 + i;
            let packed = &vs[c * row_bytes..(c + 1) * row_bytes];
            for (g, &scale) in ss[c * groups..(c + 1) * groups].iter().enumerate() {
                let k0 = g * QUANT_GROUP;
                let len = QUANT_GROUP.min(k - k0);
                dequantize_group(l.bits, packed, g, len, scale, &mut wrow[k0..k0 + len]);
            }
        });
        // out[:, n0..n0+width] = x [rows, k] · block^T ([k, width]: element (kk, j) at
        // block[j·k + kk])
        // SAFETY: dst covers rows × width elements of `out` ([rows, n], n0 + width ≤ n) at
        // stride n from column n0; lhs is rows × k with row stride k (xs holds rows·k
        // values: asserted in `product`); rhs is k × width with column stride k
        // (block holds width·k).
        unsafe {
            gemm(
                rows,
                width,
                k,
                out.as_mut_ptr().add(n0),
                1,
                n as isize,
                false,
                xs.as_ptr(),
                1,
                k as isize,
                block.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(threads),
            );
        }
    }
    out
}
