//! How the two AVX-512 VNNI products ([`super::vnni_int8`], [`super::vnni_int4`]) split
//! their work: the GEMV's parallel tasks over output channels ([`CHANNELS`] each, through
//! [`crate::flex::by_channel`]; the AVX2 GEMV's too), the GEMM's over blocks of output
//! channels, and the GEMM's register tiles within a block; and how far ahead a GEMV
//! requests the weight it streams ([`request_ahead`]).

use std::arch::x86_64::{__m512, _MM_HINT_T0, _mm_prefetch, _mm512_storeu_ps};

use rayon::prelude::*;

use crate::flex::unblock;

/// Output channels per parallel task of a GEMV.
pub(super) const CHANNELS: usize = 128;
/// How far ahead of the group being multiplied the AVX2 GEMVs request their channel's
/// packed bytes (past a row's end: the next channel's, which lie right after it): the
/// hardware's prefetcher alone keeps too few lines of one sequential stream in flight to
/// reach the memory's bandwidth.
pub(super) const AHEAD: usize = 1024;
/// How far ahead the AVX-512 int4 GEMV requests them: over 1 GB of 7.74 B-shaped weights
/// in huge pages, 3 KiB ahead ran 6 % faster than 1 KiB in three of four runs (2 KiB:
/// 2-5 %). (The AVX-512 int8 GEMV requests nothing: requests made it slower.)
pub(super) const AHEAD_INT4: usize = 3 * 1024;

/// Requests the line `BYTES` after `p` into the cache.
#[inline(always)]
pub(super) fn request_ahead<const BYTES: usize>(p: *const u8) {
    // SAFETY: a prefetch (SSE, which every x86-64 CPU has) reads nothing architecturally
    // and faults on no address; the pointer is only formed (wrapping), never read.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(BYTES).cast()) };
}

/// Output channels per parallel task of a GEMM.
pub(super) const BLOCK: usize = 64;
/// Row vectors per GEMM tile.
pub(super) const RV: usize = 3;
/// Output channels per GEMM tile.
pub(super) const NR: usize = 4;
/// Rows per vector: the GEMM's lanes are rows.
pub(super) const LANES: usize = 16;

/// `[rows, n]` results of `task(c0, dst)`, which fills channels `c0..c0 + BLOCK` (those
/// that exist) of every row into `dst` `[rows][BLOCK]`; blocks run in parallel.
pub(super) fn by_block(
    rows: usize,
    n: usize,
    task: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let mut by_block = vec![0.0f32; n.div_ceil(BLOCK) * BLOCK * rows];
    if rows > 0 {
        by_block
            .par_chunks_mut(rows * BLOCK)
            .enumerate()
            .for_each(|(b, dst)| task(b * BLOCK, dst));
    }
    unblock(&by_block, rows, n, BLOCK)
}

/// The first row vector and block channel of a tile.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    /// First row vector.
    pub(super) v0: usize,
    /// First channel within the block.
    pub(super) i0: usize,
}

/// A GEMM's register tile over a block of channels.
pub(super) trait Tiles {
    /// `R` row vectors from `t.v0` × `N` block channels from `t.i0` over every group;
    /// hands each (vector, channel) result of [`LANES`] rows to `put`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI.
    unsafe fn tile<const R: usize, const N: usize>(
        &self,
        t: Tile,
        put: &mut impl FnMut(usize, usize, &[f32; LANES]),
    );
}

/// `tiles.tile::<R, N>(t, &mut put)` for the run-time sizes `r` ≤ [`RV`], `n` ≤ [`NR`].
macro_rules! tile_sizes {
    ($tiles:ident, $t:ident, $put:ident, $r:expr, $n:expr) => {
        tile_sizes!(@r $tiles, $t, $put, $r, $n; [1, 2, 3]; [1, 2, 3, 4])
    };
    (@r $tiles:ident, $t:ident, $put:ident, $r:expr, $n:expr; [$($rs:literal),*]; $ns:tt) => {{
        const _: () = assert!(RV == [$($rs),*].len());
        match $r {
            $($rs => tile_sizes!(@n $tiles, $t, $put, $rs, $n; $ns),)*
            r => unreachable!("{r} row vectors"),
        }
    }};
    (@n $tiles:ident, $t:ident, $put:ident, $r:literal, $n:expr; [$($ns:literal),*]) => {{
        const _: () = assert!(NR == [$($ns),*].len());
        match $n {
            $($ns => $tiles.tile::<$r, $ns>($t, &mut $put),)*
            n => unreachable!("{n} channels"),
        }
    }};
}

/// Every tile of a block of `width` channels over `vectors` row vectors (of which the
/// first `rows` rows exist), into `dst` `[rows][BLOCK]`.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VNNI.
pub(super) unsafe fn block_tiles<T: Tiles>(
    tiles: &T,
    vectors: usize,
    width: usize,
    rows: usize,
    dst: &mut [f32],
) {
    for v0 in (0..vectors).step_by(RV) {
        for i0 in (0..width).step_by(NR) {
            let t = Tile { v0, i0 };
            let mut put = |v: usize, i: usize, ys: &[f32; LANES]| {
                for (lane, &y) in ys.iter().enumerate() {
                    let r = (v0 + v) * LANES + lane;
                    if r < rows {
                        dst[r * BLOCK + i0 + i] = y;
                    }
                }
            };
            // SAFETY: the caller's contract.
            unsafe { tile_sizes!(tiles, t, put, RV.min(vectors - v0), NR.min(width - i0)) }
        }
    }
}

/// Hands each (vector, channel) sum of a tile to `put` as [`LANES`] row results.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
pub(super) fn put_sums<const R: usize, const N: usize>(
    sum: &[[__m512; N]; R],
    put: &mut impl FnMut(usize, usize, &[f32; LANES]),
) {
    for (v, sums) in sum.iter().enumerate() {
        for (i, s) in sums.iter().enumerate() {
            let mut ys = [0.0f32; LANES];
            // SAFETY: 16 f32 at `ys`.
            unsafe { _mm512_storeu_ps(ys.as_mut_ptr(), *s) };
            put(v, i, &ys);
        }
    }
}
