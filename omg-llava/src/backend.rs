//! The compute backend chosen at compile time by cargo feature.
//!
//! `flex` (burn's Flex CPU backend with this project's kernels) is the default. When
//! several are enabled the priority is `cuda`, then `wgpu`, then `flex`, then `ndarray`.
//! `wgpu-untuned` is the `wgpu` backend without kernel autotuning (`wgpu` implies it).
//! With no backend feature (`default-features = false`), [`DefaultBackend`] does not
//! exist; every model is generic over `B: Backend`, so name the backend you want
//! yourself.
//!
//! The GPU backends are burn's `CubeBackend`s named directly, **without** the kernel
//! fusion layer, even if another crate of the build turns `burn/fusion` on: burn 0.21's
//! fused matmul reads strided operands wrongly (`docs/burn-fusion-matmul.md`). The
//! `fusion` feature selects the fused `burn::backend::{Cuda, Wgpu}` instead, only to
//! check a fix in burn.

#[cfg(all(feature = "cuda", not(feature = "fusion")))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
    /// Name of the selected backend.
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "cuda", feature = "fusion"))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::Cuda<f32, i32>;
    /// Name of the selected backend.
    pub const NAME: &str = "cuda+fusion";
}

#[cfg(all(
    feature = "wgpu-untuned",
    not(feature = "cuda"),
    not(feature = "fusion")
))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend =
        burn::backend::wgpu::CubeBackend<burn::backend::wgpu::WgpuRuntime, f32, i32, u32>;
    /// Name of the selected backend.
    pub const NAME: &str = if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "wgpu-untuned"
    };
}

#[cfg(all(feature = "wgpu-untuned", not(feature = "cuda"), feature = "fusion"))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::Wgpu<f32, i32>;
    /// Name of the selected backend.
    pub const NAME: &str = if cfg!(feature = "wgpu") {
        "wgpu+fusion"
    } else {
        "wgpu-untuned+fusion"
    };
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu-untuned"))))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::Flex<f32, i32>;
    /// Name of the selected backend.
    pub const NAME: &str = "flex";
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu-untuned", feature = "flex"))
))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::NdArray<f32, i64>;
    /// Name of the selected backend.
    pub const NAME: &str = "ndarray";
}

#[cfg(any(
    feature = "cuda",
    feature = "wgpu-untuned",
    feature = "flex",
    feature = "ndarray"
))]
pub use chosen::{DefaultBackend, NAME};

/// The default device of [`DefaultBackend`].
#[cfg(any(
    feature = "cuda",
    feature = "wgpu-untuned",
    feature = "flex",
    feature = "ndarray"
))]
pub fn default_device() -> burn::tensor::Device<DefaultBackend> {
    Default::default()
}
