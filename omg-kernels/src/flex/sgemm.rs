//! `y = x · W + b` in f32 for many rows (prefill, the encoder's linears) with AVX-512.
//!
//! The output is cut into tasks of up to [`ROWS`] rows × [`BLOCK`] columns, spread over
//! the threads (consecutive tasks share their rows, so a thread's next task finds them
//! in cache). Each task copies its weight columns, in chunks of [`KC`] rows read as long
//! contiguous runs, into panels of [`PANEL`] columns that stay in L2 (while the tiles of
//! one chunk run, they request the next chunk's weight lines, so that its copy reads
//! them from cache instead of waiting on memory), and tiles of up to
//! [`MR`] input rows × a panel's 32 columns keep their accumulators in 2·MR registers
//! while `k` runs: per step, two loads of the weight row and one broadcast per input row
//! feed 2·MR fused multiply-adds. Tiles write their results straight into the row-major
//! output (masked stores at a narrower last panel): no zero-fill, no reordering pass.
//!
//! Each output is `Σ_k x[r, k] · w[k, c]` summed in input order with one rounding per
//! multiply-add, then `+ b[c]`.

use std::arch::x86_64::*;

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, new_f32};

/// Output columns per panel (two vectors of 16).
const PANEL: usize = 32;
/// Output columns per parallel task (four panels).
const BLOCK: usize = 4 * PANEL;
/// Most output rows per parallel task.
const ROWS: usize = 2048;
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
    let out = product(f32s(&x), f32s(&weight), bias.as_ref().map(f32s), m, k, n);
    *shape.last_mut().expect("non-empty shape") = n;
    new_f32(out, &shape)
}

/// `a` `[N, M, K]` · `b` `[N, K, P]` → `[N, M, P]` (contiguous f32; the caller checked
/// the shapes and that the CPU has AVX-512 F).
pub(crate) fn batched(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    let [batch, m, k] = a.layout().shape().dims::<3>();
    let p = b.layout().shape().dims::<3>()[2];
    let (a, b) = (f32s(&a), f32s(&b));
    let mut out = Vec::with_capacity(batch * m * p);
    for i in 0..batch {
        out.extend(product(
            &a[i * m * k..(i + 1) * m * k],
            &b[i * k * p..(i + 1) * k * p],
            None,
            m,
            k,
            p,
        ));
    }
    new_f32(out, &[batch, m, p])
}

/// `x` `[m, k]` · `w` `[k, n]` + `bias` `[n]` → `[m, n]` (the caller checked that the CPU
/// has AVX-512 F).
///
/// # Panics
/// If `x` is not `m · k` values, `w` not `k · n` or `bias` not `n`.
pub(crate) fn product(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    check(x, w, bias, m, k, n);
    if m == 0 || n == 0 || k == 0 {
        let mut out = vec![0.0f32; m * n];
        if let Some(bias) = bias.filter(|_| n > 0) {
            super::add_bias(&mut out, bias);
        }
        return out;
    }
    let mut out = Vec::<f32>::with_capacity(m * n);
    let dst = Output {
        ptr: out.as_mut_ptr(),
        m,
        n,
        accumulate: false,
    };
    // SAFETY: the CPU has AVX-512 F (the caller checked); `dst` is `m · n` values that
    // nothing else touches.
    unsafe { run(x, w, bias, k, dst) };
    // SAFETY: `run` wrote every value (the first chunk of each tile stores all its rows
    // and columns, k > 0; the tasks cover `m · n`).
    unsafe { out.set_len(m * n) };
    out
}

/// `out` `[m, n]` += `x` `[m, k]` · `w` `[k, n]` (+ `bias` `[n]`) (the caller checked that
/// the CPU has AVX-512 F): each output is its old value, then the products in input
/// order, one rounding per multiply-add, then the bias.
///
/// # Panics
/// If `x` is not `m · k` values, `w` not `k · n`, `bias` not `n` or `out` not `m · n`.
pub(crate) fn add_product(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (m, k, n): (usize, usize, usize),
    out: &mut [f32],
) {
    check(x, w, bias, m, k, n);
    assert_eq!(
        out.len(),
        m * n,
        "sgemm: out of {} values for [{m}, {n}]",
        out.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if let Some(bias) = bias {
            super::add_bias(out, bias);
        }
        return;
    }
    let dst = Output {
        ptr: out.as_mut_ptr(),
        m,
        n,
        accumulate: true,
    };
    // SAFETY: the CPU has AVX-512 F (the caller checked); `dst` is `out`, borrowed
    // mutably here.
    unsafe { run(x, w, bias, k, dst) };
}

/// Panics unless the operands have the sizes of `[m, k] · [k, n] + [n]`.
fn check(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) {
    assert!(
        x.len() == m * k && w.len() == k * n && bias.is_none_or(|b| b.len() == n),
        "sgemm: x {} values for [{m}, {k}], w {} for [{k}, {n}], bias {:?} for {n}",
        x.len(),
        w.len(),
        bias.map(<[f32]>::len)
    );
}

/// The tasks of `dst` += or = `x` · `w` (+ `bias`), in parallel.
///
/// # Safety
/// The CPU has AVX-512 F; `dst` points to `m · n` values (initialised if it
/// accumulates) that nothing else touches while this runs; `k > 0`, the operands have
/// the sizes [`check`] asks.
#[target_feature(enable = "avx512f")]
unsafe fn run(x: &[f32], w: &[f32], bias: Option<&[f32]>, k: usize, dst: Output) {
    let (m, n) = (dst.m, dst.n);
    let (ranges, blocks) = (m.div_ceil(ROWS), n.div_ceil(BLOCK));
    (0..ranges * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |buffer, t| {
            let (rows, c0) = ((t / blocks) * ROWS, (t % blocks) * BLOCK);
            let task = Task {
                rows: rows..(rows + ROWS).min(m),
                c0,
                width: BLOCK.min(n - c0),
            };
            // SAFETY: AVX-512 F (this function's contract); the tasks cover disjoint
            // rectangles of `dst`.
            unsafe { block(x, w, bias, k, &task, buffer, dst) }
        });
}

/// The row-major `[m, n]` output that the tasks write into, each its own rectangle.
#[derive(Clone, Copy)]
struct Output {
    /// Start of `m · n` allocated values.
    ptr: *mut f32,
    /// Rows.
    m: usize,
    /// Columns (the row stride).
    n: usize,
    /// Whether the products are added to the values there (else they replace them).
    accumulate: bool,
}

// SAFETY: the tasks that share an `Output` write disjoint rectangles of it, and nothing
// reads it until they have all finished.
unsafe impl Send for Output {}
// SAFETY: as above.
unsafe impl Sync for Output {}

/// One parallel task: output rows `rows` × columns `c0..c0 + width`.
struct Task {
    /// Output (and input) rows.
    rows: std::ops::Range<usize>,
    /// First output column.
    c0: usize,
    /// Output columns, at most [`BLOCK`].
    width: usize,
}

/// The task's rectangle of `dst`, chunk by chunk of weight rows.
///
/// # Safety
/// The CPU has AVX-512 F; no other thread touches the rectangle while this runs.
#[target_feature(enable = "avx512f")]
unsafe fn block(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    task: &Task,
    buffer: &mut Vec<f32>,
    dst: Output,
) {
    let (c0, width, n) = (task.c0, task.width, dst.n);
    assert!(
        task.rows.end <= dst.m && c0 + width <= n && width <= BLOCK && w.len() == k * n,
        "sgemm: task outside the output"
    );
    let panels = width.div_ceil(PANEL);
    // the chunks of weight rows, of equal length (at most KC)
    let chunks = k.div_ceil(KC);
    let step = k.div_ceil(chunks);
    for k0 in (0..k).step_by(step) {
        let kc = step.min(k - k0);
        // the weight lines of the next chunk: this task's, else the next column block's
        // first (the task a thread usually runs next)
        let ahead = if k0 + kc < k {
            Ahead::new(w, n, k0 + kc..(k0 + kc + step).min(k), c0..c0 + width)
        } else if c0 + BLOCK < n {
            Ahead::new(w, n, 0..step.min(k), c0 + BLOCK..(c0 + 2 * BLOCK).min(n))
        } else {
            Ahead::none()
        };
        let mut requested = 0usize;
        // every value a tile reads is packed below, but the columns past a narrower
        // last panel, whose results are not stored: the buffer is not cleared
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
        // each tile of input rows against every panel while its rows are in L1
        for r0 in task.rows.clone().step_by(MR) {
            for (p, packed) in buffer[..packed_len].chunks_exact(kc * PANEL).enumerate() {
                let c = c0 + p * PANEL;
                let at = Tile {
                    k,
                    k0,
                    kc,
                    first: k0 == 0 && !dst.accumulate,
                    bias: bias.filter(|_| k0 + kc == k).map(|b| &b[c..]),
                    r0,
                    c,
                    columns: PANEL.min(n - c),
                };
                macro_rules! tiles {
                    ($($r:literal),*) => {
                        match MR.min(task.rows.end - r0) {
                            // SAFETY: the tile lies in the task's rectangle (r0 + R ≤ rows.end,
                            // c + columns ≤ c0 + width), which no other thread touches.
                            $($r => unsafe { tile::<$r>(x, packed, &at, dst, &ahead, &mut requested) },)*
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

/// One register tile: which weight rows the packed chunk holds and which outputs it
/// computes.
struct Tile<'a> {
    /// Row length of `x`.
    k: usize,
    /// First weight row of the chunk.
    k0: usize,
    /// Weight rows in the chunk.
    kc: usize,
    /// Whether the tile starts from 0 (the first chunk of a product that replaces the
    /// output), else from the output.
    first: bool,
    /// At the last chunk, the bias from the tile's first column on (added at the end).
    bias: Option<&'a [f32]>,
    /// First output row.
    r0: usize,
    /// First output column.
    c: usize,
    /// Output columns that exist (at most 32; the packed panel has 32).
    columns: usize,
}

/// Weight lines to request while tiles run: rows `rows` × columns `columns` of the
/// `[k, n]` weights, one 64-byte line after another.
struct Ahead<'a> {
    /// The weights.
    w: &'a [f32],
    /// Their row length.
    n: usize,
    /// First weight row.
    row0: usize,
    /// First column.
    c0: usize,
    /// Lines per row (16 columns each).
    lines: usize,
    /// Lines in all.
    total: usize,
}

impl<'a> Ahead<'a> {
    /// The lines of `w`'s rows `rows` × columns `columns`.
    fn new(
        w: &'a [f32],
        n: usize,
        rows: std::ops::Range<usize>,
        columns: std::ops::Range<usize>,
    ) -> Self {
        let lines = columns.len().div_ceil(16);
        Self {
            w,
            n,
            row0: rows.start,
            c0: columns.start,
            lines,
            total: rows.len() * lines,
        }
    }

    /// Nothing to request.
    fn none() -> Self {
        Self {
            w: &[],
            n: 0,
            row0: 0,
            c0: 0,
            lines: 1,
            total: 0,
        }
    }

    /// Requests line `i` (< `total`) into the cache; a line outside `w` is skipped.
    #[inline(always)]
    fn request(&self, i: usize) {
        let at = (self.row0 + i / self.lines) * self.n + self.c0 + (i % self.lines) * 16;
        if let Some(v) = self.w.get(at) {
            // SAFETY: a prefetch reads nothing architecturally; the address is in `w`.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(std::ptr::from_ref(v).cast()) };
        }
    }
}

/// Weight-row steps of a tile per line requested for the next chunk.
const AHEAD_EVERY: usize = 2;

/// Rows `r0..r0 + R` × the panel's columns over the chunk's weight rows; every
/// [`AHEAD_EVERY`] steps it requests the next line of `ahead` (from `*requested` on).
///
/// # Safety
/// The CPU has AVX-512 F; rows `r0..r0 + R` × columns `c..c + columns` lie in `dst`
/// and no other thread touches them while this runs.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize>(
    x: &[f32],
    packed: &[f32],
    t: &Tile,
    dst: Output,
    ahead: &Ahead,
    requested: &mut usize,
) {
    let &Tile {
        k,
        k0,
        kc,
        first,
        bias,
        r0,
        c,
        columns,
    } = t;
    // the sizes of the unchecked loads and stores below
    assert!(
        packed.len() == kc * PANEL
            && x.len() >= (r0 + R) * k
            && k0 + kc <= k
            && columns <= PANEL
            && r0 + R <= dst.m
            && c + columns <= dst.n
            && bias.is_none_or(|b| b.len() >= columns)
    );
    // lanes of the two vectors that hold existing columns
    let lanes = |from: usize| -> __mmask16 {
        let count = columns.saturating_sub(from).min(16);
        ((1u32 << count) - 1) as __mmask16
    };
    let (m0, m1) = (lanes(0), lanes(16));
    // SAFETY (of the masked loads and stores): row r's columns c .. c + columns lie in
    // `dst` (asserted above); the masks cover exactly those.
    let out = |r: usize| unsafe { dst.ptr.add((r0 + r) * dst.n + c) };
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    if !first {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            unsafe {
                a[0] = _mm512_maskz_loadu_ps(m0, out(r));
                a[1] = _mm512_maskz_loadu_ps(m1, out(r).add(16));
            }
        }
    }
    let xs: [*const f32; R] = std::array::from_fn(|r| x[(r0 + r) * k + k0..].as_ptr());
    let w = packed.as_ptr();
    for kk in 0..kc {
        if kk % AHEAD_EVERY == 0 && *requested < ahead.total {
            ahead.request(*requested);
            *requested += 1;
        }
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
    if let Some(b) = bias {
        // SAFETY: `b` holds at least `columns` values (asserted above).
        let (b0, b1) = unsafe {
            (
                _mm512_maskz_loadu_ps(m0, b.as_ptr()),
                _mm512_maskz_loadu_ps(m1, b.as_ptr().add(16)),
            )
        };
        for a in &mut acc {
            a[0] = _mm512_add_ps(a[0], b0);
            a[1] = _mm512_add_ps(a[1], b1);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        // SAFETY: as above.
        unsafe {
            _mm512_mask_storeu_ps(out(r), m0, a[0]);
            _mm512_mask_storeu_ps(out(r).add(16), m1, a[1]);
        }
    }
}
