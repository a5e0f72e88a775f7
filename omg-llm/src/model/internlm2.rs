//! The InternLM2 causal language model.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Int, Tensor, backend::Backend};

use super::cache::KvCache;
use super::decoder_layer::DecoderLayer;
use super::linear::LlmLinear;
use super::rope::RotaryEmbedding;
use crate::config::InternLM2Config;
use crate::{LinearStorage, LlmError, LlmWeights};

/// Which positions of a forward pass get LM-head logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitsFor {
    /// Every position (`[batch, T, vocab]`).
    #[default]
    All,
    /// Only the last position (`[batch, 1, vocab]`), as generation needs.
    Last,
    /// None (hidden states only).
    None,
}

/// Options of [`InternLM2::forward_embeds`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Positions that get logits.
    pub logits: LogitsFor,
    /// Whether to return the input of every decoder layer.
    pub output_hidden_states: bool,
}

/// Output of a forward pass. Shapes use `B` = batch, `T` = new positions.
#[derive(Debug, Clone)]
pub struct ForwardOutput<B: Backend> {
    /// LM-head logits `[B, T, vocab]` (or `[B, 1, vocab]` / absent, see [`LogitsFor`]).
    pub logits: Option<Tensor<B, 3>>,
    /// Output of the final RMSNorm `[B, T, hidden]` (HF's last `hidden_states` entry;
    /// the state OMG-LLaVA reads at `[SEG]` tokens).
    pub last_hidden_state: Tensor<B, 3>,
    /// With `output_hidden_states`: the input of each decoder layer `[B, T, hidden]`
    /// (entry 0 = token embeddings), i.e. HF's `hidden_states[0..num_layers]`.
    pub hidden_states: Vec<Tensor<B, 3>>,
}

/// `InternLM2ForCausalLM`: token embedding, decoder layers, final RMSNorm, untied
/// LM head (`output`).
#[derive(Module, Debug)]
pub struct InternLM2<B: Backend> {
    /// Token embedding `[vocab, hidden]`.
    pub tok_embeddings: Embedding<B>,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// LM head `hidden → vocab`.
    pub output: LlmLinear<B>,
    #[module(skip)]
    rope: RotaryEmbedding,
    #[module(skip)]
    config: InternLM2Config,
    #[module(skip)]
    weights: LlmWeights,
}

impl<B: Backend> InternLM2<B> {
    /// Builds the model `config` describes, in f32. Parameters are lazily initialised:
    /// load weights with [`crate::loader`] before running it (running it unloaded uses
    /// random weights).
    pub fn init(config: &InternLM2Config, device: &B::Device) -> Result<Self, LlmError> {
        Self::init_with(config, LlmWeights::F32, device)
    }

    /// [`Self::init`] with the linears held as `weights` says (quantized storage is
    /// zero until loaded).
    pub fn init_with(
        config: &InternLM2Config,
        weights: LlmWeights,
        device: &B::Device,
    ) -> Result<Self, LlmError> {
        config.validate()?;
        if let LinearStorage::Float(dtype) = weights.layer_storage()
            && !B::supports_dtype(device, dtype.into())
        {
            return Err(LlmError::UnsupportedPrecision {
                weights,
                backend: B::name(device),
            });
        }
        if config.tie_word_embeddings {
            return Err(LlmError::Config(
                "tie_word_embeddings = true is not supported: InternLM2 has an untied `output` head"
                    .into(),
            ));
        }
        Ok(Self {
            tok_embeddings: EmbeddingConfig::new(config.vocab_size, config.hidden_size)
                .init(device),
            layers: (0..config.num_hidden_layers)
                .map(|_| DecoderLayer::init(config, weights, device))
                .collect(),
            norm: RmsNormConfig::new(config.hidden_size)
                .with_epsilon(config.rms_norm_eps)
                .init(device),
            output: LlmLinear::init(
                config.hidden_size,
                config.vocab_size,
                false,
                weights.head_storage(),
                device,
            ),
            rope: RotaryEmbedding::new(config),
            config: config.clone(),
            weights,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &InternLM2Config {
        &self.config
    }

    /// The precision of the linear weights.
    pub fn weights(&self) -> LlmWeights {
        self.weights
    }

    /// Bytes of the parameters as held (half weights at 2 bytes, quantized values and
    /// scales as stored).
    pub fn parameter_bytes(&self) -> usize {
        let linear = |l: &LlmLinear<B>| {
            let [i, o] = l.dims();
            l.storage().bytes(o, i)
        };
        let (v, h) = (self.config.vocab_size, self.config.hidden_size);
        let norms = 4 * h * (2 * self.layers.len() + 1);
        4 * v * h
            + norms
            + linear(&self.output)
            + self
                .layers
                .iter()
                .map(|l| {
                    linear(&l.attention.wqkv)
                        + linear(&l.attention.wo)
                        + linear(&l.feed_forward.w1)
                        + linear(&l.feed_forward.w2)
                        + linear(&l.feed_forward.w3)
                })
                .sum::<usize>()
    }

    /// The device the parameters live on.
    pub fn device(&self) -> B::Device {
        self.tok_embeddings.weight.lazy_device()
    }

    /// A KV cache for `batch` sequences of up to `capacity` positions.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> KvCache<B> {
        KvCache::new(
            self.config.num_hidden_layers,
            batch,
            self.config.kv_heads(),
            self.config.head_dim(),
            capacity,
            &self.device(),
        )
    }

    /// Token embeddings of `ids` `[B, T]` → `[B, T, hidden]`; an id outside the
    /// embedding table is an error (checked on the device: one read-back of a flag).
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>, LlmError> {
        let vocab = self.config.vocab_size as i64;
        let outside = ids
            .clone()
            .greater_equal_elem(vocab)
            .bool_or(ids.clone().lower_elem(0))
            .any()
            .into_scalar();
        if burn::tensor::ElementConversion::elem::<bool>(outside) {
            return Err(LlmError::Input(format!(
                "a token id is outside the embedding table of {vocab} rows"
            )));
        }
        Ok(self.embed_unchecked(ids))
    }

    /// Token embeddings of one sequence of `ids` (checked on the host) → `[T, hidden]`.
    ///
    /// # Errors
    ///
    /// [`LlmError::TokenOutsideVocabulary`] naming the first id without a row.
    pub fn embed_ids(&self, ids: &[i64]) -> Result<Tensor<B, 2>, LlmError> {
        let vocab = self.config.vocab_size;
        if let Some(&id) = ids.iter().find(|&&v| v < 0 || v as u64 >= vocab as u64) {
            return Err(LlmError::TokenOutsideVocabulary { id, vocab });
        }
        let tensor = Tensor::<B, 1, Int>::from_data(
            burn::tensor::TensorData::new(ids.to_vec(), [ids.len()]),
            &self.device(),
        );
        Ok(self.embed_unchecked(tensor.unsqueeze_dim(0)).squeeze_dim(0))
    }

    /// [`Self::embed`] of ids already known to be below `vocab_size` (checked on the
    /// host by [`Self::check_ids`], or sampled from the logits).
    pub(crate) fn embed_unchecked(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.tok_embeddings.forward(ids)
    }

    /// Checks that every id is a row of the embedding table.
    pub fn check_ids(&self, ids: &[u32]) -> Result<(), LlmError> {
        match ids.iter().find(|&&i| i as usize >= self.config.vocab_size) {
            Some(bad) => Err(LlmError::Input(format!(
                "token id {bad} is outside the embedding table of {} rows",
                self.config.vocab_size
            ))),
            None => Ok(()),
        }
    }

    /// Forward pass from token ids `[B, T]` (row-major, `batch` rows).
    pub fn forward_ids(
        &self,
        ids: &[u32],
        batch: usize,
        cache: Option<&mut KvCache<B>>,
        options: ForwardOptions,
    ) -> Result<ForwardOutput<B>, LlmError> {
        if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
            return Err(LlmError::Input(format!(
                "{} ids cannot be split into {batch} equal non-empty rows",
                ids.len()
            )));
        }
        self.check_ids(ids)?;
        let t = ids.len() / batch;
        let data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<B, 2, Int>::from_data(
            burn::tensor::TensorData::new(data, [batch, t]),
            &self.device(),
        );
        self.forward_embeds(self.embed_unchecked(ids), cache, options)
    }

    /// Forward pass from input embeddings `[B, T, hidden]` (the multimodal path:
    /// visual tokens spliced between text embeddings). Positions continue from the
    /// cache's length (0 without a cache).
    pub fn forward_embeds(
        &self,
        embeds: Tensor<B, 3>,
        cache: Option<&mut KvCache<B>>,
        options: ForwardOptions,
    ) -> Result<ForwardOutput<B>, LlmError> {
        self.forward_embeds_padded(embeds, cache, options, &[])
    }

    /// [`forward_embeds`](Self::forward_embeds) of a left-padded batch: the first
    /// `left_padding[r]` positions of row `r` (counted from the start of the cache) are
    /// padding that no position attends to. Empty `left_padding` means none. With a
    /// cache, pass the same counts for the prefill and every later step.
    pub fn forward_embeds_padded(
        &self,
        embeds: Tensor<B, 3>,
        cache: Option<&mut KvCache<B>>,
        options: ForwardOptions,
        left_padding: &[usize],
    ) -> Result<ForwardOutput<B>, LlmError> {
        let [b, t, h] = embeds.dims();
        if !left_padding.is_empty() && left_padding.len() != b {
            return Err(LlmError::Input(format!(
                "{} left-padding counts for a batch of {b}",
                left_padding.len()
            )));
        }
        if h != self.config.hidden_size {
            return Err(LlmError::Input(format!(
                "input embeddings have width {h}, the model's hidden size is {}",
                self.config.hidden_size
            )));
        }
        if t == 0 {
            return Err(LlmError::Input("empty input sequence".into()));
        }
        let start = match cache.as_deref() {
            Some(c) => {
                c.check_room(b, t)?;
                c.len()
            }
            None => 0,
        };
        // the whole pass on a worker thread of the CPU kernels, so that each of its
        // parallel products starts from inside their pool
        omg_kernels::on_worker_thread(|| {
            self.layers_and_head(embeds, cache, options, left_padding, start)
        })
    }

    /// [`forward_embeds_padded`](Self::forward_embeds_padded) after its checks, with
    /// the first position `start`.
    fn layers_and_head(
        &self,
        embeds: Tensor<B, 3>,
        mut cache: Option<&mut KvCache<B>>,
        options: ForwardOptions,
        left_padding: &[usize],
        start: usize,
    ) -> Result<ForwardOutput<B>, LlmError> {
        let [b, t, h] = embeds.dims();
        let rope = self
            .rope
            .tensors::<B>(start, t, start + t, &embeds.device());

        let mut hidden_states = Vec::new();
        let mut x = embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            if options.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(x, &rope, start, layer_cache, left_padding);
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        let last_hidden_state = self.norm.forward(x);
        let logits = match options.logits {
            LogitsFor::All => Some(self.output.forward(last_hidden_state.clone())),
            LogitsFor::Last => {
                Some(
                    self.output
                        .forward(last_hidden_state.clone().slice([0..b, t - 1..t, 0..h])),
                )
            }
            LogitsFor::None => None,
        };
        Ok(ForwardOutput {
            logits,
            last_hidden_state,
            hidden_states,
        })
    }
}
