//! `a · b` of two batches of f32 matrices (burn's rank-3 `matmul` without broadcasting),
//! with the tiled kernel of the many-row linears (AVX-512 or AVX2) for every batch entry.

use burn::tensor::{Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32};
use crate::linear::many_rows_kernel;

/// `a` `[N, M, K]` · `b` `[N, K, P]` → `[N, M, P]`, as `a.matmul(b)`.
///
/// # Panics
/// If `b` is not `[N, K, P]` for `a` `[N, M, K]` (no broadcasting of `N`).
pub fn matmul<B: Backend>(a: Tensor<B, 3>, b: Tensor<B, 3>) -> Tensor<B, 3> {
    dispatch(Matmul, (a, b))
}

/// [`matmul`] as burn's `matmul` (the reference of the kernel), with the same shape check.
pub fn matmul_fallback<B: Backend>(a: Tensor<B, 3>, b: Tensor<B, 3>) -> Tensor<B, 3> {
    fallback(Matmul, (a, b))
}

/// [`matmul`] as a kernel entry: the tiled kernel for more than
/// [`FEW_ROWS`](crate::FEW_ROWS) rows on CPUs with AVX-512, else burn's matmul.
struct Matmul;

impl<B: Backend> Entry<B> for Matmul {
    type Operands = (Tensor<B, 3>, Tensor<B, 3>);
    type Output = Tensor<B, 3>;

    fn name(&self) -> &'static str {
        "matmul"
    }

    fn check(&self, at: Site, (a, b): &Self::Operands) {
        let [n, m, k] = a.dims();
        expect(
            at,
            "b",
            &b.dims(),
            &[Dim::Is("N", n), Dim::Is("K", k), Dim::Any("P")],
            &[("a", &[n, m, k])],
        );
    }

    fn kernel_takes(&self, (a, b): &Self::Operands) -> bool {
        a.dims()[1] > crate::FEW_ROWS && many_rows_kernel() && is_f32(a) && is_f32(b)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (a, b): (FlexTensor, FlexTensor)) -> FlexTensor {
        #[cfg(target_arch = "x86_64")]
        {
            crate::flex::sgemm::batched(a, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the tiled kernel runs on x86-64 only (many_rows_kernel)")
    }

    fn fallback(self, (a, b): Self::Operands) -> Tensor<B, 3> {
        a.matmul(b)
    }
}
