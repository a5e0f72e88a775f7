use std::ops::Range;

use burn::tensor::{DType, TensorData};

use crate::CheckpointError;
use crate::rows::{check_rows, convert_into};

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

    /// Asks for `rows` of `name` to be read ahead from disk, without waiting, so that
    /// a later [`read_rows_f32`](Self::read_rows_f32) of them does not wait for the
    /// disk. Only a hint: memory-mapped files pass it to the OS, others ignore it.
    fn prefetch_rows(&self, name: &str, rows: Range<usize>) {
        let _ = (name, rows);
    }

    /// Reads `rows` (along the first dimension) of the float tensor `name` as f32
    /// into `out`, which must hold exactly `rows.len()` rows (the product of the
    /// other dimensions each). A memory-mapped file converts straight from its map,
    /// so a large tensor can be read a block of rows at a time without a copy of the
    /// whole; this default reads the whole tensor.
    fn read_rows_f32(
        &self,
        name: &str,
        rows: Range<usize>,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        read_rows_whole(self, name, rows, out)
    }
}

/// [`TensorSource::read_rows_f32`] through [`TensorSource::read`]: the whole tensor
/// is read, then the rows converted (the default, and the route of tensors a file
/// cannot read in place, such as `.pth` views with other strides).
pub(crate) fn read_rows_whole<S: TensorSource + ?Sized>(
    source: &S,
    name: &str,
    rows: Range<usize>,
    out: &mut [f32],
) -> Result<(), CheckpointError> {
    let info = source
        .info(name)
        .ok_or_else(|| CheckpointError::MissingKey {
            key: name.to_owned(),
            sources: source.describe(),
        })?;
    let row_len = check_rows(name, &info, &rows, out.len())?;
    let data = source.read(name)?;
    let size = data.dtype.size();
    let bytes = data.as_bytes();
    let range = rows.start * row_len * size..rows.end * row_len * size;
    if data.dtype != info.dtype || bytes.len() < range.end {
        return Err(CheckpointError::Apply(format!(
            "`{name}` read as {:?} with {} bytes, its info says {:?} {:?}",
            data.dtype,
            bytes.len(),
            info.dtype,
            info.shape
        )));
    }
    convert_into(&bytes[range], info.dtype, out);
    Ok(())
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
            fn read_rows_f32(
                &self,
                name: &str,
                rows: Range<usize>,
                out: &mut [f32],
            ) -> Result<(), CheckpointError> {
                (**self).read_rows_f32(name, rows, out)
            }
            fn prefetch_rows(&self, name: &str, rows: Range<usize>) {
                (**self).prefetch_rows(name, rows)
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
    fn read_rows_f32(
        &self,
        name: &str,
        rows: Range<usize>,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        self.inner
            .read_rows_f32(&format!("{}{name}", self.prefix), rows, out)
    }
    fn prefetch_rows(&self, name: &str, rows: Range<usize>) {
        self.inner
            .prefetch_rows(&format!("{}{name}", self.prefix), rows)
    }
    fn describe(&self) -> String {
        format!("{} (keys under `{}`)", self.inner.describe(), self.prefix)
    }
}
