//! The compute backend chosen at compile time by cargo feature.
//!
//! Priority when several are enabled: `cuda`, then `wgpu`, then `flex`, then
//! `ndarray` (the default).

#[cfg(feature = "cuda")]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::Cuda<f32, i32>;
    /// Name of the selected backend.
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::Wgpu<f32, i32>;
    /// Name of the selected backend.
    pub const NAME: &str = "wgpu";
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::Flex<f32, i32>;
    /// Name of the selected backend.
    pub const NAME: &str = "flex";
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod chosen {
    /// The backend selected by the enabled cargo features.
    pub type DefaultBackend = burn::backend::NdArray<f32, i64>;
    /// Name of the selected backend.
    pub const NAME: &str = "ndarray";
}

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("enable one backend feature of omg-llava: ndarray (default), flex, wgpu or cuda");

pub use chosen::{DefaultBackend, NAME};

/// The default device of [`DefaultBackend`].
pub fn default_device() -> burn::tensor::Device<DefaultBackend> {
    Default::default()
}
