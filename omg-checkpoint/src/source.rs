use burn::tensor::{DType, TensorData};

use crate::CheckpointError;

/// Shape and dtype of one stored tensor, known without reading its data.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Element type as stored in the file.
    pub dtype: DType,
}

/// A read-only collection of named tensors (one checkpoint file, a sharded set,
/// or a view on either). Data are materialised only by [`TensorSource::read`].
pub trait TensorSource {
    /// All tensor names, sorted.
    fn names(&self) -> Vec<String>;
    /// Shape and dtype of `name`, if present.
    fn info(&self, name: &str) -> Option<TensorInfo>;
    /// Reads `name` as a contiguous row-major tensor in the file's dtype.
    fn read(&self, name: &str) -> Result<TensorData, CheckpointError>;
    /// A short description (usually the path) used in error messages.
    fn describe(&self) -> String;

    /// Whether `name` is present.
    fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }
}

/// A reference or a box to a source is a source.
macro_rules! forward_source {
    ($ty:ty) => {
        impl<T: TensorSource + ?Sized> TensorSource for $ty {
            fn names(&self) -> Vec<String> {
                (**self).names()
            }
            fn info(&self, name: &str) -> Option<TensorInfo> {
                (**self).info(name)
            }
            fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
                (**self).read(name)
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
        }
    };
}

forward_source!(&T);
forward_source!(Box<T>);

/// The tensors of `inner` whose names start with `prefix`, with the prefix removed.
///
/// Used to read a checkpoint stored under an extra prefix (for example the parity
/// fixtures keep the released `.pth` layout under `pth.`).
pub struct PrefixView<S> {
    inner: S,
    prefix: String,
}

impl<S: TensorSource> PrefixView<S> {
    /// A view on the tensors of `inner` under `prefix` (e.g. `"hf."`).
    pub fn new(inner: S, prefix: impl Into<String>) -> Self {
        Self {
            inner,
            prefix: prefix.into(),
        }
    }
}

impl<S: TensorSource> TensorSource for PrefixView<S> {
    fn names(&self) -> Vec<String> {
        self.inner
            .names()
            .into_iter()
            .filter_map(|n| n.strip_prefix(&self.prefix).map(str::to_owned))
            .collect()
    }
    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.inner.info(&format!("{}{name}", self.prefix))
    }
    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        self.inner.read(&format!("{}{name}", self.prefix))
    }
    fn describe(&self) -> String {
        format!("{} (keys under `{}`)", self.inner.describe(), self.prefix)
    }
}
