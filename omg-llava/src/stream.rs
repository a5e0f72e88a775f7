//! Streaming answers: text pieces as tokens are generated, and each `[SEG]` mask as
//! soon as its hidden state exists (when the `[SEG]` token is fed back).

use std::collections::VecDeque;

use burn::tensor::{Tensor, backend::Backend};
use omg_llm::generation::Generator;
use omg_llm::tokenizer::StreamDecoder;

use crate::cancel::CancelToken;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::model::OmgLlava;
use crate::output::{Answer, FinishReason, MaskOutput, phrases};

/// What a streamed answer yields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A piece of text. The pieces concatenate to the answer as generated without its
    /// end-of-turn token (`Answer::raw_text` less `<|im_end|>` or `</s>`).
    Text(String),
    /// The mask of the `index`-th `[SEG]`.
    Mask {
        /// Position among the answer's masks.
        index: usize,
        /// The `index`-th `<p>…</p>` phrase of the text so far, if the answer has that
        /// many (a grounded answer's phrase precedes its `[SEG]`).
        phrase: Option<String>,
        /// The mask.
        mask: Box<MaskOutput>,
    },
}

/// A running answer; iterate it for [`StreamEvent`]s or call [`finish`](Self::finish).
///
/// It borrows the [`crate::Pipeline`] and the [`crate::ImageHandle`] it was started
/// from, and it is `Send`: to consume it on another thread, use scoped threads
/// (`std::thread::scope`), with the pipeline outliving the scope. The pipeline itself
/// is `Send + Sync`, so many streams can run from one loaded model at once.
pub struct ResponseStream<'a, B: Backend> {
    model: &'a OmgLlava<B>,
    image: &'a ImageHandle<B>,
    generator: Generator<'a, B>,
    decoder: StreamDecoder<'a>,
    prompt_tokens: usize,
    tokens: Vec<u32>,
    text: String,
    masks: Vec<MaskOutput>,
    pending: VecDeque<StreamEvent>,
    decoded_captures: usize,
    done: bool,
    cancel: Option<CancelToken>,
}

impl<'a, B: Backend> ResponseStream<'a, B> {
    pub(crate) fn new(
        model: &'a OmgLlava<B>,
        image: &'a ImageHandle<B>,
        generator: Generator<'a, B>,
        prompt_tokens: usize,
        cancel: Option<CancelToken>,
    ) -> Self {
        Self {
            cancel,
            model,
            image,
            generator,
            decoder: model.tokenizer.stream_decoder(false),
            prompt_tokens,
            tokens: Vec::new(),
            text: String::new(),
            masks: Vec::new(),
            pending: VecDeque::new(),
            decoded_captures: 0,
            done: false,
        }
    }

    /// Tokens of the prompt (the image's visual tokens counted as one).
    pub fn prompt_tokens(&self) -> usize {
        self.prompt_tokens
    }

    /// Decodes the masks of `[SEG]` states captured since the last call.
    fn decode_new_masks(&mut self) -> Result<(), OmgLlavaError> {
        let captured = self.generator.captured();
        if captured.len() == self.decoded_captures {
            return Ok(());
        }
        let new: Vec<Tensor<B, 1>> = captured[self.decoded_captures..]
            .iter()
            .map(|c| c.hidden.clone())
            .collect();
        self.decoded_captures = captured.len();
        let hidden = Tensor::stack::<2>(new, 0);
        let found = phrases(&self.text);
        for mask in self.model.decode_seg(self.image, hidden)? {
            let index = self.masks.len();
            self.pending.push_back(StreamEvent::Mask {
                index,
                phrase: found.get(index).cloned(),
                mask: Box::new(mask.clone()),
            });
            self.masks.push(mask);
        }
        Ok(())
    }

    fn push_text(&mut self, piece: String) {
        if !piece.is_empty() {
            self.text.push_str(&piece);
            self.pending.push_back(StreamEvent::Text(piece));
        }
    }

    fn advance(&mut self) -> Result<(), OmgLlavaError> {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Err(OmgLlavaError::Cancelled);
        }
        match self.generator.next_step()? {
            Some(step) => {
                let token = step.tokens[0];
                self.tokens.push(token);
                if !is_end(self.model, token) {
                    let piece = self.decoder.push(token)?;
                    self.push_text(piece);
                }
                self.decode_new_masks()?;
            }
            None => {
                let rest = self.decoder.finish()?;
                self.push_text(rest);
                self.decode_new_masks()?;
                self.done = true;
            }
        }
        Ok(())
    }

    /// Runs to the end and returns the whole answer.
    pub fn finish(mut self) -> Result<Answer, OmgLlavaError> {
        while !self.done {
            self.advance()?;
        }
        answer(self.model, self.tokens, self.masks, self.prompt_tokens)
    }
}

impl<B: Backend> Iterator for ResponseStream<'_, B> {
    type Item = Result<StreamEvent, OmgLlavaError>;

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

/// Whether `token` ends the model's turn.
pub(crate) fn is_end<B: Backend>(model: &OmgLlava<B>, token: u32) -> bool {
    token == model.tokens.im_end || token == model.tokens.eos
}

/// The answer of generated `tokens`: decoded, and without its end-of-turn marker.
pub(crate) fn answer<B: Backend>(
    model: &OmgLlava<B>,
    tokens: Vec<u32>,
    masks: Vec<MaskOutput>,
    prompt_tokens: usize,
) -> Result<Answer, OmgLlavaError> {
    let raw_text = model.tokenizer.decode(&tokens, false)?;
    let mut text = raw_text.trim_end().to_owned();
    for end in ["<|im_end|>", "</s>"] {
        if let Some(t) = text.strip_suffix(end) {
            text = t.trim_end().to_owned();
        }
    }
    let finish_reason = match tokens.last() {
        Some(&t) if is_end(model, t) => FinishReason::Stop,
        _ => FinishReason::Length,
    };
    Ok(Answer {
        text,
        raw_text,
        token_ids: tokens,
        masks,
        prompt_tokens,
        finish_reason,
    })
}
