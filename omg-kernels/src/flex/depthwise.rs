//! Depthwise k×k convolution of an NHWC map: every output pixel accumulates `k²`
//! channel vectors, so the inner loop runs over contiguous channels.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, madd, multiversion, new_f32};

/// `x` `[B, H, W, C]`, `weight` `[C, 1, k, k]` (odd k), `bias` `[C]` → `[B, H, W, C]`.
pub(crate) fn depthwise_nhwc(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
) -> FlexTensor {
    let [b, h, w, c] = x.layout().shape().dims::<4>();
    let k = weight.layout().shape().dims::<4>()[2];
    // the shapes `crate::depthwise` checked (safe code: these keep the answer right)
    assert!(
        weight.layout().shape().dims::<4>() == [c, 1, k, k]
            && k % 2 == 1
            && bias.as_ref().is_none_or(|b| b.layout().num_elements() == c),
        "depthwise_conv2d_nhwc kernel: weight {:?} for x [{b}, {h}, {w}, {c}]",
        weight.layout().shape()
    );
    let wsrc = f32s(&weight);
    // [k, k, C]: the filter taps of one (i, j) are contiguous over channels.
    let mut taps = vec![0.0f32; k * k * c];
    for ch in 0..c {
        for t in 0..k * k {
            taps[t * c + ch] = wsrc[ch * k * k + t];
        }
    }
    let bias = bias.as_ref().map(f32s);
    let src = f32s(&x);
    let mut out = vec![0.0f32; b * h * w * c];
    let geometry = Geometry { h, w, c, k };
    out.par_chunks_mut(w * c)
        .enumerate()
        .for_each(|(row, dst)| run(src, &taps, bias, dst, row, geometry));
    new_f32(out, &[b, h, w, c])
}

#[derive(Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    c: usize,
    k: usize,
}

/// One output row `row` (= b·H + y) of `dst` `[W, C]`.
#[inline(always)]
fn body<const FMA: bool>(
    src: &[f32],
    taps: &[f32],
    bias: Option<&[f32]>,
    dst: &mut [f32],
    row: usize,
    g: Geometry,
) {
    let Geometry { h, w, c, k } = g;
    let pad = k / 2;
    let (b, y) = (row / h, row % h);
    for (x, acc) in dst.chunks_exact_mut(c).enumerate() {
        if let Some(bias) = bias {
            acc.copy_from_slice(bias);
        }
        for i in 0..k {
            let Some(yy) = (y + i).checked_sub(pad).filter(|&yy| yy < h) else {
                continue;
            };
            let in_row = &src[(b * h + yy) * w * c..(b * h + yy + 1) * w * c];
            for j in 0..k {
                let Some(xx) = (x + j).checked_sub(pad).filter(|&xx| xx < w) else {
                    continue;
                };
                let pixel = &in_row[xx * c..(xx + 1) * c];
                let tap = &taps[(i * k + j) * c..(i * k + j + 1) * c];
                for ((a, &v), &t) in acc.iter_mut().zip(pixel).zip(tap) {
                    *a = madd::<FMA>(v, t, *a);
                }
            }
        }
    }
}

multiversion!(
    body_avx2,
    body,
    (src: &[f32], taps: &[f32], bias: Option<&[f32]>, dst: &mut [f32], row: usize, g: Geometry)
);
