//! The InternLM2 network (model math only; weights come from [`crate::loader`]).

pub mod attention;
pub mod cache;
pub mod decoder_layer;
pub mod feed_forward;
pub mod internlm2;
pub mod linear;
pub mod rope;

pub use cache::KvCache;
pub use internlm2::{ForwardOptions, ForwardOutput, InternLM2, LogitsFor};
pub use linear::{LlmLinear, QuantWeight};
