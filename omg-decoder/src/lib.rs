//! # omg-decoder
//!
//! The last stage of OMG-LLaVA: `[SEG]` hidden states of the LLM become masks.
//!
//! - [`SegHead`]: `projector_text2vision` maps each `[SEG]` state to a content and a
//!   positional query, which run through the OMG-Seg decoder layers (or the
//!   task-finetuned `_llm` copies) on the cached image features;
//! - [`postprocess`]: upsampling, un-padding and thresholding into masks in the
//!   original image's pixels;
//! - [`mask`]: the typed mask output (bitmap, bbox, area, COCO RLE byte-identical to
//!   pycocotools, PNG and overlay export).

mod error;
pub mod loader;
pub mod mask;
pub mod postprocess;
pub mod seg_head;

pub use error::DecoderError;
pub use mask::{BBox, BinaryMask, CocoRle, MaskError};
pub use seg_head::{SegDecoding, SegHead};
