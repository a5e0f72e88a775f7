//! The products of int8 weights and int16 inputs with AVX-512 VNNI: `vpdpwssd`
//! multiplies 32 pairs of signed 16-bit values and adds each two products into one of
//! 16 i32 lanes (a group's sum stays below 2³¹: 64 · 32767 · 127).
//!
//! * **GEMV** (≤ `FEW_ROWS` rows, decoding): each output channel's row is read once,
//!   group by group, widened to 16 bits in registers and multiplied with every row
//!   (lanes: input channels).
//! * **GEMM** (prefill): the rows are laid out sixteen to a vector ([`PairLanes`]: lanes are
//!   rows), and a tile of up to 3 row vectors × 4 output channels keeps its 24
//!   accumulators in registers while each group's weights, widened once per tile, are
//!   broadcast two at a time (no repacked copy of the weight).

use std::arch::x86_64::*;

use super::activations::QuantRows;
use super::lanes::{PAIR_BLOCK, PairLanes};
use super::tiling::{BLOCK, CHANNELS, LANES, Tile, Tiles, block_tiles, by_block, put_sums};
use super::weights::Packed;
use crate::flex::by_channel;
use crate::linear::FEW_ROWS;
use crate::quant_format::{QUANT_GROUP, QuantBits};

/// Two-value steps per group.
const STEPS: usize = QUANT_GROUP / 2;

/// `[rows, out]` products of an int8 weight and int16 rows (the caller checked that
/// the CPU has AVX-512 VNNI).
pub(crate) fn product(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    assert!(w.layout.bits == QuantBits::Int8, "an int8 weight");
    if x.rows <= FEW_ROWS {
        gemv(x, w)
    } else {
        gemm(x, w)
    }
}

/// The 64 int8 values at `p` widened to two vectors of 32 i16.
///
/// # Safety
/// 64 readable bytes at `p`; the CPU has AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn widen(p: *const i8) -> [__m512i; 2] {
    // SAFETY: 64 bytes at `p` (the caller's contract).
    let (lo, hi) = unsafe {
        (
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(32).cast()),
        )
    };
    [_mm512_cvtepi8_epi16(lo), _mm512_cvtepi8_epi16(hi)]
}

/// Group `g` of channel `c` widened (the short last group through a copy).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn group(w: &Packed<'_>, c: usize, g: usize) -> [__m512i; 2] {
    if g < w.full_groups() {
        let bytes: &[u8; 64] = w.row(c)[g * 64..(g + 1) * 64]
            .try_into()
            .expect("a whole group");
        // SAFETY: 64 bytes at `bytes`.
        unsafe { widen(bytes.as_ptr().cast()) }
    } else {
        let mut tail = [0i8; QUANT_GROUP];
        w.signed_group(c, g, &mut tail);
        // SAFETY: 64 bytes at `tail`.
        unsafe { widen(tail.as_ptr()) }
    }
}

// ---- GEMV ------------------------------------------------------------------------------

fn gemv(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    by_channel(x.rows, w.layout.out_features, CHANNELS, |c0, dst| {
        // SAFETY: `product` is only called when `isa` reported AVX-512 F, BW and VNNI on
        // this CPU.
        unsafe { gemv_channels(x, w, c0, dst) }
    })
}

/// Channels `c0..` (as many as `dst` holds, `rows` results each) of a few-row product.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn gemv_channels(x: &QuantRows, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    macro_rules! rows {
        ($($r:literal),*) => {
            match x.rows {
                $($r => gemv_rows::<$r>(x, w, c0, dst),)*
                rows => unreachable!("the GEMV takes 1 to {FEW_ROWS} rows, not {rows}"),
            }
        };
    }
    const _: () = assert!(FEW_ROWS == 8);
    rows!(1, 2, 3, 4, 5, 6, 7, 8)
}

/// [`gemv_channels`] of `R` rows, with the accumulators in registers (two per row,
/// even and odd groups, so that consecutive groups do not wait on each other).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn gemv_rows<const R: usize>(x: &QuantRows, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    let groups = x.groups;
    let full = w.full_groups();
    // the sizes of the unchecked loads below
    assert!(
        x.rows == R
            && x.q.len() == R * groups * QUANT_GROUP
            && x.scales.len() == R * groups
            && w.groups == groups
            && full <= groups
            && w.row_bytes >= full * QUANT_GROUP
    );
    let xp: [*const i16; R] = std::array::from_fn(|r| x.row(r).as_ptr());
    let sx: [*const f32; R] = std::array::from_fn(|r| x.row_scales(r).as_ptr());
    let mut widened = Vec::new();
    for (i, ys) in dst.chunks_exact_mut(R).enumerate() {
        let c = c0 + i;
        // `groups` scales (`Packed::row_scales`)
        let (row, sw) = (w.row(c).as_ptr(), w.row_scales(c, &mut widened).as_ptr());
        // adds the products of group g (widened weights `wg`) to `acc`
        let add = |g: usize, wg: [__m512i; 2], acc: &mut [__m512; R]| {
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: g < groups, and each row holds groups · 64 values and groups
                // scales, the channel groups scales (all asserted above).
                unsafe {
                    let p = xp[r].add(g * QUANT_GROUP);
                    let lo = _mm512_loadu_si512(p.cast());
                    let hi = _mm512_loadu_si512(p.add(32).cast());
                    let dot = _mm512_dpwssd_epi32(_mm512_setzero_si512(), lo, wg[0]);
                    let dot = _mm512_dpwssd_epi32(dot, hi, wg[1]);
                    let scale = _mm512_set1_ps(*sw.add(g) * *sx[r].add(g));
                    *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, *a);
                }
            }
        };
        // SAFETY (`widen`): group g < full lies inside the row (asserted above).
        let whole = |g: usize| unsafe { widen(row.add(g * QUANT_GROUP).cast()) };
        let (mut even, mut odd) = ([_mm512_setzero_ps(); R], [_mm512_setzero_ps(); R]);
        let mut g = 0;
        while g + 1 < full {
            add(g, whole(g), &mut even);
            add(g + 1, whole(g + 1), &mut odd);
            g += 2;
        }
        if g < full {
            add(g, whole(g), &mut even);
        }
        if full < groups {
            add(full, group(w, c, full), &mut odd);
        }
        for (r, y) in ys.iter_mut().enumerate() {
            *y = _mm512_reduce_add_ps(_mm512_add_ps(even[r], odd[r]));
        }
    }
}

// ---- GEMM ------------------------------------------------------------------------------

fn gemm(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    let lanes = PairLanes::new(x);
    by_block(x.rows, w.layout.out_features, |c0, dst| {
        // SAFETY: `product` is only called when `isa` reported AVX-512 F, BW and VNNI on
        // this CPU.
        unsafe { gemm_block(&lanes, x.rows, w, c0, dst) }
    })
}

/// Channels `c0..c0 + BLOCK` (those that exist) for every row, into `dst`
/// `[rows][BLOCK]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn gemm_block(x: &PairLanes, rows: usize, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    let width = BLOCK.min(w.layout.out_features - c0);
    // SAFETY: the CPU has AVX-512 F, BW and VNNI (this function's features).
    unsafe { block_tiles(&BlockTiles { x, w, c0 }, x.vectors, width, rows, dst) }
}

/// The tiles of the block of channels from `c0`.
struct BlockTiles<'a> {
    x: &'a PairLanes,
    w: &'a Packed<'a>,
    c0: usize,
}

impl Tiles for BlockTiles<'_> {
    unsafe fn tile<const R: usize, const N: usize>(
        &self,
        t: Tile,
        put: &mut impl FnMut(usize, usize, &[f32; LANES]),
    ) {
        // SAFETY: the caller's contract (the CPU has the features of `tile`).
        unsafe { tile::<R, N>(self.x, self.w, self.c0 + t.i0, t.v0, put) }
    }
}

/// `R` row vectors from `v0` × `N` channels from `c` over every group; hands each
/// (vector, channel) result of 16 rows to `put`.
// the register tile indexes several arrays by the same step, vector and channel
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn tile<const R: usize, const N: usize>(
    x: &PairLanes,
    w: &Packed<'_>,
    c: usize,
    v0: usize,
    put: &mut impl FnMut(usize, usize, &[f32; LANES]),
) {
    let mut sum = [[_mm512_setzero_ps(); N]; R];
    for g in 0..x.groups {
        // each channel's group as 32 words of two widened weights
        let mut words = [[0u32; STEPS]; N];
        for (i, words) in words.iter_mut().enumerate() {
            let [lo, hi] = group(w, c + i, g);
            // SAFETY: 32 words = two vectors at `words`.
            unsafe {
                _mm512_storeu_si512(words.as_mut_ptr().cast(), lo);
                _mm512_storeu_si512(words.as_mut_ptr().add(16).cast(), hi);
            }
        }
        let mut q = [&[0i16; PAIR_BLOCK]; R];
        let mut sx = [_mm512_setzero_ps(); R];
        for v in 0..R {
            let (qv, scales) = x.group(v0 + v, g);
            q[v] = qv;
            // SAFETY: 16 values at `scales`.
            sx[v] = unsafe { _mm512_loadu_ps(scales.as_ptr()) };
        }
        let mut acc = [[_mm512_setzero_si512(); N]; R];
        for s in 0..STEPS {
            let mut xv = [_mm512_setzero_si512(); R];
            for v in 0..R {
                // SAFETY: values 32·s .. 32·s + 31 of the PAIR_BLOCK at `q[v]`.
                xv[v] = unsafe { _mm512_loadu_si512(q[v].as_ptr().add(32 * s).cast()) };
            }
            for i in 0..N {
                let b = _mm512_set1_epi32(words[i][s] as i32);
                for v in 0..R {
                    acc[v][i] = _mm512_dpwssd_epi32(acc[v][i], xv[v], b);
                }
            }
        }
        for i in 0..N {
            let sw = _mm512_set1_ps(w.scale(c + i, g));
            for v in 0..R {
                let scale = _mm512_mul_ps(sx[v], sw);
                sum[v][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[v][i]), scale, sum[v][i]);
            }
        }
    }
    put_sums(&sum, put);
}
