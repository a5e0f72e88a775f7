//! [`Prompt`]: a prompt as the model sees it, its markup kept apart from a user's plain
//! text; and its tokenization as the official code does it.

use std::ops::Range;

use omg_llm::tokenizer::{InternLm2Tokenizer, TextSpan};
use omg_projector::splice::IMAGE_TOKEN_INDEX;

use crate::error::OmgLlavaError;
use crate::tokens::IMAGE_TOKEN;

/// A prompt as the model sees it (chat template applied), made of **markup** and
/// **plain text**.
///
/// In markup, the model's tokens (`<|im_start|>`, `<|im_end|>`, `[SEG]`, `<p>`,
/// `<region>`, …) and the `<image>` placeholder are tokens; in plain text they are
/// ordinary characters, so text a user typed cannot inject tokens. The tasks
/// ([`crate::Task`]) build their prompts this way; build one yourself only to send the
/// model a prompt no task makes, and put every user-given string in a plain part:
///
/// ```
/// use omg_llava::Prompt;
///
/// let question = "What is [SEG]?"; // from a user: stays text
/// let mut prompt = Prompt::markup("<|im_start|>user\n<image>\n");
/// prompt.push_plain(question).push_markup("<|im_end|>\n<|im_start|>assistant\n");
/// assert_eq!(prompt.plain_ranges().len(), 1);
/// ```
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

    /// A prompt that is all markup: every token spelled in `text` is a token.
    pub fn markup(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            plain: Vec::new(),
        }
    }

    /// A prompt that is all plain text: nothing in `text` is a token.
    pub fn plain(text: &str) -> Self {
        let mut prompt = Self::new();
        prompt.push_plain(text);
        prompt
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
    pub(crate) fn spans(&self) -> Vec<TextSpan<'_>> {
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

    /// Appends `text` as plain text, except for the markup tokens it names in
    /// `tokens`, found in one left-to-right pass.
    pub(crate) fn push_plain_except(&mut self, text: &str, tokens: &[&str]) -> &mut Self {
        let mut plain_from = 0;
        let mut at = 0;
        while at < text.len() {
            match tokens.iter().find(|t| text[at..].starts_with(**t)) {
                Some(token) => {
                    self.push_plain(&text[plain_from..at]).push_markup(token);
                    at += token.len();
                    plain_from = at;
                }
                None => at += text[at..].chars().next().map_or(1, char::len_utf8),
            }
        }
        self.push_plain(&text[plain_from..])
    }
}

impl std::fmt::Display for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Tokenizes a prompt as the official code does: split on the `<image>` of its markup
/// (at most one), the part before it encoded with BOS and the part after it without
/// (plain parts as text), −200 between.
pub(crate) fn tokenize_prompt(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_parts_merge_and_survive_concatenation() {
        let mut p = Prompt::markup("<a>");
        p.push_plain("x").push_plain("y").push_markup("<b>");
        assert_eq!(p.plain_ranges().to_vec(), vec![3..5]);
        let mut q = Prompt::plain("z");
        q.push_prompt(&p);
        assert_eq!(q.text(), "z<a>xy<b>");
        assert_eq!(q.plain_ranges(), &[0..1, 4..6]);
        assert_eq!(q.to_string(), "z<a>xy<b>");
    }

    #[test]
    fn only_the_named_tokens_become_markup() {
        let mut p = Prompt::new();
        p.push_plain_except("is <region> near [SEG] <mark>?", &["<region>", "<mark>"]);
        let markup: Vec<&str> = p
            .spans()
            .into_iter()
            .filter_map(|s| match s {
                TextSpan::Markup(m) => Some(m),
                TextSpan::Plain(_) => None,
            })
            .collect();
        assert_eq!(markup, ["<region>", "<mark>"]);
        assert_eq!(p.text(), "is <region> near [SEG] <mark>?");
    }
}
