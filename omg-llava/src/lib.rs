//! # omg-llava
//!
//! OMG-LLaVA (arXiv 2406.19389) in Rust on [burn](https://burn.dev): one model that
//! reasons about an image at three levels — the whole image (chat, captions, VQA),
//! objects (a point, box or mask names a region) and pixels (a sentence in, a mask
//! out; grounded conversation).
//!
//! This crate composes the stages (`omg-encoder` → `omg-projector` → `omg-llm` →
//! `omg-decoder`):
//!
//! - [`Pipeline`]: the typed API. Encode an image once ([`Pipeline::encode`] →
//!   [`ImageHandle`]), then chat, caption, ask about [`Region`]s, segment, ground,
//!   or run OMG-Seg's panoptic and interactive segmentation on it; answers stream
//!   ([`ResponseStream`]) with each `[SEG]` mask as soon as it exists;
//! - [`OmgLlava`]: the loaded model, from a [`CheckpointBundle`] of the official
//!   files (InternLM2 directory, released `.pth`, OMG-Seg `.pth`, class embeddings),
//!   every key checked before it is returned;
//! - [`template`], [`splice`]: the official chat template and placeholder splicing;
//! - [`backend`]: the compute backend chosen by cargo feature (`ndarray` by default,
//!   `flex`, `wgpu`, `cuda`);
//! - [`hub`] (feature `hub`): downloading a bundle from the Hugging Face hub.
//!
//! The language model, its tokenizer and generation live in [`omg_llm`], re-exported
//! here.

pub mod backend;
pub mod batch;
pub mod bundle;
pub mod config;
mod error;
#[cfg(feature = "hub")]
pub mod hub;
pub mod image_handle;
pub mod limits;
pub mod masks;
pub mod model;
pub mod options;
pub mod output;
pub mod pipeline;
pub mod prepare;
pub mod questions;
pub mod region;
pub mod splice;
pub mod stream;
mod tasks;
pub mod template;

pub use batch::BatchPrompt;
pub use bundle::CheckpointBundle;
pub use config::OmgLlavaConfig;
pub use error::OmgLlavaError;
pub use image_handle::ImageHandle;
pub use limits::ImageLimits;
pub use model::{LoadStep, OmgLlava};
pub use omg_decoder::{BBox, BinaryMask, CocoRle};
/// Allocator tuning for large tensors; call it early in `main` (see its docs).
pub use omg_kernels::reuse_freed_memory;
pub use omg_llm::LlmWeights;
pub use options::{GenerateOptions, LoadOptions};
pub use output::{
    Answer, GroundedAnswer, GroundedPhrase, MaskOutput, PanopticOutput, PanopticSegmentOutput,
    Segmentation,
};
pub use pipeline::Pipeline;
pub use prepare::PreparedPrompt;
pub use region::Region;
pub use stream::{ResponseStream, StreamEvent};
pub use template::{Conversation, Prompt};

pub use omg_llm;
