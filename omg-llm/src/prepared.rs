//! The prepared LLM: the weights as a load holds them (LoRA merged, converted to the
//! chosen precision) in one safetensors file, which later loads map as they are,
//! without the checkpoint's conversion and LoRA merge.
//!
//! Tensors are named by their burn parameter paths (`layers.3.attention.wqkv.weight`
//! for a float linear, held `[in, out]`; `layers.3.attention.wqkv.quantized.values`
//! and `.scales` for a quantized one, the packed bytes as
//! [`omg_kernels::QuantizedMatrix`] lays them out). The header's metadata holds
//! [`PREPARED_FORMAT`], the precision, the architecture (with the resized vocabulary)
//! and a description of the files the weights were made from, which a load compares
//! with the caller's, so that a file made from other checkpoints is refused, never used.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Int, Tensor, TensorCreationOptions, TensorData, backend::Backend};
use omg_checkpoint::apply::{Producer, QuantProducer, WeightApplier};
use omg_checkpoint::safetensors::SafetensorsFile;
use omg_checkpoint::{CheckpointError, TensorSource};
use omg_kernels::QuantLayout;
use safetensors::{Dtype, View};

use crate::loader::slots;
use crate::{InternLM2, InternLM2Config, LinearStorage, LlmError, LlmWeights};

/// The `format` metadata of a prepared LLM file (bumped when the layout changes).
pub const PREPARED_FORMAT: &str = "omg-llava-prepared-llm/2";

/// One parameter to write, read from the model only when the writer reaches it.
enum Lazy<B: Backend> {
    Float(Tensor<B, 1>, Vec<usize>),
    Int(Tensor<B, 1, Int>, Vec<usize>),
}

impl<B: Backend> View for &Lazy<B> {
    fn dtype(&self) -> Dtype {
        match self {
            Lazy::Float(t, _) => match t.dtype() {
                DType::BF16 => Dtype::BF16,
                DType::F16 => Dtype::F16,
                _ => Dtype::F32,
            },
            // packed values, one byte each whatever the backend's int type
            Lazy::Int(..) => Dtype::U8,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Lazy::Float(_, s) | Lazy::Int(_, s) => s,
        }
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self {
            Lazy::Float(t, _) => {
                let data = t.clone().into_data();
                let data = match data.dtype {
                    DType::BF16 | DType::F16 | DType::F32 => data,
                    _ => data.convert_dtype(DType::F32),
                };
                Cow::Owned(owned_bytes(data))
            }
            Lazy::Int(t, _) => {
                let data = t.clone().into_data();
                match data.dtype {
                    DType::I8 | DType::U8 => Cow::Owned(owned_bytes(data)),
                    // a packed byte per element: i8 values wrap to their bit pattern
                    _ => Cow::Owned(data.iter::<i64>().map(|v| v as u8).collect()),
                }
            }
        }
    }

    fn data_len(&self) -> usize {
        let n: usize = self.shape().iter().product();
        match self {
            Lazy::Float(t, _) => n * t.dtype().size().min(4),
            Lazy::Int(..) => n,
        }
    }
}

/// The bytes of `data` as a vector, taken over without a copy when they are a plain
/// heap buffer.
fn owned_bytes(data: TensorData) -> Vec<u8> {
    data.bytes
        .try_into_vec::<u8>()
        .unwrap_or_else(|bytes| bytes.to_vec())
}

/// Every parameter of a module with its dotted path.
struct Collect<B: Backend> {
    path: Vec<String>,
    out: BTreeMap<String, Lazy<B>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        self.out
            .insert(self.path.join("."), Lazy::Float(t.flatten(0, D - 1), shape));
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        self.out
            .insert(self.path.join("."), Lazy::Int(t.flatten(0, D - 1), shape));
    }
}

/// Writes `model` as a prepared LLM file at `path`, recording `sources` (a description
/// of the files it was loaded from, compared again by [`load_prepared`]). The file is
/// written under a temporary name and renamed, so a reader never sees half of it; one
/// parameter at a time is copied out of the model.
pub fn save_prepared<B: Backend>(
    model: &InternLM2<B>,
    path: &Path,
    sources: &str,
) -> Result<(), LlmError> {
    let mut collect = Collect {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    model.visit(&mut collect);
    let config = serde_json::to_string(model.config())
        .map_err(|e| LlmError::Config(format!("the configuration does not serialize: {e}")))?;
    let metadata = HashMap::from([
        ("format".to_owned(), PREPARED_FORMAT.to_owned()),
        ("llm_weights".to_owned(), model.weights().name().to_owned()),
        ("config".to_owned(), config),
        ("sources".to_owned(), sources.to_owned()),
    ]);
    let io = |source: std::io::Error| LlmError::Io {
        path: path.to_owned(),
        source,
    };
    let name = path.file_name().map_or_else(
        || "prepared".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let temporary = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = safetensors::serialize_to_file(
        collect.out.iter().map(|(k, v)| (k.as_str(), v)),
        Some(metadata),
        &temporary,
    );
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(io(std::io::Error::other(e.to_string())));
    }
    std::fs::rename(&temporary, path).map_err(io)
}

/// What a prepared file says about itself.
fn check_header(
    file: &SafetensorsFile,
    path: &Path,
    weights: LlmWeights,
    sources: &str,
) -> Result<InternLM2Config, LlmError> {
    let refuse = |message: String| LlmError::Prepared {
        path: path.to_owned(),
        message,
    };
    let meta = file.metadata();
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| refuse(format!("no `{key}` in its metadata")))
    };
    let format = field("format")?;
    if format != PREPARED_FORMAT {
        return Err(refuse(format!(
            "format `{format}`, this program reads `{PREPARED_FORMAT}`; prepare it again"
        )));
    }
    let held = field("llm_weights")?;
    if held != weights.name() {
        return Err(refuse(format!(
            "holds {held} weights, {} were asked for",
            weights.name()
        )));
    }
    if field("sources")? != sources {
        return Err(refuse(format!(
            "was made from other files than these (made from: {}; now: {sources}); \
             prepare it again or delete it",
            field("sources")?
        )));
    }
    let config: InternLM2Config = serde_json::from_str(field("config")?)
        .map_err(|e| refuse(format!("its `config` is not a configuration: {e}")))?;
    config.validate()?;
    Ok(config)
}

/// Loads a prepared LLM file written by [`save_prepared`], refusing it (with
/// [`LlmError::Prepared`]) unless it holds `weights` and was made from `sources`.
/// Every tensor must be present with its shape and dtype, and nothing else may be in
/// the file. The weights are taken as they are, with no conversion and no merge. They
/// are also not copied: on Flex the model reads them in place, from the file's memory
/// map (pages of the page cache, read from the disk when first touched, and re-read
/// when the OS evicts them). Other backends copy them to their device. Replace a
/// prepared file by writing a new one and renaming it, as [`save_prepared`] does.
/// Changing it in place under a running model is not allowed.
pub fn load_prepared<B: Backend>(
    path: &Path,
    weights: LlmWeights,
    sources: &str,
    device: &B::Device,
) -> Result<InternLM2<B>, LlmError> {
    let file = SafetensorsFile::open(path)?;
    let config = check_header(&file, path, weights, sources)?;
    let file = &file;
    let mut expected = BTreeMap::new();
    // a second dtype a tensor may have
    let mut also = BTreeMap::new();
    let mut producers: BTreeMap<String, Producer<'_, B>> = BTreeMap::new();
    let mut quantized: BTreeMap<String, QuantProducer<'_, B>> = BTreeMap::new();
    for slot in slots(&config, weights) {
        let [rows, cols] = match slot.shape.as_slice() {
            [n] => [1, *n],
            [r, c] => [*r, *c],
            other => {
                return Err(LlmError::Config(format!(
                    "`{}` has shape {other:?}; LLM parameters are 1-D or 2-D",
                    slot.path
                )));
            }
        };
        match slot.storage {
            LinearStorage::Quantized(bits) if slot.linear => {
                let prefix = slot.quantized_prefix();
                let layout = QuantLayout {
                    bits,
                    out_features: rows,
                    in_features: cols,
                };
                let values = format!("{prefix}.values");
                let scales = format!("{prefix}.scales");
                expected.insert(values.clone(), (vec![rows, layout.row_bytes()], DType::U8));
                // as the backend that wrote the file held them: f16 (int4 on Flex) or f32
                expected.insert(scales.clone(), (vec![rows, layout.groups()], DType::F32));
                if layout.scale_dtype() != DType::F32 {
                    also.insert(scales.clone(), layout.scale_dtype());
                }
                quantized.insert(
                    prefix,
                    Box::new(move |device: &B::Device| {
                        // shared with the file's map: Flex reads the weights in place
                        let values = file.read_shared(&values)?.bytes;
                        let scales = file.read_shared(&scales)?;
                        Ok(layout.tensors::<B>(values, scales, device))
                    }),
                );
            }
            storage => {
                let dtype = match storage {
                    LinearStorage::Float(d) if slot.linear => DType::from(d),
                    _ => DType::F32,
                };
                // linears are held [in, out], everything else as it is (1-D as [1, n])
                let shape = if slot.linear {
                    vec![cols, rows]
                } else {
                    slot.shape.clone()
                };
                let key = slot.path.clone();
                expected.insert(key.clone(), (shape, dtype));
                producers.insert(
                    slot.path,
                    Box::new(move |device: &B::Device| {
                        let data = file.read_shared(&key)?;
                        let data = if data.shape.len() == 1 {
                            let n = data.shape[0];
                            TensorData::from_bytes(data.bytes, vec![1, n], dtype)
                        } else {
                            data
                        };
                        let options = TensorCreationOptions::new(device.clone()).with_dtype(dtype);
                        Ok(Tensor::<B, 2>::from_data(data, options))
                    }),
                );
            }
        }
    }
    // the file holds exactly these tensors, of these shapes and dtypes
    let names = file.names();
    if let Some(extra) = names.iter().find(|n| !expected.contains_key(*n)) {
        return Err(CheckpointError::UnexpectedKey {
            key: extra.clone(),
            source_name: file.describe(),
        }
        .into());
    }
    for (key, (shape, dtype)) in &expected {
        let info = file.info(key).ok_or_else(|| CheckpointError::MissingKey {
            key: key.clone(),
            sources: file.describe(),
        })?;
        if &info.shape != shape {
            return Err(CheckpointError::ShapeMismatch {
                key: key.clone(),
                expected: shape.clone(),
                found: info.shape,
            }
            .into());
        }
        if info.dtype != *dtype && also.get(key) != Some(&info.dtype) {
            return Err(CheckpointError::UnsupportedDType {
                key: key.clone(),
                dtype: format!("{:?} ({dtype:?} expected)", info.dtype),
            }
            .into());
        }
    }
    let mut applier = WeightApplier::new(producers).with_quantized(quantized);
    let model = InternLM2::<B>::init_with(&config, weights, device)?.map(&mut applier);
    applier.finish()?;
    Ok(model)
}
