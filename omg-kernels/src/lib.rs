//! Compute kernels of omg-llava-rs that burn has no fast op for, dispatched by backend.
//!
//! Every function here takes and returns plain burn tensors and works on every
//! `B: Backend`:
//!
//! * on burn's **Flex** CPU backend (cargo feature `flex`), it runs a hand-written kernel
//!   on the tensor's raw `f32` storage (AVX2/FMA or AVX-512 when the CPU has them, rayon threads);
//! * on every other backend (ndarray, wgpu, cuda, …) and for other float types, it runs a
//!   fallback written in plain burn tensor ops, which is also the reference the kernels
//!   are tested against.
//!
//! The dispatch is by the backend's type at run time (`TypeId`), not by a trait bound, so
//! the models stay generic over plain `B: Backend`: adding a kernel never changes a
//! public signature (see [Relation to burn's backend
//! extensions](#relation-to-burns-backend-extensions)).
//!
//! [`cast_float`] converts float dtypes rounded to nearest-even on every backend (burn-flex
//! 0.21's own bf16 cast rounds a few values the wrong way; see its doc).
//!
//! Kernels:
//! * [`linear`]: burn's `Linear`, with a memory-bound kernel for a few input rows
//!   (token-by-token decoding reads every weight once per step) and a register-tiled
//!   f32 GEMM for many rows (AVX-512 or AVX2 with FMA; each output summed in input order
//!   with one rounding per step, the same bits on both);
//! * [`matmul`]: burn's rank-3 `matmul` (a batch of matrix products), with the
//!   many-row linears' tiled kernel (the mask decoder's mask head and mask pooling);
//! * [`quant_linear`]: a linear layer whose weight is int8 or int4 with group scales
//!   ([`QuantizedMatrix`]), multiplied in integers with the input quantized per group
//!   too (AVX-512 VNNI byte and word products where the CPU has them, AVX2 ones on
//!   CPUs without), a GEMV for decoding and a register-tiled GEMM for prefill;
//! * [`conv2d_same`]: a stride-1, zero-padded k×k convolution as k² large matrix
//!   products (the pixel decoder's 3×3 FPN convolution);
//! * [`gelu`]: exact (erf) GELU;
//! * [`silu_mul`]: SwiGLU's `silu(gate) ⊙ up` in one pass;
//! * [`rotate_half_rope`]: rotary position embedding (rotate-half form) of a strided
//!   query or key view, in one pass;
//! * [`grouped_heads`]: the query, key or value heads of a fused grouped-query
//!   projection (InternLM2's `wqkv`) in head-major order, rotated by RoPE, in one pass;
//! * [`depthwise_conv2d_nhwc`]: depthwise k×k convolution of a channels-last map
//!   (ConvNeXt's `conv_dw`);
//! * [`masked_attention`]: multi-head attention with a boolean key mask per query (the
//!   masked cross-attention of Mask2Former's decoder), without a materialised score
//!   tensor;
//! * [`causal_attention`]: a decoder LLM's causal grouped-query self-attention over its
//!   key/value cache (left padding of batched rows included), reading the cached keys
//!   and values in place, without a mask or a score tensor of the whole sequence (one
//!   new position per row, decoding, in AVX-512 register tiles where the CPU has it);
//! * [`write_positions`]: new positions written into a preallocated key/value cache in
//!   place;
//! * [`ms_deform_attn`]: the core of mmcv's multi-scale deformable attention
//!   (`multi_scale_deformable_attn_pytorch`): sampling locations, softmax of the
//!   attention weights, bilinear samples of every level, weighted and summed.
//!
//! # The kernel boundary
//!
//! Every kernel entry above (with [`linear_with`], [`half_linear`], [`cast_float`] and
//! [`round_to`]) goes through one dispatch step, the same for every backend:
//!
//! 1. **Shapes.** The shapes of all operands are checked against the operation, and a
//!    mismatch panics, as burn's own ops do, with a message that names the function,
//!    the operand, its shape and the expected one with the sizes it comes from:
//!    `masked_attention: k is [2, 5, 16], expected [B=2, Nk, C=32] (q is [2, 3, 32])`.
//!    The `*_fallback` functions run the same check (naming themselves) before their
//!    plain ops, so a fallback never broadcasts mismatched operands into a wrong answer. What each entry checks
//!    is in its `# Panics` section: e.g. the input width of the linear layers, `heads`
//!    dividing `C`, an odd square filter for the convolutions, `N = Σ h·w` for
//!    [`ms_deform_attn`], same-shaped operands for [`silu_mul`] (no broadcasting).
//! 2. **Backend and dtypes.** On Flex, when the kernel takes the operands' dtypes
//!    (f32, except a half weight or packed int values where documented), sizes (a few
//!    rows for the decoding kernels, `levels · points ≤ 64` samples per head for
//!    [`ms_deform_attn`]) and none of them is empty, they are converted to contiguous
//!    Flex tensors (a copy only for strided or offset views) and the kernel runs.
//!    Otherwise the fallback runs.
//!
//! Inside the kernels, every `unsafe` block that relies on a size (SIMD loads, `gemm` on
//! raw pointers) is guarded by an always-on `assert!` of the operand lengths, besides the
//! shape check: no input makes a safe function of this crate read out of bounds.
//!
//! # Instruction sets: `OMG_KERNELS_ISA`
//!
//! The kernels detect AVX2, FMA, F16C and AVX-512 (F, BW, VNNI) once per process and run
//! the copies compiled for them (x86-64; other CPUs run the portable copies). The environment variable
//! `OMG_KERNELS_ISA`, read once at the first kernel call, narrows that choice, to run the
//! code paths of older CPUs on a newer one (`.ci/run` runs the kernel tests under each
//! value):
//!
//! * unset, empty or `native`: what the CPU has;
//! * `portable`: the baseline copies everywhere (no AVX2, no FMA, no F16C, no AVX-512);
//! * `avx2`: AVX2, FMA and F16C where the CPU has them, but not AVX-512 (the integer
//!   GEMV and GEMM with AVX2, the f32 GEMM's AVX2 tiles, decoding's attention by
//!   `gemm`);
//! * `no-f16c`: AVX2 and FMA where the CPU has them, but the paths of CPUs without
//!   F16C (half weights widened in memory instead of in registers) and AVX-512.
//!
//! Any other value panics at the first kernel run on Flex (or call of [`kernel_isa`]),
//! with the allowed values in the message (a misspelt value would otherwise test a different path than intended).
//! [`kernel_isa`] says which choice is in effect. The matrix products that go through the
//! `gemm` crate, and the `half` crate's slice conversions, choose their own instruction
//! sets; the variable does not reach them.
//!
//! # Wrapped backends
//!
//! The kernels run on `burn::backend::Flex` itself. A backend that wraps Flex, such as
//! `Autodiff<Flex>`, has its own tensor primitive, so it takes the plain-op fallback
//! like every other backend: correct, but slower. When that happens (in a build with the
//! `flex` feature), one line on stderr says so, once per process ([`wraps_flex`] is the test). Other backends (ndarray, wgpu,
//! cuda, …) take the fallback silently: it is their expected path.
//!
//! # Relation to burn's backend extensions
//!
//! burn's own route to a custom kernel is a backend extension: a trait
//! `trait Kernels: Backend` with one method per kernel (`fn masked_attention(q, k, v,
//! heads, mask) -> FloatTensor<Self>`, …), implemented for `Flex` with these kernels and
//! by a blanket default (every other backend) with the fallbacks; the models then bound
//! their backend by `B: Kernels`. The dispatch here is the same split, a kernel for Flex
//! and a fallback for the rest, decided by comparing `B`'s `TypeId` with Flex's instead
//! of by a trait bound, so that no model, layer or caller needs a bound beyond
//! `B: Backend`, and a new kernel changes no signature.
//!
//! A later burn where `Backend` is no longer a type parameter of user code (tensors
//! carry their device, and the device picks the backend at run time) would move the
//! check from the backend type to the tensor: the dispatch would ask whether the
//! tensor's device is a Flex device and its primitive a Flex tensor, instead of
//! comparing `TypeId`s. The shape checks, the kernels (on contiguous Flex tensors) and
//! the fallbacks (in plain tensor ops) would stay as they are.

mod allocator;
mod attention;
mod cast;
mod causal_attention;
mod conv;
mod deform;
mod depthwise;
mod dispatch;
mod gelu;
mod grouped_heads;
mod linear;
mod low_rank;
mod matmul;
mod quant;
mod quant_format;
mod rope;
mod silu;
mod visible_keys;
mod write_positions;

#[cfg(feature = "flex")]
mod flex;

pub use allocator::reuse_freed_memory;
pub use attention::{masked_attention, masked_attention_fallback};
pub use cast::{cast_float, round_to};
pub use causal_attention::{causal_attention, causal_attention_fallback};
pub use conv::{conv2d_same, conv2d_same_fallback};
pub use deform::{ms_deform_attn, ms_deform_attn_fallback};
pub use depthwise::{depthwise_conv2d_nhwc, depthwise_conv2d_nhwc_fallback};
pub use dispatch::wraps_flex;
pub use gelu::{gelu, gelu_fallback};
pub use grouped_heads::{grouped_heads, grouped_heads_fallback};
pub use linear::{
    FEW_ROWS, half_linear, half_linear_fallback, linear, linear_fallback, linear_with,
};
pub use low_rank::add_scaled_product;
pub use matmul::{matmul, matmul_fallback};
pub use quant::{dequantize, quant_linear, quant_linear_fallback};
pub use quant_format::{QUANT_GROUP, QuantBits, QuantLayout, QuantizedMatrix, activation_level};
pub use rope::{rotate_half_rope, rotate_half_rope_fallback};
pub use silu::{silu_mul, silu_mul_fallback};
pub use write_positions::{write_positions, write_positions_fallback};

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

/// Runs `f` on a worker thread of the CPU kernels' thread pool (rayon's global pool,
/// which burn's Flex backend shares) and returns its result; the calling thread waits.
///
/// A parallel kernel called from outside the pool hands its work to the pool and
/// sleeps until it is done, once per call: a few microseconds each, which add up over
/// the hundreds of small products of one decoded token. Called from a worker thread,
/// the same kernel starts its work in place. Wrap a whole forward pass in this (the
/// LLM does), not each op. Called from a worker thread already, or without the `flex`
/// feature, it runs `f` on the calling thread.
pub fn on_worker_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "flex")]
    {
        rayon::scope(|_| f())
    }
    #[cfg(not(feature = "flex"))]
    {
        f()
    }
}

/// The instruction sets the Flex kernels of this process use:
/// `"avx512-vnni+avx2+fma+f16c"`, `"avx2+fma+f16c"`, `"avx2+fma"` or `"portable"` (what the CPU has, narrowed by `OMG_KERNELS_ISA`: see
/// the crate docs); `"none"` without the `flex` feature (no kernels).
///
/// # Panics
/// If `OMG_KERNELS_ISA` has a value other than `native`, `portable`, `avx2` or `no-f16c`.
pub fn kernel_isa() -> &'static str {
    #[cfg(feature = "flex")]
    {
        flex::isa::isa().name()
    }
    #[cfg(not(feature = "flex"))]
    {
        "none"
    }
}
