//! `y = x · W + b` in f32 for many rows (prefill, the encoder's linears) with AVX-512 or
//! AVX2 and FMA.
//!
//! The output is cut into tasks of up to `ROWS` rows (512 with AVX-512, 256 with AVX2)
//! × a block of panels' columns (at most 128 with AVX-512, 120 with AVX2; narrower where
//! that makes the tasks a multiple of the threads), spread over the threads (consecutive
//! tasks share their rows, so a thread's next task finds them in cache). Each task
//! runs over its weight columns in chunks of `KC` rows, as panels a few vectors wide
//! (2 × 16 columns with AVX-512, 3 × 8 with AVX2). A panel whose rows are whole 64-byte
//! lines of the weights (AVX-512, rows of a multiple of 16 values, 64-byte-aligned
//! weights) is read where it lies; otherwise the chunk is first copied, as long
//! contiguous runs, into packed panels that stay in cache. While the tiles of one chunk
//! run, they request the next chunk's weight lines, so that they are in cache when read
//! instead of waiting on memory. Tiles of up to
//! `MR` input rows (12 with AVX-512's 32 registers, 4 with AVX2's 16) × a panel keep
//! their accumulators in registers while `k` runs: per step, one load per vector of the
//! weight row and one broadcast per input row feed a multiply-add per accumulator. Tiles
//! write their results straight into the row-major output (masked stores at a narrower
//! last panel): no zero-fill, no reordering pass.
//!
//! Each output is `Σ_k x[r, k] · w[k, c]` summed in input order with one rounding per
//! multiply-add, then `+ b[c]`: both instruction sets give the same bits.

use std::arch::x86_64::*;

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{f32s, new_f32};

/// Weight rows requested ahead of the one being packed.
const AHEAD: usize = 4;

/// Whether this process runs the tiled products: on x86-64 CPUs with AVX2 and FMA (and
/// `OMG_KERNELS_ISA` allowing them). The functions below panic where it is false.
pub(crate) fn available() -> bool {
    super::isa::isa().avx2_fma
}

/// `x` `[…, in]` · `weight` `[in, out]` + `bias` `[out]` → `[…, out]` (contiguous f32;
/// the caller checked the shapes).
pub(crate) fn many_rows(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
    let mut shape = x.layout().shape().to_vec();
    let [k, n] = weight.layout().shape().dims::<2>();
    let m = shape[..shape.len() - 1].iter().product::<usize>();
    let out = product(f32s(&x), f32s(&weight), bias.as_ref().map(f32s), m, k, n);
    *shape.last_mut().expect("non-empty shape") = n;
    new_f32(out, &shape)
}

/// `a` `[N, M, K]` · `b` `[N, K, P]` → `[N, M, P]` (contiguous f32; the caller checked
/// the shapes).
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

/// `x` `[m, k]` · `w` `[k, n]` + `bias` `[n]` → `[m, n]`.
///
/// # Panics
/// If `x` is not `m · k` values, `w` not `k · n` or `bias` not `n`, or unless
/// [`available`].
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
    // SAFETY: `dst` is `m · n` values that nothing else touches; the operands have the
    // sizes `check` asks.
    unsafe { dispatch(x, w, bias, k, dst) };
    // SAFETY: `run` wrote every value (the first chunk of each tile stores all its rows
    // and columns, k > 0; the tasks cover `m · n`).
    unsafe { out.set_len(m * n) };
    out
}

/// `out` `[m, n]` += `x` `[m, k]` · `w` `[k, n]` (+ `bias` `[n]`): each output is its old
/// value, then the products in input order, one rounding per multiply-add, then the bias.
///
/// # Panics
/// If `x` is not `m · k` values, `w` not `k · n`, `bias` not `n` or `out` not `m · n`, or
/// unless [`available`].
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
    // SAFETY: `dst` is `out`, borrowed mutably here; the operands have the sizes `check`
    // asks.
    unsafe { dispatch(x, w, bias, k, dst) };
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

/// [`run`] with the widest instruction set this process uses.
///
/// # Safety
/// As [`run`] asks of `dst` and the operands.
///
/// # Panics
/// Unless [`available`].
unsafe fn dispatch(x: &[f32], w: &[f32], bias: Option<&[f32]>, k: usize, dst: Output) {
    let isa = super::isa::isa();
    assert!(
        isa.avx2_fma,
        "sgemm: the tiled products need AVX2 and FMA ({} in use)",
        isa.name()
    );
    if isa.avx512_vnni {
        // SAFETY: the CPU has AVX-512 F (checked just above); the rest is this function's
        // contract.
        unsafe { run::<Avx512>(x, w, bias, k, dst) }
    } else {
        // SAFETY: the CPU has AVX2 and FMA (asserted above); as above.
        unsafe { run::<Avx2>(x, w, bias, k, dst) }
    }
}

/// The tasks of `dst` += or = `x` · `w` (+ `bias`), in parallel, with the tiles of `L`.
///
/// # Safety
/// The CPU has `L`'s instruction set; `dst` points to `m · n` values (initialised if it
/// accumulates) that nothing else touches while this runs; `k > 0`, the operands have
/// the sizes [`check`] asks.
unsafe fn run<L: Lanes>(x: &[f32], w: &[f32], bias: Option<&[f32]>, k: usize, dst: Output) {
    let (m, n) = (dst.m, dst.n);
    let ranges = m.div_ceil(L::ROWS);
    let columns = Columns::new(n, L::PANEL, L::PANELS, ranges, rayon::current_num_threads());
    (0..ranges * columns.blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |buffer, t| {
            let (rows, b) = ((t / columns.blocks) * L::ROWS, t % columns.blocks);
            let task = Task {
                rows: rows..(rows + L::ROWS).min(m),
                columns: columns.block(b),
                next: (b + 1 < columns.blocks).then(|| columns.block(b + 1)),
            };
            // SAFETY: `L`'s instruction set (this function's contract); the tasks cover
            // disjoint rectangles of `dst`.
            unsafe { block::<L>(x, w, bias, k, &task, buffer, dst) }
        });
}

/// The output's columns cut into blocks of whole panels for the tasks: at most `panels`
/// panels each, as evenly as the panels allow, and so many that the tasks
/// (`ranges` row ranges × blocks) are a multiple of the threads where there are enough
/// panels (no thread idles while another runs a last task).
struct Columns {
    /// Output columns.
    n: usize,
    /// Columns per panel.
    panel: usize,
    /// Panels (the last one may be narrower).
    total: usize,
    /// Blocks.
    blocks: usize,
}

impl Columns {
    fn new(n: usize, panel: usize, panels: usize, ranges: usize, threads: usize) -> Self {
        let total = n.div_ceil(panel);
        let mut blocks = total.div_ceil(panels);
        while !(ranges * blocks).is_multiple_of(threads.max(1)) && blocks < total {
            blocks += 1;
        }
        Self {
            n,
            panel,
            total,
            blocks,
        }
    }

    /// The columns of block `b` (< `blocks`).
    fn block(&self, b: usize) -> std::ops::Range<usize> {
        let first = |b: usize| b * self.total / self.blocks * self.panel;
        first(b)..first(b + 1).min(self.n)
    }
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

/// One parallel task: output rows `rows` × output columns `columns`.
struct Task {
    /// Output (and input) rows.
    rows: std::ops::Range<usize>,
    /// Output columns: whole panels (the last one of the output may be narrower), at
    /// most `Lanes::PANELS`.
    columns: std::ops::Range<usize>,
    /// The columns of the next block of the same rows (the task a thread usually runs
    /// next), if any.
    next: Option<std::ops::Range<usize>>,
}

/// The task's rectangle of `dst`, chunk by chunk of weight rows.
///
/// # Safety
/// The CPU has `L`'s instruction set; no other thread touches the rectangle while this
/// runs.
unsafe fn block<L: Lanes>(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    task: &Task,
    buffer: &mut Vec<f32>,
    dst: Output,
) {
    let (c0, width, n) = (task.columns.start, task.columns.len(), dst.n);
    let (panel, mr) = (L::PANEL, L::MR);
    assert!(
        task.rows.end <= dst.m
            && task.columns.end <= n
            && width <= L::BLOCK
            && c0.is_multiple_of(panel)
            && w.len() == k * n,
        "sgemm: task outside the output"
    );
    let panels = width.div_ceil(panel);
    // whole panels whose rows are whole cache lines are read where they lie
    let in_place = L::IN_PLACE
        && width.is_multiple_of(panel)
        && n.is_multiple_of(16)
        && w.as_ptr().addr().is_multiple_of(64);
    // the chunks of weight rows, of equal length (at most `Lanes::KC`)
    let chunks = k.div_ceil(L::KC);
    let step = k.div_ceil(chunks);
    for k0 in (0..k).step_by(step) {
        let kc = step.min(k - k0);
        // the weight lines of the next chunk: this task's, else the next column block's
        // first (the task a thread usually runs next)
        let mut ahead = if k0 + kc < k {
            Ahead::new(w, n, k0 + kc..(k0 + kc + step).min(k), c0..c0 + width)
        } else if let Some(next) = task.next.clone() {
            Ahead::new(w, n, 0..step.min(k), next)
        } else {
            Ahead::none()
        };
        if !in_place {
            // every value a tile reads is packed below, but the columns past a narrower
            // last panel, whose results are not stored: the buffer is not cleared
            let packed_len = panels * kc * panel;
            if buffer.len() < packed_len {
                buffer.resize(packed_len, 0.0);
            }
            // weight row k0 + kk, columns c0 + panel·p .. → panel p's row kk
            for kk in 0..kc {
                // the row AHEAD rows on is requested now: many rows in flight at once
                if kk + AHEAD < kc {
                    let ahead = &w[(k0 + kk + AHEAD) * n + c0..(k0 + kk + AHEAD) * n + c0 + width];
                    for line in ahead.chunks(16) {
                        // SAFETY: a prefetch reads nothing architecturally (SSE, which every
                        // x86-64 CPU has).
                        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
                    }
                }
                let src = &w[(k0 + kk) * n + c0..(k0 + kk) * n + c0 + width];
                // full panels as copies of a constant size (inlined, no call per panel)
                let mut parts = src.chunks_exact(panel);
                for (p, part) in parts.by_ref().enumerate() {
                    let d = (p * kc + kk) * panel;
                    buffer[d..d + panel].copy_from_slice(part);
                }
                let rest = parts.remainder();
                if !rest.is_empty() {
                    let d = ((panels - 1) * kc + kk) * panel;
                    buffer[d..d + rest.len()].copy_from_slice(rest);
                }
            }
        }
        // each tile of input rows against every panel while its rows are in L1
        for r0 in task.rows.clone().step_by(mr) {
            for p in 0..panels {
                let c = c0 + p * panel;
                // the panel's `kc` rows: in the weights (`n` values apart) or packed
                let (panel_rows, stride) = if in_place {
                    (&w[k0 * n + c..], n)
                } else {
                    (&buffer[p * kc * panel..(p + 1) * kc * panel], panel)
                };
                let at = Tile {
                    k,
                    k0,
                    kc,
                    first: k0 == 0 && !dst.accumulate,
                    bias: bias.filter(|_| k0 + kc == k).map(|b| &b[c..]),
                    r0,
                    c,
                    columns: panel.min(n - c),
                    stride,
                };
                // SAFETY: `L`'s instruction set (this function's contract); the tile lies
                // in the task's rectangle (r0 + rows ≤ rows.end, c + columns ≤ c0 +
                // width), which no other thread touches.
                unsafe {
                    L::tile(
                        mr.min(task.rows.end - r0),
                        (x, panel_rows, &at),
                        dst,
                        &mut ahead,
                    );
                }
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
    /// Output columns that exist (at most the panel's width).
    columns: usize,
    /// Values from one row of the panel to the next: the panel's width where packed, the
    /// weights' row length where read in place.
    stride: usize,
}

/// Weight lines to request while tiles run: rows `rows` × columns `columns` of the
/// `[k, n]` weights, one 64-byte line after another, from a cursor that moves on with
/// each request.
struct Ahead<'a> {
    /// The weights.
    w: &'a [f32],
    /// Their row length.
    n: usize,
    /// First column.
    c0: usize,
    /// Lines per row (16 columns each).
    lines: usize,
    /// The row of the next line.
    row: usize,
    /// The line of `row` requested next.
    line: usize,
    /// One past the last row.
    end: usize,
}

impl<'a> Ahead<'a> {
    /// The lines of `w`'s rows `rows` × columns `columns`.
    fn new(
        w: &'a [f32],
        n: usize,
        rows: std::ops::Range<usize>,
        columns: std::ops::Range<usize>,
    ) -> Self {
        Self {
            w,
            n,
            c0: columns.start,
            lines: columns.len().div_ceil(16).max(1),
            row: rows.start,
            line: 0,
            end: rows.end,
        }
    }

    /// Nothing to request.
    fn none() -> Self {
        Self::new(&[], 0, 0..0, 0..0)
    }

    /// Whether lines are left to request.
    #[inline(always)]
    fn pending(&self) -> bool {
        self.row < self.end
    }

    /// Requests the next line into the cache (a line outside `w` is skipped) and moves
    /// the cursor on.
    #[inline(always)]
    fn request(&mut self) {
        let at = self.row * self.n + self.c0 + self.line * 16;
        if let Some(v) = self.w.get(at) {
            // SAFETY: a prefetch reads nothing architecturally; the address is in `w`.
            // Into L1 as well as L2 (T0): requested into L2 only (T1), the lines still
            // missed when packed on a Zen 4 EPYC and the packing ran at memory speed
            // (products of 12 to 64 rows took 10-28 % longer, of 128 to 512 rows 3-5 %,
            // of thousands of rows the same).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(v).cast()) };
        }
        self.line += 1;
        if self.line == self.lines {
            self.line = 0;
            self.row += 1;
        }
    }
}

/// Weight-row steps of a tile per [`AHEAD_LINES`] lines requested for the next chunk.
const AHEAD_EVERY: usize = 16;
/// Lines requested for the next chunk per [`AHEAD_EVERY`] steps of a tile.
const AHEAD_LINES: usize = 8;

/// The vector operations of one instruction set that a register tile uses, and its
/// tile sizes.
trait Lanes {
    /// f32 values per vector.
    const N: usize;
    /// Vectors per panel row.
    const VECTORS: usize;
    /// Panels per parallel task.
    const PANELS: usize;
    /// Most weight rows per chunk.
    const KC: usize;
    /// Whether a panel whose rows are whole 64-byte lines of the weights is read in place
    /// (`stride` = the weights' row length) instead of being packed first.
    const IN_PLACE: bool;
    /// Most input rows per register tile: `VECTORS · MR` accumulators, a panel row and a
    /// broadcast fit the registers.
    const MR: usize;
    /// Most output rows per parallel task: every column block of the task reads the same
    /// `ROWS × KC` inputs per chunk.
    const ROWS: usize;
    /// Output columns per panel.
    const PANEL: usize = Self::VECTORS * Self::N;
    /// Output columns per parallel task.
    const BLOCK: usize = Self::PANELS * Self::PANEL;
    /// A vector of `N` f32 values.
    type V: Copy;
    /// Which lanes of a vector a masked load or store touches.
    type M: Copy;

    /// The first `count` lanes (all of them from `count = N` on).
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn mask(count: usize) -> Self::M;
    /// All lanes zero.
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn zero() -> Self::V;
    /// `N` values from `p`.
    ///
    /// # Safety
    /// The CPU has the instruction set; `N` values are readable at `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// The lanes of `m` from `p`, zero elsewhere.
    ///
    /// # Safety
    /// The CPU has the instruction set; the lanes of `m` are readable at `p`.
    unsafe fn masked_load(m: Self::M, p: *const f32) -> Self::V;
    /// The lanes of `m` of `v` to `p`.
    ///
    /// # Safety
    /// The CPU has the instruction set; the lanes of `m` are writable at `p`.
    unsafe fn masked_store(p: *mut f32, m: Self::M, v: Self::V);
    /// `v` to `p`.
    ///
    /// # Safety
    /// The CPU has the instruction set; `N` values are writable at `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `v` in every lane.
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn splat(v: f32) -> Self::V;
    /// `a · b + c`, one rounding.
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    ///
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `steps` weight-row steps of a tile: `acc[r][j] += xs[r][i] · w[i·stride + j·N ..]`
    /// for `i < steps`, one fused multiply-add each, in order.
    ///
    /// # Safety
    /// The CPU has the instruction set; `steps` values are readable at each `xs[r]`, and
    /// `steps` panel rows of `V · N` values, `stride` values apart, at `w`.
    #[inline(always)]
    unsafe fn steps<const R: usize, const V: usize>(
        acc: &mut [[Self::V; V]; R],
        xs: &[*const f32; R],
        w: *const f32,
        stride: usize,
        steps: usize,
    ) where
        Self: Sized,
    {
        // SAFETY: the contract.
        unsafe { steps_in_order::<Self, R, V>(acc, xs, w, stride, steps) }
    }
    /// [`tile`] of `rows` (1 to `MR`) rows, compiled for the instruction set.
    ///
    /// # Safety
    /// As [`tile`] asks, for `R = rows`.
    unsafe fn tile(rows: usize, operands: (&[f32], &[f32], &Tile), dst: Output, ahead: &mut Ahead);
}

/// `Lanes::tile` of `$rows` rows as `$kernel::<R>` for R = 1 ..= `$mr`.
macro_rules! tiles {
    ($kernel:ident, $rows:expr, $operands:expr, $dst:expr, $ahead:expr; $($r:literal),*) => {{
        let (x, panel_rows, t) = $operands;
        match $rows {
            // SAFETY: the caller's contract, for R = rows.
            $($r => unsafe { $kernel::<$r>(x, panel_rows, t, $dst, $ahead) },)*
            rows => unreachable!("a tile of {rows} rows"),
        }
    }};
}

/// 512-bit vectors (AVX-512 F): 16 lanes, tiles of up to 12 rows × 32 columns.
struct Avx512;

impl Lanes for Avx512 {
    const N: usize = 16;
    const VECTORS: usize = 2;
    const PANELS: usize = 4;
    // a 256 KiB buffer of the task's columns
    const KC: usize = 512;
    // a panel row is two whole lines (32 values) where the weights' rows are: read in
    // place, products of 24 to 64 rows took 3-10 % less time on a Zen 4 EPYC (weights
    // from memory), of 512 to 4096 rows the same
    const IN_PLACE: bool = true;
    const MR: usize = 12;
    // a chunk's inputs (1 MiB) stay in a 1 or 2 MiB L2 across the task's column block: at
    // 2048 rows, ConvNeXt-L's linears ran at 90-95 % of this speed
    const ROWS: usize = 512;
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    unsafe fn mask(count: usize) -> __mmask16 {
        ((1u32 << count.min(16)) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: AVX-512 F (the contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the contract.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn masked_load(m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: the contract (masked-off lanes are not read).
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn masked_store(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the contract (masked-off lanes are not written).
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the contract.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        // SAFETY: AVX-512 F (the contract).
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512 F (the contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512 F (the contract).
        unsafe { _mm512_add_ps(a, b) }
    }
    unsafe fn tile(rows: usize, operands: (&[f32], &[f32], &Tile), dst: Output, ahead: &mut Ahead) {
        const _: () = assert!(Avx512::MR == 12);
        tiles!(tile_avx512, rows, operands, dst, ahead; 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
    }
}

/// [`tile`] with AVX-512 F.
///
/// # Safety
/// The CPU has AVX-512 F; as [`tile`] asks.
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const R: usize>(
    x: &[f32],
    panel_rows: &[f32],
    t: &Tile,
    dst: Output,
    ahead: &mut Ahead,
) {
    // SAFETY: the contract.
    unsafe { tile::<Avx512, R, 2>(x, panel_rows, t, dst, ahead) }
}

/// 256-bit vectors (AVX2 and FMA): 8 lanes, tiles of up to 4 rows × 24 columns (all 16
/// registers: 12 accumulators, a panel row of 3 and a broadcast; four broadcasts per 12
/// multiply-adds ran faster on Zen 3 than the 6 × 16 tile's six).
struct Avx2;

impl Lanes for Avx2 {
    const N: usize = 8;
    const VECTORS: usize = 3;
    const PANELS: usize = 5;
    // a panel (24 KiB) and a tile's inputs (4 KiB) fit a 32 KiB L1
    const KC: usize = 256;
    // a panel row (24 values) straddles lines: read in place, products of 64 and 512 rows
    // took 1.3-1.45 times as long
    const IN_PLACE: bool = false;
    const MR: usize = 4;
    // a chunk's inputs (256 KiB) and the packed panels (120 KiB) fit a 512 KiB L2: at 2048
    // rows, ConvNeXt-L's stage-3 linears ran at 65-75 % of this speed
    const ROWS: usize = 256;
    type V = __m256;
    type M = __m256i;

    #[inline(always)]
    unsafe fn mask(count: usize) -> __m256i {
        // lane i is all ones where i < count
        // SAFETY: AVX2 (the contract).
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(count.min(8) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: AVX (the contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the contract.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn masked_load(m: __m256i, p: *const f32) -> __m256 {
        // SAFETY: the contract (masked-off lanes are not read).
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn masked_store(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: the contract (masked-off lanes are not written).
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the contract.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        // SAFETY: AVX (the contract).
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA (the contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX (the contract).
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn steps<const R: usize, const V: usize>(
        acc: &mut [[__m256; V]; R],
        xs: &[*const f32; R],
        w: *const f32,
        stride: usize,
        steps: usize,
    ) {
        if R == 4 && V == 3 {
            // SAFETY: the same types (R = 4, V = 3); the contract.
            unsafe {
                let acc = &mut *std::ptr::from_mut(acc).cast::<[[__m256; 3]; 4]>();
                let xs = &*std::ptr::from_ref(xs).cast::<[*const f32; 4]>();
                steps_4x24(acc, xs, w, stride, steps);
            }
            return;
        }
        // SAFETY: the contract.
        unsafe { steps_in_order::<Self, R, V>(acc, xs, w, stride, steps) }
    }
    unsafe fn tile(rows: usize, operands: (&[f32], &[f32], &Tile), dst: Output, ahead: &mut Ahead) {
        const _: () = assert!(Avx2::MR == 4);
        tiles!(tile_avx2, rows, operands, dst, ahead; 1, 2, 3, 4)
    }
}

/// [`Lanes::steps`] of the full AVX2 tile (4 rows × 3 vectors), written out: LLVM's own
/// allocation of the 16 registers (12 accumulators, a panel row, a broadcast) spills.
///
/// # Safety
/// The CPU has AVX2 and FMA; `steps` values are readable at each `xs[r]`, and `steps`
/// rows of 24 values, `stride` values apart, at `w`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn steps_4x24(
    acc: &mut [[__m256; 3]; 4],
    xs: &[*const f32; 4],
    w: *const f32,
    stride: usize,
    steps: usize,
) {
    if steps == 0 {
        return;
    }
    let [
        [mut a00, mut a01, mut a02],
        [mut a10, mut a11, mut a12],
        [mut a20, mut a21, mut a22],
        [mut a30, mut a31, mut a32],
    ] = *acc;
    // SAFETY: per step, 96 bytes at `w + 4·stride·i` and one value at each `xs[r] + 4·i` are read (the
    // contract); every register the block writes is named.
    unsafe {
        std::arch::asm!(
            "2:",
            "vmovups {w0}, ymmword ptr [{w}]",
            "vmovups {w1}, ymmword ptr [{w} + 32]",
            "vmovups {w2}, ymmword ptr [{w} + 64]",
            "vbroadcastss {b}, dword ptr [{x0} + 4*{i}]",
            "vfmadd231ps {a00}, {b}, {w0}",
            "vfmadd231ps {a01}, {b}, {w1}",
            "vfmadd231ps {a02}, {b}, {w2}",
            "vbroadcastss {b}, dword ptr [{x1} + 4*{i}]",
            "vfmadd231ps {a10}, {b}, {w0}",
            "vfmadd231ps {a11}, {b}, {w1}",
            "vfmadd231ps {a12}, {b}, {w2}",
            "vbroadcastss {b}, dword ptr [{x2} + 4*{i}]",
            "vfmadd231ps {a20}, {b}, {w0}",
            "vfmadd231ps {a21}, {b}, {w1}",
            "vfmadd231ps {a22}, {b}, {w2}",
            "vbroadcastss {b}, dword ptr [{x3} + 4*{i}]",
            "vfmadd231ps {a30}, {b}, {w0}",
            "vfmadd231ps {a31}, {b}, {w1}",
            "vfmadd231ps {a32}, {b}, {w2}",
            "add {w}, {stride}",
            "inc {i}",
            "cmp {i}, {n}",
            "jne 2b",
            w = inout(reg) w => _,
            i = inout(reg) 0usize => _,
            n = in(reg) steps,
            stride = in(reg) stride * 4,
            x0 = in(reg) xs[0],
            x1 = in(reg) xs[1],
            x2 = in(reg) xs[2],
            x3 = in(reg) xs[3],
            a00 = inout(ymm_reg) a00,
            a01 = inout(ymm_reg) a01,
            a02 = inout(ymm_reg) a02,
            a10 = inout(ymm_reg) a10,
            a11 = inout(ymm_reg) a11,
            a12 = inout(ymm_reg) a12,
            a20 = inout(ymm_reg) a20,
            a21 = inout(ymm_reg) a21,
            a22 = inout(ymm_reg) a22,
            a30 = inout(ymm_reg) a30,
            a31 = inout(ymm_reg) a31,
            a32 = inout(ymm_reg) a32,
            w0 = out(ymm_reg) _,
            w1 = out(ymm_reg) _,
            w2 = out(ymm_reg) _,
            b = out(ymm_reg) _,
            options(nostack, readonly),
        );
    }
    *acc = [
        [a00, a01, a02],
        [a10, a11, a12],
        [a20, a21, a22],
        [a30, a31, a32],
    ];
}

/// [`tile`] with AVX2 and FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA; as [`tile`] asks.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    x: &[f32],
    panel_rows: &[f32],
    t: &Tile,
    dst: Output,
    ahead: &mut Ahead,
) {
    // SAFETY: the contract.
    unsafe { tile::<Avx2, R, 3>(x, panel_rows, t, dst, ahead) }
}

/// [`Lanes::steps`] as plain vector operations, in order.
///
/// # Safety
/// As [`Lanes::steps`] asks.
#[inline(always)]
unsafe fn steps_in_order<L: Lanes, const R: usize, const V: usize>(
    acc: &mut [[L::V; V]; R],
    xs: &[*const f32; R],
    w: *const f32,
    stride: usize,
    steps: usize,
) {
    for i in 0..steps {
        // SAFETY: i < steps (the contract).
        unsafe {
            let wv: [L::V; V] = std::array::from_fn(|j| L::load(w.add(i * stride + j * L::N)));
            for r in 0..R {
                let xb = L::splat(*xs[r].add(i));
                for j in 0..V {
                    acc[r][j] = L::fmadd(xb, wv[j], acc[r][j]);
                }
            }
        }
    }
}

/// Rows `r0..r0 + R` × the panel's `V` vectors of columns over the chunk's weight rows;
/// every [`AHEAD_EVERY`] steps it requests the next line of `ahead`. Inlined into the
/// functions that enable `L`'s instruction set.
///
/// # Safety
/// The CPU has `L`'s instruction set; rows `r0..r0 + R` × columns `c..c + columns` lie
/// in `dst` and no other thread touches them while this runs.
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const V: usize>(
    x: &[f32],
    panel_rows: &[f32],
    t: &Tile,
    dst: Output,
    ahead: &mut Ahead,
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
        stride,
    } = t;
    let panel = V * L::N;
    // the sizes of the unchecked loads and stores below
    assert!(
        V == L::VECTORS
            && stride >= panel
            && panel_rows.len() >= (kc - 1) * stride + panel
            && x.len() >= (r0 + R) * k
            && k0 + kc <= k
            && columns <= panel
            && r0 + R <= dst.m
            && c + columns <= dst.n
            && bias.is_none_or(|b| b.len() >= columns)
    );
    // SAFETY (of every vector operation below): `L`'s instruction set (the contract).
    // the lanes of each vector that hold existing columns
    let masks: [L::M; V] =
        std::array::from_fn(|j| unsafe { L::mask(columns.saturating_sub(j * L::N)) });
    // SAFETY (of the loads and stores of `dst`): row r's columns c .. c + columns lie in
    // `dst` (asserted above); the masks cover exactly those (all of a full panel).
    let out = |r: usize, j: usize| unsafe { dst.ptr.add((r0 + r) * dst.n + c + j * L::N) };
    // a full panel is read and written whole (masked moves are slow on some CPUs)
    let full = columns == panel;
    let mut acc = [[unsafe { L::zero() }; V]; R];
    if !first {
        for (r, a) in acc.iter_mut().enumerate() {
            for (j, v) in a.iter_mut().enumerate() {
                // SAFETY: as above.
                *v = unsafe {
                    if full {
                        L::load(out(r, j))
                    } else {
                        L::masked_load(masks[j], out(r, j))
                    }
                };
            }
        }
    }
    let xs: [*const f32; R] = std::array::from_fn(|r| x[(r0 + r) * k + k0..].as_ptr());
    let w = panel_rows.as_ptr();
    // segments of AHEAD_EVERY steps, each after its requests: the inner loop stays free
    // of branches that would cost the accumulators their registers
    for k1 in (0..kc).step_by(AHEAD_EVERY) {
        for _ in 0..AHEAD_LINES {
            if ahead.pending() {
                ahead.request();
            }
        }
        let steps = AHEAD_EVERY.min(kc - k1);
        let at: [*const f32; R] = std::array::from_fn(|r| xs[r].wrapping_add(k1));
        // SAFETY: k1 + steps ≤ kc: the panel's rows k1 .. k1 + steps lie in `panel_rows`,
        // and x's values at k0 + k1 .. of each row in `x` (asserted above).
        unsafe { L::steps::<R, V>(&mut acc, &at, w.add(k1 * stride), stride, steps) };
    }
    if let Some(b) = bias {
        // SAFETY: `b` holds at least `columns` values (asserted above).
        let bv: [L::V; V] =
            std::array::from_fn(|j| unsafe { L::masked_load(masks[j], b.as_ptr().add(j * L::N)) });
        for a in &mut acc {
            for (v, &b) in a.iter_mut().zip(&bv) {
                // SAFETY: as above.
                *v = unsafe { L::add(*v, b) };
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for (j, &v) in a.iter().enumerate() {
            // SAFETY: as above.
            unsafe {
                if full {
                    L::store(out(r, j), v);
                } else {
                    L::masked_store(out(r, j), masks[j], v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Columns, available, product};

    /// `len` values from `seed` in [−1, 1), starting `offset` bytes past a 64-byte
    /// boundary (`offset` a multiple of 4).
    fn values_at(len: usize, seed: u32, offset: usize) -> (Vec<f32>, usize) {
        let mut v = vec![0.0f32; len + 32];
        let start = (v.as_ptr().addr().next_multiple_of(64) + offset - v.as_ptr().addr()) / 4;
        let mut s = seed;
        for x in &mut v[start..start + len] {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *x = (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
        }
        (v, start)
    }

    #[test]
    fn weights_read_in_place_or_packed_give_the_sums_in_input_order() {
        if !available() {
            return;
        }
        // 64-byte-aligned weights are read in place where the rows are a multiple of 16
        // values (with AVX-512; the block of a narrower last panel is packed), weights
        // 4 bytes past a line are packed: the same bits either way
        for (m, k, n) in [
            (64, 700, 256),
            (13, 1030, 160),
            (30, 40, 48),
            (12, 515, 1008),
            (25, 9, 1000),
        ] {
            for offset in [0, 4] {
                let (xv, xs) = values_at(m * k, 1, 0);
                let (wv, ws) = values_at(k * n, 2, offset);
                let (bv, bs) = values_at(n, 3, 0);
                let (x, w, b) = (&xv[xs..xs + m * k], &wv[ws..ws + k * n], &bv[bs..bs + n]);
                let out = product(x, w, Some(b), m, k, n);
                for r in 0..m {
                    for c in 0..n {
                        let sum = (0..k).fold(0.0f32, |a, i| x[r * k + i].mul_add(w[i * n + c], a));
                        assert_eq!(
                            out[r * n + c].to_bits(),
                            (sum + b[c]).to_bits(),
                            "[{m}, {k}] · [{k}, {n}], weights {offset} bytes past a line: [{r}, {c}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn column_blocks_cover_the_output_in_whole_panels_and_balance_the_threads() {
        for n in [1, 5, 24, 25, 120, 121, 1000, 1024, 1536, 3584, 4097] {
            for (ranges, threads) in [(1, 1), (1, 2), (3, 2), (1, 3), (2, 4), (1, 8)] {
                let c = Columns::new(n, 24, 5, ranges, threads);
                let total = n.div_ceil(24);
                assert!(c.blocks >= total.div_ceil(5) && c.blocks <= total.max(1));
                if c.blocks < total {
                    assert_eq!(
                        (ranges * c.blocks) % threads,
                        0,
                        "n {n}, {ranges} × {threads}"
                    );
                }
                let mut next = 0;
                for b in 0..c.blocks {
                    let cols = c.block(b);
                    assert_eq!(
                        cols.start, next,
                        "n {n}: block {b} starts where the last ended"
                    );
                    assert!(
                        !cols.is_empty() && cols.start.is_multiple_of(24) && cols.len() <= 5 * 24
                    );
                    next = cols.end;
                }
                assert_eq!(next, n);
            }
        }
    }
}
