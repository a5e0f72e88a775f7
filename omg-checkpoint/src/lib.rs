//! # omg-checkpoint
//!
//! Reading checkpoint files for every stage of omg-llava-rs: safetensors (single file
//! or sharded with an index), PyTorch `.pth` (zip + pickle, read without executing any
//! pickle code), and the key-remapping loader that turns official InternLM2 /
//! OMG-LLaVA / OMG-Seg names into the burn module tree. It depends on no model crate,
//! so the encoder, projector, language model and decoder all load through it.
//!
//! Every reader implements [`TensorSource`]: a read-only, lazily materialised map
//! from official parameter names to tensors in the file's own dtype.

pub mod apply;
mod error;
mod finite;
pub mod module_loader;
pub mod placement;
pub mod pth;
mod rows;
pub mod safetensors;
mod source;
pub mod synthetic;

pub use error::CheckpointError;
pub use finite::FiniteCheck;
pub use source::{PrefixView, TensorInfo, TensorSource};
pub use synthetic::SyntheticSource;
