//! `silu(gate) ⊙ up` in one pass with a vectorised exp, in place in `gate` when its
//! storage is not shared.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{exp, f32s, multiversion};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `silu(gate) ⊙ up` of same-shaped contiguous tensors (covering their buffers, as the
/// dispatch makes them: `gate`'s storage is written in place when it is not shared).
pub(crate) fn silu_mul(mut gate: FlexTensor, up: FlexTensor) -> FlexTensor {
    // the shapes `crate::silu` checked (the passes below zip the two buffers)
    assert_eq!(
        gate.layout().shape(),
        up.layout().shape(),
        "silu_mul kernel: gate and up shapes"
    );
    let up = f32s(&up);
    if let Some(g) = gate.try_storage_mut::<f32>() {
        assert_eq!(
            g.len(),
            up.len(),
            "silu_mul kernel: gate's buffer is its elements"
        );
        g.par_chunks_mut(CHUNK)
            .zip(up.par_chunks(CHUNK))
            .for_each(|(g, u)| run(None, u, g));
        return gate;
    }
    let src = f32s(&gate);
    let mut out = vec![0.0f32; src.len()];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| run(Some(g), u, o));
    super::new_f32(out, gate.layout().shape())
}

/// `dst = silu(gate) · up`, where `gate` is `dst` itself when `None`.
#[inline(always)]
fn body<const FMA: bool>(gate: Option<&[f32]>, up: &[f32], dst: &mut [f32]) {
    let f = |g: f32, u: f32| g / (1.0 + exp::<FMA>(-g)) * u;
    match gate {
        None => {
            for (d, &u) in dst.iter_mut().zip(up) {
                *d = f(*d, u);
            }
        }
        Some(gate) => {
            for ((d, &g), &u) in dst.iter_mut().zip(gate).zip(up) {
                *d = f(g, u);
            }
        }
    }
}

multiversion!(body_avx2, body, (gate: Option<&[f32]>, up: &[f32], dst: &mut [f32]));
