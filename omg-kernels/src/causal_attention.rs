//! Causal grouped-query self-attention of a decoder LLM over its key/value cache: the
//! queries of the newest positions against every cached key, without repeating the
//! keys per query head and without copying the filled part of the cache.

use burn::tensor::{Bool, Tensor, TensorData, activation::softmax, backend::Backend};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, require};
use crate::visible_keys::visible_keys;

/// `q` `[B, H, T, D]` (RoPE applied), `k`, `v` `[B, KV, S, D]` of which the first `keys`
/// positions are filled (a KV cache of capacity `S`, or `keys = S`), `KV` dividing `H`
/// (query head `h` reads key/value head `h / (H / KV)`), `T ≤ keys ≤ S` → `[B, T, H·D]`
/// (the heads side by side, as the output projection reads them).
///
/// The queries are positions `keys − T … keys − 1`. Query position `p` of batch row `r`
/// sees the keys `j ≤ p`, except the first `left_padding[r]` positions (padding, which
/// a padding query `p < left_padding[r]` alone sees, itself only); an empty
/// `left_padding` means none. Scores are `q·kᵀ / √D`, softmax over the visible keys,
/// then the weighted sum of values.
///
/// # Panics
/// If the operands do not have these shapes, or `left_padding` is neither empty nor one
/// count per batch row.
pub fn causal_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    keys: usize,
    left_padding: &[usize],
) -> Tensor<B, 3> {
    dispatch(CausalAttention::new(keys, left_padding), (q, k, v))
}

/// [`causal_attention`] in plain burn ops: the score tensor, a boolean mask, softmax and
/// matmuls (the reference of the kernel, and the path of the GPU backends), with the
/// same shape check.
pub fn causal_attention_fallback<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    keys: usize,
    left_padding: &[usize],
) -> Tensor<B, 3> {
    fallback(CausalAttention::new(keys, left_padding), (q, k, v))
}

/// [`causal_attention`] as a kernel entry.
struct CausalAttention {
    keys: usize,
    left_padding: Vec<usize>,
}

impl CausalAttention {
    fn new(keys: usize, left_padding: &[usize]) -> Self {
        Self {
            keys,
            left_padding: left_padding.to_vec(),
        }
    }
}

impl<B: Backend> Entry<B> for CausalAttention {
    type Operands = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);
    type Output = Tensor<B, 3>;

    fn name(&self) -> &'static str {
        "causal_attention"
    }

    fn check(&self, at: Site, (q, k, v): &Self::Operands) {
        let (qd, kd) = (q.dims(), k.dims());
        let [b, h, t, d] = qd;
        let expected = [
            Dim::Is("B", b),
            Dim::Any("KV"),
            Dim::Any("S"),
            Dim::Is("D", d),
        ];
        expect(at, "k", &kd, &expected, &[("q", &qd)]);
        let [_, kv, s, _] = kd;
        let expected = [
            Dim::Is("B", b),
            Dim::Is("KV", kv),
            Dim::Is("S", s),
            Dim::Is("D", d),
        ];
        expect(at, "v", &v.dims(), &expected, &[("q", &qd), ("k", &kd)]);
        require(at, kv > 0 && h % kv == 0, || {
            format!("KV = {kv} key/value heads do not divide H = {h} query heads")
        });
        let keys = self.keys;
        require(at, t <= keys && keys <= s, || {
            format!("keys = {keys} is not within T = {t} … S = {s} (q is {qd:?}, k is {kd:?})")
        });
        let pads = self.left_padding.len();
        require(at, pads == 0 || pads == b, || {
            format!("{pads} left-padding counts for a batch of B = {b}")
        });
    }

    fn kernel_takes(&self, (q, k, v): &Self::Operands) -> bool {
        is_f32(q) && is_f32(k) && is_f32(v)
    }

    #[cfg(feature = "flex")]
    fn kernel(self, (q, k, v): (FlexTensor, FlexTensor, FlexTensor)) -> FlexTensor {
        crate::flex::causal_attention::causal_attention(q, k, v, self.keys, &self.left_padding)
    }

    fn fallback(self, (q, k, v): Self::Operands) -> Tensor<B, 3> {
        let [b, h, t, d] = q.dims();
        let kv = k.dims()[1];
        let g = h / kv;
        let s = self.keys;
        let k = k.slice([0..b, 0..kv, 0..s, 0..d]);
        let v = v.slice([0..b, 0..kv, 0..s, 0..d]);
        // the g query heads of a KV group stacked along the query axis ([b, kv, g·t, d])
        let q = q.reshape([b, kv, g * t, d]);
        let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt();
        let padded = self.left_padding.iter().any(|&p| p > 0);
        let scores = if t > 1 || padded {
            let pads = if padded { &self.left_padding[..] } else { &[0] };
            let mask = hidden_keys::<B>(t, s, g, pads, &scores.device());
            scores.mask_fill(mask, f32::NEG_INFINITY)
        } else {
            scores
        };
        softmax(scores, 3)
            .matmul(v)
            .reshape([b, h, t, d])
            .swap_dims(1, 2)
            .reshape([b, t, h * d])
    }
}

/// `true` where query row `j·t + i` of batch row `r` (position `s − t + i`, for each of
/// the `g` heads of a group) must not see key `key`: see [`visible_keys`];
/// `[left_padding.len(), 1, g·t, s]`.
fn hidden_keys<B: Backend>(
    t: usize,
    s: usize,
    g: usize,
    left_padding: &[usize],
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let b = left_padding.len();
    let mut mask = Vec::with_capacity(b * g * t * s);
    for &pad in left_padding {
        for _ in 0..g {
            for i in 0..t {
                let seen = visible_keys(s - t + i, pad);
                mask.extend((0..s).map(|key| !seen.contains(&key)));
            }
        }
    }
    Tensor::from_data(TensorData::new(mask, [b, 1, g * t, s]), device)
}
