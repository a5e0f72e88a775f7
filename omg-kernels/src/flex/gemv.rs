//! `y[r, :] = x[r, :] · W + b` for a few rows `r`: the weight `[in, out]` is streamed
//! once, in tiles of long contiguous row segments spread over the threads; each tile's
//! accumulators stay in L1 while its rows go by, four weight rows per pass. An f32
//! tile takes its four rows from the four quarters of its input range, so that four
//! streams run through memory at once (one sequential stream keeps too few reads in
//! flight to reach the memory's bandwidth).
//!
//! The weight is f32, or bf16/f16 ([`few_rows_half`]): then each pass widens its four
//! row segments to f32 in L1 first (a shift for bf16, F16C for f16), so the weight is
//! read from memory at two bytes per value and never exists in f32 as a whole.

use burn::tensor::DType;
use burn_flex::FlexTensor;
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;

use super::linear::FEW_ROWS;
use super::{f32s, madd, multiversion, new_f32};

/// Bytes of f32 accumulators per tile (all its rows), kept in L1.
const TILE_BYTES: usize = 16 << 10;
/// Output columns per f32 tile, at least (an 8 KiB segment of each weight row) and at
/// most (16 KiB): a single input row gets the longer segments.
const COLUMNS: std::ops::RangeInclusive<usize> = 2048..=4096;
/// Output columns per tile of a half weight (an 8 KiB segment of each weight row).
const HALF_COLUMNS: usize = 4096;

/// The weight matrix `[k, n]` as stored.
#[derive(Clone, Copy)]
enum Weights<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
    F16(&'a [f16]),
}

impl Weights<'_> {
    /// The number of weights.
    fn len(self) -> usize {
        match self {
            Self::F32(w) => w.len(),
            Self::Bf16(w) => w.len(),
            Self::F16(w) => w.len(),
        }
    }
}

/// `x` `[…, in]` (≤ FEW_ROWS rows), `weight` `[in, out]`, `bias` `[out]` → `[…, out]`.
pub(crate) fn few_rows(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
    let bias = bias.as_ref().map(f32s);
    let n = weight.layout().shape().dims::<2>()[1];
    let k = weight.layout().shape().dims::<2>()[0].max(1);
    let rows = (x.layout().num_elements() / k).max(1);
    let columns = (TILE_BYTES / (4 * rows)).clamp(*COLUMNS.start(), *COLUMNS.end());
    let out = product(&x, Weights::F32(f32s(&weight)), n, columns, f32s(&x), bias);
    new_f32(out, &out_shape(&x, &weight))
}

/// [`few_rows`] with a bf16/f16 `weight` (contiguous) and f32 `x` and `bias`, as a
/// half-precision `Linear`: `x` and `bias` are rounded to the weight's dtype, the
/// products summed in f32 and the result rounded to that dtype (returned as f32).
pub(crate) fn few_rows_half(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
) -> FlexTensor {
    let dtype = weight.dtype();
    let round: fn(f32) -> f32 = match dtype {
        DType::BF16 => |v| bf16::from_f32(v).to_f32(),
        _ => |v| f16::from_f32(v).to_f32(),
    };
    let ws = match dtype {
        DType::BF16 => Weights::Bf16(weight.as_slice::<bf16>().expect("contiguous bf16")),
        DType::F16 => Weights::F16(weight.as_slice::<f16>().expect("contiguous f16")),
        other => unreachable!("few_rows_half is only called on half weights, not {other:?}"),
    };
    let xs: Vec<f32> = f32s(&x).iter().map(|&v| round(v)).collect();
    let bias: Option<Vec<f32>> = bias
        .as_ref()
        .map(|b| f32s(b).iter().map(|&v| round(v)).collect());
    let n = weight.layout().shape().dims::<2>()[1];
    let mut out = product(&x, ws, n, HALF_COLUMNS, &xs, bias.as_deref());
    for v in &mut out {
        *v = round(*v);
    }
    new_f32(out, &out_shape(&x, &weight))
}

/// A bf16/f16 tensor (contiguous) widened to f32, in parallel chunks (bf16 by a shift,
/// f16 by F16C where the CPU has it).
pub(crate) fn widen(half: FlexTensor) -> FlexTensor {
    const CHUNK: usize = 1 << 16;
    let shape = half.layout().shape().to_vec();
    let n = half.layout().num_elements();
    let mut out = vec![0.0f32; n];
    match half.dtype() {
        DType::BF16 => {
            let src = half.as_slice::<bf16>().expect("contiguous bf16");
            out.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| widen_bf16(s, d));
        }
        DType::F16 => {
            let src = half.as_slice::<f16>().expect("contiguous f16");
            out.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| s.convert_to_f32_slice(d));
        }
        other => unreachable!("widen is only called on half tensors, not {other:?}"),
    }
    new_f32(out, &shape)
}

/// The shape of `x · weight`.
fn out_shape(x: &FlexTensor, weight: &FlexTensor) -> Vec<usize> {
    let mut shape = x.layout().shape().to_vec();
    *shape.last_mut().expect("non-empty shape") = weight.layout().shape().dims::<2>()[1];
    shape
}

/// `xs · ws + bias` (`ws` `[k, n]`) for `x`'s rows, in tiles of `columns` output columns.
fn product(
    x: &FlexTensor,
    ws: Weights<'_>,
    n: usize,
    columns: usize,
    xs: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let shape = x.layout().shape().to_vec();
    let k = *shape.last().expect("linear input has a last dim");
    let rows = shape[..shape.len() - 1].iter().product::<usize>();
    // The sizes every tile (and `avx2::half_slab`'s loads) relies on, checked always: a
    // weight of other than `k` rows would be read past its end, or only in part.
    assert!(
        rows <= FEW_ROWS
            && xs.len() == rows * k
            && ws.len() == k * n
            && bias.is_none_or(|b| b.len() == n),
        "linear kernel: x {shape:?} against a weight of {} values for {n} outputs",
        ws.len()
    );
    let column_blocks = n.div_ceil(columns);
    let f16c = super::isa::isa().f16c;
    // enough tiles for every thread: split the input dim too (partial sums, added below)
    let wanted = 2 * rayon::current_num_threads();
    let k_blocks = wanted
        .div_ceil(column_blocks)
        .clamp(1, k.max(1).div_ceil(64));
    let k_step = k.div_ceil(k_blocks);
    let tiles: Vec<(usize, usize, Vec<f32>)> = (0..column_blocks * k_blocks)
        .into_par_iter()
        .map(|task| {
            let (cb, kb) = (task / k_blocks, task % k_blocks);
            let c0 = cb * columns;
            let width = columns.min(n - c0);
            let k0 = (kb * k_step).min(k);
            let k1 = (k0 + k_step).min(k);
            let mut tile = vec![0.0f32; rows * width];
            run(
                xs,
                ws,
                &mut tile,
                Slab {
                    f16c,
                    k,
                    n,
                    c0,
                    width,
                    k0,
                    k1,
                    rows,
                },
            );
            (c0, width, tile)
        })
        .collect();
    let mut out = vec![0.0f32; rows * n];
    if let Some(bias) = bias {
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(&bias[..n]);
        }
    }
    for (c0, width, tile) in tiles {
        for r in 0..rows {
            let dst = &mut out[r * n + c0..r * n + c0 + width];
            for (o, &t) in dst.iter_mut().zip(&tile[r * width..(r + 1) * width]) {
                *o += t;
            }
        }
    }
    out
}

/// A task's tile: columns `c0..c0 + width` and input rows `k0..k1` of a `[k, n]` weight,
/// for `rows` inputs.
#[derive(Clone, Copy)]
struct Slab {
    /// `isa` allows F16C (with AVX2 and FMA): half weights are widened in registers.
    f16c: bool,
    k: usize,
    n: usize,
    c0: usize,
    width: usize,
    k0: usize,
    k1: usize,
    rows: usize,
}

/// `acc += x0·w0 + x1·w1 + x2·w2 + x3·w3`, element-wise over a segment.
#[inline(always)]
fn pass4<const FMA: bool>(acc: &mut [f32], x: &[f32], w: [&[f32]; 4]) {
    for ((((a, &v0), &v1), &v2), &v3) in acc.iter_mut().zip(w[0]).zip(w[1]).zip(w[2]).zip(w[3]) {
        let t = madd::<FMA>(x[0], v0, *a);
        let t = madd::<FMA>(x[1], v1, t);
        let t = madd::<FMA>(x[2], v2, t);
        *a = madd::<FMA>(x[3], v3, t);
    }
}

/// `acc += x·w`, element-wise over a segment.
#[inline(always)]
fn pass1<const FMA: bool>(acc: &mut [f32], x: f32, w: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(w) {
        *a = madd::<FMA>(x, v, *a);
    }
}

/// bf16 → f32 is a 16-bit shift (vectorizes in the AVX2 copy).
#[inline(always)]
fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits(u32::from(s.to_bits()) << 16);
    }
}

#[inline(always)]
fn body<const FMA: bool>(xs: &[f32], ws: Weights<'_>, tile: &mut [f32], s: Slab) {
    #[cfg(target_arch = "x86_64")]
    if FMA && s.f16c {
        let half = match ws {
            Weights::F32(_) => None,
            Weights::Bf16(w) => Some((w.reinterpret_cast(), true)),
            Weights::F16(w) => Some((w.reinterpret_cast(), false)),
        };
        if let Some((w, is_bf16)) = half {
            // SAFETY: FMA is true only in the copy compiled for AVX2 and FMA, run after
            // `isa` reported them; `s.f16c` is `isa`'s F16C (detected on the CPU); the
            // sizes are `half_slab`'s contract, which it asserts.
            unsafe { avx2::half_slab(xs, w, is_bf16, tile, s) };
            return;
        }
    }
    let Slab {
        k,
        n,
        c0,
        width,
        k0,
        k1,
        rows,
        ..
    } = s;
    let range = |i: usize| i * n + c0..i * n + c0 + width;
    if let Weights::F32(w) = ws {
        // four rows per pass, one from each quarter of the slab: four memory streams
        let q = (k1 - k0) / 4;
        for t in 0..q {
            let ii: [usize; 4] = std::array::from_fn(|j| k0 + j * q + t);
            let segs = ii.map(|i| &w[range(i)]);
            for r in 0..rows {
                let x = ii.map(|i| xs[r * k + i]);
                pass4::<FMA>(&mut tile[r * width..(r + 1) * width], &x, segs);
            }
        }
        for i in k0 + 4 * q..k1 {
            for r in 0..rows {
                pass1::<FMA>(
                    &mut tile[r * width..(r + 1) * width],
                    xs[r * k + i],
                    &w[range(i)],
                );
            }
        }
        return;
    }
    // the half weights (bf16, f16) without F16C: their segments widened into L1
    let mut wide = vec![0.0f32; 4 * width];
    let widen = |i: usize, slot: usize, wide: &mut [f32]| match ws {
        Weights::F32(_) => unreachable!("f32 weights take the loop above"),
        Weights::Bf16(w) => widen_bf16(&w[range(i)], &mut wide[slot * width..(slot + 1) * width]),
        Weights::F16(w) => {
            w[range(i)].convert_to_f32_slice(&mut wide[slot * width..(slot + 1) * width])
        }
    };
    let mut i = k0;
    while i + 4 <= k1 {
        for slot in 0..4 {
            widen(i + slot, slot, &mut wide);
        }
        let segs: [&[f32]; 4] = std::array::from_fn(|j| &wide[j * width..(j + 1) * width]);
        for r in 0..rows {
            let x = &xs[r * k + i..r * k + i + 4];
            pass4::<FMA>(&mut tile[r * width..(r + 1) * width], x, segs);
        }
        i += 4;
    }
    for i in i..k1 {
        widen(i, 0, &mut wide);
        for r in 0..rows {
            pass1::<FMA>(
                &mut tile[r * width..(r + 1) * width],
                xs[r * k + i],
                &wide[..width],
            );
        }
    }
}

multiversion!(
    body_avx2,
    body,
    (xs: &[f32], ws: Weights<'_>, tile: &mut [f32], s: Slab)
);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Slab;

    /// Eight half values at `p` as f32: bf16 by a 16-bit shift, f16 by F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8(p: *const u16, is_bf16: bool) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values at `p`.
        let raw = unsafe { _mm_loadu_si128(p as *const __m128i) };
        if is_bf16 {
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16))
        } else {
            _mm256_cvtph_ps(raw)
        }
    }

    /// One value as f32.
    #[inline(always)]
    fn widen1(v: u16, is_bf16: bool) -> f32 {
        if is_bf16 {
            f32::from_bits(u32::from(v) << 16)
        } else {
            half::f16::from_bits(v).to_f32()
        }
    }

    /// The slab `s` of a half weight `w` (`[k, n]` bit patterns), four weight rows per
    /// pass, each converted in registers and multiplied into the tile's accumulators.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C. The sizes (`w` holds `k·n` values, `xs` `rows·k`,
    /// `tile` `rows·width`, the slab lies inside them) are asserted: a violation panics.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn half_slab(
        xs: &[f32],
        w: &[u16],
        is_bf16: bool,
        tile: &mut [f32],
        s: Slab,
    ) {
        let Slab {
            k,
            n,
            c0,
            width,
            k0,
            k1,
            rows,
            ..
        } = s;
        // the sizes the loads and stores below rely on, checked always
        assert!(
            w.len() >= k * n
                && xs.len() >= rows * k
                && tile.len() >= rows * width
                && c0 + width <= n
                && k1 <= k,
            "half_slab: slab outside its operands"
        );
        let vectors = width / 8 * 8;
        let mut i = k0;
        while i < k1 {
            let step = if i + 4 <= k1 { 4 } else { 1 };
            let seg = |j: usize| w[(i + j) * n + c0..].as_ptr();
            for r in 0..rows {
                let acc = tile[r * width..(r + 1) * width].as_mut_ptr();
                let x = &xs[r * k + i..r * k + i + step];
                let mut c = 0;
                // SAFETY (loads and stores): c + 8 ≤ width, so each load of a weight
                // segment reads (i + j)·n + c0 + c + 7 < (i + j + 1)·n ≤ k·n ≤ w.len()
                // (i + j < k1 ≤ k, c0 + width ≤ n: asserted above), and each access of
                // `acc` stays inside the row's `width` accumulators.
                unsafe {
                    if step == 4 {
                        let (x0, x1) = (_mm256_set1_ps(x[0]), _mm256_set1_ps(x[1]));
                        let (x2, x3) = (_mm256_set1_ps(x[2]), _mm256_set1_ps(x[3]));
                        let (p0, p1, p2, p3) = (seg(0), seg(1), seg(2), seg(3));
                        // two vectors per step: independent chains for the out-of-order core
                        while c + 16 <= vectors {
                            let mut a = _mm256_loadu_ps(acc.add(c));
                            let mut b = _mm256_loadu_ps(acc.add(c + 8));
                            a = _mm256_fmadd_ps(x0, load8(p0.add(c), is_bf16), a);
                            b = _mm256_fmadd_ps(x0, load8(p0.add(c + 8), is_bf16), b);
                            a = _mm256_fmadd_ps(x1, load8(p1.add(c), is_bf16), a);
                            b = _mm256_fmadd_ps(x1, load8(p1.add(c + 8), is_bf16), b);
                            a = _mm256_fmadd_ps(x2, load8(p2.add(c), is_bf16), a);
                            b = _mm256_fmadd_ps(x2, load8(p2.add(c + 8), is_bf16), b);
                            a = _mm256_fmadd_ps(x3, load8(p3.add(c), is_bf16), a);
                            b = _mm256_fmadd_ps(x3, load8(p3.add(c + 8), is_bf16), b);
                            _mm256_storeu_ps(acc.add(c), a);
                            _mm256_storeu_ps(acc.add(c + 8), b);
                            c += 16;
                        }
                        while c < vectors {
                            let mut a = _mm256_loadu_ps(acc.add(c));
                            a = _mm256_fmadd_ps(x0, load8(p0.add(c), is_bf16), a);
                            a = _mm256_fmadd_ps(x1, load8(p1.add(c), is_bf16), a);
                            a = _mm256_fmadd_ps(x2, load8(p2.add(c), is_bf16), a);
                            a = _mm256_fmadd_ps(x3, load8(p3.add(c), is_bf16), a);
                            _mm256_storeu_ps(acc.add(c), a);
                            c += 8;
                        }
                    } else {
                        let (x0, p0) = (_mm256_set1_ps(x[0]), seg(0));
                        while c < vectors {
                            let a = _mm256_loadu_ps(acc.add(c));
                            let a = _mm256_fmadd_ps(x0, load8(p0.add(c), is_bf16), a);
                            _mm256_storeu_ps(acc.add(c), a);
                            c += 8;
                        }
                    }
                }
                // the last width % 8 columns, in the same order of additions
                for c in vectors..width {
                    let mut a = tile[r * width + c];
                    for (j, &xj) in x.iter().enumerate() {
                        a = xj.mul_add(widen1(w[(i + j) * n + c0 + c], is_bf16), a);
                    }
                    tile[r * width + c] = a;
                }
            }
            i += step;
        }
    }
}
