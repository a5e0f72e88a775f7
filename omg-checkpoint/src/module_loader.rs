//! Loading any burn module from official names: the parameters are enumerated from
//! the module itself (with their lazy shapes), each is mapped to its official key by
//! a naming function, checked against the checkpoint, then applied.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Element, Tensor, TensorData, backend::Backend};

use crate::apply::{Producer, WeightApplier};
use crate::{CheckpointError, TensorSource};

/// How an official tensor relates to the burn parameter it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Same shape and element order (convolutions, norms, embeddings, biases).
    Same,
    /// A `torch.nn.Linear` weight: stored `[out, in]`, burn's `Linear` holds `[in, out]`.
    Transposed,
}

/// The float parameters of a module: dotted burn path → shape.
pub fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, Vec<usize>> {
    struct Collect {
        path: Vec<String>,
        out: BTreeMap<String, Vec<usize>>,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.out
                .insert(self.path.join("."), param.lazy_shape().to_vec());
        }
    }
    let mut c = Collect {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    module.visit(&mut c);
    c.out
}

/// Converts a stored float tensor to the backend's float type.
pub fn to_backend_float<B: Backend>(
    key: &str,
    data: TensorData,
) -> Result<TensorData, CheckpointError> {
    match data.dtype {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => {
            Ok(data.convert_dtype(<B::FloatElem as Element>::dtype()))
        }
        other => Err(CheckpointError::UnsupportedDType {
            key: key.to_owned(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// Transposes a 2-D tensor `[rows, cols]` on the host (any element size).
pub fn transpose_2d(data: TensorData) -> TensorData {
    let [rows, cols] = [data.shape[0], data.shape[1]];
    let dtype = data.dtype;
    let size = dtype.size();
    let src = data.as_bytes();
    // a fresh buffer in huge pages where it is large (see `placement`)
    let mut buffer = crate::placement::WeightBuffer::zeroed(src.len());
    let dst = buffer.as_mut_slice();
    const BLOCK: usize = 32;
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..(r0 + BLOCK).min(rows) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    let s = (r * cols + c) * size;
                    let d = (c * rows + r) * size;
                    dst[d..d + size].copy_from_slice(&src[s..s + size]);
                }
            }
        }
    }
    TensorData::from_bytes(buffer.into_bytes(), [cols, rows], dtype)
}

/// Loads every float parameter of `module` from `source`. `official` maps a burn
/// parameter path to the official key and its [`Layout`]. Shapes and dtypes are
/// checked for every parameter before anything is read; returns the module and the
/// official keys it consumed (so the caller can reject unknown keys).
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    source: &dyn TensorSource,
    official: impl Fn(&str) -> (String, Layout),
) -> Result<(M, Vec<String>), CheckpointError> {
    let mut producers: BTreeMap<String, Producer<'_, B>> = BTreeMap::new();
    let mut consumed = Vec::new();
    for (path, shape) in parameter_shapes::<B, M>(&module) {
        let (key, layout) = official(&path);
        let info = source
            .info(&key)
            .ok_or_else(|| CheckpointError::MissingKey {
                key: key.clone(),
                sources: source.describe(),
            })?;
        let expected = match layout {
            Layout::Same => shape.clone(),
            Layout::Transposed => shape.iter().rev().copied().collect(),
        };
        if info.shape != expected {
            return Err(CheckpointError::ShapeMismatch {
                key,
                expected,
                found: info.shape,
            });
        }
        if !matches!(
            info.dtype,
            DType::F32 | DType::F16 | DType::BF16 | DType::F64
        ) {
            return Err(CheckpointError::UnsupportedDType {
                key,
                dtype: format!("{:?}", info.dtype),
            });
        }
        consumed.push(key.clone());
        let numel: usize = shape.iter().product();
        producers.insert(
            path,
            Box::new(move |device: &B::Device| {
                let data = to_backend_float::<B>(&key, source.read(&key)?)?;
                Ok(match layout {
                    Layout::Transposed => Tensor::<B, 2>::from_data(transpose_2d(data), device),
                    Layout::Same => {
                        let flat = TensorData {
                            shape: [numel].into(),
                            ..data
                        };
                        Tensor::<B, 1>::from_data(flat, device).reshape([1, numel])
                    }
                })
            }),
        );
    }
    let mut applier = WeightApplier::new(producers);
    let module = module.map(&mut applier);
    applier.finish()?;
    Ok((module, consumed))
}
