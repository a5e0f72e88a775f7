//! Incremental detokenization for streaming output.

use super::{InternLm2Tokenizer, TokenizerError};

/// Turns a stream of token ids into text pieces as they become final.
///
/// Like `tokenizers::DecodeStream`, each step decodes only a short window of recent
/// ids (constant work per token, not the whole answer again) and emits what the new
/// ids added to the window's text. Unlike it, a trailing run of byte-fallback tokens
/// (`<0xNN>`, and special tokens between them when those are skipped) is held back
/// until a token that decodes to text closes it: the byte-fallback
/// decoder turns a whole run into U+FFFD per byte as soon as the run is not valid
/// UTF-8, so a byte emitted early (say `<0x0D>` as `"\r"`) can be decoded
/// differently once the next byte arrives. `DecodeStream` then fails with an
/// "invalid prefix" error; random weights produce such runs within a few tokens.
/// Here the concatenation of all pieces (with [`finish`](Self::finish)) always
/// equals the decode of all ids.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t InternLm2Tokenizer,
    skip_special_tokens: bool,
    /// Ids the decode drops (special tokens, when skipping them): a byte run goes on
    /// across them.
    skipped: std::collections::HashSet<u32>,
    /// Every id pushed.
    ids: Vec<u32>,
    /// Start of the decode window: the ids of the last piece, kept as context so
    /// that the decoder's leading-space strip never touches a new token.
    prefix_offset: usize,
    /// End of what has been emitted.
    read_offset: usize,
    /// Everything emitted so far (for the rare full-decode fallback).
    emitted: String,
}

impl InternLm2Tokenizer {
    /// A streaming decoder; `skip_special_tokens` as in [`decode`](Self::decode).
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder<'_> {
        let skipped = if skip_special_tokens {
            self.inner()
                .get_added_tokens_decoder()
                .into_iter()
                .filter(|(_, t)| t.special)
                .map(|(id, _)| id)
                .collect()
        } else {
            Default::default()
        };
        StreamDecoder {
            tokenizer: self,
            skip_special_tokens,
            skipped,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            emitted: String::new(),
        }
    }
}

impl StreamDecoder<'_> {
    /// Adds one id and returns the text that became final (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        self.ids.push(id);
        let open_run = self
            .ids
            .iter()
            .rev()
            .take_while(|&&id| self.is_byte_token(id) || self.skipped.contains(&id))
            .count();
        let stable = self.ids.len() - open_run;
        if stable <= self.read_offset {
            return Ok(String::new());
        }
        self.emit_upto(stable)
    }

    /// The text still held back (an open run of byte tokens, decoded as the full
    /// decode does), emitted as is.
    pub fn finish(&mut self) -> Result<String, TokenizerError> {
        if self.ids.len() <= self.read_offset {
            return Ok(String::new());
        }
        self.emit_upto(self.ids.len())
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn is_byte_token(&self, id: u32) -> bool {
        self.tokenizer
            .id_to_token(id)
            .is_some_and(|t| t.len() == 6 && t.starts_with("<0x") && t.ends_with('>'))
    }

    fn decode(&self, range: std::ops::Range<usize>) -> Result<String, TokenizerError> {
        self.tokenizer
            .decode(&self.ids[range], self.skip_special_tokens)
    }

    /// Emits the text of `ids[read_offset..end]`, then moves the window on.
    fn emit_upto(&mut self, end: usize) -> Result<String, TokenizerError> {
        let prefix = self.decode(self.prefix_offset..self.read_offset)?;
        let text = self.decode(self.prefix_offset..end)?;
        let piece = match text.strip_prefix(prefix.as_str()) {
            Some(piece) => piece.to_owned(),
            // Not expected with InternLM2's decoder; fall back to the full decode.
            None => {
                let full = self.decode(0..end)?;
                full.strip_prefix(self.emitted.as_str())
                    .ok_or_else(|| {
                        TokenizerError::Stream(format!(
                            "the decode {full:?} no longer extends the emitted text {:?}",
                            self.emitted
                        ))
                    })?
                    .to_owned()
            }
        };
        self.prefix_offset = self.read_offset;
        self.read_offset = end;
        self.emitted.push_str(&piece);
        Ok(piece)
    }
}
