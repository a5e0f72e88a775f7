//! `y = x · W` in f32 for many rows (prefill, the encoder's linears) with AVX-512:
//! the weight `[k, n]` is cut into blocks of [`BLOCK`] columns, spread over the threads;
//! each block's rows (in chunks of [`KC`], read as long contiguous runs) are copied once
//! into panels of [`PANEL`] columns that stay in L2, and tiles of up to [`MR`] input rows
//! × a panel's 32 columns keep their accumulators in 2·MR registers while `k` runs: per
//! step, two loads of the weight row and one broadcast per input row feed 2·MR fused
//! multiply-adds.
//!
//! Each output is `Σ_k x[r, k] · w[k, c]` summed in input order with one rounding per
//! multiply-add.

use std::arch::x86_64::*;

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, new_f32};

/// Output columns per panel (two vectors of 16).
const PANEL: usize = 32;
/// Output columns per parallel task (four panels).
const BLOCK: usize = 4 * PANEL;
/// Most input rows per register tile.
const MR: usize = 12;
/// Weight rows per packed chunk (a 256 KiB buffer of four panels).
const KC: usize = 512;
/// Weight rows requested ahead of the one being packed.
const AHEAD: usize = 4;

/// `x` `[…, in]` · `weight` `[in, out]` + `bias` `[out]` → `[…, out]` (contiguous f32;
/// the caller checked the shapes and that the CPU has AVX-512 F).
pub(crate) fn many_rows(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
    let mut shape = x.layout().shape().to_vec();
    let [k, n] = weight.layout().shape().dims::<2>();
    let m = shape[..shape.len() - 1].iter().product::<usize>();
    let mut out = product(f32s(&x), f32s(&weight), m, k, n);
    if let Some(bias) = bias.as_ref().map(f32s) {
        assert_eq!(
            bias.len(),
            n,
            "sgemm: bias of {} for {n} columns",
            bias.len()
        );
        super::add_bias(&mut out, bias);
    }
    *shape.last_mut().expect("non-empty shape") = n;
    new_f32(out, &shape)
}

/// `x` `[m, k]` · `w` `[k, n]` → `[m, n]` (the caller checked that the CPU has AVX-512 F).
///
/// # Panics
/// If `x` is not `m · k` values or `w` not `k · n`.
pub(crate) fn product(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(
        x.len() == m * k && w.len() == k * n,
        "sgemm: x {} values for [{m}, {k}], w {} for [{k}, {n}]",
        x.len(),
        w.len()
    );
    let panels = n.div_ceil(PANEL);
    let mut by_panel = vec![0.0f32; panels * m * PANEL];
    if m > 0 && k > 0 {
        by_panel
            .par_chunks_mut(m * BLOCK)
            .enumerate()
            .for_each_init(Vec::new, |buffer, (b, dst)| {
                // SAFETY: `product` is only called when `isa` reported AVX-512 on this CPU.
                unsafe { block(x, w, (m, k, n), b * BLOCK, buffer, dst) }
            });
    }
    super::unblock(&by_panel, m, n, PANEL)
}

/// Columns `c0..c0 + BLOCK` (those that exist) of every row into `dst`, panel by panel
/// (`[panels][m][32]`).
#[target_feature(enable = "avx512f")]
fn block(
    x: &[f32],
    w: &[f32],
    (m, k, n): (usize, usize, usize),
    c0: usize,
    buffer: &mut Vec<f32>,
    dst: &mut [f32],
) {
    let width = BLOCK.min(n - c0);
    let panels = width.div_ceil(PANEL);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        // every value a tile reads is packed below, but the columns past a narrower
        // last panel, whose results are dropped: the buffer is not cleared
        let packed_len = panels * kc * PANEL;
        if buffer.len() < packed_len {
            buffer.resize(packed_len, 0.0);
        }
        // weight row k0 + kk, columns c0 + 32·p .. → panel p's row kk
        for kk in 0..kc {
            // the row AHEAD rows on is requested now: many rows in flight at once
            if kk + AHEAD < kc {
                let ahead = &w[(k0 + kk + AHEAD) * n + c0..(k0 + kk + AHEAD) * n + c0 + width];
                for line in ahead.chunks(16) {
                    _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
                }
            }
            let src = &w[(k0 + kk) * n + c0..(k0 + kk) * n + c0 + width];
            for (p, part) in src.chunks(PANEL).enumerate() {
                let d = (p * kc + kk) * PANEL;
                buffer[d..d + part.len()].copy_from_slice(part);
            }
        }
        let chunk = Chunk {
            k,
            k0,
            kc,
            first: k0 == 0,
        };
        // each tile of input rows against every panel while its rows are in L1
        for r0 in (0..m).step_by(MR) {
            for (packed, out) in buffer[..packed_len]
                .chunks_exact(kc * PANEL)
                .zip(dst.chunks_exact_mut(m * PANEL))
            {
                macro_rules! tiles {
                    ($($r:literal),*) => {
                        match MR.min(m - r0) {
                            $($r => tile::<$r>(x, packed, chunk, r0, out),)*
                            _ => unreachable!("1 to {MR} rows"),
                        }
                    };
                }
                const _: () = assert!(MR == 12);
                tiles!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
            }
        }
    }
}

/// Which weight rows a packed chunk holds.
#[derive(Clone, Copy)]
struct Chunk {
    /// Row length of `x`.
    k: usize,
    /// First weight row of the chunk.
    k0: usize,
    /// Weight rows in the chunk.
    kc: usize,
    /// Whether it is the first chunk (the tile starts from 0, else from `dst`).
    first: bool,
}

/// Rows `r0..r0 + R` × the panel's 32 columns over the chunk's weight rows.
#[target_feature(enable = "avx512f")]
#[inline]
fn tile<const R: usize>(x: &[f32], packed: &[f32], chunk: Chunk, r0: usize, dst: &mut [f32]) {
    let Chunk { k, k0, kc, first } = chunk;
    // the sizes of the unchecked loads below
    assert!(packed.len() == kc * PANEL && x.len() >= (r0 + R) * k && k0 + kc <= k);
    let out = &mut dst[r0 * PANEL..(r0 + R) * PANEL];
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    if !first {
        for (a, o) in acc.iter_mut().zip(out.chunks_exact(PANEL)) {
            // SAFETY: 32 values at `o`.
            unsafe {
                a[0] = _mm512_loadu_ps(o.as_ptr());
                a[1] = _mm512_loadu_ps(o.as_ptr().add(16));
            }
        }
    }
    let xs: [*const f32; R] = std::array::from_fn(|r| x[(r0 + r) * k + k0..].as_ptr());
    let w = packed.as_ptr();
    for kk in 0..kc {
        // SAFETY: kk < kc: the packed row kk (32 values) lies in `packed`, and x's value
        // at k0 + kk of each row in `x` (asserted above).
        unsafe {
            let w0 = _mm512_loadu_ps(w.add(kk * PANEL));
            let w1 = _mm512_loadu_ps(w.add(kk * PANEL + 16));
            for r in 0..R {
                let xb = _mm512_set1_ps(*xs[r].add(kk));
                acc[r][0] = _mm512_fmadd_ps(xb, w0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(xb, w1, acc[r][1]);
            }
        }
    }
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(PANEL)) {
        // SAFETY: 32 values at `o`.
        unsafe {
            _mm512_storeu_ps(o.as_mut_ptr(), a[0]);
            _mm512_storeu_ps(o.as_mut_ptr().add(16), a[1]);
        }
    }
}
