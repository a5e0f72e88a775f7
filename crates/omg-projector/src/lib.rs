//! # omg-projector
//!
//! Between OMG-Seg and the LLM: the **perception prior embedding** (score-weighted mask
//! probabilities of the object queries resampled to the LLM's token grid, a softmax
//! mixture of query features per token, and the arg-max winners that select the
//! valid object queries) and, coming next, the visual projector
//! (`ProjectorModel_OMG_LLaVA`).

pub mod perception_prior;

pub use perception_prior::{PerceptionPrior, perception_prior, pixel_shuffle_tokens};
