//! Typed outputs of the Pipeline: text answers, masks in the original photo's pixels
//! (bitmap, bbox, area, score, COCO RLE), grounded phrases and panoptic segments.

use omg_masks::{BBox, BinaryMask, CocoRle};
use serde::Serialize;

/// A mask in the original photo's pixels with its summary numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskOutput {
    mask: BinaryMask,
    bbox: Option<BBox>,
    area: u64,
    score: f32,
}

impl MaskOutput {
    /// Wraps a mask with its bbox and area.
    pub(crate) fn new(mask: BinaryMask, score: f32) -> Self {
        Self {
            bbox: mask.bbox(),
            area: mask.area(),
            mask,
            score,
        }
    }

    /// The binary mask (`height × width` of the original photo).
    pub fn mask(&self) -> &BinaryMask {
        &self.mask
    }

    /// The mask, taken out.
    pub fn into_mask(self) -> BinaryMask {
        self.mask
    }

    /// Tight box of the mask (`None` if it is empty).
    pub fn bbox(&self) -> Option<BBox> {
        self.bbox
    }

    /// Number of pixels in the mask.
    pub fn area(&self) -> u64 {
        self.area
    }

    /// Confidence in `[0, 1]`: for `[SEG]` and region masks the mean foreground
    /// probability inside the mask; for panoptic segments the class score.
    pub fn score(&self) -> f32 {
        self.score
    }

    /// COCO compressed RLE (byte-identical to pycocotools).
    pub fn rle(&self) -> CocoRle {
        self.mask.to_rle()
    }

    /// A JSON-friendly summary: bbox `[x, y, w, h]`, area, score and RLE.
    pub fn summary(&self) -> MaskSummary {
        MaskSummary {
            bbox: self.bbox.map(|b| [b.x, b.y, b.width, b.height]),
            area: self.area,
            score: self.score,
            segmentation: self.rle(),
        }
    }
}

/// Serializable form of a [`MaskOutput`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MaskSummary {
    /// `[x, y, width, height]`.
    pub bbox: Option<[u32; 4]>,
    /// Pixels in the mask.
    pub area: u64,
    /// Confidence.
    pub score: f32,
    /// COCO RLE.
    pub segmentation: CocoRle,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// The model ended its turn (`<|im_end|>` or `</s>`).
    Stop,
    /// The answer reached the number of new tokens asked for.
    Length,
}

/// A generated answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Answer {
    /// The answer text without the end-of-turn marker.
    pub text: String,
    /// The decoded text as generated (special tokens included).
    pub raw_text: String,
    /// The generated token ids.
    pub token_ids: Vec<u32>,
    /// One mask per `[SEG]` that has a hidden state (a `[SEG]` generated last has
    /// none), in order.
    pub masks: Vec<MaskOutput>,
    /// Tokens of the prompt the answer was generated from (the image's visual tokens
    /// counted as one).
    pub prompt_tokens: usize,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

/// A phrase of a grounded answer (`<p> phrase </p> [SEG]`) with its mask.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GroundedPhrase {
    /// The phrase text, trimmed.
    pub phrase: String,
    /// Its mask: the k-th phrase goes with the k-th `[SEG]` (`None` if there are
    /// fewer masks than phrases).
    pub mask: Option<MaskOutput>,
}

/// A grounded conversation answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GroundedAnswer {
    /// The caption: the answer with tags and `[SEG]` removed, whitespace collapsed (the
    /// official `process_and_save_output`).
    pub caption: String,
    /// The phrases with their masks.
    pub phrases: Vec<GroundedPhrase>,
    /// The answer.
    pub answer: Answer,
}

impl From<Answer> for GroundedAnswer {
    /// The phrases of an answer, the k-th `<p>…</p>` with the k-th mask.
    fn from(answer: Answer) -> Self {
        let phrases = phrases(&answer.text)
            .into_iter()
            .enumerate()
            .map(|(k, phrase)| GroundedPhrase {
                phrase,
                mask: answer.masks.get(k).cloned(),
            })
            .collect();
        Self {
            caption: caption(&answer.text),
            phrases,
            answer,
        }
    }
}

/// A referring / reasoning segmentation result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Segmentation {
    /// The mask of the first `[SEG]`, as the official RES evaluation uses
    /// (`None` if the model produced none).
    pub mask: Option<MaskOutput>,
    /// The answer (its `masks` holds every `[SEG]` mask).
    pub answer: Answer,
}

impl From<Answer> for Segmentation {
    /// The first mask of an answer.
    fn from(answer: Answer) -> Self {
        Self {
            mask: answer.masks.first().cloned(),
            answer,
        }
    }
}

/// One segment of a panoptic segmentation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PanopticSegment {
    /// Class index.
    pub class_id: usize,
    /// Class name.
    pub label: String,
    /// Thing (countable) or stuff.
    pub is_thing: bool,
    /// The segment's mask; its score is the class score.
    pub mask: MaskOutput,
}

/// `<p>…</p>` phrases of a grounded answer, in order.
pub(crate) fn phrases(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<p>") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("</p>") else { break };
        out.push(after[..end].trim().to_owned());
        rest = &after[end + 4..];
    }
    out
}

/// The caption of a grounded answer: every `<…>` tag and `[SEG]` removed,
/// whitespace collapsed.
fn caption(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.replace("[SEG]", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_and_caption_follow_the_gcg_format() {
        let t = "A <p> man </p> [SEG] rides a <p> horse </p> [SEG].<|im_end|>";
        assert_eq!(phrases(t), vec!["man", "horse"]);
        assert_eq!(caption(t), "A man rides a horse .");
        assert_eq!(phrases("no phrase <p> open"), Vec::<String>::new());
    }
}
