//! # omg-llava
//!
//! OMG-LLaVA (arXiv 2406.19389) in Rust on [burn](https://burn.dev): one model that
//! reasons about an image at three levels — the whole image (chat, captions, VQA),
//! objects (a point, box or mask names a region) and pixels (a sentence in, a mask
//! out; grounded conversation).
//!
//! This crate composes the stages (`omg-encoder` → `omg-projector` → `omg-llm` →
//! `omg-decoder`). At this stage of the project it provides:
//!
//! - [`backend`]: the compute backend chosen by cargo feature (`ndarray` by default,
//!   `flex`, `wgpu`, `cuda`);
//! - [`parity`]: the golden-fixture harness behind the `omg-parity` binary.
//!
//! The language model, its tokenizer and checkpoint loading live in [`omg_llm`],
//! re-exported here.

pub mod backend;
pub mod bundle;
pub mod config;
mod error;
#[cfg(feature = "hub")]
pub mod hub;
pub mod model;
pub mod output;
pub mod parity;
pub mod pipeline;
pub mod region;
pub mod splice;
pub mod stream;
pub mod template;

pub use bundle::CheckpointBundle;
pub use config::OmgLlavaConfig;
pub use error::OmgLlavaError;
pub use model::{LoadStep, OmgLlava};
pub use omg_decoder::{BBox, BinaryMask, CocoRle};
pub use output::{
    Answer, GroundedAnswer, GroundedPhrase, MaskOutput, PanopticOutput, PanopticSegmentOutput,
    Segmentation,
};
pub use pipeline::{GenerateOptions, ImageHandle, Pipeline};
pub use region::Region;
pub use stream::{ResponseStream, StreamEvent};
pub use template::Conversation;

pub use omg_llm;
