//! Compute kernels of omg-llava-rs that burn has no fast op for, dispatched by backend.
//!
//! Every function here takes and returns plain burn tensors and works on every
//! `B: Backend`:
//!
//! * on burn's **Flex** CPU backend (cargo feature `flex`), it runs a hand-written kernel
//!   on the tensor's raw `f32` storage (AVX2/FMA when the CPU has them, rayon threads);
//! * on every other backend (ndarray, wgpu, cuda, …) and for other float types, it runs a
//!   fallback written in plain burn tensor ops, which is also the reference the kernels
//!   are tested against.
//!
//! The dispatch is by the backend's type at run time (`TypeId`), not by a trait bound, so
//! the models stay generic over plain `B: Backend`: adding a kernel never changes a
//! public signature. This is burn's custom-kernel route (work on the backend's tensor
//! primitive) without a backend-extension trait on every model.
//!
//! [`cast_float`] converts float dtypes rounded to nearest-even on every backend (burn-flex
//! 0.21's own bf16 cast rounds a few values the wrong way; see its doc).
//!
//! Kernels:
//! * [`linear`]: burn's `Linear`, with a memory-bound kernel for a few input rows
//!   (token-by-token decoding reads every weight once per step);
//! * [`quant_linear`]: a linear layer whose weight is int8 or int4 with group scales
//!   ([`QuantizedMatrix`]), unpacked on the fly (fused dequantize-GEMV for decoding,
//!   dequantize-by-blocks + gemm for prefill);
//! * [`conv2d_same`]: a stride-1, zero-padded k×k convolution as k² large matrix
//!   products (the pixel decoder's 3×3 FPN convolution);
//! * [`gelu`]: exact (erf) GELU;
//! * [`silu_mul`]: SwiGLU's `silu(gate) ⊙ up` in one pass;
//! * [`rotate_half_rope`]: rotary position embedding (rotate-half form) of a strided
//!   query or key view, in one pass;
//! * [`depthwise_conv2d_nhwc`]: depthwise k×k convolution of a channels-last map
//!   (ConvNeXt's `conv_dw`);
//! * [`masked_attention`]: multi-head attention with a boolean key mask per query (the
//!   masked cross-attention of Mask2Former's decoder), without a materialised score
//!   tensor;
//! * [`ms_deform_attn`]: the core of mmcv's multi-scale deformable attention
//!   (`multi_scale_deformable_attn_pytorch`): sampling locations, softmax of the
//!   attention weights, bilinear samples of every level, weighted and summed.

mod allocator;
mod attention;
mod cast;
mod conv;
mod deform;
mod depthwise;
mod gelu;
mod linear;
mod quant;
mod quant_format;
mod rope;
mod silu;

#[cfg(feature = "flex")]
mod flex;

pub use allocator::reuse_freed_memory;
pub use attention::{masked_attention, masked_attention_fallback};
pub use cast::{cast_float, round_to};
pub use conv::{conv2d_same, conv2d_same_fallback};
pub use deform::{ms_deform_attn, ms_deform_attn_fallback};
pub use depthwise::{depthwise_conv2d_nhwc, depthwise_conv2d_nhwc_fallback};
pub use gelu::{gelu, gelu_fallback};
pub use linear::{
    FEW_ROWS, half_linear, half_linear_fallback, linear, linear_fallback, linear_with,
};
pub use quant::{dequantize, quant_linear, quant_linear_fallback};
pub use quant_format::{QUANT_GROUP, QuantBits, QuantLayout, QuantizedMatrix};
pub use rope::{rotate_half_rope, rotate_half_rope_fallback};
pub use silu::{silu_mul, silu_mul_fallback};

/// Whether the kernels of this build run on the backend `B` (rather than the fallback).
pub fn has_fast_kernels<B: burn::tensor::backend::Backend>() -> bool {
    #[cfg(feature = "flex")]
    {
        flex::is_flex::<B>()
    }
    #[cfg(not(feature = "flex"))]
    {
        false
    }
}
