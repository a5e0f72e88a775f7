//! # omg-eval
//!
//! OMG-LLaVA's benchmarks without a tensor library: readers of their official
//! annotation files, the questions the official evaluations ask, and the metrics,
//! each computed exactly as its official scorer does.
//!
//! Data and prompts:
//!
//! * [`data`]: readers of the official layouts: [`data::refcoco`] (RefCOCO, RefCOCO+,
//!   RefCOCOg: the refer toolkit's `refs(unc).p` / `refs(umd).p` pickles and
//!   `instances.json`), [`data::reasonseg`] (ReasonSeg's photo + JSON folders, with
//!   LISA's ignore regions), [`data::gcg`] (GranD-f's GCG caption and mask ground
//!   truth), [`data::region_caption`] (RefCOCOg region captions), and
//!   [`data::Segmentation`] (COCO polygons and RLE rasterised exactly as pycocotools).
//!   Errors name the file at fault ([`EvalError::Io`], [`EvalError::BadFile`],
//!   [`EvalError::UnknownSplit`]).
//! * [`prompts`]: the official questions per benchmark and the answer post-processing
//!   of the official scorers.
//!
//! A tiny synthetic dataset per benchmark, in the official layouts, is in the crate's
//! `tiny/` folder (written by `reference/make_tiny_datasets.py`).
//!
//! Metrics:
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
pub mod data;
mod error;
pub mod gcg;
pub mod meteor;
mod overlap;
pub mod prompts;
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
