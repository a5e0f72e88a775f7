//! Exact GELU with a vectorisable erf (Eigen's rational approximation, ±1 beyond
//! ±3.92; within a few ulp of erf in f32).

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{madd, multiversion, new_f32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// GELU of a contiguous f32 tensor; in place when the tensor's storage is not shared.
pub(crate) fn gelu(mut x: FlexTensor) -> FlexTensor {
    if let Some(data) = x.try_storage_mut::<f32>() {
        data.par_chunks_mut(CHUNK).for_each(|c| run(None, c));
        return x;
    }
    let src = super::f32s(&x);
    let mut out = vec![0.0; src.len()];
    out.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(o, s)| run(Some(s), o));
    new_f32(out, x.layout().shape())
}

/// erf(x) in f32.
#[inline(always)]
pub(crate) fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = madd::<FMA>(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    p = madd::<FMA>(x2, p, -2.101_024e-6);
    p = madd::<FMA>(x2, p, -5.692_506_4e-5);
    p = madd::<FMA>(x2, p, -7.349_906_3e-4);
    p = madd::<FMA>(x2, p, -2.954_600_2e-3);
    p = madd::<FMA>(x2, p, -1.609_603_3e-2);
    p *= x;
    let mut q = madd::<FMA>(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    q = madd::<FMA>(x2, q, -1.682_827e-3);
    q = madd::<FMA>(x2, q, -7.373_329_3e-3);
    q = madd::<FMA>(x2, q, -1.426_473_9e-2);
    // beyond ±3.92, erf rounds to ±1 in f32 (the rational form stops a few ulp short)
    if x2 > 3.92 * 3.92 {
        1.0f32.copysign(x)
    } else {
        p / q
    }
}

#[inline(always)]
fn body<const FMA: bool>(src: Option<&[f32]>, dst: &mut [f32]) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    match src {
        None => {
            for v in dst.iter_mut() {
                let x = *v;
                *v = 0.5 * x * (1.0 + erf::<FMA>(x * FRAC_1_SQRT_2));
            }
        }
        Some(src) => {
            for (o, &x) in dst.iter_mut().zip(src) {
                *o = 0.5 * x * (1.0 + erf::<FMA>(x * FRAC_1_SQRT_2));
            }
        }
    }
}

multiversion!(body_avx2, body, (src: Option<&[f32]>, dst: &mut [f32]));
