//! ReasonSeg, as LISA ships and evaluates it (the official OMG-LLaVA code has no
//! ReasonSeg evaluation; LISA's is the benchmark's definition):
//!
//! ```text
//! <root>/val/<name>.jpg   <root>/val/<name>.json
//! <root>/test/<name>.jpg  <root>/test/<name>.json
//! ```
//!
//! (`<root>` is LISA's `reason_seg/ReasonSeg`, which also holds `train` and
//! `explanatory`.) Each JSON (LabelMe style) has `text` (a list of queries),
//! `is_sentence` (whether the query is a full sentence or a short phrase) and `shapes`
//! (`{"label", "points": [[x, y], ...], ...}`). LISA's evaluation:
//!
//! * lists `<split>/*.jpg` and reads the JSON of the same name (read as UTF-8, or as
//!   Windows-1252 when that fails);
//! * uses the first query, `text[0]`;
//! * draws the ground truth on a zero `uint8` image of the photo's size: shapes whose
//!   label is `flag` (any case) are skipped; the rest are sorted by their own area
//!   (each drawn alone), largest first, and drawn in that order with
//!   `cv2.polylines` + `cv2.fillPoly` on the points truncated to `int32`, in the value
//!   255 when the label contains `ignore` (any case) and 1 otherwise (so a smaller
//!   shape drawn later overwrites a larger one);
//! * scores with `ignore_index=255`: an ignored pixel is left out of the prediction and
//!   the ground truth alike. [`ReasonSegSample::masks`] returns the target (value 1)
//!   and the ignore (value 255) masks; [`ReasonSegSample::without_ignored`] clears the
//!   ignored pixels of a prediction, after which [`crate::ReferringAccumulator`] gives
//!   the official cIoU and gIoU.
//!
//! The area sort is stable here; numpy's default `argsort` (reversed) orders shapes of
//! equal area in reverse file order for up to 16 shapes, which matters only if two
//! shapes of equal area overlap and differ in label.
//!
//! Samples are ordered by file name; a sample's id is the file stem.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use omg_masks::BinaryMask;
use serde::Deserialize;

use super::raster::{fill_poly, polylines_closed};
use super::{bad, image_size, read_bytes, require_dir};
use crate::EvalError;

/// The splits LISA evaluates ReasonSeg on.
pub const SPLITS: [&str; 2] = ["val", "test"];

/// Ground-truth value of a target pixel.
pub const TARGET_VALUE: u8 = 1;
/// Ground-truth value of an ignored pixel (LISA's `ignore_label`).
pub const IGNORE_VALUE: u8 = 255;

/// One LabelMe shape of a ReasonSeg annotation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Shape {
    /// `target`, `ignore`, `flag`, ...
    pub label: String,
    /// Polygon vertices `[x, y]` in pixels.
    pub points: Vec<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
struct RawAnnotation {
    text: Vec<String>,
    is_sentence: bool,
    shapes: Vec<Shape>,
}

/// One ReasonSeg image and its query.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonSegSample {
    /// The file stem (`<name>` of `<name>.jpg`).
    pub id: String,
    /// The photo.
    pub image_path: PathBuf,
    /// The annotation file.
    pub json_path: PathBuf,
    /// Photo width in pixels (read from the image header).
    pub width: u32,
    /// Photo height in pixels.
    pub height: u32,
    /// All queries of the file (`text`).
    pub texts: Vec<String>,
    /// Whether the queries are sentences (`is_sentence`), which selects the question
    /// template.
    pub is_sentence: bool,
    /// The shapes, in file order.
    pub shapes: Vec<Shape>,
}

impl ReasonSegSample {
    /// The query the evaluation uses: the first of `texts`.
    pub fn query(&self) -> &str {
        self.texts.first().map_or("", String::as_str)
    }

    /// The official question for this sample (see
    /// [`crate::prompts::reasonseg_question`]).
    pub fn question(&self) -> String {
        crate::prompts::reasonseg_question(self.query(), self.is_sentence)
    }

    /// The ground-truth label image as LISA draws it: 0 background, 1 target, 255
    /// ignored.
    pub fn label_image(&self) -> Array2<u8> {
        let (h, w) = (self.height as usize, self.width as usize);
        let polys: Vec<(&Shape, Vec<(i64, i64)>)> = self
            .shapes
            .iter()
            .filter(|s| s.label.to_lowercase() != "flag")
            .map(|s| {
                let pts = s
                    .points
                    .iter()
                    .map(|p| (p[0] as i32 as i64, p[1] as i32 as i64))
                    .collect();
                (s, pts)
            })
            .collect();
        let areas: Vec<usize> = polys
            .iter()
            .map(|(_, pts)| {
                let mut tmp = Array2::<u8>::zeros((h, w));
                polylines_closed(&mut tmp, pts, 1);
                fill_poly(&mut tmp, pts, 1);
                tmp.iter().filter(|&&v| v == 1).count()
            })
            .collect();
        let mut order: Vec<usize> = (0..polys.len()).collect();
        order.sort_by_key(|&i| areas[i]);
        order.reverse();
        let mut img = Array2::<u8>::zeros((h, w));
        for i in order {
            let (shape, pts) = &polys[i];
            let value = if shape.label.to_lowercase().contains("ignore") {
                IGNORE_VALUE
            } else {
                TARGET_VALUE
            };
            polylines_closed(&mut img, pts, value);
            fill_poly(&mut img, pts, value);
        }
        img
    }

    /// The target mask (label 1) and the ignore mask (label 255).
    pub fn masks(&self) -> Result<(BinaryMask, BinaryMask), EvalError> {
        let img = self.label_image();
        let mk = |v: u8| {
            BinaryMask::from_array(img.mapv(|x| x == v)).map_err(|source| EvalError::Mask {
                what: self.json_path.display().to_string(),
                source,
            })
        };
        Ok((mk(TARGET_VALUE)?, mk(IGNORE_VALUE)?))
    }

    /// `prediction` with the pixels of `ignore` cleared: scoring that against the
    /// target mask gives LISA's `ignore_index=255` counts.
    pub fn without_ignored(
        prediction: &BinaryMask,
        ignore: &BinaryMask,
    ) -> Result<BinaryMask, EvalError> {
        crate::overlap::check_same_size(ignore, prediction, "ReasonSeg prediction")?;
        let mut out = prediction.array().clone();
        ndarray::Zip::from(&mut out)
            .and(ignore.array())
            .for_each(|p, &i| *p &= !i);
        BinaryMask::from_array(out).map_err(|source| EvalError::Mask {
            what: "ReasonSeg prediction".to_string(),
            source,
        })
    }
}

/// Windows-1252 bytes as text (LISA's fallback when a JSON file is not UTF-8).
fn cp1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9f => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Reads one annotation file and its photo.
pub fn read_sample(image_path: &Path) -> Result<ReasonSegSample, EvalError> {
    let json_path = image_path.with_extension("json");
    let bytes = read_bytes(&json_path)?;
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => cp1252(e.as_bytes()),
    };
    let raw: RawAnnotation = serde_json::from_str(&text)
        .map_err(|e| bad(&json_path, format!("not a ReasonSeg annotation: {e}")))?;
    if raw.text.is_empty() {
        return Err(bad(&json_path, "\"text\" is empty (no query)"));
    }
    for (i, s) in raw.shapes.iter().enumerate() {
        if s.points.is_empty() {
            return Err(bad(&json_path, format!("shape {i} has no points")));
        }
        if s.points
            .iter()
            .flatten()
            .any(|v| !v.is_finite() || v.abs() > 1e6)
        {
            return Err(bad(
                &json_path,
                format!("shape {i} has a non-finite or huge coordinate"),
            ));
        }
    }
    let (width, height) = image_size(image_path)?;
    let id = image_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(ReasonSegSample {
        id,
        image_path: image_path.to_path_buf(),
        json_path,
        width,
        height,
        texts: raw.text,
        is_sentence: raw.is_sentence,
        shapes: raw.shapes,
    })
}

/// Reads split `split` (`val` or `test`) of ReasonSeg from `root/<split>/`: every
/// `*.jpg` with its `*.json`, ordered by file name.
///
/// Fails with [`EvalError::UnknownSplit`] for another split name, [`EvalError::Io`]
/// for a missing folder, annotation or photo, [`EvalError::BadFile`] for an annotation
/// that is not in the layout above (naming the file and key) or an unreadable photo.
pub fn load(root: &Path, split: &str) -> Result<Vec<ReasonSegSample>, EvalError> {
    if !SPLITS.contains(&split) {
        return Err(EvalError::UnknownSplit {
            path: root.to_path_buf(),
            split: split.to_string(),
            valid: SPLITS.join(", "),
        });
    }
    let dir = root.join(split);
    require_dir(&dir)?;
    let entries = std::fs::read_dir(&dir).map_err(|source| EvalError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut images = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| EvalError::Io {
            path: dir.clone(),
            source,
        })?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "jpg") {
            images.push(p);
        }
    }
    images.sort();
    if images.is_empty() {
        return Err(bad(&dir, "no *.jpg photo in the split folder"));
    }
    images.iter().map(|p| read_sample(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp1252_fallback() {
        assert_eq!(cp1252(b"caf\xe9 \x93q\x94"), "café “q”");
    }
}
