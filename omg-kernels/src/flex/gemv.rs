//! `y[r, :] = x[r, :] · W + b` for a few rows `r`: the weight `[in, out]` is streamed
//! once, in tiles of long contiguous row segments spread over the threads; each tile's
//! accumulators stay in L1 while its rows go by, four weight rows per pass.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::linear::FEW_ROWS;
use super::{f32s, madd, multiversion, new_f32};

/// Output columns per tile (an 8 KiB segment of each weight row).
const COLUMNS: usize = 2048;

/// `x` `[…, in]` (≤ FEW_ROWS rows), `weight` `[in, out]`, `bias` `[out]` → `[…, out]`.
pub(crate) fn few_rows(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
    let mut shape = x.layout().shape().to_vec();
    let k = *shape.last().expect("linear input has a last dim");
    let rows = shape[..shape.len() - 1].iter().product::<usize>();
    let n = weight.layout().shape().dims::<2>()[1];
    debug_assert!(rows <= FEW_ROWS);
    let (xs, ws) = (f32s(&x), f32s(&weight));
    let column_blocks = n.div_ceil(COLUMNS);
    // enough tiles for every thread: split the input dim too (partial sums, added below)
    let wanted = 2 * rayon::current_num_threads();
    let k_blocks = wanted
        .div_ceil(column_blocks)
        .clamp(1, k.max(1).div_ceil(64));
    let k_step = k.div_ceil(k_blocks);
    let tiles: Vec<(usize, usize, Vec<f32>)> = (0..column_blocks * k_blocks)
        .into_par_iter()
        .map(|task| {
            let (cb, kb) = (task / k_blocks, task % k_blocks);
            let c0 = cb * COLUMNS;
            let width = COLUMNS.min(n - c0);
            let k0 = (kb * k_step).min(k);
            let k1 = (k0 + k_step).min(k);
            let mut tile = vec![0.0f32; rows * width];
            run(
                xs,
                ws,
                &mut tile,
                Slab {
                    k,
                    n,
                    c0,
                    width,
                    k0,
                    k1,
                    rows,
                },
            );
            (c0, width, tile)
        })
        .collect();
    let mut out = vec![0.0f32; rows * n];
    if let Some(bias) = bias.as_ref().map(f32s) {
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(&bias[..n]);
        }
    }
    for (c0, width, tile) in tiles {
        for r in 0..rows {
            let dst = &mut out[r * n + c0..r * n + c0 + width];
            for (o, &t) in dst.iter_mut().zip(&tile[r * width..(r + 1) * width]) {
                *o += t;
            }
        }
    }
    *shape.last_mut().expect("non-empty shape") = n;
    new_f32(out, &shape)
}

/// A task's tile: columns `c0..c0 + width` and input rows `k0..k1` of a `[k, n]` weight,
/// for `rows` inputs.
#[derive(Clone, Copy)]
struct Slab {
    k: usize,
    n: usize,
    c0: usize,
    width: usize,
    k0: usize,
    k1: usize,
    rows: usize,
}

#[inline(always)]
fn body<const FMA: bool>(xs: &[f32], ws: &[f32], tile: &mut [f32], s: Slab) {
    let Slab {
        k,
        n,
        c0,
        width,
        k0,
        k1,
        rows,
    } = s;
    let segment = |i: usize| &ws[i * n + c0..i * n + c0 + width];
    let mut i = k0;
    while i + 4 <= k1 {
        let (w0, w1, w2, w3) = (segment(i), segment(i + 1), segment(i + 2), segment(i + 3));
        for r in 0..rows {
            let x = &xs[r * k + i..r * k + i + 4];
            let acc = &mut tile[r * width..(r + 1) * width];
            for ((((a, &v0), &v1), &v2), &v3) in acc.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                let t = madd::<FMA>(x[0], v0, *a);
                let t = madd::<FMA>(x[1], v1, t);
                let t = madd::<FMA>(x[2], v2, t);
                *a = madd::<FMA>(x[3], v3, t);
            }
        }
        i += 4;
    }
    for i in i..k1 {
        let w = segment(i);
        for r in 0..rows {
            let x = xs[r * k + i];
            let acc = &mut tile[r * width..(r + 1) * width];
            for (a, &v) in acc.iter_mut().zip(w) {
                *a = madd::<FMA>(x, v, *a);
            }
        }
    }
}

multiversion!(
    body_avx2,
    body,
    (xs: &[f32], ws: &[f32], tile: &mut [f32], s: Slab)
);
