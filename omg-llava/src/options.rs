//! Settings of a Pipeline's generation and of loading a model.

use crate::cancel::CancelToken;
use crate::error::OmgLlavaError;

/// How the next token is chosen.
pub use omg_llm::sampling::Sampling;

/// Precision of the LLM's linear weights once loaded.
pub use omg_llm::LlmWeights;

/// Generation settings of a Pipeline call: `GenerateOptions::default()` (greedy, 100
/// new tokens, as the official evaluation) or [`GenerateOptions::demo`], adjusted with
/// the `with_*` methods (the struct is `#[non_exhaustive]`, so new settings can come
/// without breaking callers). The Pipeline checks them before it generates
/// ([`OmgLlavaError::InvalidOption`] names a bad one).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// Maximum number of new tokens (at least 1).
    pub max_new_tokens: usize,
    /// Greedy (the official evaluation, the default) or sampling (the demo).
    pub sampling: Sampling,
    /// HF repetition penalty (1 = off; finite and positive).
    pub repetition_penalty: f32,
    /// Force `[SEG]` as the new token of this index (from 0): shows the mask path on
    /// weights that never emit it, such as random ones. A `[SEG]` gets its mask when
    /// it is fed back, so the index must be below `max_new_tokens - 1`.
    pub forced_seg: Option<usize>,
    /// Tokens forced at new-token indices `(index, id)` (HF `forced_decoder_ids`
    /// counted from the first new token); for reproductions and tests.
    pub forced_tokens: Vec<(usize, u32)>,
    /// A token that stops the generation at its next step when cancelled (none: it
    /// runs to its end).
    pub cancel: Option<CancelToken>,
    /// Generate all `max_new_tokens`: the end-of-turn tokens (`<|im_end|>`, `</s>`) do
    /// not stop the answer (vLLM's `ignore_eos`), for load tests and benchmarks that
    /// need answers of a set length. An end token generated meanwhile stays in the
    /// answer's token ids and raw text.
    pub ignore_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 100,
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            forced_seg: None,
            forced_tokens: Vec::new(),
            cancel: None,
            ignore_eos: false,
        }
    }
}

impl GenerateOptions {
    /// The official demo's sampling (temperature 0.1, top-p 0.75, top-k 40).
    pub fn demo(max_new_tokens: usize, seed: u64) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Sample {
                temperature: 0.1,
                top_k: 40,
                top_p: 0.75,
                seed,
            },
            ..Self::default()
        }
    }

    /// These options with at most `n` new tokens.
    pub fn with_max_new_tokens(mut self, n: usize) -> Self {
        self.max_new_tokens = n;
        self
    }

    /// These options with `sampling`.
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// These options with HF's repetition penalty `penalty` (1 = off).
    pub fn with_repetition_penalty(mut self, penalty: f32) -> Self {
        self.repetition_penalty = penalty;
        self
    }

    /// These options with a [`CancelToken`] that stops the generation when cancelled.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// These options with `[SEG]` forced as the new token of index `index`.
    pub fn with_forced_seg(mut self, index: usize) -> Self {
        self.forced_seg = Some(index);
        self
    }

    /// These options generating all `max_new_tokens`, past any end-of-turn token, when
    /// `ignore` (see [`ignore_eos`](Self::ignore_eos)).
    pub fn with_ignore_eos(mut self, ignore: bool) -> Self {
        self.ignore_eos = ignore;
        self
    }

    /// These options with tokens forced at new-token indices `(index, id)`.
    pub fn with_forced_tokens(mut self, forced: Vec<(usize, u32)>) -> Self {
        self.forced_tokens = forced;
        self
    }

    /// Checks the settings (the Pipeline does before generating).
    ///
    /// # Errors
    ///
    /// [`OmgLlavaError::InvalidOption`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), OmgLlavaError> {
        let bad = |option: &'static str, reason: String| {
            Err(OmgLlavaError::InvalidOption { option, reason })
        };
        let n = self.max_new_tokens;
        if n == 0 {
            return bad("max_new_tokens", "must be at least 1".into());
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(
                "repetition_penalty",
                format!(
                    "must be finite and positive, got {}",
                    self.repetition_penalty
                ),
            );
        }
        if let Sampling::Sample {
            temperature, top_p, ..
        } = self.sampling
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return bad(
                    "temperature",
                    format!("must be finite and positive, got {temperature}"),
                );
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return bad("top_p", format!("must be in (0, 1], got {top_p}"));
            }
        }
        if let Some(k) = self.forced_seg
            && k >= n.saturating_sub(1)
        {
            return bad(
                "forced_seg",
                format!(
                    "[SEG] at new token {k} needs max_new_tokens of at least {} (a [SEG] gets its mask when it is fed back), got {n}",
                    k.saturating_add(2)
                ),
            );
        }
        if let Some(&(k, _)) = self.forced_tokens.iter().find(|(k, _)| *k >= n) {
            return bad(
                "forced_tokens",
                format!("new token {k} is past max_new_tokens {n}"),
            );
        }
        Ok(())
    }
}

/// Options of [`crate::Pipeline::from_dir`] / [`crate::Pipeline::from_bundle`]: how the
/// weights are held once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Precision of the LLM's linear weights (f32, bf16/f16, int8 or int4; see
    /// [`LlmWeights`]). The vision encoder, projectors and `[SEG]` decoder stay f32, so
    /// masks keep their quality.
    pub llm_weights: LlmWeights,
    /// Check that every floating-point weight read is finite, failing with an error
    /// naming the tensor otherwise. Off by default: it reads every weight once more.
    pub check_finite: bool,
}

impl LoadOptions {
    /// These options with the LLM's linears held as `weights`.
    pub fn with_llm_weights(mut self, weights: LlmWeights) -> Self {
        self.llm_weights = weights;
        self
    }

    /// These options with the finite-weights check on or off (see
    /// [`check_finite`](Self::check_finite)).
    pub fn with_check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
        self
    }
}
