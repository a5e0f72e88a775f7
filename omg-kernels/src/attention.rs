//! Multi-head attention with a boolean key mask per query, the heads side by side in the
//! channels (the layout of `nn.MultiheadAttention`'s projections).

use burn::tensor::{Bool, Tensor, activation::softmax, backend::Backend};

/// `q` `[B, Nq, C]` (already scaled by `1/√dh`), `k`, `v` `[B, Nk, C]`, `heads` dividing
/// `C`, `mask` `[B, Nq, Nk]` (`true` = the key is blocked for that query, for every head)
/// → `[B, Nq, C]`: per head `softmax(q·kᵀ with blocked keys at −∞)·v`, heads concatenated.
/// A query whose keys are all blocked gets NaN, as in PyTorch.
pub fn masked_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    mask: Option<Tensor<B, 3, Bool>>,
) -> Tensor<B, 3> {
    #[cfg(feature = "flex")]
    if crate::flex::takes(&q)
        && crate::flex::takes(&k)
        && crate::flex::takes(&v)
        && mask.as_ref().is_none_or(|m| m.dtype().size() == 1)
    {
        use crate::flex::{from_flex, into_flex, into_flex_bool};
        let out = crate::flex::attention::masked_attention(
            into_flex(q),
            into_flex(k),
            into_flex(v),
            heads,
            mask.map(into_flex_bool),
        );
        return from_flex(out);
    }
    masked_attention_fallback(q, k, v, heads, mask)
}

/// [`masked_attention`] in plain burn ops: score tensor, `mask_fill`, softmax, matmul
/// (the reference of the kernel).
pub fn masked_attention_fallback<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    mask: Option<Tensor<B, 3, Bool>>,
) -> Tensor<B, 3> {
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
