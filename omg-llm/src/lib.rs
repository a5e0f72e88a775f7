//! # omg-llm
//!
//! The language half of OMG-LLaVA: **InternLM2** (as in HF `internlm/internlm2-chat-7b`,
//! `modeling_internlm2.py`) written for burn and generic over
//! `B: Backend`, with
//!
//! - [`InternLM2Config`]: the official HF `config.json` fields, presets and validation;
//! - [`InternLM2`]: token embedding, RMSNorm, fused `wqkv` (packed per KV group), GQA,
//!   rotate-half RoPE (with dynamic NTK scaling), SwiGLU, final norm and untied head;
//!   forward from token ids or from input embeddings, per-layer hidden states;
//! - a KV cache and [`generate`](generation) with greedy or seeded sampling, stop
//!   tokens, streaming and final-norm hidden states at chosen tokens (for `[SEG]`);
//! - [`loader`]: HF safetensors (single/sharded, f32/f16/bf16, memory-mapped, read
//!   through `omg-checkpoint`) and PEFT LoRA releases on top of them (OMG-LLaVA's
//!   `.pth` keeps its LLM under `llm.`), the linears optionally converted to bf16/f16 or
//!   int8/int4 as they are read ([`LlmWeights`]);
//! - [`tokenizer`]: the InternLM2 tokenizer from `tokenizer.json` or directly from the
//!   sentencepiece `tokenizer.model`, with tokens a fine-tune adds.

pub mod config;
mod error;
pub mod generation;
pub mod loader;
pub mod model;
mod precision;
pub mod prepared;
pub mod sampling;
pub mod tokenizer;

pub use config::{InternLM2Config, RopeScaling, RopeScalingKind};
pub use error::LlmError;
pub use model::{ForwardOptions, ForwardOutput, InternLM2, KvCache, LlmLinear, LogitsFor};
pub use precision::{LinearStorage, LlmWeights, UnknownPrecision};
