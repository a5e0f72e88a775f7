//! Causal grouped-query attention, one task per (batch row, key/value head, block of
//! query positions): for each query head of the group, scores against the keys the
//! block can see by `gemm` straight from the cache, softmax over each row's visible keys
//! in place (vectorised exp), then the weighted sum of the values by `gemm`. No mask,
//! no score tensor of the whole sequence and no copy of the cache. One query position
//! with a head dim that is a multiple of 16 runs [`super::decode_attention`] on AVX-512
//! CPUs instead.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{Strided, f32s, matmul, multiversion, new_f32, softmax_in_place};
use crate::visible_keys::visible_keys;

/// Query positions per task.
const BLOCK: usize = 64;

/// `q` `[B, H, T, D]`, `k`, `v` `[B, KV, S, D]` (the first `keys` positions filled),
/// `left_padding` empty or one count per batch row → `[B, T, H·D]`.
pub(crate) fn causal_attention(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    keys: usize,
    left_padding: &[usize],
) -> FlexTensor {
    let [b, h, t, d] = q.layout().shape().dims::<4>();
    let [_, kv, s, _] = k.layout().shape().dims::<4>();
    let (qs, ks, vs) = (f32s(&q), f32s(&k), f32s(&v));
    // The sizes the gemm calls below rely on, checked always (`crate::causal_attention`
    // checked the shapes already; this keeps the unsafe blocks in bounds on its own).
    assert!(
        kv > 0
            && h % kv == 0
            && t <= keys
            && keys <= s
            && qs.len() == b * h * t * d
            && ks.len() == b * kv * s * d
            && vs.len() == b * kv * s * d
            && (left_padding.is_empty() || left_padding.len() == b),
        "causal_attention kernel: operands of {} / {} / {} values for q [{b}, {h}, {t}, {d}], \
         k and v [{b}, {kv}, {s}, {d}], keys {keys}, {} padding counts",
        qs.len(),
        ks.len(),
        vs.len(),
        left_padding.len()
    );
    #[cfg(target_arch = "x86_64")]
    if t == 1 && super::decode_attention::available(d) {
        let operands = (qs, ks, vs);
        let out =
            super::decode_attention::one_position(operands, [b, h, kv, s, d], keys, left_padding);
        return new_f32(out, &[b, 1, h * d]);
    }
    let g = h / kv;
    let start = keys - t;
    let scale = (d as f64).sqrt() as f32;
    let blocks = t.div_ceil(BLOCK);
    // one task per (batch row, KV head, query block); each writes its [g, rows, d] tile
    let tiles: Vec<(usize, usize, usize, Vec<f32>)> = (0..b * kv * blocks)
        .into_par_iter()
        .map(|task| {
            let (row_head, blk) = (task / blocks, task % blocks);
            let (batch, group) = (row_head / kv, row_head % kv);
            let pad = left_padding.get(batch).copied().unwrap_or(0);
            let q0 = blk * BLOCK;
            let rows = BLOCK.min(t - q0);
            // keys any query of the block sees: up to its last position
            let seen = start + q0 + rows;
            let mut scores = vec![0.0f32; rows * seen];
            let mut tile = vec![0.0f32; g * rows * d];
            let kv_at = (batch * kv + group) * s * d;
            let (k_rows, v_rows) = (&ks[kv_at..], &vs[kv_at..]);
            for (j, out) in tile.chunks_exact_mut(rows * d).enumerate() {
                let q_rows = &qs[((batch * h + group * g + j) * t + q0) * d..];
                // SAFETY: by the assert above, q_rows holds the block's `rows` rows of `d`
                // values (the last is at ((batch·H + head)·T + q0 + rows − 1)·D + D − 1 <
                // B·H·T·D), and k_rows / v_rows this head's `seen ≤ keys ≤ S` rows of `d`
                // values (the last below (batch·KV + group + 1)·S·D ≤ B·KV·S·D); scores is
                // [rows, seen] contiguous.
                unsafe {
                    // scores[rows, seen] = Q[rows, d] · Kᵀ[d, seen]
                    let q = Strided::rows(q_rows, d);
                    let kt = Strided::transposed(k_rows, d);
                    matmul((rows, seen, d), &mut scores, q, kt);
                }
                for (r, row) in scores.chunks_exact_mut(seen).enumerate() {
                    run(row, visible_keys(start + q0 + r, pad), scale);
                }
                // SAFETY: as above (scores [rows, seen], v_rows' `seen` rows of `d`
                // values); out is [rows, d] contiguous.
                unsafe {
                    // out[rows, d] = P[rows, seen] · V[seen, d]
                    let p = Strided::rows(&scores, seen);
                    let v = Strided::rows(v_rows, d);
                    matmul((rows, d, seen), out, p, v);
                }
            }
            (batch, group, q0, tile)
        })
        .collect();
    let mut out = vec![0.0f32; b * t * h * d];
    for (batch, group, q0, tile) in tiles {
        let rows = BLOCK.min(t - q0);
        for (j, head) in tile.chunks_exact(rows * d).enumerate() {
            for (r, src) in head.chunks_exact(d).enumerate() {
                let at = ((batch * t + q0 + r) * h + group * g + j) * d;
                out[at..at + d].copy_from_slice(src);
            }
        }
    }
    new_f32(out, &[b, t, h * d])
}

/// One score row: divided by `scale`, softmax over the keys `seen`, zero elsewhere.
#[inline(always)]
fn body<const FMA: bool>(row: &mut [f32], seen: std::ops::RangeInclusive<usize>, scale: f32) {
    let (lo, hi) = (*seen.start(), *seen.end());
    row[..lo].fill(0.0);
    row[hi + 1..].fill(0.0);
    let visible = &mut row[lo..=hi];
    for s in visible.iter_mut() {
        *s /= scale;
    }
    softmax_in_place::<FMA>(visible);
}

multiversion!(
    body_avx2,
    body,
    (row: &mut [f32], seen: std::ops::RangeInclusive<usize>, scale: f32)
);
