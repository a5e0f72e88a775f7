//! The opt-in check that every floating-point weight read is finite.

use burn::tensor::{DType, TensorData};

use crate::{CheckpointError, TensorInfo, TensorSource};

/// A [`TensorSource`] whose [`read`](TensorSource::read) fails with
/// [`CheckpointError::NonFinite`] when a floating-point tensor holds a NaN or an
/// infinity. Integer and boolean tensors pass unchecked.
///
/// Off by default in the loaders (it reads every value once more: about a second per
/// 4 GB here); a checkpoint damaged in a way its format cannot detect (a bad
/// conversion, an fp16 overflow) then fails at load, naming the tensor, instead of
/// answering with NaN logits.
pub struct FiniteCheck<S> {
    inner: S,
}

impl<S: TensorSource> FiniteCheck<S> {
    /// Checks what `inner` reads.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

/// The index and value of the first non-finite element of a float tensor, if any.
fn first_non_finite(data: &TensorData) -> Option<(usize, f64)> {
    let find =
        |values: &mut dyn Iterator<Item = f64>| values.enumerate().find(|(_, v)| !v.is_finite());
    match data.dtype {
        DType::F32 => data
            .as_slice::<f32>()
            .ok()
            .and_then(|s| find(&mut s.iter().map(|&v| f64::from(v)))),
        DType::F64 => data
            .as_slice::<f64>()
            .ok()
            .and_then(|s| find(&mut s.iter().copied())),
        DType::F16 => data
            .as_slice::<burn::tensor::f16>()
            .ok()
            .and_then(|s| find(&mut s.iter().map(|v| v.to_f64()))),
        DType::BF16 => data
            .as_slice::<burn::tensor::bf16>()
            .ok()
            .and_then(|s| find(&mut s.iter().map(|v| v.to_f64()))),
        _ => None,
    }
}

impl<S: TensorSource> TensorSource for FiniteCheck<S> {
    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.inner.info(name)
    }

    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        let data = self.inner.read(name)?;
        if let Some((index, value)) = first_non_finite(&data) {
            return Err(CheckpointError::NonFinite {
                key: name.to_owned(),
                source_name: self.inner.describe(),
                index,
                value,
            });
        }
        Ok(data)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn prefetch_rows(&self, name: &str, rows: std::ops::Range<usize>) {
        self.inner.prefetch_rows(name, rows)
    }

    fn read_rows_f32(
        &self,
        name: &str,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        let first = rows.start;
        self.inner.read_rows_f32(name, rows, out)?;
        if let Some(at) = out.iter().position(|v| !v.is_finite()) {
            let row_len = self
                .inner
                .info(name)
                .map_or(1, |i| i.shape.iter().skip(1).product::<usize>());
            return Err(CheckpointError::NonFinite {
                key: name.to_owned(),
                source_name: self.inner.describe(),
                index: first * row_len + at,
                value: f64::from(out[at]),
            });
        }
        Ok(())
    }
}
