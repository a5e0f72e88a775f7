//! Multi-head attention with a boolean key mask per query, the heads side by side in the
//! channels (the layout of `nn.MultiheadAttention`'s projections).

use burn::tensor::{Bool, Tensor, activation::softmax, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, require};

/// `q` `[B, Nq, C]` (already scaled by `1/√dh`), `k`, `v` `[B, Nk, C]`, `heads` dividing
/// `C`, `mask` `[B, Nq, Nk]` (`true` = the key is blocked for that query, for every head)
/// → `[B, Nq, C]`: per head `softmax(q·kᵀ with blocked keys at −∞)·v`, heads concatenated.
/// A query whose keys are all blocked gets NaN, as in PyTorch.
///
/// # Panics
/// If the operands do not have these shapes or `heads` does not divide `C`.
pub fn masked_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    mask: Option<Tensor<B, 3, Bool>>,
) -> Tensor<B, 3> {
    dispatch(MaskedAttention { heads }, (q, k, v, mask))
}

/// [`masked_attention`] in plain burn ops: score tensor, `mask_fill`, softmax, matmul
/// (the reference of the kernel), with the same shape check.
pub fn masked_attention_fallback<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    mask: Option<Tensor<B, 3, Bool>>,
) -> Tensor<B, 3> {
    fallback(MaskedAttention { heads }, (q, k, v, mask))
}

/// [`masked_attention`] as a kernel entry.
struct MaskedAttention {
    heads: usize,
}

impl<B: Backend> Entry<B> for MaskedAttention {
    type Operands = (
        Tensor<B, 3>,
        Tensor<B, 3>,
        Tensor<B, 3>,
        Option<Tensor<B, 3, Bool>>,
    );
    type Output = Tensor<B, 3>;

    fn name(&self) -> &'static str {
        "masked_attention"
    }

    fn check(&self, at: Site, (q, k, v, mask): &Self::Operands) {
        let heads = self.heads;
        let (qd, kd) = (q.dims(), k.dims());
        let [b, nq, c] = qd;
        require(at, heads > 0 && c % heads == 0, || {
            format!("heads = {heads} does not divide C = {c} (q is {qd:?})")
        });
        let expected = [Dim::Is("B", b), Dim::Any("Nk"), Dim::Is("C", c)];
        expect(at, "k", &kd, &expected, &[("q", &qd)]);
        let nk = kd[1];
        let expected = [Dim::Is("B", b), Dim::Is("Nk", nk), Dim::Is("C", c)];
        expect(at, "v", &v.dims(), &expected, &[("q", &qd), ("k", &kd)]);
        if let Some(mask) = mask {
            let expected = [Dim::Is("B", b), Dim::Is("Nq", nq), Dim::Is("Nk", nk)];
            expect(
                at,
                "mask",
                &mask.dims(),
                &expected,
                &[("q", &qd), ("k", &kd)],
            );
        }
    }

    fn kernel_takes(&self, (q, k, v, mask): &Self::Operands) -> bool {
        // a mask of one byte per element (the kernel reads its bytes)
        is_f32(q) && is_f32(k) && is_f32(v) && mask.as_ref().is_none_or(|m| m.dtype().size() == 1)
    }

    #[cfg(feature = "flex")]
    fn kernel(
        self,
        (q, k, v, mask): (FlexTensor, FlexTensor, FlexTensor, Option<FlexTensor>),
    ) -> FlexTensor {
        crate::flex::attention::masked_attention(q, k, v, self.heads, mask)
    }

    fn fallback(self, (q, k, v, mask): Self::Operands) -> Tensor<B, 3> {
        let heads = self.heads;
        let [b, nq, c] = q.dims();
        let nk = k.dims()[1];
        let dh = c / heads;
        let split = |x: Tensor<B, 3>, n: usize| x.reshape([b, n, heads, dh]).swap_dims(1, 2);
        let scores = split(q, nq).matmul(split(k, nk).swap_dims(2, 3));
        let scores = match mask {
            Some(m) => scores.mask_fill(
                m.unsqueeze_dim::<4>(1).expand([b, heads, nq, nk]),
                f32::NEG_INFINITY,
            ),
            None => scores,
        };
        softmax(scores, 3)
            .matmul(split(v, nk))
            .swap_dims(1, 2)
            .reshape([b, nq, c])
    }
}
