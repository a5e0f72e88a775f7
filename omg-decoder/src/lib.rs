//! # omg-decoder
//!
//! The last stage of OMG-LLaVA: `[SEG]` hidden states of the LLM become masks.
//!
//! - [`SegHead`]: `projector_text2vision` maps each `[SEG]` state to a content and a
//!   positional query, which run through the OMG-Seg decoder layers (or the
//!   task-finetuned `_llm` copies) on the cached image features;
//! - [`postprocess`]: upsampling, un-padding and thresholding into masks in the
//!   original image's pixels, as `omg_masks::BinaryMask`s.

mod error;
pub mod loader;
pub mod postprocess;
pub mod seg_head;

pub use error::DecoderError;
pub use seg_head::{SegDecoding, SegHead};
