//! PyTorch `.pth` / `.pt` reader for the zip format written by `torch.save`
//! (PyTorch ≥ 1.6), without executing any pickle code.
//!
//! A checkpoint is a zip archive (entries stored uncompressed) holding
//!
//! - `<archive>/data.pkl`: the pickled object, with each tensor storage replaced
//!   by a persistent id `('storage', torch.FloatStorage, '<key>', 'cpu', numel)`;
//! - `<archive>/data/<key>`: the raw little-endian bytes of each storage;
//! - `<archive>/version` and, since PyTorch 1.13, `<archive>/byteorder`.
//!
//! `data.pkl` is interpreted by a small restricted pickle machine (see the
//! private `pickle` module) that understands the tensor rebuild functions and
//! turns every other class or function into an inert opaque value, so
//! checkpoints carrying foreign objects (mmengine `meta`, numpy arrays,
//! `argparse.Namespace`, ...) open fine. Tensor data are memory-mapped and
//! copied into a contiguous row-major buffer only by [`TensorSource::read`],
//! honouring storage offsets, strides, views and shared storages.

mod pickle;

pub use pickle::SINGLE_TENSOR_NAME;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::{DType, TensorData};
use memmap2::Mmap;

use crate::rows::{prefetch, read_mapped_rows, release, row_span};
use crate::source::read_rows_whole;
use crate::{CheckpointError, TensorInfo, TensorSource};
use pickle::{Found, TensorRef};

/// A PyTorch checkpoint opened for reading; tensors are read lazily from a memory map.
///
/// A file holding one bare tensor lists it as [`SINGLE_TENSOR_NAME`]. Otherwise the
/// tensors listed are those of the top-level dict, or of its `state_dict`
/// entry when that is a dict (mmengine checkpoints); nested dicts are flattened
/// with `.`-joined names and integer keys are written in decimal. Tensors whose
/// dtype or kind burn cannot represent (complex, float8, quantized, sparse, ...)
/// are left out of [`TensorSource::names`]; reading one by name returns
/// [`CheckpointError::UnsupportedDType`] (or [`CheckpointError::Format`] for
/// unsupported tensor kinds).
pub struct PthFile {
    path: PathBuf,
    mmap: Mmap,
    tensors: BTreeMap<String, Entry>,
    /// Tensors present in the file that cannot be read, with the reason.
    skipped: BTreeMap<String, Skipped>,
    /// Storage records (by start offset) whose CRC-32 has been checked.
    verified: Mutex<HashSet<usize>>,
}

/// Where one tensor's elements live in the memory map.
#[derive(Debug)]
struct Entry {
    info: TensorInfo,
    /// Byte range of the storage record in the file.
    storage: std::ops::Range<usize>,
    /// The record's zip name and the CRC-32 its directory entry records.
    record: (String, u32),
    /// Offset of the first element in the storage, in elements.
    offset: usize,
    /// Strides in elements.
    stride: Vec<usize>,
}

/// Why a tensor present in the file is not offered.
#[derive(Debug)]
enum Skipped {
    /// Its dtype (torch name) has no burn counterpart.
    DType(String),
    /// It is a tensor kind this reader does not support.
    Kind(String),
}

/// One zip entry located in the file.
#[derive(Debug, Clone)]
struct ZipEntry {
    range: std::ops::Range<usize>,
    stored: bool,
    /// CRC-32 of the data, from the central directory.
    crc32: u32,
}

impl PthFile {
    /// Opens `path`: maps it, locates the zip entries, interprets `data.pkl` and
    /// checks that every tensor it lists fits in an existing storage record.
    ///
    /// Fails with [`CheckpointError::Io`] if the file cannot be opened or mapped,
    /// and [`CheckpointError::Format`] if it is not a zip-format `torch.save`
    /// checkpoint, is big-endian, has compressed entries, or describes tensors
    /// inconsistently (missing storage record, view out of bounds, malformed
    /// pickle).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len == 0 {
            return Err(format_err(&path, "the file is empty"));
        }
        // SAFETY: the map is only read. As with every memory-mapped reader, the
        // file must not be truncated or modified while the `PthFile` exists.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err)?;

        let entries = zip_entries(&path, &mmap)?;
        let prefix = archive_prefix(&path, &entries)?;
        let record = |name: &str| -> Result<Option<&[u8]>, CheckpointError> {
            let full = format!("{prefix}{name}");
            match entries.get(&full) {
                None => Ok(None),
                Some(e) if !e.stored => Err(format_err(
                    &path,
                    format!(
                        "zip entry `{full}` is compressed; torch.save stores entries uncompressed"
                    ),
                )),
                Some(e) => {
                    let data = &mmap[e.range.clone()];
                    check_crc(&path, &full, data, e.crc32)?;
                    Ok(Some(data))
                }
            }
        };

        if let Some(order) = record("byteorder")? {
            match order.trim_ascii() {
                b"little" => {}
                b"big" => {
                    return Err(format_err(
                        &path,
                        "the checkpoint was written on a big-endian machine; only little-endian checkpoints are supported",
                    ));
                }
                other => {
                    return Err(format_err(
                        &path,
                        format!(
                            "unknown byte order `{}` in `{prefix}byteorder`",
                            String::from_utf8_lossy(other)
                        ),
                    ));
                }
            }
        }

        let pkl = record("data.pkl")?
            .ok_or_else(|| format_err(&path, format!("no `{prefix}data.pkl` entry")))?;
        let pickle = pickle::parse(pkl).map_err(|m| format_err(&path, m))?;
        let found = pickle::collect_tensors(&pickle).map_err(|m| format_err(&path, m))?;

        let mut tensors = BTreeMap::new();
        let mut skipped = BTreeMap::new();
        for (name, f) in found {
            tensors.remove(&name);
            skipped.remove(&name);
            match f {
                Found::Tensor(t) => match &t.dtype {
                    Ok(dtype) => {
                        let e = make_entry(&path, &prefix, &entries, &name, &t, *dtype)?;
                        tensors.insert(name, e);
                    }
                    Err(torch_dtype) => {
                        skipped.insert(name, Skipped::DType(torch_dtype.clone()));
                    }
                },
                Found::Unsupported(what) => {
                    skipped.insert(name, Skipped::Kind(what.to_string()));
                }
                Found::Malformed(why) => {
                    return Err(format_err(&path, format!("tensor `{name}`: {why}")));
                }
            }
        }
        Ok(Self {
            path,
            mmap,
            tensors,
            skipped,
            verified: Mutex::new(HashSet::new()),
        })
    }
}

impl TensorSource for PthFile {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|e| e.info.clone())
    }

    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        let Some(e) = self.tensors.get(name) else {
            return Err(match self.skipped.get(name) {
                Some(Skipped::DType(dtype)) => CheckpointError::UnsupportedDType {
                    key: name.to_string(),
                    dtype: dtype.clone(),
                },
                Some(Skipped::Kind(what)) => format_err(
                    &self.path,
                    format!("tensor `{name}`: {what} are not supported"),
                ),
                None => CheckpointError::MissingKey {
                    key: name.to_string(),
                    sources: self.describe(),
                },
            });
        };
        let storage = &self.mmap[e.storage.clone()];
        self.verify(e, storage)?;
        let copied = strided_copy(storage, e);
        release(&self.mmap, e.storage.clone());
        let mut bytes =
            copied.map_err(|m| format_err(&self.path, format!("tensor `{name}`: {m}")))?;
        if e.info.dtype.is_bool() {
            // torch writes 0/1, but never hand burn a byte that is not a valid bool.
            bytes.iter_mut().for_each(|b| *b = u8::from(*b != 0));
        }
        Ok(TensorData::from_bytes_vec(
            bytes,
            e.info.shape.clone(),
            e.info.dtype,
        ))
    }

    fn describe(&self) -> String {
        if self.skipped.is_empty() {
            self.path.display().to_string()
        } else {
            format!(
                "{} ({} tensors of unsupported dtype or kind not listed)",
                self.path.display(),
                self.skipped.len()
            )
        }
    }

    fn prefetch_rows(&self, name: &str, rows: std::ops::Range<usize>) {
        if let Some(e) = self.tensors.get(name).filter(|e| is_row_major(e)) {
            let start = e.storage.start + e.offset * e.info.dtype.size();
            if let Some(span) = row_span(&e.info, start, &rows, e.storage.end) {
                prefetch(&self.mmap, span);
            }
        }
    }

    fn read_rows_f32(
        &self,
        name: &str,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        let Some(e) = self.tensors.get(name) else {
            // missing, or of an unsupported dtype or kind: `read` names the problem
            return self.read(name).map(|_| ());
        };
        if !is_row_major(e) {
            return read_rows_whole(self, name, rows, out);
        }
        self.verify(e, &self.mmap[e.storage.clone()])?;
        // `make_entry` checked that the view lies inside its storage record.
        let start = e.storage.start + e.offset * e.info.dtype.size();
        read_mapped_rows(&self.mmap, name, &e.info, start, rows, out)
    }
}

/// Whether the view `e` is row-major and contiguous (its rows lie one after another).
fn is_row_major(e: &Entry) -> bool {
    let mut expected = 1;
    for (&dim, &stride) in e.info.shape.iter().zip(&e.stride).rev() {
        if dim != 1 && stride != expected {
            return false;
        }
        expected *= dim;
    }
    true
}

impl PthFile {
    /// Checks the CRC-32 of `e`'s storage record once (views share records): bit rot in
    /// a large download is an error naming the record, not silently wrong weights.
    fn verify(&self, e: &Entry, storage: &[u8]) -> Result<(), CheckpointError> {
        let start = e.storage.start;
        let done = |set: &HashSet<usize>| set.contains(&start);
        if self.verified.lock().map(|s| done(&s)).unwrap_or(false) {
            return Ok(());
        }
        check_crc(&self.path, &e.record.0, storage, e.record.1)?;
        if let Ok(mut set) = self.verified.lock() {
            set.insert(start);
        }
        Ok(())
    }
}

/// `data`'s CRC-32 against the one the zip directory records for `record`.
fn check_crc(path: &Path, record: &str, data: &[u8], expected: u32) -> Result<(), CheckpointError> {
    let actual = crc32fast::hash(data);
    if actual == expected {
        Ok(())
    } else {
        Err(format_err(
            path,
            format!(
                "zip record `{record}` is corrupt: its CRC-32 is {actual:08x}, the archive \
                 records {expected:08x} (a damaged or incomplete download?)"
            ),
        ))
    }
}

fn format_err(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Locates every zip entry's data in the map (the `zip` crate only parses the
/// directories; data are never decompressed).
fn zip_entries(path: &Path, mmap: &[u8]) -> Result<HashMap<String, ZipEntry>, CheckpointError> {
    let not_zip = |e: zip::result::ZipError| {
        let hint = if mmap.first() == Some(&0x80) {
            " (this looks like the legacy pre-1.6 torch.save format, which is not supported; re-save it with a recent PyTorch)"
        } else {
            ""
        };
        format_err(path, format!("not a readable zip archive: {e}{hint}"))
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(mmap)).map_err(not_zip)?;
    let mut out = HashMap::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(not_zip)?;
        let name = file.name().to_string();
        let start = usize::try_from(file.data_start()).ok();
        let size = usize::try_from(file.compressed_size()).ok();
        let range = start
            .zip(size)
            .and_then(|(s, n)| Some(s..s.checked_add(n)?))
            .filter(|r| r.end <= mmap.len())
            .ok_or_else(|| {
                format_err(
                    path,
                    format!("zip entry `{name}` extends past the end of the file (truncated?)"),
                )
            })?;
        let stored = file.compression() == zip::CompressionMethod::Stored
            && file.compressed_size() == file.size()
            && !file.encrypted();
        out.insert(
            name,
            ZipEntry {
                range,
                stored,
                crc32: file.crc32(),
            },
        );
    }
    Ok(out)
}

/// The `<archive>/` prefix of the `data.pkl` entry.
fn archive_prefix(
    path: &Path,
    entries: &HashMap<String, ZipEntry>,
) -> Result<String, CheckpointError> {
    let mut found: Vec<&str> = entries
        .keys()
        .filter_map(|n| n.strip_suffix("data.pkl"))
        .filter(|p| p.is_empty() || (p.ends_with('/') && p.matches('/').count() == 1))
        .collect();
    found.sort_unstable();
    match found.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(format_err(
            path,
            "the zip archive has no `<archive>/data.pkl` entry: not a torch.save checkpoint",
        )),
        many => Err(format_err(
            path,
            format!("the zip archive has several data.pkl entries: {many:?}"),
        )),
    }
}

/// Checks a tensor view against its storage record and records where it lives.
fn make_entry(
    path: &Path,
    prefix: &str,
    entries: &HashMap<String, ZipEntry>,
    name: &str,
    t: &TensorRef,
    dtype: DType,
) -> Result<Entry, CheckpointError> {
    let err = |m: String| format_err(path, format!("tensor `{name}`: {m}"));
    let record = format!("{prefix}data/{}", t.storage_key);
    let z = entries.get(&record).ok_or_else(|| {
        err(format!(
            "its storage `{}` has no `{record}` entry in the archive",
            t.storage_key
        ))
    })?;
    if !z.stored {
        return Err(err(format!(
            "zip entry `{record}` is compressed; torch.save stores entries uncompressed"
        )));
    }
    let esize = dtype.size();
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(esize).map(|_| n))
        .ok_or_else(|| err(format!("shape {:?} is too large", t.shape)))?;
    if numel > 0 {
        // Index of the last element reached by the view, plus one.
        let end = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                a.checked_add((d - 1).checked_mul(s)?)
            })
            .and_then(|last| last.checked_add(1)?.checked_mul(esize));
        let available = z.range.len();
        match end {
            Some(end) if end <= available => {}
            _ => {
                return Err(err(format!(
                    "the view (offset {}, shape {:?}, stride {:?}) of {esize}-byte elements \
                     does not fit in storage `{}` of {available} bytes",
                    t.offset, t.shape, t.stride, t.storage_key
                )));
            }
        }
    }
    Ok(Entry {
        info: TensorInfo {
            shape: t.shape.clone(),
            dtype,
        },
        storage: z.range.clone(),
        record: (record, z.crc32),
        offset: t.offset,
        stride: t.stride.clone(),
    })
}

/// Copies the (already bounds-checked) view `e` of `storage` into a contiguous
/// row-major byte buffer.
fn strided_copy(storage: &[u8], e: &Entry) -> Result<Vec<u8>, String> {
    let shape = &e.info.shape;
    let esize = e.info.dtype.size();
    // `make_entry` checked that this product does not overflow.
    let nbytes = shape.iter().product::<usize>() * esize;
    let mut out = Vec::new();
    if nbytes == 0 {
        return Ok(out);
    }
    // A stride-0 view can be far larger than its storage: fail, do not abort.
    out.try_reserve_exact(nbytes)
        .map_err(|_| format!("cannot allocate {nbytes} bytes"))?;

    // Fold trailing dimensions that are contiguous into one run of elements.
    let mut run = 1usize;
    let mut outer = shape.len();
    while outer > 0 {
        let d = outer - 1;
        if shape[d] == 1 || e.stride[d] == run {
            run *= shape[d];
            outer = d;
        } else {
            break;
        }
    }
    let run_bytes = run * esize;
    let mut index = vec![0usize; outer];
    loop {
        let start = e.offset
            + index
                .iter()
                .zip(&e.stride)
                .map(|(&i, &s)| i * s)
                .sum::<usize>();
        let start = start * esize;
        out.extend_from_slice(&storage[start..start + run_bytes]);
        // Odometer over the outer dimensions, last fastest.
        let mut d = outer;
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}
