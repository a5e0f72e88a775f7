//! A golden fixture: `<stem>.safetensors` with its `<stem>.json` sidecar.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::{DType, TensorData};
use omg_checkpoint::safetensors::SafetensorsFile;
use omg_checkpoint::{CheckpointError, TensorInfo, TensorSource};

use crate::ParityError;

/// An opened fixture.
pub struct Fixture {
    /// The `.safetensors` file.
    pub path: PathBuf,
    /// The parsed sidecar.
    pub sidecar: serde_json::Value,
    /// The tensors (weights under official names, and `in.*`/`out.*`/`buf.*`); every
    /// read is recorded, so a weight no loader consumed can be named afterwards.
    pub tensors: TrackedFile,
}

/// A fixture's `.safetensors` file that records the name of every tensor read.
pub struct TrackedFile {
    file: SafetensorsFile,
    read: Mutex<BTreeSet<String>>,
}

impl TrackedFile {
    /// The weights (not `in.*`, `out.*`, `buf.*`) never read so far, except those
    /// starting with one of `ignored`.
    pub fn unread_weights(&self, ignored: &[&str]) -> Vec<String> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        self.file
            .names()
            .into_iter()
            .filter(|n| is_weight(n) && !read.contains(n))
            .filter(|n| !ignored.iter().any(|i| n.starts_with(i)))
            .collect()
    }
}

impl TensorSource for TrackedFile {
    fn names(&self) -> Vec<String> {
        self.file.names()
    }
    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.file.info(name)
    }
    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        let data = self.file.read(name)?;
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned());
        Ok(data)
    }
    fn describe(&self) -> String {
        self.file.describe()
    }
}

impl Fixture {
    /// Opens `path` (a `.safetensors` file) and its `.json` sidecar, after checking the
    /// file against the sidecar's `size_bytes` and `sha256` (where it has them): a
    /// fixture changed since it was made is an error, never a silent new reference.
    pub fn open(path: &Path) -> Result<Self, ParityError> {
        let sidecar_path = path.with_extension("json");
        let text = std::fs::read_to_string(&sidecar_path).map_err(|e| {
            ParityError::Malformed(format!(
                "cannot read the sidecar {}: {e}",
                sidecar_path.display()
            ))
        })?;
        let sidecar: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ParityError::Malformed(format!("{} is not JSON: {e}", sidecar_path.display()))
        })?;
        verify_file(path, &sidecar)?;
        let tensors = TrackedFile {
            file: SafetensorsFile::open(path)?,
            read: Mutex::new(BTreeSet::new()),
        };
        Ok(Self {
            path: path.to_owned(),
            sidecar,
            tensors,
        })
    }

    /// Fails on the first weight of the fixture that the stage's loaders did not
    /// consume (after the stage ran): an unknown tensor next to real weights is an
    /// error, as in every loader of the library, not silently skipped. `ignored`: name
    /// prefixes the stage leaves on purpose (documented where the stage passes them).
    pub fn reject_unread_weights(&self, ignored: &[&str]) -> Result<(), ParityError> {
        match self.tensors.unread_weights(ignored).into_iter().next() {
            None => Ok(()),
            Some(key) => Err(ParityError::Checkpoint(CheckpointError::UnexpectedKey {
                key,
                source_name: self.tensors.describe(),
            })),
        }
    }

    /// The sidecar's `stage`.
    pub fn stage(&self) -> Result<&str, ParityError> {
        self.sidecar
            .get("stage")
            .and_then(|s| s.as_str())
            .ok_or_else(|| self.malformed("the sidecar has no `stage` string"))
    }

    /// A malformed-fixture error naming this fixture.
    pub fn malformed(&self, what: impl std::fmt::Display) -> ParityError {
        ParityError::Malformed(format!("{}: {what}", self.path.display()))
    }

    /// Every tensor name of the fixture.
    pub fn tensors_names(&self) -> Vec<String> {
        self.tensors.names()
    }

    /// Whether the fixture holds `key`.
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains(key)
    }

    /// Shape of `key`.
    pub fn shape(&self, key: &str) -> Result<Vec<usize>, ParityError> {
        self.tensors
            .info(key)
            .map(|TensorInfo { shape, .. }| shape)
            .ok_or_else(|| self.malformed(format!("missing tensor `{key}`")))
    }

    fn data(&self, key: &str) -> Result<TensorData, ParityError> {
        if !self.has(key) {
            return Err(self.malformed(format!("missing tensor `{key}`")));
        }
        Ok(self.tensors.read(key)?)
    }

    /// A float tensor as shape + f32 values.
    pub fn f32(&self, key: &str) -> Result<(Vec<usize>, Vec<f32>), ParityError> {
        let data = self.data(key)?;
        let shape = data.shape.to_vec();
        let values = data
            .convert_dtype(DType::F32)
            .into_vec::<f32>()
            .map_err(|e| self.malformed(format!("`{key}` is not a float tensor: {e:?}")))?;
        Ok((shape, values))
    }

    /// An integer tensor as shape + i64 values.
    pub fn i64(&self, key: &str) -> Result<(Vec<usize>, Vec<i64>), ParityError> {
        let data = self.data(key)?;
        let shape = data.shape.to_vec();
        let values = match data.dtype {
            DType::I64 | DType::I32 | DType::U8 | DType::I8 | DType::I16 | DType::U32 => data
                .convert_dtype(DType::I64)
                .into_vec::<i64>()
                .map_err(|e| self.malformed(format!("`{key}`: {e:?}")))?,
            other => {
                return Err(
                    self.malformed(format!("`{key}` has dtype {other:?}, expected integers"))
                );
            }
        };
        Ok((shape, values))
    }

    /// A sidecar value at a `/`-separated JSON pointer (e.g. `/config/vocab_size`).
    pub fn json(&self, pointer: &str) -> Option<&serde_json::Value> {
        self.sidecar.pointer(pointer)
    }
}

/// The weights of a fixture: every tensor except `in.*`, `out.*` and `buf.*`, under
/// its official name.
pub struct Weights<'a>(pub &'a dyn TensorSource);

fn is_weight(name: &str) -> bool {
    !(name.starts_with("in.") || name.starts_with("out.") || name.starts_with("buf."))
}

impl TensorSource for Weights<'_> {
    fn names(&self) -> Vec<String> {
        self.0
            .names()
            .into_iter()
            .filter(|n| is_weight(n))
            .collect()
    }
    fn info(&self, name: &str) -> Option<TensorInfo> {
        if is_weight(name) {
            self.0.info(name)
        } else {
            None
        }
    }
    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        if is_weight(name) {
            self.0.read(name)
        } else {
            Err(CheckpointError::MissingKey {
                key: name.to_owned(),
                sources: self.describe(),
            })
        }
    }
    fn describe(&self) -> String {
        format!("{} (weights)", self.0.describe())
    }
}

/// Checks the `.safetensors` file against the size and SHA-256 digest its sidecar
/// records (`size_bytes`, `sha256`; a sidecar without them is not checked).
fn verify_file(path: &Path, sidecar: &serde_json::Value) -> Result<(), ParityError> {
    let drifted = |what: String| {
        ParityError::Malformed(format!(
            "{}: {what}; the file is not the one its sidecar describes (a changed or truncated copy)",
            path.display()
        ))
    };
    let unreadable =
        |e: std::io::Error| ParityError::Malformed(format!("cannot read {}: {e}", path.display()));
    if let Some(size) = sidecar.get("size_bytes") {
        let want = size.as_u64().ok_or_else(|| {
            ParityError::Malformed(format!(
                "{}: the sidecar's `size_bytes` is not a byte count",
                path.display()
            ))
        })?;
        let got = std::fs::metadata(path).map_err(unreadable)?.len();
        if got != want {
            return Err(drifted(format!(
                "{got} bytes where the sidecar records {want}"
            )));
        }
    }
    if let Some(digest) = sidecar.get("sha256") {
        let want = digest
            .as_str()
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                ParityError::Malformed(format!(
                    "{}: the sidecar's `sha256` is not a string",
                    path.display()
                ))
            })?;
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let got = sha256_hex(file).map_err(unreadable)?;
        if got != want {
            return Err(drifted(format!(
                "SHA-256 {got} where the sidecar records {want}"
            )));
        }
    }
    Ok(())
}

/// The SHA-256 digest of everything `reader` yields, in lower-case hex (as a fixture
/// sidecar's `sha256` records it).
pub fn sha256_hex(mut reader: impl std::io::Read) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};

    let mut hasher = Sha256::new();
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
