//! Caption samples: one candidate caption and its reference captions, as the caption
//! metrics take them.

use serde::{Deserialize, Serialize};

use crate::tokenize::coco_caption_tokens;

/// One evaluated caption (an image's GCG caption or a region's caption) with its
/// references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptionSample {
    /// The ground-truth captions (at least one).
    pub references: Vec<String>,
    /// The model's caption.
    pub candidate: String,
}

impl CaptionSample {
    /// The sample with every caption preprocessed as pycocoevalcap does before scoring
    /// (see [`coco_caption_tokens`]).
    pub fn ptb_tokenized(&self) -> CaptionSample {
        CaptionSample {
            references: self
                .references
                .iter()
                .map(|r| coco_caption_tokens(r))
                .collect(),
            candidate: coco_caption_tokens(&self.candidate),
        }
    }
}
