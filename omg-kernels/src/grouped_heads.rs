//! The query, key or value heads of a fused grouped-query projection, in head-major
//! order and rotated by RoPE, in one pass over the projection's output.

use burn::tensor::{Tensor, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, require};
use crate::rope::rotate_half_rope_fallback;

/// `qkv` `[B, T, KV, P, D]` (a fused projection's output: `P` head slots per key/value
/// group, e.g. InternLM2's `wqkv` with `P = H/KV + 2`), slots `first … first + count − 1`
/// of every group → `[B, KV·count, T, D]` (head `g·count + j` is slot `first + j` of
/// group `g`), rotated as [`rotate_half_rope`](crate::rotate_half_rope) with `rope =
/// (cos, sin)`, each `[1, 1, T, D]`, or copied as they are without.
///
/// # Panics
/// If `first + count > P`, `count = 0`, or `cos` / `sin` are not `[1, 1, T, D]` with `D`
/// even.
pub fn grouped_heads<B: Backend>(
    qkv: Tensor<B, 5>,
    first: usize,
    count: usize,
    rope: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
) -> Tensor<B, 4> {
    dispatch(GroupedHeads { first, count }, (qkv, rope))
}

/// [`grouped_heads`] in burn's ops (a slice, a reshape, a dim swap and
/// [`rotate_half_rope_fallback`]), with the same shape check.
pub fn grouped_heads_fallback<B: Backend>(
    qkv: Tensor<B, 5>,
    first: usize,
    count: usize,
    rope: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
) -> Tensor<B, 4> {
    fallback(GroupedHeads { first, count }, (qkv, rope))
}

/// [`grouped_heads`] as a kernel entry.
struct GroupedHeads {
    first: usize,
    count: usize,
}

impl<B: Backend> Entry<B> for GroupedHeads {
    type Operands = (Tensor<B, 5>, Option<(Tensor<B, 4>, Tensor<B, 4>)>);
    type Output = Tensor<B, 4>;

    fn name(&self) -> &'static str {
        "grouped_heads"
    }

    fn check(&self, at: Site, (qkv, rope): &Self::Operands) {
        let dims = qkv.dims();
        let [_, t, _, p, d] = dims;
        let (first, count) = (self.first, self.count);
        require(at, count > 0 && first + count <= p, || {
            format!(
                "slots {first} … {first} + {count} are not within the P = {p} slots of qkv {dims:?}"
            )
        });
        if let Some((cos, sin)) = rope {
            require(at, d % 2 == 0, || {
                format!("qkv is {dims:?}, expected [B, T, KV, P, D] with D even")
            });
            let expected = [Dim::Eq(1), Dim::Eq(1), Dim::Is("T", t), Dim::Is("D", d)];
            expect(at, "cos", &cos.dims(), &expected, &[("qkv", &dims)]);
            expect(at, "sin", &sin.dims(), &expected, &[("qkv", &dims)]);
        }
    }

    fn kernel_takes(&self, (qkv, rope): &Self::Operands) -> bool {
        is_f32(qkv) && rope.as_ref().is_none_or(|(c, s)| is_f32(c) && is_f32(s))
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (qkv, rope): (FlexTensor, Option<(FlexTensor, FlexTensor)>)) -> FlexTensor {
        crate::flex::rope::grouped_heads(qkv, self.first, self.count, rope)
    }

    fn fallback(self, (qkv, rope): Self::Operands) -> Tensor<B, 4> {
        let [b, t, kv, _, d] = qkv.dims();
        let (first, count) = (self.first, self.count);
        let heads = qkv
            .slice([0..b, 0..t, 0..kv, first..first + count, 0..d])
            .reshape([b, t, kv * count, d])
            .swap_dims(1, 2);
        match rope {
            Some((cos, sin)) => rotate_half_rope_fallback(heads, cos, sin),
            None => heads,
        }
    }
}
