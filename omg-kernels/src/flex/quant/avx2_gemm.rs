//! The GEMMs (more than `FEW_ROWS` rows: prefill) of both weight formats in integers on
//! x86-64 CPUs with AVX2 and FMA but without AVX-512 VNNI.
//!
//! The input rows are laid out sixteen to a vector as for the AVX-512 GEMMs
//! ([`PairLanes`], [`QuadLanes`]); a register tile takes one row vector as two halves of
//! eight rows (lanes are rows) × up to [`NR`] output channels (int8) or [`NR4`] (int4),
//! and broadcasts each channel's weights one 32-bit word at a time:
//!
//! * **int8 weights, int16 inputs**: `vpmaddwd` multiplies two input channels of eight
//!   rows by the channel's two weights (widened to 16 bits) and adds the pair into the
//!   row's i32 lane (a group's sum stays below 2³¹: 64 · 32767 · 127);
//! * **int4 weights, int8 inputs**: `vpmaddubsw` multiplies four input channels of eight
//!   rows by the channel's four `q + 8` bytes and adds them in pairs into i16 lanes.
//!   Each pair is at most 2 · 15 · 127 = 3810 in size, so eight steps add up in i16
//!   without saturating (30 480 < 2¹⁵) before `vpmaddwd` by ones widens them into the
//!   i32 accumulator, which starts at `−8 · Σ q_x` of the row's group.
//!
//! Each group's exact integer sums are then scaled by `s_x · s_w` into f32 sums, as in
//! the AVX-512 kernels. A block of [`BLOCK`] channels is done in passes over
//! [`PASS_GROUPS`] groups: the pass's weights are first laid out as the words each tile
//! broadcasts, in the order it reads them ([`Words`]); then each row vector's groups of
//! the pass (8 KiB of int4 inputs, 16 KiB of int16 ones: they stay in the L1 cache) meet
//! every tile of the block, and the tiles add their sums into the block's f32 totals.

use std::arch::x86_64::*;
use std::ops::Range;

use super::activations::QuantRows;
use super::lanes::{PairLanes, QuadLanes};
use super::tiling::{BLOCK, LANES, by_block};
use super::weights::Packed;
use crate::quant_format::{QUANT_GROUP, QuantBits};

/// Output channels per block of [`Words`], and per register tile of the int8 GEMM
/// (its accumulators: 2 halves × 4 channels i32).
const NR: usize = 4;
/// Output channels per register tile of the int4 GEMM (2 halves × 2 channels of i16
/// pair sums and of i32 sums in registers).
const NR4: usize = 2;
/// Groups per pass over a block.
const PASS_GROUPS: usize = 8;
/// Tiles per block.
const TILES: usize = BLOCK / NR;
/// Rows per half of a row vector (the i32 lanes of one AVX2 register).
const HALF: usize = LANES / 2;
/// Four-value steps per group (int4 weights).
const QUAD_STEPS: usize = QUANT_GROUP / 4;
/// Two-value steps per group (int8 weights).
const PAIR_STEPS: usize = QUANT_GROUP / 2;

/// `[rows, out]` products of quantized rows (more than `FEW_ROWS`) and a weight (the
/// caller checked that the CPU has AVX2 and FMA).
pub(crate) fn gemm(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    let (rows, n) = (x.rows, w.layout.out_features);
    assert_eq!(x.groups, w.groups, "the input's groups and the weight's");
    match w.layout.bits {
        QuantBits::Int8 => {
            let lanes = PairLanes::new(x);
            by_block(rows, n, |c0, dst| {
                let mut totals = Totals::new(lanes.vectors);
                for g0 in (0..x.groups).step_by(PASS_GROUPS) {
                    let words =
                        Words::<PAIR_STEPS>::int8(w, c0, g0..x.groups.min(g0 + PASS_GROUPS));
                    // SAFETY: `gemm` is only called when `isa` reported AVX2 and FMA.
                    unsafe { int8_pass(&lanes, &words, &mut totals) }
                }
                totals.write(rows, dst);
            })
        }
        QuantBits::Int4 => {
            let lanes = QuadLanes::new(x, w.offset());
            by_block(rows, n, |c0, dst| {
                let mut totals = Totals::new(lanes.vectors);
                for g0 in (0..x.groups).step_by(PASS_GROUPS) {
                    let words =
                        Words::<QUAD_STEPS>::int4(w, c0, g0..x.groups.min(g0 + PASS_GROUPS));
                    // SAFETY: `gemm` is only called when `isa` reported AVX2 and FMA.
                    unsafe { int4_pass(&lanes, &words, &mut totals) }
                }
                totals.write(rows, dst);
            })
        }
    }
}

/// A block's f32 sums as the tiles add them: `[vector][BLOCK channels][16 rows]`.
struct Totals {
    sums: Vec<f32>,
}

impl Totals {
    fn new(vectors: usize) -> Self {
        Self {
            sums: vec![0.0; vectors * BLOCK * LANES],
        }
    }

    /// The 16 row sums of vector `v` and block channel `i`.
    fn at(&mut self, v: usize, i: usize) -> &mut [f32; LANES] {
        let k = (v * BLOCK + i) * LANES;
        (&mut self.sums[k..k + LANES]).try_into().expect("16 sums")
    }

    /// Writes the sums of the rows that exist into `dst` `[rows][BLOCK]`.
    fn write(&self, rows: usize, dst: &mut [f32]) {
        for (v, vector) in self.sums.chunks_exact(BLOCK * LANES).enumerate() {
            for (i, ys) in vector.chunks_exact(LANES).enumerate() {
                for (lane, &y) in ys.iter().enumerate() {
                    let r = v * LANES + lane;
                    if r < rows {
                        dst[r * BLOCK + i] = y;
                    }
                }
            }
        }
    }
}

/// A block's weights over a pass's groups as the words its tiles broadcast, each tile's
/// together (`[tile][group][NR][STEPS]`; each word holds the `64 / STEPS` values of one
/// step), and their scales (`[tile][group][NR]`); 0 past the last channel.
struct Words<const STEPS: usize> {
    /// Channels of the block that exist.
    width: usize,
    /// The groups.
    groups: Range<usize>,
    words: Vec<u32>,
    scales: Vec<f32>,
}

impl<const STEPS: usize> Words<STEPS> {
    /// The pass with each channel's group words from `group_words(c, g, words)`.
    fn new(
        w: &Packed<'_>,
        c0: usize,
        groups: Range<usize>,
        mut group_words: impl FnMut(usize, usize, &mut [u32]),
    ) -> Self {
        let width = BLOCK.min(w.layout.out_features - c0);
        let len = groups.len();
        let mut words = vec![0u32; TILES * len * STEPS * NR];
        let mut scales = vec![0.0f32; TILES * len * NR];
        let mut widened = Vec::new();
        for i in 0..width {
            let (t, k) = (i / NR, i % NR);
            let sw = w.row_scales(c0 + i, &mut widened);
            for (j, g) in groups.clone().enumerate() {
                let at = ((t * len + j) * NR + k) * STEPS;
                group_words(c0 + i, g, &mut words[at..at + STEPS]);
                scales[(t * len + j) * NR + k] = sw[g];
            }
        }
        Self {
            width,
            groups,
            words,
            scales,
        }
    }

    /// Tile `t`'s words (`[group][NR][STEPS]`) and scales (`[group][NR]`).
    fn tile(&self, t: usize) -> (&[u32], &[f32]) {
        let len = self.groups.len();
        (
            &self.words[t * len * STEPS * NR..(t + 1) * len * STEPS * NR],
            &self.scales[t * len * NR..(t + 1) * len * NR],
        )
    }
}

impl Words<PAIR_STEPS> {
    /// int8 weights: each word two consecutive values widened to i16 (low half first).
    /// The caller checked that the CPU has AVX2.
    fn int8(w: &Packed<'_>, c0: usize, groups: Range<usize>) -> Self {
        let k = w.layout.in_features;
        Self::new(w, c0, groups, |c, g, words| {
            let row = w.row(c);
            let k0 = g * QUANT_GROUP;
            let mut tail = [0u8; QUANT_GROUP];
            let b: &[u8; QUANT_GROUP] = if k0 + QUANT_GROUP <= k {
                row[k0..k0 + QUANT_GROUP].try_into().expect("64 bytes")
            } else {
                tail[..k - k0].copy_from_slice(&row[k0..k]);
                &tail
            };
            // SAFETY: only called (from `gemm`) when `isa` reported AVX2.
            unsafe { widen_int8(b, words) }
        })
    }
}

impl Words<QUAD_STEPS> {
    /// int4 weights: each word four consecutive `q + 8` bytes. The caller checked that
    /// the CPU has AVX2.
    fn int4(w: &Packed<'_>, c0: usize, groups: Range<usize>) -> Self {
        let full = w.full_groups();
        Self::new(w, c0, groups, |c, g, words| {
            if g < full {
                let b: &[u8; 32] = w.row(c)[g * 32..(g + 1) * 32].try_into().expect("32 bytes");
                // SAFETY: only called (from `gemm`) when `isa` reported AVX2.
                unsafe { unpack_int4(b, words) }
            } else {
                let mut tail = [0u8; QUANT_GROUP];
                w.unsigned_group(c, g, &mut tail);
                for (o, b) in words.iter_mut().zip(tail.chunks_exact(4)) {
                    *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        })
    }
}

/// A group's 64 int8 values widened to i16, in order: its 32 words.
#[target_feature(enable = "avx2")]
fn widen_int8(b: &[u8; QUANT_GROUP], words: &mut [u32]) {
    assert_eq!(words.len(), PAIR_STEPS);
    for h in 0..4 {
        // SAFETY: bytes 16·h .. 16·h + 15 of the 64 at `b`; words 8·h .. 8·h + 7 of the
        // 32 at `words` (asserted).
        unsafe {
            let v = _mm_loadu_si128(b[16 * h..].as_ptr().cast());
            _mm256_storeu_si256(words[8 * h..].as_mut_ptr().cast(), _mm256_cvtepi8_epi16(v));
        }
    }
}

/// A whole int4 group as stored (byte j: value j in its low nibble, value j + 32 in its
/// high one) as its 16 words of four `q + 8` bytes each, in order.
#[target_feature(enable = "avx2")]
fn unpack_int4(b: &[u8; 32], words: &mut [u32]) {
    assert_eq!(words.len(), QUAD_STEPS);
    let mask = _mm256_set1_epi8(15);
    // SAFETY: the 32 bytes at `b`; words 0..8 and 8..16 of the 16 at `words` (asserted).
    unsafe {
        let v = _mm256_loadu_si256(b.as_ptr().cast());
        let (lo, hi) = (
            _mm256_and_si256(v, mask),
            _mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
        );
        _mm256_storeu_si256(words.as_mut_ptr().cast(), lo);
        _mm256_storeu_si256(words[8..].as_mut_ptr().cast(), hi);
    }
}

/// Every tile of a pass: each row vector of `x` × `step` block channels at a time from
/// `words`, through `tile::<N>` for the widths `N` listed, added into `totals`.
macro_rules! tiles {
    ($tile:ident, $step:expr, [$($n:literal),*], $x:expr, $words:expr, $totals:expr) => {{
        let (x, words, totals) = ($x, $words, $totals);
        assert!(words.groups.end <= x.groups && totals.sums.len() == x.vectors * BLOCK * LANES);
        for v in 0..x.vectors {
            for i0 in (0..words.width).step_by($step) {
                match $step.min(words.width - i0) {
                    $($n => $tile::<$n>(x, words, v, i0, totals),)*
                    n => unreachable!("{n} channels"),
                }
            }
        }
    }};
}

/// Adds one pass of a block's int8 weights times every row vector into `totals`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn int8_pass(x: &PairLanes, words: &Words<PAIR_STEPS>, totals: &mut Totals) {
    tiles!(int8_tile, NR, [1, 2, 3, 4], x, words, totals)
}

/// Row vector `v` × the `N` block channels from `i0` over the pass's groups, added into
/// `totals`.
// the register tile indexes several arrays by the same half and channel
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn int8_tile<const N: usize>(
    x: &PairLanes,
    words: &Words<PAIR_STEPS>,
    v: usize,
    i0: usize,
    totals: &mut Totals,
) {
    let (tw, ts) = words.tile(i0 / NR);
    // a bound the compiler cannot see through keeps the step loop a loop, so its
    // accumulators stay in registers (unrolled, the adds get reassociated and spilled)
    let steps = std::hint::black_box(PAIR_STEPS).min(PAIR_STEPS);
    let mut sum = [[_mm256_setzero_ps(); N]; 2];
    for (j, g) in words.groups.clone().enumerate() {
        let (q, sx) = x.group(v, g);
        let wg: &[u32; PAIR_STEPS * NR] = tw[j * PAIR_STEPS * NR..(j + 1) * PAIR_STEPS * NR]
            .try_into()
            .expect("a group's words");
        let (qp, wp) = (q.as_ptr(), wg.as_ptr());
        let mut acc = [[_mm256_setzero_si256(); N]; 2];
        for s in 0..steps {
            // SAFETY: values 32·s .. 32·s + 31 of the 1024 at `q`.
            let (x0, x1) = unsafe {
                (
                    _mm256_loadu_si256(qp.add(32 * s).cast()),
                    _mm256_loadu_si256(qp.add(32 * s + 16).cast()),
                )
            };
            for i in 0..N {
                // SAFETY: word i·PAIR_STEPS + s of the NR·PAIR_STEPS at `wg` (i < N ≤ NR).
                let b = _mm256_set1_epi32(unsafe { *wp.add(i * PAIR_STEPS + s) } as i32);
                acc[0][i] = _mm256_add_epi32(acc[0][i], _mm256_madd_epi16(x0, b));
                acc[1][i] = _mm256_add_epi32(acc[1][i], _mm256_madd_epi16(x1, b));
            }
        }
        scale_into(&mut sum, &acc, sx, &ts[j * NR..j * NR + N]);
    }
    add_sums(&sum, v, i0, totals);
}

/// Adds one pass of a block's int4 weights times every row vector into `totals`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn int4_pass(x: &QuadLanes, words: &Words<QUAD_STEPS>, totals: &mut Totals) {
    tiles!(int4_tile, NR4, [1, 2], x, words, totals)
}

/// Row vector `v` × the `N` block channels from `i0` over the pass's groups, added into
/// `totals`.
// the register tile indexes several arrays by the same half and channel
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn int4_tile<const N: usize>(
    x: &QuadLanes,
    words: &Words<QUAD_STEPS>,
    v: usize,
    i0: usize,
    totals: &mut Totals,
) {
    /// Steps whose pair sums add up in i16 (8 · 3810 < 2¹⁵).
    const RUN: usize = 8;
    const { assert!(N <= NR4 && NR.is_multiple_of(NR4)) };
    // the tile's channels are k0 .. k0 + N of the words' block i0 / NR
    let ((tw, ts), k0) = (words.tile(i0 / NR), i0 % NR);
    // a bound the compiler cannot see through keeps the step loop a loop, so its
    // accumulators stay in registers (unrolled, the adds get reassociated and spilled)
    let run_len = std::hint::black_box(RUN).min(RUN);
    let ones = _mm256_set1_epi16(1);
    let mut sum = [[_mm256_setzero_ps(); N]; 2];
    for (j, g) in words.groups.clone().enumerate() {
        let (q, start, sx) = x.group(v, g);
        let wg: &[u32; QUAD_STEPS * NR] = tw[j * QUAD_STEPS * NR..(j + 1) * QUAD_STEPS * NR]
            .try_into()
            .expect("a group's words");
        let (qp, wp) = (q.as_ptr(), wg[k0 * QUAD_STEPS..].as_ptr());
        let mut acc = [[_mm256_setzero_si256(); N]; 2];
        for h in 0..2 {
            // SAFETY: starts 8·h .. 8·h + 7 of the 16 at `start`.
            acc[h] = [unsafe { _mm256_loadu_si256(start[8 * h..].as_ptr().cast()) }; N];
        }
        for run in 0..QUAD_STEPS / RUN {
            let mut pairs = [[_mm256_setzero_si256(); N]; 2];
            for s in run * RUN..run * RUN + run_len {
                // SAFETY: bytes 64·s .. 64·s + 63 of the 1024 at `q`.
                let (x0, x1) = unsafe {
                    (
                        _mm256_loadu_si256(qp.add(64 * s).cast()),
                        _mm256_loadu_si256(qp.add(64 * s + 32).cast()),
                    )
                };
                for i in 0..N {
                    // SAFETY: word (k0 + i)·QUAD_STEPS + s of the NR·QUAD_STEPS at `wg`
                    // (k0 + i < k0 + N ≤ NR).
                    let b = _mm256_set1_epi32(unsafe { *wp.add(i * QUAD_STEPS + s) } as i32);
                    pairs[0][i] = _mm256_add_epi16(pairs[0][i], _mm256_maddubs_epi16(b, x0));
                    pairs[1][i] = _mm256_add_epi16(pairs[1][i], _mm256_maddubs_epi16(b, x1));
                }
            }
            for h in 0..2 {
                for i in 0..N {
                    acc[h][i] = _mm256_add_epi32(acc[h][i], _mm256_madd_epi16(pairs[h][i], ones));
                }
            }
        }
        scale_into(&mut sum, &acc, sx, &ts[j * NR + k0..j * NR + k0 + N]);
    }
    add_sums(&sum, v, i0, totals);
}

/// `sum[h][i] += acc[h][i] · s_x · s_w[i]` for a group's integer sums `acc` of the 16
/// rows whose scales are `sx`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn scale_into<const N: usize>(
    sum: &mut [[__m256; N]; 2],
    acc: &[[__m256i; N]; 2],
    sx: &[f32; LANES],
    sw: &[f32],
) {
    for h in 0..2 {
        // SAFETY: scales 8·h .. 8·h + 7 of the 16 at `sx`.
        let sxv = unsafe { _mm256_loadu_ps(sx[8 * h..].as_ptr()) };
        for i in 0..N {
            let scale = _mm256_mul_ps(sxv, _mm256_set1_ps(sw[i]));
            sum[h][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h][i]), scale, sum[h][i]);
        }
    }
}

/// Adds a tile's sums (`[half][channel]`, eight rows each) of row vector `v` and the
/// block channels from `i0` into `totals`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn add_sums<const N: usize>(sum: &[[__m256; N]; 2], v: usize, i0: usize, totals: &mut Totals) {
    for i in 0..N {
        let t = totals.at(v, i0 + i);
        for (h, sums) in sum.iter().enumerate() {
            let p = t[HALF * h..].as_mut_ptr();
            // SAFETY: sums 8·h .. 8·h + 7 of the 16 at `t`.
            unsafe { _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), sums[i])) };
        }
    }
}
