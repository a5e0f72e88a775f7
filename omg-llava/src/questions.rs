//! The official question texts of each task, and the prompts built around a user's
//! regions.

use omg_llm::tokenizer::{MARK_TOKEN, REGION_TOKEN};

use crate::region::{Placeholder, Region};
use crate::template::{IMAGE_TOKEN, Prompt, user_turn};

/// The referring-segmentation question of the official RES evaluation.
pub fn segment_question(expression: &str) -> String {
    format!("Please segment {expression} in this image.")
}

/// The first grounded-conversation question of the official GCG evaluation.
pub const GCG_QUESTION: &str = "Could you please give me a detailed description of the image? Please respond with interleaved segmentation masks for the corresponding parts of the answer.";

/// The caption question used by [`Pipeline::caption`].
pub const CAPTION_QUESTION: &str = "Could you please give me a brief description of the image?";

/// The prompt [`Pipeline::ask_regions`] sends: the question as is when it places the
/// `<region>` / `<mark>` placeholders itself, else the regions listed first as in the
/// training data (`region1 <region>`, `Mark 1 <mark>`, …).
///
/// The question is plain text (see [`Prompt`]) except for its `<region>` and `<mark>`
/// placeholders, which are the only tokens a question may hold.
pub fn region_prompt(regions: &[Region], question: &str) -> Prompt {
    let mut input = Prompt::markup(format!("{IMAGE_TOKEN}\n"));
    if question.contains(REGION_TOKEN) || question.contains(MARK_TOKEN) {
        push_with_placeholders(&mut input, question);
    } else {
        let (mut r, mut m) = (0, 0);
        let names: Vec<String> = regions
            .iter()
            .map(|x| match x.placeholder() {
                Placeholder::Region => {
                    r += 1;
                    format!("region{r} {REGION_TOKEN}")
                }
                Placeholder::Mark => {
                    m += 1;
                    format!("Mark {m} {MARK_TOKEN}")
                }
            })
            .collect();
        input.push_markup(&format!("There are some regions: {}.\n", names.join(", ")));
        input.push_plain(question);
    }
    user_turn(&input)
}

/// Appends `text` as plain text but for its `<region>` / `<mark>` placeholders.
fn push_with_placeholders(prompt: &mut Prompt, text: &str) {
    let mut rest = text;
    loop {
        let next = [REGION_TOKEN, MARK_TOKEN]
            .iter()
            .filter_map(|t| rest.find(t).map(|i| (i, *t)))
            .min();
        match next {
            Some((i, token)) => {
                prompt.push_plain(&rest[..i]).push_markup(token);
                rest = &rest[i + token.len()..];
            }
            None => {
                prompt.push_plain(rest);
                return;
            }
        }
    }
}

/// The official region-caption question for one region ([`Pipeline::describe_region`]).
pub fn describe_question(region: &Region) -> String {
    let placeholder = match region.placeholder() {
        Placeholder::Region => REGION_TOKEN,
        Placeholder::Mark => MARK_TOKEN,
    };
    format!(
        "Can you provide me with a detailed description of the region in the picture marked by region1 {placeholder}?"
    )
}
