//! [`LlmWeights`]: how the LLM's weights are held in memory, chosen at load time.

use std::fmt;
use std::str::FromStr;

use burn::tensor::FloatDType;
use omg_kernels::QuantBits;
use serde::{Deserialize, Serialize};

/// How one linear layer's weight is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearStorage {
    /// A float matrix of this dtype (f32, bf16 or f16); a half-precision layer rounds
    /// its input to that dtype and returns f32 (see [`LlmWeights`]).
    Float(FloatDType),
    /// Quantized weights, one scale per 64 input channels (f32 for int8, f16 for int4);
    /// the products quantize their inputs too (`omg_kernels::quant_linear`).
    Quantized(QuantBits),
}

impl LinearStorage {
    /// Bytes held by an `[out, in]` weight in this storage.
    pub fn bytes(self, out_features: usize, in_features: usize) -> usize {
        match self {
            Self::Float(FloatDType::F64) => 8 * out_features * in_features,
            Self::Float(FloatDType::F32 | FloatDType::Flex32) => 4 * out_features * in_features,
            Self::Float(FloatDType::F16 | FloatDType::BF16) => 2 * out_features * in_features,
            Self::Quantized(bits) => omg_kernels::QuantLayout {
                bits,
                out_features,
                in_features,
            }
            .storage_bytes(),
        }
    }
}

/// The precision of the LLM's linear weights, chosen when loading (each checkpoint
/// tensor is converted as it is read, so loading never holds the f32 model).
///
/// | variant | decoder linears (`wqkv`, `wo`, `w1`, `w2`, `w3`) | head `output` | embeddings, norms |
/// |---|---|---|---|
/// | `F32` | f32 | f32 | f32 |
/// | `Int8` | int8, one f32 scale per 64 input channels | int8 | f32 |
/// | `Int4` | int4, one f16 scale per 64 input channels | int8 | f32 |
/// | `Bf16` | bf16 | bf16 | f32 |
/// | `F16` | f16 | f16 | f32 |
///
/// Activations, RMSNorm, RoPE, softmax and everything outside the LLM (the vision
/// encoder, projectors, `[SEG]` decoder) stay f32. The head stays int8 under `Int4`
/// because the logits decide every generated token (llama.cpp keeps its head at a
/// higher precision for the same reason).
///
/// Under `Bf16`/`F16` each linear rounds its f32 input to the half type, multiplies in
/// it (summing in f32: burn's GPU matmul gives half inputs an f32 accumulator, the CPU
/// kernel sums in f32) and
/// returns f32, as a PyTorch `Linear` in half precision does; the residual stream,
/// the RMSNorm variance, the RoPE tables and the attention softmax stay f32, where the
/// official code (fp16 compute, `prepare_model_for_kbit_training`) keeps embeddings,
/// norms and head in fp32. `Bf16` needs a backend with bf16 tensors (CUDA, the default
/// CPU backend); `F16` also runs on wgpu adapters with `SHADER_F16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LlmWeights {
    /// Full precision, as the checkpoint (converted to f32).
    #[default]
    F32,
    /// int8 weights (≈ 1.06 bytes per weight), multiplied with int16 inputs.
    Int8,
    /// int4 weights (≈ 0.53 bytes per weight), head int8, multiplied with int8 inputs.
    Int4,
    /// bfloat16 linears (2 bytes per weight): f32's range, 8 bits of mantissa.
    Bf16,
    /// IEEE half linears (2 bytes per weight): 11 bits of mantissa, range ±65504.
    F16,
}

impl LlmWeights {
    /// Every accepted name, for help texts.
    pub const NAMES: &'static [&'static str] = &["f32", "bf16", "f16", "int8", "int4"];

    /// The storage of the decoder layers' linears.
    pub fn layer_storage(self) -> LinearStorage {
        match self {
            Self::F32 => LinearStorage::Float(FloatDType::F32),
            Self::Bf16 => LinearStorage::Float(FloatDType::BF16),
            Self::F16 => LinearStorage::Float(FloatDType::F16),
            Self::Int8 => LinearStorage::Quantized(QuantBits::Int8),
            Self::Int4 => LinearStorage::Quantized(QuantBits::Int4),
        }
    }

    /// The storage of the LM head `output`.
    pub fn head_storage(self) -> LinearStorage {
        match self {
            Self::Int4 => LinearStorage::Quantized(QuantBits::Int8),
            other => other.layer_storage(),
        }
    }

    /// The name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
            Self::Int4 => "int4",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
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
#[error("unknown LLM weight precision `{0}` (expected one of: f32, bf16, f16, int8, int4)")]
pub struct UnknownPrecision(pub String);

impl FromStr for LlmWeights {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "int8" | "i8" | "q8" => Ok(Self::Int8),
            "int4" | "i4" | "q4" => Ok(Self::Int4),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Self::F16),
            _ => Err(UnknownPrecision(s.to_owned())),
        }
    }
}
