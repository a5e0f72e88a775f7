//! The integer products in plain loops (compiled for AVX2 too, where the compiler
//! multiplies 16-bit pairs): blocks of [`BLOCK`] output channels, unpacked to signed
//! bytes once, then every row against them.

use rayon::prelude::*;

use super::activations::QuantRows;
use super::weights::Packed;
use crate::flex::unblock;
use crate::flex::{madd, multiversion};
use crate::quant_format::QUANT_GROUP;

/// Output channels per parallel task.
const BLOCK: usize = 8;

/// `[rows, out]` products.
pub(crate) fn product(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    let (rows, n) = (x.rows, w.layout.out_features);
    let mut by_block = vec![0.0f32; n.div_ceil(BLOCK) * BLOCK * rows];
    if rows > 0 && x.groups > 0 {
        by_block
            .par_chunks_mut(rows * BLOCK)
            .enumerate()
            .for_each(|(b, dst)| run(x, w, b * BLOCK, dst));
    }
    unblock(&by_block, rows, n, BLOCK)
}

/// `Σ x·w` of 64 quantized inputs (|x| ≤ 32767) and weights (|w| ≤ 127): at most
/// 64 · 32767 · 127 < 2³¹ in magnitude.
#[inline(always)]
fn dot64(x: &[i16; QUANT_GROUP], w: &[i8; QUANT_GROUP]) -> i32 {
    x.iter().zip(w).map(|(&x, &w)| x as i32 * w as i32).sum()
}

/// Channels `c0..c0 + BLOCK` (those that exist) for every row, into `dst`
/// `[rows][BLOCK]`.
#[inline(always)]
fn body<const FMA: bool>(x: &QuantRows, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    let groups = x.groups;
    let width = BLOCK.min(w.layout.out_features - c0);
    let mut unpacked = vec![[0i8; QUANT_GROUP]; width * groups];
    for (i, channel) in unpacked.chunks_exact_mut(groups).enumerate() {
        for (g, group) in channel.iter_mut().enumerate() {
            w.signed_group(c0 + i, g, group);
        }
    }
    for (r, ys) in dst.chunks_exact_mut(BLOCK).enumerate() {
        let (xq, sx) = (x.row(r), x.row_scales(r));
        for (i, (y, channel)) in ys.iter_mut().zip(unpacked.chunks_exact(groups)).enumerate() {
            let sw = w.row_scales(c0 + i);
            let mut acc = 0.0f32;
            for (g, wg) in channel.iter().enumerate() {
                let xg: &[i16; QUANT_GROUP] = xq[g * QUANT_GROUP..(g + 1) * QUANT_GROUP]
                    .try_into()
                    .expect("a whole group");
                acc = madd::<FMA>(dot64(xg, wg) as f32, sw[g] * sx[g], acc);
            }
            *y = acc;
        }
    }
}

multiversion!(
    body_avx2,
    body,
    (x: &QuantRows, w: &Packed<'_>, c0: usize, dst: &mut [f32])
);
