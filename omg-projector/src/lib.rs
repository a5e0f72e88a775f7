//! # omg-projector
//!
//! Between OMG-Seg and the LLM:
//!
//! - the **perception prior embedding** ([`perception_prior`](mod@perception_prior)):
//!   score-weighted mask probabilities of the object queries resampled to the LLM's
//!   token grid, a softmax mixture of query features per token, and the arg-max winners
//!   that select the valid object queries;
//! - the **visual projector** ([`VisualProjector`], official `ProjectorModel_OMG_LLaVA`
//!   / `Naive_Proj`): pixel tokens, the separator and the valid object tokens that
//!   are spliced at `<image>`, and the LLM embedding of visual prompts;
//! - the **projector MLP** ([`ProjectorMlp`]) also used, as `projector_text2vision`,
//!   to map `[SEG]` hidden states back to mask-decoder queries;
//! - [`splice`]: the visual tokens and prompt embeddings placed at `<image>`,
//!   `<region>` and `<mark>` in the LLM's input embeddings;
//! - loading both by their official key names ([`loader`]).

pub mod config;
pub mod encoder_outputs;
mod error;
pub mod loader;
pub mod mlp;
pub mod perception_prior;
pub mod splice;
pub mod visual_projector;

pub use config::{ProjectorConfig, Text2VisionConfig};
pub use encoder_outputs::{
    ProjectedImage, VisualEncoderOutputs, project_image, visual_encoder_outputs,
};
pub use error::ProjectorError;
pub use mlp::ProjectorMlp;
pub use perception_prior::{PerceptionPrior, perception_prior, pixel_shuffle_tokens};
pub use visual_projector::{ProjectorOutput, VisualProjector};
