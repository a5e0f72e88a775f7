//! The official `internlm2_chat` template and prompt tokenization of OMG-LLaVA
//! (`XT/utils/templates.py`, `chat_omg_llava.py`): no system prompt, the first turn
//! starts with `<image>\n`, the running text is split on `<image>`, the chunk before it
//! is encoded with BOS and the rest without, and −200 marks the image. Later turns
//! re-tokenize the whole history (`previous prompt + answer + "\n" + next turn`).

use omg_llm::tokenizer::InternLm2Tokenizer;

use crate::error::OmgLlavaError;
use crate::splice::IMAGE_TOKEN_INDEX;

/// The image placeholder in prompt text.
pub const IMAGE_TOKEN: &str = "<image>";

/// One user turn: `<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n`.
pub fn instruction(input: &str) -> String {
    format!("<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n")
}

/// A multi-turn conversation about one image, as the official chat tool keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    text: String,
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

    /// The prompt text for the next question: the first turn gets `<image>\n` in
    /// front of the question, later turns follow the previous answer and `"\n"`.
    pub fn prompt_for(&self, question: &str) -> String {
        if self.turns.is_empty() {
            instruction(&format!("{IMAGE_TOKEN}\n{question}"))
        } else {
            format!("{}\n{}", self.text, instruction(question))
        }
    }

    /// Records an answer (`answer` as generated, ending with `<|im_end|>` when the model
    /// stopped on it) to the prompt made by [`prompt_for`](Self::prompt_for).
    pub fn push(&mut self, prompt: String, question: &str, answer: &str) {
        self.text = format!("{prompt}{answer}");
        self.turns.push((question.to_owned(), answer.to_owned()));
    }
}

/// Tokenizes a prompt: splits on `<image>` (at most one), encodes the chunk before
/// it with BOS and the chunk after it without, and puts −200 between.
pub fn tokenize_prompt(
    tokenizer: &InternLm2Tokenizer,
    prompt: &str,
) -> Result<Vec<i64>, OmgLlavaError> {
    let chunks: Vec<&str> = prompt.split(IMAGE_TOKEN).collect();
    if chunks.len() > 2 {
        return Err(OmgLlavaError::Prompt(format!(
            "a prompt may contain at most one {IMAGE_TOKEN}, found {}",
            chunks.len() - 1
        )));
    }
    let mut ids: Vec<i64> = tokenizer
        .encode(chunks[0], true)?
        .into_iter()
        .map(i64::from)
        .collect();
    if let Some(rest) = chunks.get(1) {
        ids.push(IMAGE_TOKEN_INDEX);
        ids.extend(tokenizer.encode(rest, false)?.into_iter().map(i64::from));
    }
    Ok(ids)
}
