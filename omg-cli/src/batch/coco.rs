//! Results to COCO annotation JSON (`images`, `annotations` with RLE segmentation,
//! bbox, area, score, `categories`), what annotation pipelines consume. Several
//! results files (the shards of one run) merge into one; an id seen twice keeps its
//! first result, and failed inputs are left out.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::{BatchError, Output};
use crate::jobs::JobKind;

/// The category of masks that have no class (`segment`, `ground`): "object".
pub const OBJECT_CATEGORY_ID: usize = 0;

/// A COCO `images` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoImage {
    /// 1-based, in the order of the input ids.
    pub id: usize,
    /// The image file as the manifest gives it.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The manifest id.
    pub omg_id: String,
    /// The task's text answer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

/// A COCO `annotations` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoAnnotation {
    /// 1-based.
    pub id: usize,
    /// The image's `id`.
    pub image_id: usize,
    /// Compressed RLE.
    pub segmentation: omg_llava::CocoRle,
    /// `[x, y, width, height]` (all 0 for an empty mask).
    pub bbox: [u32; 4],
    /// Pixels inside.
    pub area: u64,
    /// Confidence.
    pub score: f32,
    /// Panoptic class index + 1, or [`OBJECT_CATEGORY_ID`].
    pub category_id: usize,
    /// 0: every mask is one object.
    pub iscrowd: u8,
    /// The phrase a `ground` mask belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phrase: Option<String>,
    /// The task that made the mask.
    pub task: JobKind,
}

/// A COCO `categories` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoCategory {
    /// See [`CocoAnnotation::category_id`].
    pub id: usize,
    /// The class name, or "object".
    pub name: String,
}

/// A COCO annotation file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoJson {
    /// The images with results.
    pub images: Vec<CocoImage>,
    /// Every mask.
    pub annotations: Vec<CocoAnnotation>,
    /// The categories the annotations use, by id.
    pub categories: Vec<CocoCategory>,
}

/// Reads a results file.
pub fn read_results(path: &Path) -> Result<Vec<Output>, BatchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BatchError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_results(path, &text)
}

/// The result records of `text`, the contents of the results file `path` (one JSON
/// record per line; blank lines skipped).
pub fn parse_results(path: &Path, text: &str) -> Result<Vec<Output>, BatchError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| BatchError::Results {
            path: path.to_owned(),
            line: n + 1,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// The COCO file of `results`: one image per input id that has a photo and no error,
/// numbered in the order of the ids (so the shards of one run, given in any order, or a
/// run resumed in another order give the same file); where an id repeats, its first
/// result is kept.
pub fn to_coco(results: &[Output]) -> CocoJson {
    let mut seen = HashSet::new();
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    let mut categories = BTreeMap::new();
    let mut ordered: Vec<&Output> = results.iter().collect();
    ordered.sort_by(|a, b| a.id.cmp(&b.id));
    for r in ordered {
        let (Some(width), Some(height), None) = (r.width, r.height, &r.error) else {
            continue;
        };
        if !seen.insert(r.id.clone()) {
            continue;
        }
        let image_id = images.len() + 1;
        images.push(CocoImage {
            id: image_id,
            file_name: r.image.clone(),
            width,
            height,
            omg_id: r.id.clone(),
            caption: r.text.clone(),
        });
        for m in &r.masks {
            let category_id = match (m.class_id, &m.label) {
                (Some(k), Some(label)) => {
                    categories.entry(k + 1).or_insert_with(|| label.clone());
                    k + 1
                }
                _ => {
                    categories
                        .entry(OBJECT_CATEGORY_ID)
                        .or_insert_with(|| "object".to_owned());
                    OBJECT_CATEGORY_ID
                }
            };
            annotations.push(CocoAnnotation {
                id: annotations.len() + 1,
                image_id,
                segmentation: m.rle.clone(),
                bbox: m.bbox.unwrap_or([0; 4]),
                area: m.area,
                score: m.score,
                category_id,
                iscrowd: 0,
                phrase: m.phrase.clone(),
                task: r.task,
            });
        }
    }
    CocoJson {
        images,
        annotations,
        categories: categories
            .into_iter()
            .map(|(id, name)| CocoCategory { id, name })
            .collect(),
    }
}
