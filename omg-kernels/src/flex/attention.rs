//! Masked multi-head attention, a block of queries of one head at a time: scores by
//! `gemm` into a per-task buffer, masked softmax in place (vectorised exp), then the
//! weighted sum of values by `gemm`. Nothing of size `[heads, Nq, Nk]` is allocated.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Strided, f32s, matmul, multiversion, new_f32, softmax_in_place};

/// Queries per task.
const BLOCK: usize = 32;

/// `q` `[B, Nq, C]`, `k`, `v` `[B, Nk, C]`, `mask` `[B, Nq, Nk]` as bytes (non-zero =
/// blocked) → `[B, Nq, C]`.
pub(crate) fn masked_attention(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    heads: usize,
    mask: Option<FlexTensor>,
) -> FlexTensor {
    let [b, nq, c] = q.layout().shape().dims::<3>();
    let nk = k.layout().shape().dims::<3>()[1];
    let (qs, ks, vs) = (f32s(&q), f32s(&k), f32s(&v));
    let mask = mask.as_ref().map(super::bytes);
    // The sizes the gemm calls below rely on, checked always (`crate::attention` checked
    // the shapes already; this keeps the unsafe blocks in bounds on its own).
    assert!(
        heads > 0
            && c % heads == 0
            && qs.len() == b * nq * c
            && ks.len() == b * nk * c
            && vs.len() == b * nk * c
            && mask.is_none_or(|m| m.len() == b * nq * nk),
        "masked_attention kernel: operands of {} / {} / {} values for q [{b}, {nq}, {c}], \
         k and v [{b}, {nk}, {c}], heads {heads}",
        qs.len(),
        ks.len(),
        vs.len()
    );
    let dh = c / heads;
    let blocks = nq.div_ceil(BLOCK);
    // one task per (batch, head, query block); each writes its [rows, dh] tile
    let tiles: Vec<(usize, usize, usize, Vec<f32>)> = (0..b * heads * blocks)
        .into_par_iter()
        .map(|task| {
            let (bh, blk) = (task / blocks, task % blocks);
            let (batch, head) = (bh / heads, bh % heads);
            let q0 = blk * BLOCK;
            let rows = BLOCK.min(nq - q0);
            let mut scores = vec![0.0f32; rows * nk];
            let mut tile = vec![0.0f32; rows * dh];
            let q_ptr = &qs[(batch * nq + q0) * c + head * dh..];
            let k_ptr = &ks[batch * nk * c + head * dh..];
            let v_ptr = &vs[batch * nk * c + head * dh..];
            // SAFETY: by the assert above (qs: B·Nq·C values, ks and vs: B·Nk·C, dh·heads
            // = C), every operand view lies inside its slice: rows ≤ Nq − q0 rows of
            // stride C from q_ptr (the last element is (batch·Nq + q0 + rows − 1)·C +
            // head·dh + dh − 1 < B·Nq·C), Nk rows of stride C from k_ptr and v_ptr
            // (likewise < B·Nk·C), dh columns each; scores is [rows, Nk] contiguous.
            unsafe {
                // scores[rows, nk] = Q[rows, dh] · Kᵀ[dh, nk]
                let q = Strided::rows(q_ptr, c);
                let kt = Strided::transposed(k_ptr, c);
                matmul((rows, nk, dh), &mut scores, q, kt);
            }
            for (r, row) in scores.chunks_exact_mut(nk).enumerate() {
                let m =
                    mask.map(|m| &m[(batch * nq + q0 + r) * nk..(batch * nq + q0 + r + 1) * nk]);
                run(row, m);
            }
            // SAFETY: as above (scores [rows, Nk] and v_ptr's Nk rows of dh columns at
            // stride C); tile is [rows, dh] contiguous.
            unsafe {
                let p = Strided::rows(&scores, nk);
                let v = Strided::rows(v_ptr, c);
                matmul((rows, dh, nk), &mut tile, p, v);
            }
            (batch, head, q0, tile)
        })
        .collect();
    let mut out = vec![0.0f32; b * nq * c];
    for (batch, head, q0, tile) in tiles {
        for (r, src) in tile.chunks_exact(dh).enumerate() {
            let at = (batch * nq + q0 + r) * c + head * dh;
            out[at..at + dh].copy_from_slice(src);
        }
    }
    new_f32(out, &[b, nq, c])
}

/// Masked softmax of one score row in place.
#[inline(always)]
fn body<const FMA: bool>(row: &mut [f32], mask: Option<&[u8]>) {
    if let Some(mask) = mask {
        for (s, &m) in row.iter_mut().zip(mask) {
            *s = if m != 0 { f32::NEG_INFINITY } else { *s };
        }
    }
    softmax_in_place::<FMA>(row);
}

multiversion!(body_avx2, body, (row: &mut [f32], mask: Option<&[u8]>));
