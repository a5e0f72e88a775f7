//! The official question texts of each task, and the prompts built around a user's
//! regions.

use crate::region::{Placeholder, Region};
use crate::template::instruction;

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
pub fn region_prompt(regions: &[Region], question: &str) -> String {
    let text = if question.contains("<region>") || question.contains("<mark>") {
        question.to_owned()
    } else {
        let (mut r, mut m) = (0, 0);
        let names: Vec<String> = regions
            .iter()
            .map(|x| match x.placeholder() {
                Placeholder::Region => {
                    r += 1;
                    format!("region{r} <region>")
                }
                Placeholder::Mark => {
                    m += 1;
                    format!("Mark {m} <mark>")
                }
            })
            .collect();
        format!("There are some regions: {}.\n{question}", names.join(", "))
    };
    instruction(&format!("<image>\n{text}"))
}

/// The official region-caption question for one region ([`Pipeline::describe_region`]).
pub fn describe_question(region: &Region) -> String {
    let placeholder = match region.placeholder() {
        Placeholder::Region => "<region>",
        Placeholder::Mark => "<mark>",
    };
    format!(
        "Can you provide me with a detailed description of the region in the picture marked by region1 {placeholder}?"
    )
}
