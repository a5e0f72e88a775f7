//! [`LlmWeights`]: how the LLM's weights are held in memory, chosen at load time.

use std::fmt;
use std::str::FromStr;

use omg_kernels::QuantBits;
use serde::{Deserialize, Serialize};

/// The precision of the LLM's linear weights, chosen when loading (each checkpoint
/// tensor is converted as it is read, so loading never holds the f32 model).
///
/// | variant | decoder linears (`wqkv`, `wo`, `w1`, `w2`, `w3`) | head `output` | embeddings, norms |
/// |---|---|---|---|
/// | `F32` | f32 | f32 | f32 |
/// | `Int8` | int8, one f32 scale per 64 input channels | int8 | f32 |
/// | `Int4` | int4, one f32 scale per 64 input channels | int8 | f32 |
///
/// Activations, RMSNorm, RoPE, softmax and everything outside the LLM (the vision
/// encoder, projectors, `[SEG]` decoder) stay f32. The head stays int8 under `Int4`
/// because the logits decide every generated token (llama.cpp keeps its head at a
/// higher precision for the same reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LlmWeights {
    /// Full precision, as the checkpoint (converted to f32).
    #[default]
    F32,
    /// Weight-only int8 (≈ 1.06 bytes per weight).
    Int8,
    /// Weight-only int4 (≈ 0.56 bytes per weight), head int8.
    Int4,
}

impl LlmWeights {
    /// Every accepted name, for help texts.
    pub const NAMES: &'static [&'static str] = &["f32", "int8", "int4"];

    /// The format of the decoder layers' linears (`None`: float).
    pub fn layer_bits(self) -> Option<QuantBits> {
        match self {
            Self::F32 => None,
            Self::Int8 => Some(QuantBits::Int8),
            Self::Int4 => Some(QuantBits::Int4),
        }
    }

    /// The format of the LM head (`None`: float).
    pub fn head_bits(self) -> Option<QuantBits> {
        match self {
            Self::F32 => None,
            Self::Int8 | Self::Int4 => Some(QuantBits::Int8),
        }
    }

    /// The name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
            Self::Int4 => "int4",
        }
    }
}

impl fmt::Display for LlmWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown [`LlmWeights`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown LLM weight precision `{0}` (expected one of: f32, int8, int4)")]
pub struct UnknownPrecision(pub String);

impl FromStr for LlmWeights {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "int8" | "i8" | "q8" => Ok(Self::Int8),
            "int4" | "i4" | "q4" => Ok(Self::Int4),
            _ => Err(UnknownPrecision(s.to_owned())),
        }
    }
}
