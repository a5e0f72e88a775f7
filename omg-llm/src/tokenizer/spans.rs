//! Encoding a text whose user-written parts stay plain text: a `[SEG]` or
//! `<|im_end|>` typed by a user is encoded as its characters, not as the token, while
//! the template's own tokens around it are matched as usual.

use tokenizers::{Model, Normalizer, OffsetType, PreTokenizedString, PreTokenizer};

use super::{InternLm2Tokenizer, TokenizerError};

/// One piece of a text to encode with [`InternLm2Tokenizer::encode_spans`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSpan<'a> {
    /// Markup: added and special tokens in it are matched whole, as
    /// [`InternLm2Tokenizer::encode`] does.
    Markup(&'a str),
    /// Plain text: every character is text; a token's spelling in it is encoded like
    /// any other characters.
    Plain(&'a str),
}

impl<'a> TextSpan<'a> {
    fn text(self) -> &'a str {
        match self {
            TextSpan::Markup(s) | TextSpan::Plain(s) => s,
        }
    }
}

impl InternLm2Tokenizer {
    /// The added tokens' spellings with their ids, longest first (the leftmost-longest
    /// match the `tokenizers` added vocabulary makes).
    fn added_spellings(&self) -> Vec<(String, u32)> {
        let mut tokens: Vec<(String, u32)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| !t.content.is_empty())
            .map(|(id, t)| (t.content, id))
            .collect();
        tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        tokens
    }

    /// Encodes a text made of [`TextSpan`]s, concatenated. Added tokens are matched
    /// only where they lie wholly inside markup; everything else is text, so that a
    /// user's question cannot inject `[SEG]`, `<|im_end|>` or `<region>` tokens.
    ///
    /// When no token spelling touches a plain span, the result is exactly
    /// [`encode`](Self::encode) of the concatenated text (the official behaviour). When
    /// one does, the text is cut at the markup's tokens and each run between them is
    /// normalized, pre-tokenized and encoded by the model as `encode` does for the
    /// pieces between tokens.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Encode`] if `tokenizers` fails (not expected for any `&str`).
    pub fn encode_spans(
        &self,
        spans: &[TextSpan<'_>],
        add_bos: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let text: String = spans.iter().map(|s| s.text()).collect();
        if !spans.iter().any(|s| matches!(s, TextSpan::Plain(_))) {
            return self.encode(&text, add_bos);
        }
        let tokens = self.added_spellings();
        // The byte ranges of the markup spans in `text`.
        let mut markup = Vec::new();
        let mut at = 0;
        for span in spans {
            let len = span.text().len();
            if let TextSpan::Markup(_) = span {
                markup.push(at..at + len);
            }
            at += len;
        }
        let in_markup = |r: &std::ops::Range<usize>| {
            markup.iter().any(|m| m.start <= r.start && r.end <= m.end)
        };
        if matches(&text, &tokens).iter().all(|(r, _)| in_markup(r)) {
            return self.encode(&text, add_bos);
        }
        let mut ids = Vec::new();
        if add_bos {
            ids.push(self.bos);
        }
        let mut run = String::new();
        for span in spans {
            match span {
                TextSpan::Plain(s) => run.push_str(s),
                TextSpan::Markup(s) => {
                    let mut from = 0;
                    for (r, id) in matches(s, &tokens) {
                        run.push_str(&s[from..r.start]);
                        self.encode_run(&run, &mut ids)?;
                        run.clear();
                        ids.push(id);
                        from = r.end;
                    }
                    run.push_str(&s[from..]);
                }
            }
        }
        self.encode_run(&run, &mut ids)?;
        Ok(ids)
    }

    /// Encodes a run of text that holds no token, as `encode` encodes each piece
    /// between added tokens: normalizer, pre-tokenizer, model.
    fn encode_run(&self, run: &str, ids: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if run.is_empty() {
            return Ok(());
        }
        let encode = || -> tokenizers::Result<Vec<u32>> {
            let mut pieces = PreTokenizedString::from(run);
            if let Some(normalizer) = self.inner.get_normalizer() {
                pieces.normalize(|s| normalizer.normalize(s))?;
            }
            if let Some(pre) = self.inner.get_pre_tokenizer() {
                pre.pre_tokenize(&mut pieces)?;
            }
            let model = self.inner.get_model();
            pieces.tokenize(|s| model.tokenize(s.get()))?;
            Ok(pieces
                .into_encoding(None, 0, OffsetType::Byte)?
                .get_ids()
                .to_vec())
        };
        ids.extend(encode().map_err(|source| TokenizerError::Encode { source })?);
        Ok(())
    }
}

/// Leftmost-longest, non-overlapping matches of the spellings in `text`.
fn matches(text: &str, tokens: &[(String, u32)]) -> Vec<(std::ops::Range<usize>, u32)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        // `tokens` is longest first, so the first hit is the longest.
        if let Some((t, id)) = tokens.iter().find(|(t, _)| rest.starts_with(t.as_str())) {
            found.push((i..i + t.len(), *id));
            i += t.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}
