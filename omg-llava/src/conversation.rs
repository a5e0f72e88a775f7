//! [`Conversation`]: the turns of a multi-turn chat about one image, and the prompt of
//! its next turn as the official chat tool builds it.

use omg_llm::tokenizer::{ASSISTANT_TURN_START, IM_END_TOKEN, USER_TURN_START};

use crate::output::Answer;
use crate::prompt::Prompt;
use crate::tokens::{IMAGE_TOKEN, P_END_TOKEN, P_START_TOKEN, SEG_TOKEN};

/// The earlier turns of a chat about one image, as the official chat tool keeps them:
/// the first turn starts with the image, and each later turn follows the previous
/// answer and a newline.
///
/// Questions are plain text (a user cannot inject tokens). An answer recorded with
/// [`record`](Self::record) is kept as the model generated it, its `[SEG]`, `<p>`,
/// `</p>` and end-of-turn tokens included; an answer given as text with
/// [`push_turn`](Self::push_turn) (a client replaying a conversation) keeps only those
/// three as tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    turns: Vec<Turn>,
}

#[derive(Debug, Clone, PartialEq)]
struct Turn {
    question: String,
    /// The answer as the next prompt holds it.
    answer: Prompt,
    /// The answer as text.
    text: String,
}

impl Conversation {
    /// An empty conversation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of turns.
    pub fn len(&self) -> usize {
        self.turns.len()
    }

    /// Whether there is no turn yet.
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// The (question, answer text) of each turn, in order.
    pub fn turns(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.turns
            .iter()
            .map(|t| (t.question.as_str(), t.text.as_str()))
    }

    /// Records a turn the model answered: `answer` as generated (its `raw_text`).
    pub fn record(&mut self, question: &str, answer: &Answer) {
        self.turns.push(Turn {
            question: question.to_owned(),
            answer: Prompt::markup(answer.raw_text.clone()),
            text: answer.text.clone(),
        });
    }

    /// Records a turn given as text, such as an earlier answer a client sends back:
    /// `[SEG]`, `<p>` and `</p>` in `answer` are the model's tokens, everything else is
    /// plain text, and the turn is closed with the end-of-turn token as the model
    /// closes its turns.
    pub fn push_turn(&mut self, question: &str, answer: &str) {
        let mut prompt = Prompt::new();
        prompt
            .push_plain_except(answer, &[SEG_TOKEN, P_START_TOKEN, P_END_TOKEN])
            .push_markup(IM_END_TOKEN);
        self.turns.push(Turn {
            question: question.to_owned(),
            answer: prompt,
            text: answer.to_owned(),
        });
    }

    /// The prompt of the next turn, `question` after these turns.
    pub(crate) fn prompt_for(&self, question: &str) -> Prompt {
        let mut input = Prompt::markup(format!("{IMAGE_TOKEN}\n"));
        let mut prompt = Prompt::new();
        for turn in &self.turns {
            input.push_plain(&turn.question);
            prompt.push_prompt(&user_turn(&input));
            prompt.push_prompt(&turn.answer).push_markup("\n");
            input = Prompt::new();
        }
        input.push_plain(question);
        prompt.push_prompt(&user_turn(&input));
        prompt
    }
}

/// One user turn of the official `internlm2_chat` template (no system prompt):
/// `<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n`.
pub(crate) fn user_turn(input: &Prompt) -> Prompt {
    let mut p = Prompt::markup(USER_TURN_START);
    p.push_prompt(input).push_markup(ASSISTANT_TURN_START);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_follow_the_official_chat_format() {
        let mut c = Conversation::new();
        assert!(c.is_empty());
        assert_eq!(c.len(), 0);
        assert_eq!(
            c.prompt_for("Q1").text(),
            "<|im_start|>user\n<image>\nQ1<|im_end|>\n<|im_start|>assistant\n"
        );
        c.push_turn("Q1", "It is <p>a cat</p> [SEG].");
        assert!(!c.is_empty());
        assert_eq!(c.len(), 1);
        let p = c.prompt_for("Q2");
        assert_eq!(
            p.text(),
            "<|im_start|>user\n<image>\nQ1<|im_end|>\n<|im_start|>assistant\n\
             It is <p>a cat</p> [SEG].<|im_end|>\n\
             <|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"
        );
        // the questions and the answer's words are plain; its model tokens are not
        let plain: Vec<&str> = p
            .plain_ranges()
            .iter()
            .map(|r| &p.text()[r.clone()])
            .collect();
        assert_eq!(plain, ["Q1", "It is ", "a cat", " ", ".", "Q2"]);
        assert_eq!(
            c.turns().collect::<Vec<_>>(),
            [("Q1", "It is <p>a cat</p> [SEG].")]
        );
        c.push_turn("Q2", "No.");
        assert_eq!((c.len(), c.turns().len()), (2, 2));
    }
}
