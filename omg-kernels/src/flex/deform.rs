//! The core of multi-scale deformable attention on channels-last values: per query and
//! head, the softmax of its `levels · points` weights and as many bilinear samples of
//! `dh`-vectors, weighted and summed — no location, grid or sample tensor is ever
//! materialised.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, madd, multiversion, new_f32};

/// Most `levels · points` samples per head the kernel takes (OMG-Seg: 3 · 4); the entry
/// runs the fallback for more.
pub(crate) const MAX_SAMPLES: usize = 64;

/// `value` `[B, N, heads, dh]`, `reference` `[B or 1, Nq, 2]`, `offsets`
/// `[B, Nq, heads, levels, points, 2]`, `logits` `[B, Nq, heads, levels·points]` →
/// `[B, Nq, heads·dh]`.
pub(crate) fn ms_deform_attn(
    value: FlexTensor,
    shapes: &[(usize, usize)],
    reference: FlexTensor,
    offsets: FlexTensor,
    logits: FlexTensor,
) -> FlexTensor {
    let [b, n, heads, dh] = value.layout().shape().dims::<4>();
    let [_, nq, _, levels, points, _] = offsets.layout().shape().dims::<6>();
    let shared_reference = reference.layout().shape().dims::<3>()[0] == 1;
    let mut starts = Vec::with_capacity(shapes.len());
    let mut start = 0;
    for &(h, w) in shapes {
        starts.push((start, h, w));
        start += h * w;
    }
    // the shapes `crate::deform` checked (all indexing below is bounds-checked)
    assert!(
        start == n && shapes.len() == levels && levels * points <= MAX_SAMPLES,
        "ms_deform_attn kernel: shapes {shapes:?} do not fit value [.., {n}, ..] and \
         offsets [.., {levels}, {points}, 2]"
    );
    let geometry = Geometry {
        nq,
        n,
        heads,
        dh,
        levels,
        points,
        shared_reference,
    };
    let inputs = Inputs {
        value: f32s(&value),
        reference: f32s(&reference),
        offsets: f32s(&offsets),
        logits: f32s(&logits),
        starts: &starts,
    };
    let mut out = vec![0.0f32; b * nq * heads * dh];
    out.par_chunks_mut(heads * dh)
        .enumerate()
        .with_min_len(64)
        .for_each(|(bq, dst)| run(&inputs, dst, bq, geometry));
    new_f32(out, &[b, nq, heads * dh])
}

#[derive(Clone, Copy)]
struct Geometry {
    nq: usize,
    n: usize,
    heads: usize,
    dh: usize,
    levels: usize,
    points: usize,
    /// One set of reference points for the whole batch.
    shared_reference: bool,
}

/// The kernel's read-only operands.
struct Inputs<'a> {
    value: &'a [f32],
    reference: &'a [f32],
    offsets: &'a [f32],
    logits: &'a [f32],
    /// `(first token, h, w)` of every level.
    starts: &'a [(usize, usize, usize)],
}

/// The output row of query `bq` (= b·Nq + q): `dst` `[heads·dh]`.
#[inline(always)]
fn body<const FMA: bool>(inputs: &Inputs, dst: &mut [f32], bq: usize, g: Geometry) {
    let Geometry {
        nq,
        n,
        heads,
        dh,
        levels,
        points,
        shared_reference,
    } = g;
    let Inputs {
        value,
        reference,
        offsets,
        logits,
        starts,
    } = *inputs;
    let batch = bq / nq;
    let r = if shared_reference { bq % nq } else { bq };
    let (ref_x, ref_y) = (reference[2 * r], reference[2 * r + 1]);
    let samples = levels * points;
    let mut weights = [0.0f32; MAX_SAMPLES];
    for (head, acc) in dst.chunks_exact_mut(dh).enumerate() {
        let sample0 = (bq * heads + head) * samples;
        // softmax over the head's levels·points logits
        let logits = &logits[sample0..sample0 + samples];
        let weights = &mut weights[..samples];
        let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0;
        for (w, &l) in weights.iter_mut().zip(logits) {
            *w = (l - max).exp();
            sum += *w;
        }
        for (l, &(start, h, w)) in starts.iter().enumerate().take(levels) {
            for p in 0..points {
                let s = sample0 + l * points + p;
                let a = weights[l * points + p] / sum;
                let loc_x = ref_x + offsets[2 * s] / w as f32;
                let loc_y = ref_y + offsets[2 * s + 1] / h as f32;
                // grid_sample, align_corners = False: pixel = loc · size − 0.5
                let x = loc_x * w as f32 - 0.5;
                let y = loc_y * h as f32 - 0.5;
                let (x0, y0) = (x.floor(), y.floor());
                let (fx, fy) = (x - x0, y - y0);
                let (x0, y0) = (x0 as isize, y0 as isize);
                let corners = [
                    (x0, y0, (1.0 - fx) * (1.0 - fy)),
                    (x0 + 1, y0, fx * (1.0 - fy)),
                    (x0, y0 + 1, (1.0 - fx) * fy),
                    (x0 + 1, y0 + 1, fx * fy),
                ];
                for (cx, cy, cw) in corners {
                    if cx < 0 || cy < 0 || cx >= w as isize || cy >= h as isize {
                        continue;
                    }
                    let token = batch * n + start + cy as usize * w + cx as usize;
                    let base = (token * heads + head) * dh;
                    let coef = a * cw;
                    for (o, &v) in acc.iter_mut().zip(&value[base..base + dh]) {
                        *o = madd::<FMA>(coef, v, *o);
                    }
                }
            }
        }
    }
}

multiversion!(
    body_avx2,
    body,
    (inputs: &Inputs, dst: &mut [f32], bq: usize, g: Geometry)
);
