//! The Flex kernels, on contiguous Flex tensors made by the dispatch (`crate::dispatch`),
//! and the helpers they share.

pub(crate) mod attention;
pub(crate) mod cast;
pub(crate) mod causal_attention;
pub(crate) mod conv;
#[cfg(target_arch = "x86_64")]
pub(crate) mod decode_attention;
pub(crate) mod deform;
pub(crate) mod depthwise;
pub(crate) mod gelu;
pub(crate) mod gemv;
pub(crate) mod isa;
pub(crate) mod quant;
pub(crate) mod rope;
#[cfg(target_arch = "x86_64")]
pub(crate) mod sgemm;
pub(crate) mod silu;
pub(crate) mod write_positions;

pub(crate) use crate::linear;

use std::any::TypeId;

use burn::tensor::{TensorData, backend::Backend};
use burn_flex::{Flex, FlexTensor};

/// Whether `B` is burn's Flex backend.
pub(crate) fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Flex>()
}

/// The bytes of a bool (or one-byte int) operand, one per element.
pub(crate) fn bytes(x: &FlexTensor) -> &[u8] {
    let n = x.layout().num_elements();
    &x.bytes()[..n]
}

/// The f32 elements of an operand, row-major.
pub(crate) fn f32s(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>()
        .expect("a contiguous f32 operand (the dispatch checked its dtype)")
}

/// A new contiguous f32 Flex tensor.
pub(crate) fn new_f32(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.to_vec()))
}

/// `[rows, n]` results of `task(c0, dst)`, which fills output channels `c0..` (as many
/// as `dst` holds, `rows` results each, channel-major); tasks of `channels` channels
/// run in parallel, and the channel-major results are transposed at the end.
pub(crate) fn by_channel(
    rows: usize,
    n: usize,
    channels: usize,
    task: impl Fn(usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    use rayon::prelude::*;

    let mut by_channel = vec![0.0f32; n * rows];
    if rows > 0 {
        by_channel
            .par_chunks_mut(channels * rows)
            .enumerate()
            .for_each(|(t, dst)| task(t * channels, dst));
    }
    if rows <= 1 {
        return by_channel;
    }
    let mut out = vec![0.0f32; rows * n];
    for (c, ys) in by_channel.chunks_exact(rows).enumerate() {
        for (r, &y) in ys.iter().enumerate() {
            out[r * n + c] = y;
        }
    }
    out
}

/// Adds `bias` (one value per column) to every row of the row-major `out`.
pub(crate) fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len().max(1)) {
        for (o, &b) in row.iter_mut().zip(bias) {
            *o += b;
        }
    }
}

/// `[blocks][rows][width]` results of consecutive column blocks (the last one
/// possibly narrower than `width`) → `[rows, n]`.
pub(crate) fn unblock(by_block: &[f32], rows: usize, n: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * n];
    if rows == 0 || n == 0 {
        return out;
    }
    for (b, block) in by_block.chunks_exact(rows * width).enumerate() {
        let c0 = b * width;
        let w = width.min(n - c0);
        for (dst, src) in out.chunks_exact_mut(n).zip(block.chunks_exact(width)) {
            dst[c0..c0 + w].copy_from_slice(&src[..w]);
        }
    }
    out
}

/// `a · b + c`, fused when the caller was compiled with FMA.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` in f32 (Cephes' expf: `x = n·ln2 + r`, a degree-6 polynomial for `e^r`, then
/// `2^n` by the exponent bits; within 2 ulp); `−∞ → 0`.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.5, 88.5);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = madd::<FMA>(n, -0.693_359_4, x);
    let r = madd::<FMA>(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4f32;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let p = madd::<FMA>(p, r * r, r) + 1.0;
    p * pow2(n)
}

/// `2^n` for the integer `n` in −127 ..= 128 (0 at −127, ∞ at 128): n + 1.5·2²³ holds
/// n in its low mantissa bits (as `n as i32` would give it, but in integer lanes, so
/// the loops that call it vectorise).
#[inline(always)]
fn pow2(n: f32) -> f32 {
    let n = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    f32::from_bits(n.wrapping_add(127) << 23)
}

/// Lanes of the independent accumulators of [`softmax_in_place`] (lets its reductions
/// vectorise).
const SOFTMAX_LANES: usize = 8;

/// Softmax of `row` in place with the vectorised [`exp`]: `−∞` entries get 0, and a row
/// of `−∞` only becomes NaN, as in PyTorch.
#[inline(always)]
pub(crate) fn softmax_in_place<const FMA: bool>(row: &mut [f32]) {
    let mut lane_max = [f32::NEG_INFINITY; SOFTMAX_LANES];
    let mut chunks = row.chunks_exact(SOFTMAX_LANES);
    for chunk in &mut chunks {
        for (m, &s) in lane_max.iter_mut().zip(chunk) {
            *m = m.max(s);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lane_max)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if max == f32::NEG_INFINITY {
        row.fill(f32::NAN);
        return;
    }
    // computed for every entry, then selected: a select, not a branch, so the loops
    // below vectorise
    let e = |s: f32| {
        let v = exp::<FMA>(s - max);
        if s == f32::NEG_INFINITY { 0.0 } else { v }
    };
    let mut lane_sum = [0.0f32; SOFTMAX_LANES];
    let mut chunks = row.chunks_exact_mut(SOFTMAX_LANES);
    for chunk in &mut chunks {
        for (acc, s) in lane_sum.iter_mut().zip(chunk.iter_mut()) {
            *s = e(*s);
            *acc += *s;
        }
    }
    let mut sum = lane_sum.iter().sum::<f32>();
    for s in chunks.into_remainder() {
        *s = e(*s);
        sum += *s;
    }
    let inv = 1.0 / sum;
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// A strided f32 matrix operand of [`matmul`]: its first element and the steps from one
/// row and one column to the next.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub(crate) at: *const f32,
    pub(crate) row: isize,
    pub(crate) col: isize,
}

impl Strided {
    /// The matrix whose rows start every `step` values of `x` (row-major).
    pub(crate) fn rows(x: &[f32], step: usize) -> Self {
        Self {
            at: x.as_ptr(),
            row: step as isize,
            col: 1,
        }
    }

    /// The transpose of [`Strided::rows`]`(x, step)`: its columns start every `step`
    /// values of `x`.
    pub(crate) fn transposed(x: &[f32], step: usize) -> Self {
        Self {
            at: x.as_ptr(),
            row: 1,
            col: step as isize,
        }
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` by the `gemm` crate on the calling thread, `dst`
/// contiguous (row step `n`).
///
/// # Safety
/// `dst` must hold `m · n` values, and every element `(i, j)` of `lhs` (`i < m`, `j < k`)
/// and of `rhs` (`i < k`, `j < n`) must lie in memory that is readable for the call.
pub(crate) unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: Strided,
    rhs: Strided,
) {
    assert!(
        dst.len() >= m * n,
        "matmul: {} values for [{m}, {n}]",
        dst.len()
    );
    // SAFETY: dst holds m·n values (asserted), the operands' elements are readable (the
    // caller's contract).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.at,
            lhs.col,
            lhs.row,
            rhs.at,
            rhs.col,
            rhs.row,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs `$body::<true>` in an AVX2+FMA-compiled copy when [`isa::isa`] allows them (the
/// CPU has them and `OMG_KERNELS_ISA` does not rule them out), else the baseline
/// `$body::<false>`.
macro_rules! multiversion {
    ($avx2:ident, $body:ident, ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2($($arg: $ty),*) $(-> $ret)? {
            $body::<true>($($arg),*)
        }

        /// Dispatches to the fastest compiled copy for this CPU.
        fn run($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::flex::isa::isa().avx2_fma {
                // SAFETY: `isa` reports AVX2 and FMA only when the CPU has them (detected
                // at run time): the features `$avx2` was compiled with.
                return unsafe { $avx2($($arg),*) };
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::pow2;

    #[test]
    fn pow2_builds_the_bits_the_integer_cast_would() {
        // every n `exp` can reach (its input is clamped to −87.5 ..= 88.5)
        for n in (-127..=128).map(|n| n as f32) {
            let want = f32::from_bits(((n as i32 + 127) as u32) << 23);
            assert_eq!(pow2(n).to_bits(), want.to_bits(), "2^{n}");
        }
    }
}
