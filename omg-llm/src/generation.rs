//! Autoregressive generation with a KV cache, following HF `generate` semantics:
//! greedy or sampled (temperature, top-k, top-p, repetition penalty, seeded),
//! EOS and stop tokens per row (finished rows are fed and padded with
//! `pad_token_id`), `max_new_tokens`, forced tokens, streaming through an iterator,
//! and the final-norm hidden state of chosen tokens (OMG-LLaVA reads it at `[SEG]`).

use std::collections::BTreeMap;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use rand::{SeedableRng, rngs::StdRng};

use crate::LlmError;
use crate::model::{ForwardOptions, InternLM2, KvCache, LogitsFor};
pub use crate::sampling::{Sampling, argmax};
use crate::sampling::{apply_repetition_penalty, sample};

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Maximum number of new tokens per row.
    pub max_new_tokens: usize,
    /// Greedy or sampled.
    pub sampling: Sampling,
    /// HF `repetition_penalty` over the prompt ids and generated ids (1 = off).
    pub repetition_penalty: f32,
    /// End-of-sequence id; a row that emits it is finished.
    pub eos_token_id: Option<u32>,
    /// More ids that finish a row when emitted (e.g. `<|im_end|>`).
    pub stop_token_ids: Vec<u32>,
    /// Id fed for, and reported by, finished rows.
    pub pad_token_id: u32,
    /// Tokens forced at given new-token indices (HF `forced_decoder_ids` with the
    /// index counted from the first new token).
    pub forced_tokens: BTreeMap<usize, u32>,
    /// Ids whose final-norm hidden state is recorded when they are fed back as
    /// input (the `[SEG]` convention: the state at the position whose input is the
    /// token). A token emitted last is never fed, so it has no state.
    pub capture_hidden_for: Vec<u32>,
    /// Whether each step's raw logits are kept in the output.
    pub keep_step_logits: bool,
}

impl GenerationConfig {
    /// Greedy decoding of up to `max_new_tokens` tokens with EOS = 2 and pad = 2, as
    /// the official evaluation tools.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            eos_token_id: Some(2),
            stop_token_ids: Vec::new(),
            pad_token_id: 2,
            forced_tokens: BTreeMap::new(),
            capture_hidden_for: Vec::new(),
            keep_step_logits: false,
        }
    }

    /// The official demo's sampling: temperature 0.1, top-p 0.75, top-k 40.
    pub fn demo_sampling(max_new_tokens: usize, seed: u64) -> Self {
        Self {
            sampling: Sampling::Sample {
                temperature: 0.1,
                top_k: 40,
                top_p: 0.75,
                seed,
            },
            ..Self::greedy(max_new_tokens)
        }
    }

    fn validate(&self) -> Result<(), LlmError> {
        if self.max_new_tokens == 0 {
            return Err(LlmError::Input("max_new_tokens must be at least 1".into()));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(LlmError::Input(format!(
                "repetition_penalty must be positive, got {}",
                self.repetition_penalty
            )));
        }
        if let Sampling::Sample {
            temperature, top_p, ..
        } = self.sampling
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(LlmError::Input(format!(
                    "temperature must be positive, got {temperature}"
                )));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(LlmError::Input(format!(
                    "top_p must be in (0, 1], got {top_p}"
                )));
            }
        }
        Ok(())
    }
}

/// One generation step of every row.
#[derive(Debug, Clone)]
pub struct Step {
    /// Index of the new token (0 for the first).
    pub index: usize,
    /// The token of each row (`pad_token_id` for rows finished earlier).
    pub tokens: Vec<u32>,
    /// Whether each row is finished after this step (it emitted EOS or a stop id, now
    /// or earlier).
    pub finished: Vec<bool>,
    /// The raw next-token logits of each row, when `keep_step_logits` is set.
    pub logits: Option<Vec<Vec<f32>>>,
}

/// A final-norm hidden state recorded for a token in `capture_hidden_for`.
#[derive(Debug, Clone)]
pub struct CapturedHidden<B: Backend> {
    /// Batch row.
    pub row: usize,
    /// New-token index of the token.
    pub index: usize,
    /// The token id.
    pub token: u32,
    /// The final-norm hidden state `[hidden]` computed with the token as input.
    pub hidden: Tensor<B, 1>,
}

/// Everything a finished generation produced.
#[derive(Debug, Clone)]
pub struct GenerationOutput<B: Backend> {
    /// New tokens per row, all rows the same length (finished rows padded), as HF.
    pub tokens: Vec<Vec<u32>>,
    /// Raw logits `[step][row][vocab]`, when `keep_step_logits` is set.
    pub step_logits: Vec<Vec<Vec<f32>>>,
    /// Hidden states of the tokens in `capture_hidden_for`, in generation order.
    pub captured: Vec<CapturedHidden<B>>,
}

/// A running generation: an iterator of [`Step`]s over a model and its KV cache.
pub struct Generator<'m, B: Backend> {
    model: &'m InternLM2<B>,
    config: GenerationConfig,
    cache: KvCache<B>,
    /// Next-token logits of every row, `[batch][vocab]`.
    logits: Vec<Vec<f32>>,
    history: Vec<Vec<u32>>,
    finished: Vec<bool>,
    index: usize,
    done: bool,
    rng: Option<StdRng>,
    captured: Vec<CapturedHidden<B>>,
    /// Left-padding count of each row (empty: none).
    left_padding: Vec<usize>,
}

impl<'m, B: Backend> Generator<'m, B> {
    /// Starts generation after the prompt `ids` (`batch` rows of equal length).
    pub fn from_ids(
        model: &'m InternLM2<B>,
        ids: &[u32],
        batch: usize,
        config: GenerationConfig,
    ) -> Result<Self, LlmError> {
        if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
            return Err(LlmError::Input(format!(
                "{} prompt ids cannot be split into {batch} equal non-empty rows",
                ids.len()
            )));
        }
        model.check_ids(ids)?;
        let t = ids.len() / batch;
        let data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let ids_t =
            Tensor::<B, 2, Int>::from_data(TensorData::new(data, [batch, t]), &model.device());
        let history = ids.chunks(t).map(<[u32]>::to_vec).collect();
        Self::start(
            model,
            model.embed_unchecked(ids_t),
            history,
            config,
            Vec::new(),
        )
    }

    /// Starts generation after prompt embeddings `[batch, T, hidden]` (the
    /// multimodal path). `prompt_ids` (per row) only feed the repetition penalty;
    /// pass empty rows when the prompt has no ids.
    pub fn from_embeds(
        model: &'m InternLM2<B>,
        embeds: Tensor<B, 3>,
        prompt_ids: Vec<Vec<u32>>,
        config: GenerationConfig,
    ) -> Result<Self, LlmError> {
        let batch = embeds.dims()[0];
        let history = if prompt_ids.is_empty() {
            vec![Vec::new(); batch]
        } else {
            prompt_ids
        };
        if history.len() != batch {
            return Err(LlmError::Input(format!(
                "{} prompt-id rows for a batch of {batch}",
                history.len()
            )));
        }
        Self::start(model, embeds, history, config, Vec::new())
    }

    /// [`from_embeds`](Self::from_embeds) for prompts of different lengths: `embeds`
    /// `[batch, T, hidden]` holds row `r`'s prompt in its last `T − left_padding[r]`
    /// positions (left padding, as HF pads decoder-only batches for generation). Each
    /// row generates as it would alone, up to float rounding; rows finish
    /// independently.
    pub fn from_embeds_padded(
        model: &'m InternLM2<B>,
        embeds: Tensor<B, 3>,
        left_padding: Vec<usize>,
        prompt_ids: Vec<Vec<u32>>,
        config: GenerationConfig,
    ) -> Result<Self, LlmError> {
        let [batch, t, _] = embeds.dims();
        if left_padding.len() != batch || left_padding.iter().any(|&p| p >= t) {
            return Err(LlmError::Input(format!(
                "left padding {left_padding:?} for a batch of {batch} prompts of {t} positions (each row needs a token)"
            )));
        }
        if prompt_ids.len() != batch {
            return Err(LlmError::Input(format!(
                "{} prompt-id rows for a batch of {batch}",
                prompt_ids.len()
            )));
        }
        Self::start(model, embeds, prompt_ids, config, left_padding)
    }

    fn start(
        model: &'m InternLM2<B>,
        embeds: Tensor<B, 3>,
        history: Vec<Vec<u32>>,
        config: GenerationConfig,
        left_padding: Vec<usize>,
    ) -> Result<Self, LlmError> {
        config.validate()?;
        let [batch, t, _] = embeds.dims();
        let mut cache = model.new_cache(batch, t + config.max_new_tokens);
        let out = model.forward_embeds_padded(
            embeds,
            Some(&mut cache),
            ForwardOptions {
                logits: LogitsFor::Last,
                output_hidden_states: false,
            },
            &left_padding,
        )?;
        let logits = rows_to_host(out.logits)?;
        let rng = match config.sampling {
            Sampling::Sample { seed, .. } => Some(StdRng::seed_from_u64(seed)),
            Sampling::Greedy => None,
        };
        Ok(Self {
            model,
            cache,
            logits,
            history,
            finished: vec![false; batch],
            index: 0,
            done: false,
            rng,
            captured: Vec::new(),
            config,
            left_padding,
        })
    }

    /// Stops `row` (an index past the batch is ignored): from the next step it is
    /// finished, fed and reported as padding, as if it had emitted its end token; once
    /// every row is stopped or finished, the generation ends. For a row's own token
    /// limit in a batch, or a row whose caller has gone.
    pub fn stop_row(&mut self, row: usize) {
        if let Some(f) = self.finished.get_mut(row) {
            *f = true;
        }
        if self.finished.iter().all(|&f| f) {
            self.done = true;
        }
    }

    /// Hidden states captured so far (see [`GenerationConfig::capture_hidden_for`]).
    pub fn captured(&self) -> &[CapturedHidden<B>] {
        &self.captured
    }

    /// Runs the generation to its end and collects the output.
    pub fn run(mut self) -> Result<GenerationOutput<B>, LlmError> {
        let batch = self.finished.len();
        let mut tokens = vec![Vec::new(); batch];
        let mut step_logits = Vec::new();
        while let Some(step) = self.next_step()? {
            for (row, &t) in step.tokens.iter().enumerate() {
                tokens[row].push(t);
            }
            if let Some(l) = step.logits {
                step_logits.push(l);
            }
        }
        Ok(GenerationOutput {
            tokens,
            step_logits,
            captured: self.captured,
        })
    }

    /// Produces the next step, or `None` once every row is finished or
    /// `max_new_tokens` tokens were generated.
    pub fn next_step(&mut self) -> Result<Option<Step>, LlmError> {
        if self.done {
            return Ok(None);
        }
        let index = self.index;
        let mut tokens = Vec::with_capacity(self.finished.len());
        for row in 0..self.finished.len() {
            let token = if self.finished[row] {
                self.config.pad_token_id
            } else if let Some(&forced) = self.config.forced_tokens.get(&index) {
                forced
            } else {
                self.choose(row)
            };
            tokens.push(token);
        }
        let logits = self
            .config
            .keep_step_logits
            .then(|| std::mem::take(&mut self.logits));
        for (row, &t) in tokens.iter().enumerate() {
            if !self.finished[row] {
                self.history[row].push(t);
                if Some(t) == self.config.eos_token_id || self.config.stop_token_ids.contains(&t) {
                    self.finished[row] = true;
                }
            }
        }
        self.index += 1;
        let step = Step {
            index,
            tokens: tokens.clone(),
            finished: self.finished.clone(),
            logits,
        };
        if self.index >= self.config.max_new_tokens || self.finished.iter().all(|&f| f) {
            self.done = true;
        } else {
            self.feed(&tokens, index)?;
        }
        Ok(Some(step))
    }

    /// Feeds the tokens of one step and computes the next logits.
    fn feed(&mut self, tokens: &[u32], index: usize) -> Result<(), LlmError> {
        self.model.check_ids(tokens)?;
        let batch = tokens.len();
        let data: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(data, [batch, 1]), &self.model.device());
        let out = self.model.forward_embeds_padded(
            self.model.embed_unchecked(ids),
            Some(&mut self.cache),
            ForwardOptions {
                logits: LogitsFor::Last,
                output_hidden_states: false,
            },
            &self.left_padding,
        )?;
        let hidden = self.model.config().hidden_size;
        for (row, &t) in tokens.iter().enumerate() {
            if self.config.capture_hidden_for.contains(&t) {
                let state = out
                    .last_hidden_state
                    .clone()
                    .slice([row..row + 1, 0..1, 0..hidden])
                    .reshape([hidden]);
                self.captured.push(CapturedHidden {
                    row,
                    index,
                    token: t,
                    hidden: state,
                });
            }
        }
        self.logits = rows_to_host(out.logits)?;
        Ok(())
    }

    /// Applies the logits processors and picks the token of `row`.
    fn choose(&mut self, row: usize) -> u32 {
        let mut scores = self.logits[row].clone();
        apply_repetition_penalty(
            &mut scores,
            &self.history[row],
            self.config.repetition_penalty,
        );
        match (self.config.sampling, self.rng.as_mut()) {
            (
                Sampling::Sample {
                    temperature,
                    top_k,
                    top_p,
                    ..
                },
                Some(rng),
            ) => sample(&mut scores, temperature, top_k, top_p, rng),
            _ => argmax(&scores),
        }
    }
}

impl<B: Backend> Iterator for Generator<'_, B> {
    type Item = Result<Step, LlmError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_step().transpose()
    }
}

/// Runs a whole generation from prompt ids (`batch` rows of equal length).
pub fn generate<B: Backend>(
    model: &InternLM2<B>,
    ids: &[u32],
    batch: usize,
    config: GenerationConfig,
) -> Result<GenerationOutput<B>, LlmError> {
    Generator::from_ids(model, ids, batch, config)?.run()
}

/// `[B, 1, V]` logits (`None`: the forward pass returned none) → one host vector per
/// row; a failed or short read-back is an error, never an empty or sliced vector.
fn rows_to_host<B: Backend>(logits: Option<Tensor<B, 3>>) -> Result<Vec<Vec<f32>>, LlmError> {
    let logits =
        logits.ok_or_else(|| LlmError::Input("the forward pass returned no logits".into()))?;
    let [b, _, v] = logits.dims();
    let data = logits
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| LlmError::Input(format!("reading the logits back: {e:?}")))?;
    if data.len() != b * v {
        return Err(LlmError::Input(format!(
            "read back {} logits for {b} rows of {v}",
            data.len()
        )));
    }
    Ok(data.chunks_exact(v.max(1)).map(<[f32]>::to_vec).collect())
}
