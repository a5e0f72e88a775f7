//! Readers of the benchmarks' official annotation files, one module per benchmark:
//!
//! * [`refcoco`]: RefCOCO, RefCOCO+ and RefCOCOg (the refer toolkit's `refs(unc).p` /
//!   `refs(umd).p` pickles with `instances.json`).
//! * [`reasonseg`]: ReasonSeg (a folder per split of `*.jpg` photos, each with a
//!   same-name `*.json` of query texts and polygons).
//! * [`gcg`]: grounded conversation generation on GranD-f (the `{split}_gcg_coco_*_gt.json`
//!   files and the `val_test` photo folder).
//! * [`region_caption`]: RefCOCOg region captioning (a COCO-style file of one region
//!   and its caption per entry).
//!
//! Shared pieces: [`Segmentation`] (COCO polygons and RLE rasterised exactly as
//! pycocotools does), [`raster`] (OpenCV's `fillPoly` / `polylines`, which draw the
//! ReasonSeg ground truth), [`read_pickle`] and the error helpers. Every reader returns
//! [`crate::EvalError::Io`], [`crate::EvalError::BadFile`]
//! or [`crate::EvalError::UnknownSplit`] naming the file at fault;
//! none panics on bad input.
//!
//! Readers load the annotations eagerly and decode masks lazily (a sample's `mask()`),
//! so a full split fits in memory.

mod coco;
pub mod gcg;
pub(crate) mod pickle;
pub mod raster;
pub mod reasonseg;
pub mod refcoco;
pub mod region_caption;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use coco::Segmentation;

use crate::EvalError;

/// `EvalError::BadFile` for `path`.
pub(crate) fn bad(path: &Path, message: impl Into<String>) -> EvalError {
    EvalError::BadFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a Python pickle of plain data (see the refer toolkit's refs files) as JSON:
/// `None`, booleans, integers up to 64 bits, floats, strings (Python 2 `str` decoded as
/// UTF-8, else Latin-1), lists, tuples, sets and dicts with string or integer keys.
/// Pickles that build Python objects are refused. Fails with [`EvalError::Io`] or
/// [`EvalError::BadFile`] naming the file.
pub fn read_pickle(path: &Path) -> Result<serde_json::Value, EvalError> {
    let bytes = read_bytes(path)?;
    pickle::unpickle(&bytes).map_err(|m| bad(path, m))
}

/// Reads a whole file; a missing or unreadable file is `EvalError::Io` naming it.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, EvalError> {
    std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a JSON file into `T`; a syntax error or a missing or mistyped key is
/// `EvalError::BadFile` naming the file and serde's description (key, line, column).
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, EvalError> {
    let bytes = read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|e| bad(path, format!("not the expected JSON: {e}")))
}

/// Fails with `EvalError::Io` (not found) unless `path` is a file.
pub(crate) fn require_file(path: &Path) -> Result<(), EvalError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(EvalError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        })
    }
}

/// Fails with `EvalError::Io` (not found) unless `path` is a folder.
pub(crate) fn require_dir(path: &Path) -> Result<(), EvalError> {
    if path.is_dir() {
        Ok(())
    } else {
        Err(EvalError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        })
    }
}

/// Width and height of an image file, read from its header.
pub(crate) fn image_size(path: &Path) -> Result<(u32, u32), EvalError> {
    require_file(path)?;
    image::image_dimensions(path).map_err(|e| match e {
        image::ImageError::IoError(source) => EvalError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => bad(path, format!("not a readable image: {other}")),
    })
}

/// `folder/name`, refusing names that would leave the folder (absolute paths, `..`).
pub(crate) fn join_inside(
    folder: &Path,
    name: &str,
    annotations: &Path,
) -> Result<PathBuf, EvalError> {
    let p = Path::new(name);
    let plain = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(bad(
            annotations,
            format!("image file name {name:?} is not a plain relative path"),
        ));
    }
    Ok(folder.join(p))
}
