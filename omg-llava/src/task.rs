//! [`Task`]: what to ask the model about an image, each task defined once with the
//! official prompt the evaluation and demo code use for it.

use crate::conversation::{Conversation, user_turn};
use crate::error::OmgLlavaError;
use crate::prompt::Prompt;
use crate::region::{Placeholder, Region};
use crate::tokens::{IMAGE_TOKEN, MARK_TOKEN, REGION_TOKEN};

/// The first grounded-conversation question of the official GCG evaluation.
const GCG_QUESTION: &str = "Could you please give me a detailed description of the image? Please respond with interleaved segmentation masks for the corresponding parts of the answer.";

/// The caption question.
const CAPTION_QUESTION: &str = "Could you please give me a brief description of the image?";

/// A question for the language model about an encoded image. Run it with
/// [`Pipeline::run`](crate::Pipeline::run), stream it with
/// [`Pipeline::stream`](crate::Pipeline::stream), or run several at once with
/// [`Pipeline::run_batch`](crate::Pipeline::run_batch).
///
/// Every string a task holds is plain text: a user's question cannot inject the
/// model's tokens (`[SEG]`, `<|im_end|>`, …). The only exception is an
/// [`AskRegions`](Task::AskRegions) question, whose `<region>` and `<mark>` mark where
/// its regions go.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Task {
    /// A turn of a chat: `question` after the `history` turns.
    Chat {
        /// The earlier turns (empty for the first question).
        history: Conversation,
        /// The question.
        question: String,
    },
    /// A short caption of the image.
    Caption,
    /// A question about regions. `question` may place them itself (`<region>` for a
    /// box or mask, `<mark>` for a point, taken in the order of `regions`); without
    /// any placeholder the regions are listed first, as in the training data
    /// (`region1 <region>`, `Mark 1 <mark>`, …).
    AskRegions {
        /// The regions, in the photo's pixels.
        regions: Vec<Region>,
        /// The question.
        question: String,
    },
    /// A detailed description of one region (the official region-caption prompt).
    DescribeRegion {
        /// The region, in the photo's pixels.
        region: Region,
    },
    /// Referring or reasoning segmentation: the mask of what `expression` names (the
    /// official RES prompt, `Please segment {expression} in this image.`).
    Segment {
        /// What to segment, e.g. `the cat on the left`.
        expression: String,
    },
    /// Grounded conversation: a description whose `<p>…</p>` phrases each come with
    /// the mask of the `[SEG]` that follows them.
    Ground,
}

impl Task {
    /// The first question of a chat.
    pub fn chat(question: impl Into<String>) -> Self {
        Self::Chat {
            history: Conversation::new(),
            question: question.into(),
        }
    }

    /// A question after the turns of `history`.
    pub fn chat_after(history: &Conversation, question: impl Into<String>) -> Self {
        Self::Chat {
            history: history.clone(),
            question: question.into(),
        }
    }

    /// A question about `regions` (see [`Task::AskRegions`]).
    pub fn ask_regions(regions: Vec<Region>, question: impl Into<String>) -> Self {
        Self::AskRegions {
            regions,
            question: question.into(),
        }
    }

    /// A description of `region`.
    pub fn describe_region(region: Region) -> Self {
        Self::DescribeRegion { region }
    }

    /// The mask of what `expression` names.
    pub fn segment(expression: impl Into<String>) -> Self {
        Self::Segment {
            expression: expression.into(),
        }
    }

    /// The regions the task's placeholders take, in order.
    pub fn regions(&self) -> &[Region] {
        match self {
            Task::AskRegions { regions, .. } => regions,
            Task::DescribeRegion { region } => std::slice::from_ref(region),
            _ => &[],
        }
    }

    /// The user's side of the turn as the prompt words it (the question of a chat, the
    /// official wording of the other tasks), without placeholders' regions listed.
    pub fn question(&self) -> String {
        match self {
            Task::Chat { question, .. } | Task::AskRegions { question, .. } => question.clone(),
            Task::Caption => CAPTION_QUESTION.to_owned(),
            Task::Ground => GCG_QUESTION.to_owned(),
            Task::Segment { expression } => format!("Please segment {expression} in this image."),
            Task::DescribeRegion { region } => format!(
                "Can you provide me with a detailed description of the region in the picture marked by region1 {}?",
                placeholder_token(region)
            ),
        }
    }

    /// The prompt the model sees (chat template applied).
    ///
    /// # Errors
    ///
    /// [`OmgLlavaError::NoRegion`] for a region question without regions.
    pub fn prompt(&self) -> Result<Prompt, OmgLlavaError> {
        match self {
            Task::Chat { history, question } => Ok(history.prompt_for(question)),
            Task::AskRegions { regions, question } => region_prompt(regions, question),
            Task::DescribeRegion { region } => {
                region_prompt(std::slice::from_ref(region), &self.question())
            }
            Task::Caption | Task::Ground | Task::Segment { .. } => {
                Ok(Conversation::new().prompt_for(&self.question()))
            }
        }
    }
}

fn placeholder_token(region: &Region) -> &'static str {
    match region.placeholder() {
        Placeholder::Region => REGION_TOKEN,
        Placeholder::Mark => MARK_TOKEN,
    }
}

/// The prompt of a question about `regions`: the question as is when it places the
/// `<region>` / `<mark>` placeholders itself (the only tokens it may hold), else the
/// regions listed first.
fn region_prompt(regions: &[Region], question: &str) -> Result<Prompt, OmgLlavaError> {
    if regions.is_empty() {
        return Err(OmgLlavaError::NoRegion);
    }
    let mut input = Prompt::markup(format!("{IMAGE_TOKEN}\n"));
    if question.contains(REGION_TOKEN) || question.contains(MARK_TOKEN) {
        input.push_plain_except(question, &[REGION_TOKEN, MARK_TOKEN]);
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
    Ok(user_turn(&input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_questions() {
        assert_eq!(
            Task::segment("the dog").question(),
            "Please segment the dog in this image."
        );
        // the official region-caption question places its one placeholder itself
        let d = Task::describe_region(Region::point(1.0, 2.0));
        assert!(d.question().ends_with("marked by region1 <mark>?"));
        let prompt = d.prompt().unwrap();
        assert_eq!(prompt.text().matches("<mark>").count(), 1);
        assert!(!prompt.text().contains("There are some regions"));
        assert!(matches!(
            Task::ask_regions(Vec::new(), "?").prompt(),
            Err(OmgLlavaError::NoRegion)
        ));
    }

    #[test]
    fn listed_regions_keep_their_kinds_in_order() {
        let t = Task::ask_regions(
            vec![Region::rect(0.0, 0.0, 2.0, 2.0), Region::point(1.0, 1.0)],
            "What is this?",
        );
        assert_eq!(
            t.prompt().unwrap().text(),
            "<|im_start|>user\n<image>\nThere are some regions: region1 <region>, Mark 1 <mark>.\nWhat is this?<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
