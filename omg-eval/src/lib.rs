//! # omg-eval
//!
//! The metrics of OMG-LLaVA's benchmarks, each computed exactly as its official scorer
//! does, with no tensor library:
//!
//! * [`referring`]: cIoU and gIoU of referring (RefCOCO, RefCOCO+, RefCOCOg) and
//!   reasoning segmentation, as the official OMG-LLaVA evaluation computes them.
//! * [`gcg`]: the GCG mask mIoU and phrase-grounded mask recall (the phrase
//!   similarity is pluggable: [`PhraseSimilarity`]).
//! * [`coco_ap`]: mask AP (AP50, AP@[.5:.95]) as pycocotools' `COCOeval`.
//! * [`tokenize`]: pycocoevalcap's caption preprocessing (the PTB tokenizer).
//! * [`cider`]: CIDEr-D as pycocoevalcap's `Cider`.
//! * [`meteor`]: METEOR through pycocoevalcap's `meteor-1.5.jar`, when a Java runtime
//!   and the jar are present; otherwise an unavailable value with the reason.
//! * [`report`]: a table of values or "unavailable: reason".
//!
//! Masks are [`omg_masks::BinaryMask`]s in image pixels; COCO RLE comes from
//! [`omg_masks::CocoRle`].

#![warn(missing_docs)]

mod caption;
pub mod cider;
pub mod coco_ap;
mod error;
pub mod gcg;
pub mod meteor;
mod overlap;
pub mod referring;
pub mod report;
pub mod tokenize;

pub use caption::CaptionSample;
pub use cider::{CiderScores, cider_d};
pub use coco_ap::{CocoImage, Detection, GroundTruth, SegmScores, evaluate_segm};
pub use error::EvalError;
pub use gcg::{MiouAccumulator, PhraseMatches, PhraseSimilarity, RecallAccumulator};
pub use meteor::{Meteor, MeteorScores, find_meteor_jar, meteor_metric};
pub use overlap::Overlap;
pub use referring::{ReferringAccumulator, ReferringScores, mask_from_logits, union_of};
pub use report::{MetricRow, MetricTable, MetricValue};
pub use tokenize::{coco_caption_tokens, ptb_tokenize};
