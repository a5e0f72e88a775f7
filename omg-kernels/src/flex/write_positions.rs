//! Cache positions written row by row into the cache's own memory (copied first only
//! when another tensor shares it).

use burn_flex::FlexTensor;

use super::f32s;

/// `cache` `[B, H, S, D]` with `value` `[B, H, T, D]` at positions `start …`.
pub(crate) fn write_positions(
    mut cache: FlexTensor,
    start: usize,
    value: FlexTensor,
) -> FlexTensor {
    let [b, h, s, d] = cache.layout().shape().dims::<4>();
    let t = value.layout().shape().dims::<4>()[2];
    let src = f32s(&value);
    // the shapes `crate::write_positions` checked (safe code: these keep the answer right)
    assert!(
        start + t <= s && src.len() == b * h * t * d,
        "write_positions kernel: {} values for [{b}, {h}, {t}, {d}] at {start} of S = {s}",
        src.len()
    );
    // the cache's own buffer when it is not shared (else a copy of it)
    let dst = cache.storage_mut::<f32>();
    for (head, rows) in src.chunks_exact(t * d).enumerate() {
        let at = (head * s + start) * d;
        dst[at..at + t * d].copy_from_slice(rows);
    }
    cache
}
