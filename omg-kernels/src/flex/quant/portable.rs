//! The products on CPUs with neither AVX-512 VNNI nor AVX2 and FMA (and under
//! `OMG_KERNELS_ISA=portable`): the same arithmetic as the integer kernels, in f32. The
//! quantized input rows are turned back into floats (`s_x · q_x`, exact in f32) and multiplied with the
//! weight's groups unpacked to `s_w · q_w`, so each product `s_x q_x · s_w q_w` is the
//! integer one scaled, summed in f32.
//!
//! * A few input rows (decoding): every output channel's packed row is read once; each
//!   group is unpacked into 64 floats, dotted with each input row in eight f32 lanes,
//!   and the partial sums scaled into the row's accumulators. No float copy of `W`
//!   exists at any time.
//! * More rows (prefill): blocks of output channels are unpacked into an f32 buffer that
//!   a `gemm` call multiplies in place (`W` is never whole in f32 either).

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::activations::QuantRows;
use super::weights::Packed;
use crate::flex::by_channel;
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
    let (vs, ss, l) = (w.values, w.all_scales(), w.layout);
    let ss = &ss[..];
    // the sizes the unsafe block below relies on (gemm's operands)
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
        channels(xs, vs, ss, (l, rows, c0), dst)
    })
}

/// `Σ x·w` of 64 elements in eight lanes (four independent accumulator vectors, so
/// the multiply-adds do not wait on each other).
#[inline(always)]
fn dot64(x: &[f32; QUANT_GROUP], w: &[f32; QUANT_GROUP]) -> [f32; 8] {
    let mut acc = [[0.0f32; 8]; 4];
    for c in 0..QUANT_GROUP / 8 {
        let a = &mut acc[c % 4];
        for l in 0..8 {
            a[l] += x[c * 8 + l] * w[c * 8 + l];
        }
    }
    let mut lanes = [0.0f32; 8];
    for l in 0..8 {
        lanes[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    lanes
}

/// Channels `c0..` (as many as `dst` holds, `rows` results each) of a few-row product.
fn channels(
    xs: &[f32],
    vs: &[u8],
    ss: &[f32],
    (layout, rows, c0): (QuantLayout, usize, usize),
    dst: &mut [f32],
) {
    let (k, row_bytes, groups) = (layout.in_features, layout.row_bytes(), layout.groups());
    // the group's values as floats, unscaled: the scale multiplies each row's partial sum
    let mut w = [0.0f32; QUANT_GROUP];
    for (i, ys) in dst.chunks_exact_mut(rows).enumerate() {
        let c = c0 + i;
        let packed = &vs[c * row_bytes..(c + 1) * row_bytes];
        let mut acc = [[0.0f32; 8]; FEW_ROWS];
        let scales = &ss[c * groups..(c + 1) * groups];
        for (g, &scale) in scales.iter().enumerate() {
            let k0 = g * QUANT_GROUP;
            let len = QUANT_GROUP.min(k - k0);
            dequantize_group(layout.bits, packed, g, len, 1.0, &mut w);
            for (r, lanes) in acc[..rows].iter_mut().enumerate() {
                let x = &xs[r * k + k0..r * k + k0 + len];
                let partial = match <&[f32; QUANT_GROUP]>::try_from(x) {
                    Ok(x) => dot64(x, &w),
                    Err(_) => {
                        let mut p = [0.0f32; 8];
                        for (j, (&a, &b)) in x.iter().zip(&w[..len]).enumerate() {
                            p[j % 8] += a * b;
                        }
                        p
                    }
                };
                for l in 0..8 {
                    lanes[l] += partial[l] * scale;
                }
            }
        }
        for (y, lanes) in ys.iter_mut().zip(&acc) {
            *y = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
                + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
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
