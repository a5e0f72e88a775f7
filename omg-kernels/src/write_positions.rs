//! Writing new positions into a preallocated key/value cache in place.

use burn::tensor::{Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, require};

/// `cache` `[B, H, S, D]` with `value` `[B, H, T, D]` written at positions
/// `start … start + T − 1` of its third dim (`slice_assign` of that range).
///
/// On Flex the cache's memory is written in place when nothing else shares it (the
/// usual case: a cache that hands out no copies), so an append costs the `T` new
/// positions rather than a copy of the whole cache, as `slice_assign` there does.
///
/// # Panics
/// If `value` does not have the cache's `B`, `H` and `D`, or `start + T > S`.
pub fn write_positions<B: Backend>(
    cache: Tensor<B, 4>,
    start: usize,
    value: Tensor<B, 4>,
) -> Tensor<B, 4> {
    dispatch(WritePositions { start }, (cache, value))
}

/// [`write_positions`] as burn's `slice_assign` (the reference of the kernel), with the
/// same shape check.
pub fn write_positions_fallback<B: Backend>(
    cache: Tensor<B, 4>,
    start: usize,
    value: Tensor<B, 4>,
) -> Tensor<B, 4> {
    fallback(WritePositions { start }, (cache, value))
}

/// [`write_positions`] as a kernel entry.
struct WritePositions {
    start: usize,
}

impl<B: Backend> Entry<B> for WritePositions {
    type Operands = (Tensor<B, 4>, Tensor<B, 4>);
    type Output = Tensor<B, 4>;

    fn name(&self) -> &'static str {
        "write_positions"
    }

    fn check(&self, at: Site, (cache, value): &Self::Operands) {
        let (cd, vd) = (cache.dims(), value.dims());
        let [b, h, s, d] = cd;
        let expected = [
            Dim::Is("B", b),
            Dim::Is("H", h),
            Dim::Any("T"),
            Dim::Is("D", d),
        ];
        expect(at, "value", &vd, &expected, &[("cache", &cd)]);
        let (start, t) = (self.start, vd[2]);
        require(at, start <= s && t <= s - start, || {
            format!(
                "positions {start} … {start} + {t} do not fit a cache of S = {s} (cache is {cd:?})"
            )
        });
    }

    fn kernel_takes(&self, (cache, value): &Self::Operands) -> bool {
        is_f32(cache) && is_f32(value)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (cache, value): (FlexTensor, FlexTensor)) -> FlexTensor {
        crate::flex::write_positions::write_positions(cache, self.start, value)
    }

    fn fallback(self, (cache, value): Self::Operands) -> Tensor<B, 4> {
        let [b, h, _, d] = cache.dims();
        let t = value.dims()[2];
        cache.slice_assign([0..b, 0..h, self.start..self.start + t, 0..d], value)
    }
}
