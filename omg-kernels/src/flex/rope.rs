//! Rotate-half RoPE row by row: one read of `x` (made contiguous), one write, the same
//! products and sum as the plain-op form (`x·cos + rotated·sin`, no fused multiply-add),
//! so the result is bit-identical to it.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, new_f32};

/// `x` `[B, H, T, D]` (`D` even), `cos`, `sin` `[1, 1, T, D]` → `[B, H, T, D]`.
pub(crate) fn rotate_half(x: FlexTensor, cos: FlexTensor, sin: FlexTensor) -> FlexTensor {
    let [b, h, t, d] = x.layout().shape().dims::<4>();
    let half = d / 2;
    let (xs, cos, sin) = (f32s(&x), f32s(&cos), f32s(&sin));
    // the shapes `crate::rope` checked (safe code: these keep the answer right)
    assert!(
        d % 2 == 0 && cos.len() == t * d && sin.len() == t * d,
        "rotate_half_rope kernel: cos/sin of {} / {} values for x [{b}, {h}, {t}, {d}]",
        cos.len(),
        sin.len()
    );
    let mut out = vec![0.0f32; xs.len()];
    out.par_chunks_mut(d)
        .zip(xs.par_chunks(d))
        .enumerate()
        .with_min_len(64)
        .for_each(|(row, (o, x))| {
            let p = row % t;
            let (c, s) = (&cos[p * d..(p + 1) * d], &sin[p * d..(p + 1) * d]);
            for j in 0..half {
                o[j] = x[j] * c[j] + -x[j + half] * s[j];
                o[j + half] = x[j + half] * c[j + half] + x[j] * s[j + half];
            }
        });
    new_f32(out, &[b, h, t, d])
}
