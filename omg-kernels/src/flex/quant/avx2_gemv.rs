//! The few-row products (decoding) of int8 and int4 weights on CPUs with AVX2 but
//! without AVX-512 VNNI, multiplied in integers:
//!
//! * int8 weights × int16 inputs: `vpmaddwd` multiplies 16 pairs of signed 16-bit
//!   values and adds each two products into one of 8 i32 lanes (a group's sum stays
//!   below 2³¹: 64 · 32767 · 127), the weight's bytes widened to 16 bits in registers;
//! * int4 weights × int8 inputs: `vpmaddubsw` multiplies the weight's unsigned bytes
//!   (`q + 8`, at most 15) by the input's signed ones and adds each two products into
//!   16-bit lanes (at most 2 · 15 · 127, far from saturating), `vpmaddwd` by ones adds
//!   those pairs into i32 lanes; the accumulator starts at `−8 · Σ q_x` of the group, so
//!   the sum is `Σ q_x · q_w` exactly, as in [`super::vnni_int4`].
//!
//! Each output channel's packed row is read once, group by group, and multiplied with
//! every input row; each group's integer sum is scaled by `s_x · s_w` into the row's f32
//! accumulators (two per row, even and odd groups, so that consecutive groups do not
//! wait on each other).

use std::arch::x86_64::*;

use super::activations::QuantRows;
use super::tiling::{AHEAD, CHANNELS, request_ahead};
use super::weights::Packed;
use crate::flex::by_channel;
use crate::linear::FEW_ROWS;
use crate::quant_format::{QUANT_GROUP, QuantBits};

/// `[rows, out]` products of `rows ≤ FEW_ROWS` quantized rows and a packed weight (the
/// caller checked that the CPU has AVX2 and FMA).
pub(crate) fn gemv(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    assert!(
        (1..=FEW_ROWS).contains(&x.rows),
        "the GEMV takes 1 to {FEW_ROWS} rows"
    );
    match w.layout.bits {
        QuantBits::Int8 => by_channel(x.rows, w.layout.out_features, CHANNELS, |c0, dst| {
            // SAFETY: `gemv` is only called when `isa` reported AVX2 and FMA.
            unsafe { channels_int8(x, w, c0, dst) }
        }),
        QuantBits::Int4 => {
            let bytes = x.bytes();
            by_channel(x.rows, w.layout.out_features, CHANNELS, |c0, dst| {
                // SAFETY: `gemv` is only called when `isa` reported AVX2 and FMA.
                unsafe { channels_int4(x, &bytes, w, c0, dst) }
            })
        }
    }
}

/// Calls `$f::<R>` for the `x.rows` of the call (1 to `FEW_ROWS`).
macro_rules! by_rows {
    ($rows:expr, $f:ident($($arg:expr),*)) => {{
        const _: () = assert!(FEW_ROWS == 8);
        match $rows {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            rows => unreachable!("the GEMV takes 1 to {FEW_ROWS} rows, not {rows}"),
        }
    }};
}

/// The sum of the eight lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// One channel's results for `R` rows (into `ys`): `add(g, values, acc)` adds group
/// `g`'s products; the `full` whole groups (values from `whole`) alternate between two
/// accumulator sets, so that consecutive groups do not wait on each other, and a short
/// last group (values from `tail`, when `full < groups`) goes to the second.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn channel_sums<const R: usize, V>(
    full: usize,
    groups: usize,
    whole: impl Fn(usize) -> V,
    tail: impl FnOnce() -> V,
    add: impl Fn(usize, V, &mut [__m256; R]),
    ys: &mut [f32],
) {
    let (mut even, mut odd) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
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
        add(full, tail(), &mut odd);
    }
    for (r, y) in ys.iter_mut().enumerate() {
        *y = reduce(_mm256_add_ps(even[r], odd[r]));
    }
}

// ---- int8 weights ----------------------------------------------------------------------

/// Channels `c0..` (as many as `dst` holds, `rows` results each) of an int8 product.
#[target_feature(enable = "avx2,fma")]
fn channels_int8(x: &QuantRows, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    by_rows!(x.rows, rows_int8(x, w, c0, dst))
}

/// The 64 int8 values at `p` widened to four vectors of 16 i16.
///
/// # Safety
/// 64 readable bytes at `p`; the CPU has AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn widen(p: *const i8) -> [__m256i; 4] {
    // SAFETY: 64 bytes at `p` (the caller's contract).
    unsafe { std::array::from_fn(|j| _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(16 * j).cast()))) }
}

/// [`channels_int8`] of `R` rows.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn rows_int8<const R: usize>(x: &QuantRows, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
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
        let add = |g: usize, wg: [__m256i; 4], acc: &mut [__m256; R]| {
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: g < groups, and each row holds groups · 64 values and groups
                // scales, the channel groups scales (all asserted above).
                unsafe {
                    let p = xp[r].add(g * QUANT_GROUP);
                    let part = |j: usize| {
                        _mm256_madd_epi16(_mm256_loadu_si256(p.add(16 * j).cast()), wg[j])
                    };
                    let dot = _mm256_add_epi32(
                        _mm256_add_epi32(part(0), part(1)),
                        _mm256_add_epi32(part(2), part(3)),
                    );
                    let scale = _mm256_set1_ps(*sw.add(g) * *sx[r].add(g));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, *a);
                }
            }
        };
        // SAFETY (`widen`): group g < full lies inside the row (asserted above).
        let whole = |g: usize| unsafe {
            let p = row.add(g * QUANT_GROUP);
            request_ahead::<AHEAD>(p);
            widen(p.cast())
        };
        let tail = || {
            let mut tail = [0i8; QUANT_GROUP];
            w.signed_group(c, full, &mut tail);
            // SAFETY: 64 bytes at `tail`.
            unsafe { widen(tail.as_ptr()) }
        };
        channel_sums(full, groups, whole, tail, add, ys);
    }
}

// ---- int4 weights ----------------------------------------------------------------------

/// Channels `c0..` (as many as `dst` holds, `rows` results each) of an int4 product of
/// the rows `x` as `bytes`.
#[target_feature(enable = "avx2,fma")]
fn channels_int4(x: &QuantRows, bytes: &[i8], w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    by_rows!(x.rows, rows_int4(x, bytes, w, c0, dst))
}

/// The 64 values of the whole int4 group at `p` (32 bytes; byte j: value j in its low
/// nibble, value j + 32 in its high one) as `q + 8` bytes: values 0–31, then 32–63.
///
/// # Safety
/// 32 readable bytes at `p`; the CPU has AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn whole_group(p: *const u8) -> [__m256i; 2] {
    // SAFETY: 32 bytes at `p` (the caller's contract).
    let v = unsafe { _mm256_loadu_si256(p.cast()) };
    let mask = _mm256_set1_epi8(15);
    [
        _mm256_and_si256(v, mask),
        _mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
    ]
}

/// [`channels_int4`] of `R` rows.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn rows_int4<const R: usize>(
    x: &QuantRows,
    bytes: &[i8],
    w: &Packed<'_>,
    c0: usize,
    dst: &mut [f32],
) {
    let groups = x.groups;
    let (full, offset) = (w.full_groups(), w.offset());
    let group_bytes = QUANT_GROUP / 2;
    // the sizes of the unchecked loads below
    assert!(
        x.rows == R
            && bytes.len() == R * groups * QUANT_GROUP
            && x.sums.len() == R * groups
            && x.scales.len() == R * groups
            && w.groups == groups
            && w.row_bytes >= full * group_bytes
            && full <= groups
    );
    let xp: [*const i8; R] = std::array::from_fn(|r| bytes[r * groups * QUANT_GROUP..].as_ptr());
    let sums: [*const i32; R] = std::array::from_fn(|r| x.row_sums(r).as_ptr());
    let sx: [*const f32; R] = std::array::from_fn(|r| x.row_scales(r).as_ptr());
    let ones = _mm256_set1_epi16(1);
    let mut widened = Vec::new();
    for (i, ys) in dst.chunks_exact_mut(R).enumerate() {
        let c = c0 + i;
        // `groups` scales (`Packed::row_scales`)
        let (row, sw) = (w.row(c).as_ptr(), w.row_scales(c, &mut widened).as_ptr());
        // adds the products of group g (its 64 unsigned values `wu`) to `acc`
        let add = |g: usize, wu: [__m256i; 2], acc: &mut [__m256; R]| {
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: g < groups, and each row holds groups · 64 values, groups sums
                // and groups scales; the channel's groups scales (all asserted above).
                unsafe {
                    let p = xp[r].add(g * QUANT_GROUP);
                    let lo = _mm256_maddubs_epi16(wu[0], _mm256_loadu_si256(p.cast()));
                    let hi = _mm256_maddubs_epi16(wu[1], _mm256_loadu_si256(p.add(32).cast()));
                    let start = _mm256_setr_epi32(-offset * *sums[r].add(g), 0, 0, 0, 0, 0, 0, 0);
                    let dot =
                        _mm256_add_epi32(start, _mm256_madd_epi16(_mm256_add_epi16(lo, hi), ones));
                    let scale = _mm256_set1_ps(*sw.add(g) * *sx[r].add(g));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, *a);
                }
            }
        };
        // SAFETY (`whole_group`): group g < full lies inside the row (asserted above).
        let whole = |g: usize| unsafe {
            let p = row.add(g * group_bytes);
            // one request per 64-byte line: every other group
            if g.is_multiple_of(2) {
                request_ahead::<AHEAD>(p);
            }
            whole_group(p)
        };
        let tail = || {
            let mut tail = [0u8; QUANT_GROUP];
            w.unsigned_group(c, full, &mut tail);
            // SAFETY: 64 bytes at `tail`.
            unsafe {
                [
                    _mm256_loadu_si256(tail.as_ptr().cast()),
                    _mm256_loadu_si256(tail.as_ptr().add(32).cast()),
                ]
            }
        };
        channel_sums(full, groups, whole, tail, add, ys);
    }
}
