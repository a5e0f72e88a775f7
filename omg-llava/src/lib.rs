//! # omg-llava
//!
//! OMG-LLaVA (arXiv 2406.19389) in Rust on burn: one model that reasons about a photo at
//! three levels — the whole image (chat, captions), objects (a point, box or mask names
//! a region) and pixels (a sentence in, a mask out; grounded conversation whose phrases
//! each come with a mask).
//!
//! ```no_run
//! use omg_llava::backend::{DefaultBackend as B, default_device};
//! use omg_llava::{GenerateOptions, LoadOptions, Pipeline, Region, Task};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::<B>::from_dir(
//!     "pretrained/omg_llava",
//!     &LoadOptions::default(),
//!     default_device(),
//!     |step| eprintln!("[{}/{}] {}", step.index, step.total, step.what),
//! )?;
//! let img = pipeline.encode(&image::open("photo.jpg")?)?; // encoded once
//! let opts = GenerateOptions::default(); // greedy, as the official evaluation
//!
//! let seg = pipeline.segment(&img, "the dog", &opts)?; // a sentence in, a mask out
//! let about = pipeline.run(
//!     &img,
//!     &Task::ask_regions(vec![Region::rect(10.0, 20.0, 200.0, 240.0)], "What is this?"),
//!     &opts,
//! )?;
//! for event in pipeline.stream(&img, &Task::Ground, &opts)? {
//!     // text pieces as they are generated, each mask as soon as it exists
//!     let _ = event?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The public surface:
//!
//! - [`Pipeline`]: loading ([`Pipeline::from_dir`]), encoding photos
//!   ([`Pipeline::encode`] → [`ImageHandle`]), running or streaming a [`Task`]
//!   ([`Pipeline::run`], [`Pipeline::stream`] → [`ResponseStream`] of
//!   [`StreamEvent`]s), batched generation ([`Pipeline::run_batch`]), shortcuts for
//!   the common tasks, and OMG-Seg's own panoptic and region segmentation;
//! - inputs: [`Task`], [`Region`], [`Conversation`], [`Prompt`] (explicit markup for
//!   prompts no task makes), [`GenerateOptions`] with [`Sampling`], [`LoadOptions`]
//!   with [`LlmWeights`], [`ImageLimits`], [`CheckpointBundle`] and the architecture
//!   file of a bundle, [`OmgLlavaConfig`];
//! - outputs: [`Answer`], [`Segmentation`], [`GroundedAnswer`] / [`GroundedPhrase`],
//!   [`PanopticSegment`], [`MaskOutput`] / [`MaskSummary`] with the masks' own types
//!   [`BinaryMask`], [`BBox`], [`CocoRle`]; [`FinishReason`], [`LoadStep`];
//! - [`RandomWeights`]: a model of real sizes with random weights
//!   ([`Pipeline::with_random_weights`]), to measure memory and speed without the
//!   files;
//! - [`OmgLlavaError`], one typed variant per thing a caller may want to handle;
//! - [`backend`]: the compute backend chosen by cargo feature; `hub` (feature
//!   `hub`): downloading the official files; [`reuse_freed_memory`].

pub mod backend;
mod batch;
mod batch_stream;
mod bundle;
mod cancel;
mod config;
mod conversation;
mod error;
#[cfg(feature = "hub")]
pub mod hub;
mod image_handle;
mod limits;
mod load;
mod model;
mod options;
mod output;
mod pipeline;
mod prepare;
mod prompt;
mod random;
mod region;
mod shortcuts;
mod stream;
mod task;
mod tokens;

pub use batch_stream::{BatchEvent, BatchRow, BatchStream};
pub use bundle::CheckpointBundle;
pub use cancel::CancelToken;
pub use config::OmgLlavaConfig;
pub use conversation::Conversation;
pub use error::OmgLlavaError;
pub use image_handle::ImageHandle;
pub use limits::ImageLimits;
pub use load::LoadStep;
pub use omg_masks::{BBox, BinaryMask, CocoRle};
pub use options::{GenerateOptions, LlmWeights, LoadOptions, Sampling};
pub use output::{
    Answer, FinishReason, GroundedAnswer, GroundedPhrase, MaskOutput, MaskSummary, PanopticSegment,
    Segmentation,
};
pub use pipeline::Pipeline;
pub use prompt::Prompt;
pub use random::RandomWeights;
pub use region::Region;
pub use stream::{ResponseStream, StreamEvent};
pub use task::Task;

/// Makes the C allocator reuse freed large blocks (glibc); call it early in `main` of
/// a CPU program, before large tensors exist. It changes the whole process, which is
/// why the library does not do it on its own.
pub use omg_kernels::reuse_freed_memory;
