//! The official `internlm2_chat` template and prompt tokenization of OMG-LLaVA
//! (`XT/utils/templates.py`, `chat_omg_llava.py`): no system prompt, the first turn
//! starts with `<image>\n`, the running text is split on `<image>`, the chunk before it
//! is encoded with BOS and the rest without, and −200 marks the image. Later turns
//! re-tokenize the whole history (`previous prompt + answer + "\n" + next turn`).

use std::ops::Range;

use omg_llm::tokenizer::{InternLm2Tokenizer, TextSpan};

use crate::error::OmgLlavaError;
use crate::splice::IMAGE_TOKEN_INDEX;

/// The image placeholder in prompt text.
pub const IMAGE_TOKEN: &str = "<image>";

/// One user turn: `<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n`.
pub fn instruction(input: &str) -> String {
    format!("<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n")
}

/// A prompt as the model sees it (template applied), with the parts that are a user's
/// plain text marked.
///
/// Added tokens (`<|im_end|>`, `[SEG]`, `<p>`, `<region>`, …) and the `<image>`
/// placeholder are recognised only in the markup; in a plain part they are ordinary
/// characters, so a question cannot inject tokens. The Pipeline's task methods put the
/// user's question, expression or answer text in plain parts; a prompt made from a
/// `&str` or `String` is all markup (the official behaviour: everything in it is
/// interpreted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    text: String,
    plain: Vec<Range<usize>>,
}

impl Prompt {
    /// An empty prompt.
    pub fn new() -> Self {
        Self::default()
    }

    /// A prompt that is all markup.
    pub fn markup(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            plain: Vec::new(),
        }
    }

    /// Appends markup.
    pub fn push_markup(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends plain text.
    pub fn push_plain(&mut self, text: &str) -> &mut Self {
        if !text.is_empty() {
            let start = self.text.len();
            self.text.push_str(text);
            match self.plain.last_mut() {
                Some(last) if last.end == start => last.end = self.text.len(),
                _ => self.plain.push(start..self.text.len()),
            }
        }
        self
    }

    /// Appends another prompt, keeping its plain parts plain.
    pub fn push_prompt(&mut self, other: &Prompt) -> &mut Self {
        let mut at = 0;
        for r in &other.plain {
            self.push_markup(&other.text[at..r.start]);
            self.push_plain(&other.text[r.clone()]);
            at = r.end;
        }
        self.push_markup(&other.text[at..])
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The byte ranges of [`text`](Self::text) that are plain text.
    pub fn plain_ranges(&self) -> &[Range<usize>] {
        &self.plain
    }

    /// The text as markup and plain spans, in order (no empty span).
    pub fn spans(&self) -> Vec<TextSpan<'_>> {
        let mut spans = Vec::new();
        let mut at = 0;
        for r in &self.plain {
            if at < r.start {
                spans.push(TextSpan::Markup(&self.text[at..r.start]));
            }
            spans.push(TextSpan::Plain(&self.text[r.clone()]));
            at = r.end;
        }
        if at < self.text.len() {
            spans.push(TextSpan::Markup(&self.text[at..]));
        }
        spans
    }
}

impl std::fmt::Display for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Prompt::markup(text)
    }
}

impl From<String> for Prompt {
    fn from(text: String) -> Self {
        Prompt::markup(text)
    }
}

impl From<&String> for Prompt {
    fn from(text: &String) -> Self {
        Prompt::markup(text.as_str())
    }
}

impl From<&Prompt> for Prompt {
    fn from(prompt: &Prompt) -> Self {
        prompt.clone()
    }
}

/// One user turn as a [`Prompt`]: the template of [`instruction`] around `input`.
pub fn user_turn(input: &Prompt) -> Prompt {
    let mut p = Prompt::markup("<|im_start|>user\n");
    p.push_prompt(input)
        .push_markup("<|im_end|>\n<|im_start|>assistant\n");
    p
}

/// A multi-turn conversation about one image, as the official chat tool keeps it.
///
/// The questions are plain text in the prompts it makes (see [`Prompt`]); the answers
/// are kept as generated, their `[SEG]`, `<p>`, `</p>` tokens included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    text: Prompt,
    turns: Vec<(String, String)>,
}

impl Conversation {
    /// An empty conversation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The (question, answer) pairs so far.
    pub fn turns(&self) -> &[(String, String)] {
        &self.turns
    }

    /// The prompt for the next question: the first turn gets `<image>\n` in front of
    /// the question, later turns follow the previous answer and `"\n"`.
    pub fn prompt_for(&self, question: &str) -> Prompt {
        if self.turns.is_empty() {
            let mut input = Prompt::markup(format!("{IMAGE_TOKEN}\n"));
            input.push_plain(question);
            user_turn(&input)
        } else {
            let mut p = self.text.clone();
            p.push_markup("\n");
            let mut input = Prompt::new();
            input.push_plain(question);
            p.push_prompt(&user_turn(&input));
            p
        }
    }

    /// Records an answer (`answer` as generated, ending with `<|im_end|>` when the model
    /// stopped on it) to the prompt made by [`prompt_for`](Self::prompt_for).
    pub fn push(&mut self, prompt: Prompt, question: &str, answer: &str) {
        let mut text = prompt;
        text.push_markup(answer);
        self.text = text;
        self.turns.push((question.to_owned(), answer.to_owned()));
    }
}

/// Tokenizes a prompt: splits it on the `<image>` of its markup (at most one), encodes
/// the part before it with BOS and the part after it without (plain parts as text, see
/// [`InternLm2Tokenizer::encode_spans`]), and puts −200 between.
///
/// # Errors
///
/// [`OmgLlavaError::TooManyImages`] when the markup holds more than one `<image>`.
pub fn tokenize_prompt(
    tokenizer: &InternLm2Tokenizer,
    prompt: &Prompt,
) -> Result<Vec<i64>, OmgLlavaError> {
    let mut chunks: Vec<Vec<TextSpan<'_>>> = vec![Vec::new()];
    for span in prompt.spans() {
        match span {
            TextSpan::Plain(_) => chunks.last_mut().expect("one chunk").push(span),
            TextSpan::Markup(s) => {
                for (k, part) in s.split(IMAGE_TOKEN).enumerate() {
                    if k > 0 {
                        chunks.push(Vec::new());
                    }
                    if !part.is_empty() {
                        chunks
                            .last_mut()
                            .expect("one chunk")
                            .push(TextSpan::Markup(part));
                    }
                }
            }
        }
    }
    if chunks.len() > 2 {
        return Err(OmgLlavaError::TooManyImages {
            found: chunks.len() - 1,
        });
    }
    let mut ids: Vec<i64> = tokenizer
        .encode_spans(&chunks[0], true)?
        .into_iter()
        .map(i64::from)
        .collect();
    if let Some(rest) = chunks.get(1) {
        ids.push(IMAGE_TOKEN_INDEX);
        ids.extend(
            tokenizer
                .encode_spans(rest, false)?
                .into_iter()
                .map(i64::from),
        );
    }
    Ok(ids)
}
