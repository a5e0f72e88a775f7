//! OMG-LLaVA's tokens: the five it adds to InternLM2's tokenizer, in the official order,
//! and the ids of every token its prompts and generation use.

use omg_llm::tokenizer::{IM_END_TOKEN, InternLm2Tokenizer, TokenizerError};

/// The segmentation token: its final hidden state is decoded into a mask.
pub(crate) const SEG_TOKEN: &str = "[SEG]";
/// Opens a grounded phrase.
pub(crate) const P_START_TOKEN: &str = "<p>";
/// Closes a grounded phrase.
pub(crate) const P_END_TOKEN: &str = "</p>";
/// A box or mask region of the prompt.
pub(crate) const REGION_TOKEN: &str = "<region>";
/// A point of the prompt.
pub(crate) const MARK_TOKEN: &str = "<mark>";
/// The image placeholder of prompt markup.
pub(crate) const IMAGE_TOKEN: &str = "<image>";

/// The ids of the tokens OMG-LLaVA's prompts and generation use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tokens {
    /// `<s>`.
    pub bos: u32,
    /// `</s>` (generation stops here; also the padding id).
    pub eos: u32,
    /// `<|im_end|>`: the end of a chat turn.
    pub im_end: u32,
    /// `[SEG]`.
    pub seg: u32,
    /// `<p>`.
    pub p_start: u32,
    /// `</p>`.
    pub p_end: u32,
    /// `<region>`.
    pub region: u32,
    /// `<mark>`.
    pub mark: u32,
}

/// Adds OMG-LLaVA's tokens in the official order (`OMG_LLaVA._add_special_tokens`):
/// `["[SEG]", "<p>", "</p>", "<region>"]`, then (after the LLM embedding resize)
/// `["<mark>"]`, all as special tokens, and resolves the ids.
///
/// With InternLM2-chat-7b (92544 tokens) this gives `[SEG]` = 92544 … `<mark>` = 92548;
/// `<mark>` lies outside the resized 92548-row embedding table (it is always replaced
/// by a point's embedding before the table is read).
pub(crate) fn add_omg_llava_tokens(tok: &mut InternLm2Tokenizer) -> Result<Tokens, TokenizerError> {
    tok.add_special_tokens(&[SEG_TOKEN, P_START_TOKEN, P_END_TOKEN, REGION_TOKEN]);
    tok.add_special_tokens(&[MARK_TOKEN]);
    let id = |token: &str| {
        tok.token_id(token)
            .ok_or_else(|| TokenizerError::MissingToken {
                token: token.to_owned(),
            })
    };
    Ok(Tokens {
        bos: tok.bos_id(),
        eos: tok.eos_id(),
        im_end: id(IM_END_TOKEN)?,
        seg: id(SEG_TOKEN)?,
        p_start: id(P_START_TOKEN)?,
        p_end: id(P_END_TOKEN)?,
        region: id(REGION_TOKEN)?,
        mark: id(MARK_TOKEN)?,
    })
}
