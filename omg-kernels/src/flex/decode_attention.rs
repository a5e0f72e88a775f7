//! Causal grouped-query attention of one query position per batch row (decoding) with
//! AVX-512: one task per (batch row, key/value head) runs the group's query heads over
//! that head's visible keys, reading each cached key and value row from memory once
//! (groups of more than `HEADS` heads read them again from cache), with the lines
//! `AHEAD_KEYS` rows on requested ahead. Scores in blocks of `HEADS` query heads ×
//! `KEYS` keys (one 16-lane accumulator each, summed across its lanes at the end),
//! softmax over each head's row, then the weighted sum of the values, `HEADS` query
//! heads × 64 value columns at a time with their accumulators in registers.
//!
//! Each score is `Σ_d q·k` (16 lane sums in order, then added across the lanes), divided
//! by `√D`; each output `Σ_s p_s · v_s` summed in key order, one rounding per
//! multiply-add.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::softmax_in_place;
use crate::visible_keys::visible_keys;

/// f32 values per vector.
const LANES: usize = 16;
/// Keys per block of the score products.
const KEYS: usize = 4;
/// Keys ahead of the ones being read whose lines are requested.
const AHEAD_KEYS: usize = 16;
/// Query heads per block of the score products and per pass of the weighted sums.
const HEADS: usize = 4;
/// Vectors of value columns per pass of the weighted sums (`HEADS · COLUMNS`
/// accumulators, `COLUMNS` value vectors and a broadcast fit the 32 registers).
const COLUMNS: usize = 4;

/// Whether [`one_position`] runs here for head dimension `d`: AVX-512 (F, BW; reported
/// with VNNI) and `d` a non-zero multiple of 16.
pub(crate) fn available(d: usize) -> bool {
    super::isa::isa().avx512_vnni && d > 0 && d.is_multiple_of(LANES)
}

/// `q` `[B, H, 1, D]`, `k`, `v` `[B, KV, S, D]` (the first `keys` positions filled),
/// `left_padding` empty or one count per batch row → `[B, 1, H·D]`, as
/// `causal_attention` defines it for one query position (which checked the operands'
/// sizes; a task's slices are bounds-checked here, the vector code checks its own).
///
/// # Panics
/// Unless [`available`] for `D`, `KV` divides `H` and `keys ≥ 1`, or if the operands
/// are smaller than these shapes.
pub(crate) fn one_position(
    (qs, ks, vs): (&[f32], &[f32], &[f32]),
    [b, h, kv, s, d]: [usize; 5],
    keys: usize,
    left_padding: &[usize],
) -> Vec<f32> {
    assert!(
        available(d) && kv > 0 && h.is_multiple_of(kv) && keys >= 1,
        "decode attention kernel: {h} heads over {kv} key/value heads of dim {d}, {keys} keys"
    );
    let g = h / kv;
    let scale = (d as f64).sqrt() as f32;
    let mut out = vec![0.0f32; b * h * d];
    if out.is_empty() {
        return out;
    }
    // task (batch, group) = batch · KV + group: its query heads and outputs are the
    // contiguous rows (batch · H + group · g ..) · D of `q` and of the output
    out.par_chunks_mut(g * d)
        .enumerate()
        .for_each(|(task, out)| {
            let batch = task / kv;
            let pad = left_padding.get(batch).copied().unwrap_or(0);
            let seen = visible_keys(keys - 1, pad);
            let (lo, n) = (*seen.start(), seen.end() - seen.start() + 1);
            let at = (task * s + lo) * d;
            let heads = &qs[task * g * d..(task + 1) * g * d];
            // SAFETY: `available` (asserted) says the CPU has AVX-512 F and BW.
            unsafe {
                group_avx512(
                    heads,
                    &ks[at..at + n * d],
                    &vs[at..at + n * d],
                    d,
                    scale,
                    out,
                )
            };
        });
    out
}

/// The attention of the query heads `q` (`[g, d]`) over the keys `k` and values `v`
/// (`[n, d]`, all visible) into `out` (`[g, d]`).
///
/// # Safety
/// The CPU has AVX-512 F. The sizes are asserted: a violation panics.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn group_avx512(q: &[f32], k: &[f32], v: &[f32], d: usize, scale: f32, out: &mut [f32]) {
    let (g, n) = (q.len() / d, k.len() / d);
    // the sizes of the unchecked loads and stores below
    assert!(
        d.is_multiple_of(LANES)
            && q.len() == g * d
            && k.len() == n * d
            && v.len() == n * d
            && out.len() == g * d
    );
    let mut scores = vec![0.0f32; g * n];
    for j0 in (0..g).step_by(HEADS) {
        let heads = HEADS.min(g - j0);
        let mut s0 = 0;
        if heads == HEADS {
            while s0 + KEYS <= n {
                // SAFETY: heads j0 .. j0 + HEADS ≤ g of `q` and `scores`, keys
                // s0 .. s0 + KEYS ≤ n of `k`.
                unsafe { score_block(q, k, (n, d), (j0, s0), &mut scores) };
                s0 += KEYS;
            }
        }
        for s in s0..n {
            for j in j0..j0 + heads {
                // SAFETY: head j < g, key s < n.
                unsafe { score(q, k, (n, d), (j, s), &mut scores) };
            }
        }
    }
    for row in scores.chunks_exact_mut(n) {
        for x in row.iter_mut() {
            *x /= scale;
        }
        softmax_in_place::<true>(row);
    }
    for j0 in (0..g).step_by(HEADS) {
        // SAFETY: heads j0 .. j0 + heads ≤ g of `scores` and `out`; `v` is [n, d].
        unsafe {
            match HEADS.min(g - j0) {
                1 => weighted_sums::<1>(&scores, v, d, j0, out),
                2 => weighted_sums::<2>(&scores, v, d, j0, out),
                3 => weighted_sums::<3>(&scores, v, d, j0, out),
                _ => weighted_sums::<4>(&scores, v, d, j0, out),
            }
        }
    }
}

/// `scores[j0 + j, s0 + i] = q[j0 + j] · k[s0 + i]` for `j < HEADS`, `i < KEYS`: per
/// 16 columns, `KEYS` key loads and `HEADS` query loads feed `HEADS · KEYS`
/// multiply-adds. Requests the lines of the keys `AHEAD_KEYS` on when `j0 = 0` (the
/// first pass over the keys, which reads them from memory).
///
/// # Safety
/// The CPU has AVX-512 F; `q` is `[g, d]` and `scores` `[g, n]` with `j0 + HEADS ≤ g`,
/// `k` `[n, d]` with `s0 + KEYS ≤ n`; `d` a multiple of 16.
#[inline(always)]
unsafe fn score_block(
    q: &[f32],
    k: &[f32],
    (n, d): (usize, usize),
    (j0, s0): (usize, usize),
    scores: &mut [f32],
) {
    const _: () = assert!(HEADS == 4 && KEYS == 4);
    if j0 == 0 {
        let ahead = k.get((s0 + AHEAD_KEYS) * d..((s0 + AHEAD_KEYS + KEYS) * d).min(k.len()));
        for line in ahead.unwrap_or(&[]).chunks(LANES) {
            // SAFETY: a prefetch reads nothing architecturally (SSE, on every x86-64 CPU).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
        }
    }
    let (q, k) = (q.as_ptr(), k.as_ptr());
    // SAFETY (of every vector operation): AVX-512 F (the contract); the loads read rows
    // j0 .. j0 + HEADS of `q` and s0 .. s0 + KEYS of `k` at columns c .. c + 16 ≤ d,
    // and the stores write the scores of those heads and keys, inside the slices.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); KEYS]; HEADS];
        for c in (0..d).step_by(LANES) {
            let mut keys = [_mm512_setzero_ps(); KEYS];
            for (i, key) in keys.iter_mut().enumerate() {
                *key = _mm512_loadu_ps(k.add((s0 + i) * d + c));
            }
            for (j, a) in acc.iter_mut().enumerate() {
                let qv = _mm512_loadu_ps(q.add((j0 + j) * d + c));
                for (x, &key) in a.iter_mut().zip(&keys) {
                    *x = _mm512_fmadd_ps(qv, key, *x);
                }
            }
        }
        // two heads' four keys per eight lane sums
        for pair in [0, 2] {
            let [a, b] = [acc[pair], acc[pair + 1]];
            let sums = sum8([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]);
            let at = scores.as_mut_ptr().add((j0 + pair) * n + s0);
            _mm_storeu_ps(at, _mm256_castps256_ps128(sums));
            _mm_storeu_ps(at.add(n), _mm256_extractf128_ps::<1>(sums));
        }
    }
}

/// `scores[j, s] = q[j] · k[s]`.
///
/// # Safety
/// The CPU has AVX-512 F; `q` is `[g, d]` and `scores` `[g, n]` with `j < g`, `k`
/// `[n, d]` with `s < n`; `d` a multiple of 16.
#[inline(always)]
unsafe fn score(
    q: &[f32],
    k: &[f32],
    (n, d): (usize, usize),
    (j, s): (usize, usize),
    scores: &mut [f32],
) {
    let (q, k) = (q.as_ptr(), k.as_ptr());
    // SAFETY (of every vector operation): AVX-512 F (the contract); the loads read row
    // j of `q` and row s of `k` at columns c .. c + 16 ≤ d, inside the slices.
    unsafe {
        let mut acc = _mm512_setzero_ps();
        for c in (0..d).step_by(LANES) {
            acc = _mm512_fmadd_ps(
                _mm512_loadu_ps(q.add(j * d + c)),
                _mm512_loadu_ps(k.add(s * d + c)),
                acc,
            );
        }
        scores[j * n + s] = _mm512_reduce_add_ps(acc);
    }
}

/// The lane sums of the eight vectors `acc`, in order: each vector's halves added, then
/// pairs of lanes by a tree of horizontal adds.
///
/// # Safety
/// The CPU has AVX-512 F.
#[inline(always)]
unsafe fn sum8(acc: [__m512; 8]) -> __m256 {
    // SAFETY: AVX-512 F (with AVX, which it implies; the contract).
    unsafe {
        let mut h = [_mm256_setzero_ps(); 8];
        for (h, a) in h.iter_mut().zip(acc) {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
            *h = _mm256_add_ps(_mm512_castps512_ps256(a), high);
        }
        // [sums of lanes 0-3 of h0 .. h3 | of lanes 4-7 of h0 .. h3], likewise h4 .. h7
        let low = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
        let high = _mm256_hadd_ps(_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(low, high),
            _mm256_permute2f128_ps::<0x31>(low, high),
        )
    }
}

/// `out[j0 + j] = Σ_s scores[j0 + j, s] · v[s]` for `j < H`.
///
/// # Safety
/// The CPU has AVX-512 F; `scores` is `[g, n]`, `v` `[n, d]`, `out` `[g, d]`,
/// `j0 + H ≤ g`, `d` a multiple of 16.
#[inline(always)]
unsafe fn weighted_sums<const H: usize>(
    scores: &[f32],
    v: &[f32],
    d: usize,
    j0: usize,
    out: &mut [f32],
) {
    let n = v.len() / d;
    let mut c0 = 0;
    while c0 < d {
        // SAFETY: columns c0 .. c0 + 16·vectors ≤ d (the contract's shapes).
        unsafe {
            match ((d - c0) / LANES).min(COLUMNS) {
                1 => columns::<H, 1>(scores, v, (n, d, j0, c0), out),
                2 => columns::<H, 2>(scores, v, (n, d, j0, c0), out),
                3 => columns::<H, 3>(scores, v, (n, d, j0, c0), out),
                _ => columns::<H, COLUMNS>(scores, v, (n, d, j0, c0), out),
            }
        }
        c0 += ((d - c0) / LANES).min(COLUMNS) * LANES;
    }
}

/// Heads `j0 .. j0 + H` × value columns `c0 .. c0 + 16·C` of [`weighted_sums`].
///
/// # Safety
/// As [`weighted_sums`] asks, and `c0 + 16·C ≤ d`.
#[inline(always)]
unsafe fn columns<const H: usize, const C: usize>(
    scores: &[f32],
    v: &[f32],
    (n, d, j0, c0): (usize, usize, usize, usize),
    out: &mut [f32],
) {
    let (p, v, o) = (scores.as_ptr(), v.as_ptr(), out.as_mut_ptr());
    // SAFETY (of every vector operation): AVX-512 F (the contract); score (j0 + j, s)
    // is at (j0 + j)·n + s < g·n, value row s's columns c0 .. c0 + 16·C ≤ d inside `v`,
    // output row j0 + j's inside `out`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); C]; H];
        for s in 0..n {
            if c0 == 0 && s + AHEAD_KEYS < n {
                for i in (0..d).step_by(LANES) {
                    _mm_prefetch::<_MM_HINT_T0>(v.add((s + AHEAD_KEYS) * d + i).cast());
                }
            }
            let mut row = [_mm512_setzero_ps(); C];
            for (i, r) in row.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(v.add(s * d + c0 + i * LANES));
            }
            for (j, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*p.add((j0 + j) * n + s));
                for (x, &r) in a.iter_mut().zip(&row) {
                    *x = _mm512_fmadd_ps(w, r, *x);
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            for (i, &x) in a.iter().enumerate() {
                _mm512_storeu_ps(o.add((j0 + j) * d + c0 + i * LANES), x);
            }
        }
    }
}
