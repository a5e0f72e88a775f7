//! The BERT encoder as transformers' `BertModel` runs it in evaluation mode for one
//! sequence: the sum of word, absolute position and token-type-0 embeddings, a
//! LayerNorm, then `num_hidden_layers` post-norm layers of multi-head self-attention
//! (scale `1/√head_dim`, no mask) and a GELU feed-forward. Dropout is off; the pooler
//! is not run (the phrase embedding uses the last hidden states only).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use omg_kernels::{gelu, linear};

use crate::BertConfig;

/// `BertEmbeddings`: `LayerNorm(word + position + token_type)`.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `word_embeddings`, `[vocab_size, hidden]`.
    pub word_embeddings: Embedding<B>,
    /// `position_embeddings`, `[max_position_embeddings, hidden]`.
    pub position_embeddings: Embedding<B>,
    /// `token_type_embeddings`, `[type_vocab_size, hidden]`.
    pub token_type_embeddings: Embedding<B>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

/// `BertLayer`: self-attention with its output projection and LayerNorm
/// (`attention.self.{query,key,value}`, `attention.output.{dense,LayerNorm}`), then the
/// feed-forward (`intermediate.dense`, GELU, `output.dense`, `output.LayerNorm`).
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// `attention.self.query`.
    pub query: Linear<B>,
    /// `attention.self.key`.
    pub key: Linear<B>,
    /// `attention.self.value`.
    pub value: Linear<B>,
    /// `attention.output.dense`.
    pub attention_output: Linear<B>,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm<B>,
    /// `intermediate.dense`.
    pub intermediate: Linear<B>,
    /// `output.dense`.
    pub output: Linear<B>,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm<B>,
    num_heads: usize,
}

/// `BertModel` without its pooler.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// `embeddings`.
    pub embeddings: BertEmbeddings<B>,
    /// `encoder.layer.{i}`.
    pub layers: Vec<BertLayer<B>>,
}

impl<B: Backend> BertModel<B> {
    /// A model of `config`'s sizes with lazily initialised weights, to be loaded.
    pub fn init(config: &BertConfig, device: &B::Device) -> Self {
        let h = config.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: norm(),
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| BertLayer {
                query: lin(h, h),
                key: lin(h, h),
                value: lin(h, h),
                attention_output: lin(h, h),
                attention_norm: norm(),
                intermediate: lin(h, config.intermediate_size),
                output: lin(config.intermediate_size, h),
                output_norm: norm(),
                num_heads: config.num_attention_heads,
            })
            .collect();
        Self { embeddings, layers }
    }

    /// The last hidden states `[T, hidden]` of one sequence of token ids. The caller
    /// guarantees `ids` is not empty, every id is below `vocab_size` and `ids.len()` is
    /// at most `max_position_embeddings` ([`crate::PhraseEncoder`] checks it).
    pub(crate) fn forward(&self, ids: &[u32]) -> Tensor<B, 2> {
        let device = self.embeddings.word_embeddings.weight.device();
        let t = ids.len();
        let to_ids =
            |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, t]), &device);
        let words = to_ids(ids.iter().map(|&i| i64::from(i)).collect());
        let positions = to_ids((0..t as i64).collect());
        let types = to_ids(vec![0; t]);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(words)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let mut x = e.layer_norm.forward(x);
        for layer in &self.layers {
            x = layer.forward(x);
        }
        let [_, t, h] = x.dims();
        x.reshape([t, h])
    }
}

impl<B: Backend> BertLayer<B> {
    /// One layer over `x` `[1, T, hidden]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, h] = x.dims();
        let heads = self.num_heads;
        let d = h / heads;
        let split = |y: Tensor<B, 3>| y.reshape([b, t, heads, d]).swap_dims(1, 2);
        let q = split(linear(&self.query, x.clone()));
        let k = split(linear(&self.key, x.clone()));
        let v = split(linear(&self.value, x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt());
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, t, h]);
        let x = self
            .attention_norm
            .forward(linear(&self.attention_output, context) + x);
        let y = linear(&self.output, gelu(linear(&self.intermediate, x.clone())));
        self.output_norm.forward(y + x)
    }
}
