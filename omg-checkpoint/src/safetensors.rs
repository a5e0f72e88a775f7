//! Memory-mapped safetensors checkpoints: one file, or a sharded set described by
//! `model.safetensors.index.json` (the HF layout of `internlm2-chat-7b`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{AllocationProperty, Bytes, DType, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::rows::{copy_out, prefetch, read_mapped_rows, release, row_span};
use crate::{CheckpointError, TensorInfo, TensorSource};

/// Name of the index file of a sharded HF checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A memory map that tensor data can own a share of.
struct SharedMap(Arc<Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One `.safetensors` file, memory-mapped; tensors are copied out only when read.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Arc<Mmap>,
    /// name → (info, byte range within the mmap)
    tensors: BTreeMap<String, (TensorInfo, std::ops::Range<usize>)>,
    /// The header's `__metadata__` strings.
    metadata: BTreeMap<String, String>,
}

fn dtype_of(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::U16 => DType::U16,
        Dtype::U32 => DType::U32,
        Dtype::U64 => DType::U64,
        Dtype::BOOL => DType::Bool(burn::tensor::BoolStore::Native),
        _ => return None,
    })
}

impl SafetensorsFile {
    /// Opens and memory-maps `path`, validating its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref().to_owned();
        let file = std::fs::File::open(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the map is read-only; as with every memory-mapped checkpoint loader,
        // the file must not be truncated by another process while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        let format = |message: String| CheckpointError::Format {
            path: path.clone(),
            message,
        };
        let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
            .map_err(|e| format(format!("invalid safetensors header: {e}")))?;
        let data_start = 8 + header_len;
        let header_metadata: BTreeMap<String, String> = metadata
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut tensors = BTreeMap::new();
        for (name, info) in metadata.tensors() {
            let dtype = dtype_of(info.dtype).ok_or_else(|| CheckpointError::UnsupportedDType {
                key: name.clone(),
                dtype: format!("{:?}", info.dtype),
            })?;
            let (start, end) = info.data_offsets;
            tensors.insert(
                name,
                (
                    TensorInfo {
                        shape: info.shape.clone(),
                        dtype,
                    },
                    data_start + start..data_start + end,
                ),
            );
        }
        Ok(Self {
            path,
            mmap: Arc::new(mmap),
            tensors,
            metadata: header_metadata,
        })
    }

    /// Reads `name` without copying it: the tensor's bytes stay in the file's memory
    /// map, shared by the returned data (which keeps the map alive), so a backend that
    /// keeps host memory as it is (Flex) holds the weights as pages of the file's page
    /// cache. The data is copied instead when its bytes are not aligned for its type.
    ///
    /// The file must not be changed in place while the data lives (replacing it by a
    /// rename, as every writer here does, is safe); this is the condition of every
    /// memory-mapped read.
    pub fn read_shared(&self, name: &str) -> Result<TensorData, CheckpointError> {
        let (info, range) = self.entry(name)?;
        let address = self.mmap.as_ptr() as usize + range.start;
        if !address.is_multiple_of(info.dtype.size().max(1)) {
            return self.read(name);
        }
        let shared =
            bytes::Bytes::from_owner(SharedMap(Arc::clone(&self.mmap))).slice(range.clone());
        Ok(TensorData::from_bytes(
            Bytes::from_shared(shared, AllocationProperty::File),
            info.shape.clone(),
            info.dtype,
        ))
    }

    /// The shape, dtype and byte range of `name`, or the error naming it.
    fn entry(&self, name: &str) -> Result<&(TensorInfo, std::ops::Range<usize>), CheckpointError> {
        self.tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingKey {
                key: name.to_owned(),
                sources: self.describe(),
            })
    }

    /// The string pairs of the header's `__metadata__` (empty when it has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TensorSource for SafetensorsFile {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|(info, _)| info.clone())
    }

    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        let (info, range) = self.entry(name)?;
        let bytes = copy_out(&self.mmap[range.clone()]);
        release(&self.mmap, range.clone());
        Ok(TensorData::from_bytes_vec(
            bytes,
            info.shape.clone(),
            info.dtype,
        ))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn prefetch_rows(&self, name: &str, rows: std::ops::Range<usize>) {
        if let Some((info, range)) = self.tensors.get(name)
            && let Some(span) = row_span(info, range.start, &rows, range.end)
        {
            prefetch(&self.mmap, span);
        }
    }

    fn read_rows_f32(
        &self,
        name: &str,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        let (info, range) = self.entry(name)?;
        read_mapped_rows(&self.mmap, name, info, range.start, rows, out)
    }
}

/// A checkpoint split over several safetensors files, as listed by
/// `model.safetensors.index.json` (`{"weight_map": {name: file}}`).
pub struct ShardedSafetensors {
    index: PathBuf,
    shards: Vec<SafetensorsFile>,
    /// name → shard index
    owner: BTreeMap<String, usize>,
}

impl ShardedSafetensors {
    /// Opens the index file and every shard it names. Each shard must hold exactly
    /// the tensors the index assigns to it.
    pub fn open(index: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let index = index.as_ref().to_owned();
        let format = |message: String| CheckpointError::Format {
            path: index.clone(),
            message,
        };
        let text = std::fs::read_to_string(&index).map_err(|source| CheckpointError::Io {
            path: index.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format(format!("invalid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| format("no `weight_map` object".into()))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut files: BTreeMap<String, usize> = BTreeMap::new();
        let mut shards = Vec::new();
        let mut owner = BTreeMap::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| format(format!("weight_map[`{name}`] is not a file name")))?;
            // Shards sit next to the index (the HF layout): a name with a directory
            // part could reach any file on the machine.
            if !is_plain_file_name(file) {
                return Err(format(format!(
                    "weight_map[`{name}`] = `{file}` is not a file name in the index's directory"
                )));
            }
            let idx = match files.get(file) {
                Some(&i) => i,
                None => {
                    shards.push(SafetensorsFile::open(dir.join(file))?);
                    files.insert(file.to_owned(), shards.len() - 1);
                    shards.len() - 1
                }
            };
            if !shards[idx].tensors.contains_key(name) {
                return Err(format(format!(
                    "the index assigns `{name}` to {file}, which does not contain it"
                )));
            }
            owner.insert(name.clone(), idx);
        }
        for shard in &shards {
            if let Some(extra) = shard.tensors.keys().find(|k| !owner.contains_key(*k)) {
                return Err(format(format!(
                    "{} holds `{extra}`, which the index does not list",
                    shard.path.display()
                )));
            }
        }
        Ok(Self {
            index,
            shards,
            owner,
        })
    }
}

impl TensorSource for ShardedSafetensors {
    fn names(&self) -> Vec<String> {
        self.owner.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.owner
            .get(name)
            .and_then(|&i| self.shards[i].info(name))
    }

    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        match self.owner.get(name) {
            Some(&i) => self.shards[i].read(name),
            None => Err(CheckpointError::MissingKey {
                key: name.to_owned(),
                sources: self.describe(),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("{} ({} shards)", self.index.display(), self.shards.len())
    }

    fn prefetch_rows(&self, name: &str, rows: std::ops::Range<usize>) {
        if let Some(&i) = self.owner.get(name) {
            self.shards[i].prefetch_rows(name, rows);
        }
    }

    fn read_rows_f32(
        &self,
        name: &str,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        match self.owner.get(name) {
            Some(&i) => self.shards[i].read_rows_f32(name, rows, out),
            None => Err(CheckpointError::MissingKey {
                key: name.to_owned(),
                sources: self.describe(),
            }),
        }
    }
}

/// A file name without a directory part (no separator, not `.` or `..`, not empty).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Opens the safetensors checkpoint of a HF model directory: the sharded set if
/// `model.safetensors.index.json` exists, else `model.safetensors`.
pub fn open_hf_dir(dir: impl AsRef<Path>) -> Result<Box<dyn TensorSource>, CheckpointError> {
    let dir = dir.as_ref();
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        return Ok(Box::new(ShardedSafetensors::open(index)?));
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(Box::new(SafetensorsFile::open(single)?));
    }
    Err(CheckpointError::Format {
        path: dir.to_owned(),
        message: format!("neither {INDEX_FILE} nor model.safetensors found"),
    })
}
