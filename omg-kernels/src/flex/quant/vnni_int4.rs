//! The products of int4 weights and int8 inputs with AVX-512 VNNI: `vpdpbusd`
//! multiplies 64 unsigned bytes by 64 signed ones and adds each four products into one
//! of 16 i32 lanes.
//!
//! The unsigned operand is the weight as stored, `q + 8` ([`Packed::unsigned_group`]),
//! the signed one the quantized input, so each group sum carries `8 · Σ q_x`, which the
//! accumulator starts without (`−8 · Σ q_x` of the row's group, exact in i32).
//!
//! * **GEMV** (≤ `FEW_ROWS` rows, decoding): each output channel's packed row is read
//!   once, group by group, and multiplied with every row (lanes: input channels).
//! * **GEMM** (prefill): the rows are laid out sixteen to a vector ([`QuadLanes`]: lanes are
//!   rows), and a tile of up to 3 row vectors × 4 output channels keeps its 24
//!   accumulators in registers while the group's weights are broadcast four bytes at a
//!   time from the packed rows as stored (no repacked copy of the weight).

use std::arch::x86_64::*;

use super::activations::QuantRows;
use super::lanes::QuadLanes;
use super::tiling::{
    AHEAD_INT4, BLOCK, CHANNELS, LANES, Tile, Tiles, block_tiles, by_block, put_sums, request_ahead,
};
use super::weights::Packed;
use crate::flex::by_channel;
use crate::linear::FEW_ROWS;
use crate::quant_format::{QUANT_GROUP, QuantBits};

/// Four-byte steps per group.
const STEPS: usize = QUANT_GROUP / 4;

/// `[rows, out]` products of an int4 weight and int8 rows (the caller checked that the
/// CPU has AVX-512 VNNI).
pub(crate) fn product(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    assert!(w.layout.bits == QuantBits::Int4, "an int4 weight");
    if x.rows <= FEW_ROWS {
        gemv(x, w)
    } else {
        gemm(x, w)
    }
}

// ---- GEMV ------------------------------------------------------------------------------

fn gemv(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    let bytes = x.bytes();
    by_channel(x.rows, w.layout.out_features, CHANNELS, |c0, dst| {
        // SAFETY: `product` is only called when `isa` reported AVX-512 F, BW and VNNI on
        // this CPU.
        unsafe { gemv_channels(x, &bytes, w, c0, dst) }
    })
}

/// The 64 values of the whole int4 group at `p` (32 bytes; byte j: value j in its low
/// nibble, value j + 32 in its high one) as `q + 8` bytes.
///
/// # Safety
/// 32 readable bytes at `p`; the CPU has AVX-512 F, BW and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn whole_group(p: *const u8) -> __m512i {
    // SAFETY: 32 bytes at `p` (the caller's contract).
    let v = unsafe { _mm256_loadu_si256(p.cast()) };
    let mask = _mm256_set1_epi8(15);
    let lo = _mm256_and_si256(v, mask);
    let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
}

/// Channels `c0..` (as many as `dst` holds, `rows` results each) of a few-row product
/// of the rows `x` as `bytes`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn gemv_channels(x: &QuantRows, bytes: &[i8], w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    macro_rules! rows {
        ($($r:literal),*) => {
            match x.rows {
                $($r => gemv_rows::<$r>(x, bytes, w, c0, dst),)*
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
fn gemv_rows<const R: usize>(
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
    let mut widened = Vec::new();
    for (i, ys) in dst.chunks_exact_mut(R).enumerate() {
        let c = c0 + i;
        // `groups` scales (`Packed::row_scales`)
        let (row, sw) = (w.row(c).as_ptr(), w.row_scales(c, &mut widened).as_ptr());
        // adds the products of group g (whose 64 unsigned values are `wu`) to `acc`
        let add = |g: usize, wu: __m512i, acc: &mut [__m512; R]| {
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: g < groups, and each row holds groups · 64 values, groups sums
                // and groups scales; the channel's groups scales (all asserted above).
                unsafe {
                    let xv = _mm512_loadu_si512(xp[r].add(g * QUANT_GROUP).cast());
                    let start =
                        _mm512_zextsi128_si512(_mm_cvtsi32_si128(-offset * *sums[r].add(g)));
                    let dot = _mm512_dpbusd_epi32(start, wu, xv);
                    let scale = _mm512_set1_ps(*sw.add(g) * *sx[r].add(g));
                    *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, *a);
                }
            }
        };
        // SAFETY (`whole_group`): group g < full lies inside the row (asserted above).
        let whole = |g: usize| unsafe {
            let p = row.add(g * group_bytes);
            request_ahead::<AHEAD_INT4>(p);
            whole_group(p)
        };
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
            let mut tail = [0u8; QUANT_GROUP];
            w.unsigned_group(c, full, &mut tail);
            // SAFETY: 64 bytes at `tail`.
            add(
                full,
                unsafe { _mm512_loadu_si512(tail.as_ptr().cast()) },
                &mut odd,
            );
        }
        for (r, y) in ys.iter_mut().enumerate() {
            *y = _mm512_reduce_add_ps(_mm512_add_ps(even[r], odd[r]));
        }
    }
}

// ---- GEMM ------------------------------------------------------------------------------

fn gemm(x: &QuantRows, w: &Packed<'_>) -> Vec<f32> {
    let lanes = QuadLanes::new(x, w.offset());
    by_block(x.rows, w.layout.out_features, |c0, dst| {
        // SAFETY: `product` is only called when `isa` reported AVX-512 F, BW and VNNI on
        // this CPU.
        unsafe { gemm_block(&lanes, x.rows, w, c0, dst) }
    })
}

/// Channels `c0..c0 + BLOCK` (those that exist) for every row, into `dst`
/// `[rows][BLOCK]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn gemm_block(x: &QuadLanes, rows: usize, w: &Packed<'_>, c0: usize, dst: &mut [f32]) {
    let width = BLOCK.min(w.layout.out_features - c0);
    let words = Words::new(w, c0, width);
    // SAFETY: the CPU has AVX-512 F, BW and VNNI (this function's features).
    unsafe {
        block_tiles(
            &BlockTiles { x, words: &words },
            x.vectors,
            width,
            rows,
            dst,
        )
    }
}

/// The tiles of one block.
struct BlockTiles<'a> {
    x: &'a QuadLanes,
    words: &'a Words<'a>,
}

impl Tiles for BlockTiles<'_> {
    unsafe fn tile<const R: usize, const N: usize>(
        &self,
        t: Tile,
        put: &mut impl FnMut(usize, usize, &[f32; LANES]),
    ) {
        // SAFETY: the caller's contract (the CPU has the features of `tile`).
        unsafe { tile::<R, N>(self.x, self.words, t, put) }
    }
}

/// The weights of a block of channels as the broadcast four-byte words of each group
/// (`q + 8`, four consecutive input channels per word), with their scales.
struct Words<'a> {
    w: Packed<'a>,
    c0: usize,
    /// Unsigned bytes of each channel's short last group, if the rows have one.
    tails: Vec<[u8; QUANT_GROUP]>,
    /// `[width, groups]` scales as f32.
    scales: Vec<f32>,
}

impl<'a> Words<'a> {
    fn new(w: &Packed<'a>, c0: usize, width: usize) -> Self {
        let full = w.full_groups();
        let tails = if full < w.groups {
            (0..width)
                .map(|i| {
                    let mut t = [0u8; QUANT_GROUP];
                    w.unsigned_group(c0 + i, full, &mut t);
                    t
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut scales = Vec::with_capacity(width * w.groups);
        let mut widened = Vec::new();
        for i in 0..width {
            scales.extend_from_slice(w.row_scales(c0 + i, &mut widened));
        }
        Self {
            w: *w,
            c0,
            tails,
            scales,
        }
    }

    /// The 16 words of group `g` of block channel `i`.
    #[inline(always)]
    fn group(&self, i: usize, g: usize) -> [u32; STEPS] {
        let word = |b: &[u8], j: usize| u32::from_le_bytes([b[j], b[j + 1], b[j + 2], b[j + 3]]);
        let mut out = [0u32; STEPS];
        if g >= self.w.full_groups() {
            let tail = &self.tails[i];
            for (s, o) in out.iter_mut().enumerate() {
                *o = word(tail, 4 * s);
            }
            return out;
        }
        // byte j: value j (low nibble), value j + 32 (high nibble)
        let row = self.w.row(self.c0 + i);
        let b: &[u8; 32] = row[g * 32..(g + 1) * 32].try_into().expect("32 bytes");
        for s in 0..STEPS / 2 {
            let v = word(b, 4 * s);
            out[s] = v & 0x0F0F_0F0F;
            out[s + STEPS / 2] = (v >> 4) & 0x0F0F_0F0F;
        }
        out
    }

    /// Block channel `i`'s scale of group `g`.
    #[inline(always)]
    fn scale(&self, i: usize, g: usize) -> f32 {
        self.scales[i * self.w.groups + g]
    }
}

/// `R` row vectors from `t.v0` × `N` block channels from `t.i0` over every group; hands
/// each (vector, channel) result of 16 rows to `put`.
// the register tile indexes several arrays by the same step, vector and channel
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn tile<const R: usize, const N: usize>(
    x: &QuadLanes,
    words: &Words<'_>,
    t: Tile,
    put: &mut impl FnMut(usize, usize, &[f32; LANES]),
) {
    let mut sum = [[_mm512_setzero_ps(); N]; R];
    for g in 0..x.groups {
        let mut w = [[0u32; STEPS]; N];
        for (i, w) in w.iter_mut().enumerate() {
            *w = words.group(t.i0 + i, g);
        }
        let mut q = [&[0i8; 1024]; R];
        let mut acc = [[_mm512_setzero_si512(); N]; R];
        let mut sx = [_mm512_setzero_ps(); R];
        for v in 0..R {
            let (qv, start, scales) = x.group(t.v0 + v, g);
            q[v] = qv;
            // SAFETY: 16 values at each of `start` and `scales`.
            let s = unsafe { _mm512_loadu_si512(start.as_ptr().cast()) };
            acc[v] = [s; N];
            sx[v] = unsafe { _mm512_loadu_ps(scales.as_ptr()) };
        }
        for s in 0..STEPS {
            let mut xv = [_mm512_setzero_si512(); R];
            for v in 0..R {
                // SAFETY: bytes 64·s .. 64·s + 63 of the 1024 at `q[v]`.
                xv[v] = unsafe { _mm512_loadu_si512(q[v].as_ptr().add(64 * s).cast()) };
            }
            for i in 0..N {
                let b = _mm512_set1_epi32(w[i][s] as i32);
                for v in 0..R {
                    acc[v][i] = _mm512_dpbusd_epi32(acc[v][i], b, xv[v]);
                }
            }
        }
        for i in 0..N {
            let sw = _mm512_set1_ps(words.scale(t.i0 + i, g));
            for v in 0..R {
                let scale = _mm512_mul_ps(sx[v], sw);
                sum[v][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[v][i]), scale, sum[v][i]);
            }
        }
    }
    put_sums(&sum, put);
}
