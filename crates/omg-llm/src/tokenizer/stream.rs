//! Incremental detokenization for streaming output.

use super::{InternLm2Tokenizer, TokenizerError};

/// Turns a stream of token ids into text pieces as they become final.
///
/// Byte-fallback tokens (`<0xNN>`) can split one character over several ids, and a
/// run of them decodes as a unit (invalid UTF-8 becomes U+FFFD per byte). A trailing
/// run of byte tokens is therefore held back until a non-byte token (or
/// [`finish`](Self::finish)) closes it, so the concatenation of all pieces equals
/// the decode of all ids.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    emitted: String,
    skip_special_tokens: bool,
}

impl StreamDecoder {
    /// A decoder; `skip_special_tokens` as in [`InternLm2Tokenizer::decode`].
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            ..Self::default()
        }
    }

    /// Adds one id and returns the text that became final (possibly empty).
    pub fn push(&mut self, tok: &InternLm2Tokenizer, id: u32) -> Result<String, TokenizerError> {
        self.ids.push(id);
        let is_byte = |id: &u32| {
            tok.id_to_token(*id)
                .is_some_and(|t| t.len() == 6 && t.starts_with("<0x") && t.ends_with('>'))
        };
        let open_run = self.ids.iter().rev().take_while(|id| is_byte(id)).count();
        let stable = self.ids.len() - open_run;
        if stable == 0 {
            return Ok(String::new());
        }
        let text = tok.decode(&self.ids[..stable], self.skip_special_tokens)?;
        Ok(self.emit(&text))
    }

    /// The text still held back (incomplete characters), emitted as is.
    pub fn finish(&mut self, tok: &InternLm2Tokenizer) -> Result<String, TokenizerError> {
        let text = tok.decode(&self.ids, self.skip_special_tokens)?;
        Ok(self.emit(&text))
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn emit(&mut self, text: &str) -> String {
        match text.strip_prefix(self.emitted.as_str()) {
            Some(new) => {
                let new = new.to_owned();
                self.emitted.push_str(&new);
                new
            }
            // The decoder changed already emitted text (it never does for
            // InternLM2's decoder except at held-back bytes); emit nothing.
            None => String::new(),
        }
    }
}
