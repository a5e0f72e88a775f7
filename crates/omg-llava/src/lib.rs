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
pub mod parity;

pub use omg_llm;
