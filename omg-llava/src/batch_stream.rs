//! [`BatchStream`]: several answers generated together, each row with its own token
//! limit and cancel token, its events (text pieces, masks) as they come and its answer
//! as soon as the row ends, while the other rows go on.

use std::collections::VecDeque;

use burn::tensor::{Tensor, backend::Backend};
use omg_llm::generation::Generator;
use omg_llm::tokenizer::StreamDecoder;

use crate::cancel::CancelToken;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::model::OmgLlava;
use crate::options::GenerateOptions;
use crate::output::{Answer, MaskOutput, phrases};
use crate::pipeline::Pipeline;
use crate::stream::{StreamEvent, answer, is_end};
use crate::task::Task;

/// One row of a batched generation: a task about a photo, with its options. The rows
/// of a batch share their sampling, repetition penalty and forced tokens; each keeps its
/// own `max_new_tokens` and cancel token.
pub struct BatchRow<'a, B: Backend> {
    /// The encoded photo.
    pub image: &'a ImageHandle<B>,
    /// The task.
    pub task: &'a Task,
    /// Its options.
    pub options: &'a GenerateOptions,
}

impl<B: Backend> Clone for BatchRow<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for BatchRow<'_, B> {}

/// What a [`BatchStream`] yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchEvent {
    /// An event of one row's answer (as [`crate::ResponseStream`] yields it).
    Event {
        /// The row.
        row: usize,
        /// The event.
        event: StreamEvent,
    },
    /// A row has ended: its answer, or [`OmgLlavaError::Cancelled`] when its cancel
    /// token stopped it. The row yields nothing more; the others go on.
    Finished {
        /// The row.
        row: usize,
        /// Its answer.
        answer: Result<Answer, OmgLlavaError>,
    },
}

/// The state of one row.
struct Row<'a, B: Backend> {
    image: &'a ImageHandle<B>,
    decoder: StreamDecoder<'a>,
    tokens: Vec<u32>,
    text: String,
    masks: Vec<MaskOutput>,
    limit: usize,
    cancel: Option<CancelToken>,
    prompt_tokens: usize,
    running: bool,
}

/// A running batched generation; iterate it for [`BatchEvent`]s. Every row ends with
/// one [`BatchEvent::Finished`]; an error of the model ends the whole stream.
pub struct BatchStream<'a, B: Backend> {
    model: &'a OmgLlava<B>,
    generator: Generator<'a, B>,
    rows: Vec<Row<'a, B>>,
    pending: VecDeque<BatchEvent>,
    decoded_captures: usize,
    done: bool,
}

impl<B: Backend> Pipeline<B> {
    /// Starts answering several rows in one generation: each row's prompt is spliced
    /// alone, the rows are left-padded to the longest and decoded together (each step
    /// one forward pass for every running row), each ending on its end token, its own
    /// `max_new_tokens` or its cancel token. With greedy decoding each answer equals
    /// [`run`](Self::run) of its row alone, up to float rounding.
    ///
    /// # Errors
    ///
    /// Those of [`run`](Self::run) for any row (the first bad one, by its error;
    /// nothing is generated), [`OmgLlavaError::InvalidOption`] when the rows'
    /// sampling, repetition penalty, forced tokens or `ignore_eos` differ, and
    /// [`OmgLlavaError::Cancelled`] when every row is cancelled before it starts.
    pub fn stream_batch<'a>(
        &'a self,
        rows: &[BatchRow<'a, B>],
    ) -> Result<BatchStream<'a, B>, OmgLlavaError> {
        let Some(first) = rows.first() else {
            return Err(OmgLlavaError::InvalidOption {
                option: "rows",
                reason: "a batch needs at least one row".into(),
            });
        };
        for (k, r) in rows.iter().enumerate() {
            r.options.validate()?;
            let (a, b) = (first.options, r.options);
            let differs = if a.sampling != b.sampling {
                Some("sampling")
            } else if a.repetition_penalty != b.repetition_penalty {
                Some("repetition_penalty")
            } else if a.forced_seg != b.forced_seg {
                Some("forced_seg")
            } else if a.forced_tokens != b.forced_tokens {
                Some("forced_tokens")
            } else if a.ignore_eos != b.ignore_eos {
                Some("ignore_eos")
            } else {
                None
            };
            if let Some(option) = differs {
                return Err(OmgLlavaError::InvalidOption {
                    option,
                    reason: format!("the rows of a batch share it, and row {k} differs from row 0"),
                });
            }
        }
        let longest_run = rows.iter().map(|r| r.options.max_new_tokens).max();
        let shared = GenerateOptions {
            max_new_tokens: longest_run.unwrap_or(1),
            cancel: None,
            ..first.options.clone()
        };
        let config = self.generation_config(&shared)?;
        if rows.iter().all(|r| {
            r.options
                .cancel
                .as_ref()
                .is_some_and(CancelToken::is_cancelled)
        }) {
            return Err(OmgLlavaError::Cancelled);
        }
        let m = self.model();
        let mut prepared = Vec::with_capacity(rows.len());
        for r in rows {
            let prompt = r.task.prompt()?;
            prepared.push(m.prepare(
                r.image,
                &prompt,
                r.task.regions(),
                r.options.max_new_tokens,
            )?);
        }
        let longest = prepared.iter().map(|p| p.length).max().unwrap_or(0);
        let hidden = m.llm.config().hidden_size;
        let device = self.device();
        let padding: Vec<usize> = prepared.iter().map(|p| longest - p.length).collect();
        let mut state = Vec::with_capacity(rows.len());
        let mut embeds = Vec::with_capacity(rows.len());
        for ((r, p), &pad) in rows.iter().zip(prepared).zip(&padding) {
            state.push(Row {
                image: r.image,
                decoder: m.tokenizer.stream_decoder(false),
                tokens: Vec::new(),
                text: String::new(),
                masks: Vec::new(),
                limit: r.options.max_new_tokens,
                cancel: r.options.cancel.clone(),
                prompt_tokens: p.prompt_tokens,
                running: true,
            });
            embeds.push(if pad == 0 {
                p.embeds
            } else {
                Tensor::cat(vec![Tensor::zeros([1, pad, hidden], device), p.embeds], 1)
            });
        }
        // as `stream`: the repetition penalty sees BOS and the new tokens only
        let bos = vec![vec![m.tokens.bos]; rows.len()];
        let generator =
            Generator::from_embeds_padded(&m.llm, Tensor::cat(embeds, 0), padding, bos, config)?;
        Ok(BatchStream {
            model: m,
            generator,
            rows: state,
            pending: VecDeque::new(),
            decoded_captures: 0,
            done: false,
        })
    }
}

impl<'a, B: Backend> BatchStream<'a, B> {
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Runs to the end: every row's answer, in order (a cancelled row's is
    /// [`OmgLlavaError::Cancelled`]).
    pub fn finish(self) -> Result<Vec<Result<Answer, OmgLlavaError>>, OmgLlavaError> {
        let mut answers: Vec<Option<Result<Answer, OmgLlavaError>>> =
            (0..self.rows.len()).map(|_| None).collect();
        for event in self {
            if let BatchEvent::Finished { row, answer } = event? {
                answers[row] = Some(answer);
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(OmgLlavaError::Cancelled)))
            .collect())
    }

    fn push_text(&mut self, row: usize, piece: String) {
        if !piece.is_empty() {
            self.rows[row].text.push_str(&piece);
            self.pending.push_back(BatchEvent::Event {
                row,
                event: StreamEvent::Text(piece),
            });
        }
    }

    /// Ends `row`: the rest of its text, its answer, and the generator told.
    fn end_row(&mut self, row: usize, cancelled: bool) -> Result<(), OmgLlavaError> {
        self.rows[row].running = false;
        self.generator.stop_row(row);
        let answer = if cancelled {
            Err(OmgLlavaError::Cancelled)
        } else {
            let rest = self.rows[row].decoder.finish()?;
            self.push_text(row, rest);
            let r = &mut self.rows[row];
            answer(
                self.model,
                std::mem::take(&mut r.tokens),
                std::mem::take(&mut r.masks),
                r.prompt_tokens,
            )
        };
        self.pending.push_back(BatchEvent::Finished { row, answer });
        Ok(())
    }

    /// Decodes the masks of the `[SEG]` states captured since the last call (a state
    /// past a row's own limit is one a run of that row alone would not have fed).
    fn decode_new_masks(&mut self) -> Result<(), OmgLlavaError> {
        let captured = self.generator.captured()[self.decoded_captures..].to_vec();
        self.decoded_captures += captured.len();
        for c in captured {
            let r = &self.rows[c.row];
            if !r.running || c.index + 1 >= r.limit {
                continue;
            }
            let hidden = Tensor::stack::<2>(vec![c.hidden], 0);
            for mask in self.model.decode_seg(r.image, hidden)? {
                let r = &mut self.rows[c.row];
                let index = r.masks.len();
                let phrase = phrases(&r.text).get(index).cloned();
                r.masks.push(mask.clone());
                self.pending.push_back(BatchEvent::Event {
                    row: c.row,
                    event: StreamEvent::Mask {
                        index,
                        phrase,
                        mask: Box::new(mask),
                    },
                });
            }
        }
        Ok(())
    }

    fn advance(&mut self) -> Result<(), OmgLlavaError> {
        for row in 0..self.rows.len() {
            let r = &self.rows[row];
            if r.running && r.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                self.end_row(row, true)?;
            }
        }
        if self.rows.iter().all(|r| !r.running) {
            self.done = true;
            return Ok(());
        }
        let Some(step) = self.generator.next_step()? else {
            for row in 0..self.rows.len() {
                if self.rows[row].running {
                    self.end_row(row, false)?;
                }
            }
            self.done = true;
            return Ok(());
        };
        for (row, &token) in step.tokens.iter().enumerate() {
            if !self.rows[row].running {
                continue;
            }
            self.rows[row].tokens.push(token);
            if !is_end(self.model, token) {
                let piece = self.rows[row].decoder.push(token)?;
                self.push_text(row, piece);
            }
        }
        self.decode_new_masks()?;
        for (row, &finished) in step.finished.iter().enumerate() {
            let r = &self.rows[row];
            if r.running && (finished || r.tokens.len() >= r.limit) {
                self.end_row(row, false)?;
            }
        }
        Ok(())
    }
}

impl<B: Backend> Iterator for BatchStream<'_, B> {
    type Item = Result<BatchEvent, OmgLlavaError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.advance() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
