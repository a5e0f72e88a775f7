//! Rotate-half RoPE row by row: one read of `x` (made contiguous), one write, the same
//! products and sum as the plain-op form (`x·cos + rotated·sin`, no fused multiply-add),
//! so the result is bit-identical to it. The heads of a fused projection are gathered
//! (and rotated) the same way, one output row at a time.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, new_f32};

/// `x` `[B, H, T, D]` (`D` even), `cos`, `sin` `[1, 1, T, D]` → `[B, H, T, D]`.
pub(crate) fn rotate_half(x: FlexTensor, cos: FlexTensor, sin: FlexTensor) -> FlexTensor {
    let [b, h, t, d] = x.layout().shape().dims::<4>();
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
            rotate_row(o, x, &cos[p * d..(p + 1) * d], &sin[p * d..(p + 1) * d]);
        });
    new_f32(out, &[b, h, t, d])
}

/// `qkv` `[B, T, KV, P, D]`, slots `first … first + count − 1` of each group →
/// `[B, KV·count, T, D]`, rotated with `rope = (cos, sin)` (`[1, 1, T, D]`, `D` even)
/// or copied.
pub(crate) fn grouped_heads(
    qkv: FlexTensor,
    first: usize,
    count: usize,
    rope: Option<(FlexTensor, FlexTensor)>,
) -> FlexTensor {
    let [b, t, kv, p, d] = qkv.layout().shape().dims::<5>();
    let src = f32s(&qkv);
    let tables = rope.as_ref().map(|(c, s)| (f32s(c), f32s(s)));
    // the shapes `crate::grouped_heads` checked (safe code: these keep the answer right)
    assert!(
        count > 0
            && first + count <= p
            && src.len() == b * t * kv * p * d
            && tables.is_none_or(|(c, s)| d % 2 == 0 && c.len() == t * d && s.len() == t * d),
        "grouped_heads kernel: {} values for qkv [{b}, {t}, {kv}, {p}, {d}], slots {first} + \
         {count}",
        src.len()
    );
    let heads = kv * count;
    let mut out = vec![0.0f32; b * heads * t * d];
    out.par_chunks_mut(d)
        .enumerate()
        .with_min_len(64)
        .for_each(|(row, o)| {
            // output row (batch, head, position) reads slot first + j of group g there
            let (pos, head, batch) = (row % t, (row / t) % heads, row / (t * heads));
            let (g, j) = (head / count, head % count);
            let at = (((batch * t + pos) * kv + g) * p + first + j) * d;
            let x = &src[at..at + d];
            match tables {
                Some((cos, sin)) => rotate_row(
                    o,
                    x,
                    &cos[pos * d..(pos + 1) * d],
                    &sin[pos * d..(pos + 1) * d],
                ),
                None => o.copy_from_slice(x),
            }
        });
    new_f32(out, &[b, heads, t, d])
}

/// One row: `o = x·c + rotate_half(x)·s`, `rotate_half([x₁, x₂]) = [−x₂, x₁]`.
#[inline]
fn rotate_row(o: &mut [f32], x: &[f32], c: &[f32], s: &[f32]) {
    let half = x.len() / 2;
    for j in 0..half {
        o[j] = x[j] * c[j] + -x[j + half] * s[j];
        o[j + half] = x[j + half] * c[j + half] + x[j] * s[j + half];
    }
}
