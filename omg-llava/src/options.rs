//! Generation settings of a Pipeline call.

use omg_llm::sampling::Sampling;

/// Generation settings of a Pipeline call: `GenerateOptions::default()` (greedy, 100
/// new tokens) or [`GenerateOptions::demo`], adjusted with the `with_*` methods (the
/// struct is `#[non_exhaustive]`, so new settings can come without breaking callers).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// Maximum number of new tokens.
    pub max_new_tokens: usize,
    /// Greedy (the official evaluation, the default) or sampling (the demo).
    pub sampling: Sampling,
    /// HF repetition penalty (1 = off).
    pub repetition_penalty: f32,
    /// Tokens forced at given new-token indices `(index, id)` (HF `forced_decoder_ids`
    /// counted from the first new token); for reproductions and tests.
    pub forced_tokens: Vec<(usize, u32)>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 100,
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            forced_tokens: Vec::new(),
        }
    }
}

impl GenerateOptions {
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

    /// These options with tokens forced at new-token indices `(index, id)`.
    pub fn with_forced_tokens(mut self, forced: Vec<(usize, u32)>) -> Self {
        self.forced_tokens = forced;
        self
    }

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
            repetition_penalty: 1.0,
            forced_tokens: Vec::new(),
        }
    }
}

/// Options of [`crate::OmgLlava::load_with`] / [`crate::Pipeline::from_dir_with`]: how the
/// weights are held once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Precision of the LLM's linear weights (f32, int8 or int4; see
    /// [`omg_llm::LlmWeights`]). The vision encoder, projectors and `[SEG]` decoder stay
    /// f32, so masks keep their quality.
    pub llm_weights: omg_llm::LlmWeights,
    /// Check that every floating-point weight read is finite, failing with
    /// [`omg_checkpoint::CheckpointError::NonFinite`] (naming the tensor) otherwise.
    /// Off by default: it reads every weight once more.
    pub check_finite: bool,
}

impl LoadOptions {
    /// These options with the LLM's linears held as `weights`.
    pub fn with_llm_weights(mut self, weights: omg_llm::LlmWeights) -> Self {
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
