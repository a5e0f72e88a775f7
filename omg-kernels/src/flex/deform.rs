//! The sampling core of multi-scale deformable attention on channels-last values: per
//! query and head, `levels · points` bilinear samples of `dh`-vectors, weighted and
//! summed — no sampled tensor is ever materialised.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, madd, multiversion, new_f32};

/// `value` `[B, N, heads, dh]`, `locations` `[B, Nq, heads, levels, points, 2]`,
/// `weights` `[B, Nq, heads, levels, points]` → `[B, Nq, heads·dh]`.
pub(crate) fn ms_deform_sample(
    value: FlexTensor,
    shapes: &[(usize, usize)],
    locations: FlexTensor,
    weights: FlexTensor,
) -> FlexTensor {
    let [b, n, heads, dh] = value.layout().shape().dims::<4>();
    let [_, nq, _, levels, points, _] = locations.layout().shape().dims::<6>();
    let mut starts = Vec::with_capacity(shapes.len());
    let mut start = 0;
    for &(h, w) in shapes {
        starts.push((start, h, w));
        start += h * w;
    }
    debug_assert_eq!(start, n);
    let geometry = Geometry {
        nq,
        n,
        heads,
        dh,
        levels,
        points,
    };
    let (value, locations, weights) = (f32s(&value), f32s(&locations), f32s(&weights));
    let mut out = vec![0.0f32; b * nq * heads * dh];
    out.par_chunks_mut(heads * dh)
        .enumerate()
        .with_min_len(64)
        .for_each(|(bq, dst)| run(value, locations, weights, &starts, dst, bq, geometry));
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
}

/// The output row of query `bq` (= b·Nq + q): `dst` `[heads·dh]`.
#[inline(always)]
fn body<const FMA: bool>(
    value: &[f32],
    locations: &[f32],
    weights: &[f32],
    starts: &[(usize, usize, usize)],
    dst: &mut [f32],
    bq: usize,
    g: Geometry,
) {
    let Geometry {
        nq,
        n,
        heads,
        dh,
        levels,
        points,
    } = g;
    let batch = bq / nq;
    let samples = levels * points;
    for (head, acc) in dst.chunks_exact_mut(dh).enumerate() {
        let sample0 = (bq * heads + head) * samples;
        for (l, &(start, h, w)) in starts.iter().enumerate().take(levels) {
            for p in 0..points {
                let s = sample0 + l * points + p;
                let a = weights[s];
                // grid_sample, align_corners = False: pixel = loc · size − 0.5
                let x = locations[2 * s] * w as f32 - 0.5;
                let y = locations[2 * s + 1] * h as f32 - 0.5;
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
    (
        value: &[f32],
        locations: &[f32],
        weights: &[f32],
        starts: &[(usize, usize, usize)],
        dst: &mut [f32],
        bq: usize,
        g: Geometry,
    )
);
