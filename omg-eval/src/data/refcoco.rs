//! RefCOCO, RefCOCO+ and RefCOCOg as the official OMG-LLaVA referring-segmentation
//! evaluation reads them, through the refer toolkit's layout:
//!
//! ```text
//! <ann_dir>/refs(unc).p      RefCOCO and RefCOCO+ ("unc" splits)
//! <ann_dir>/refs(umd).p      RefCOCOg ("umd" splits)
//! <ann_dir>/instances.json   COCO images, annotations (polygons) and categories
//! <image_dir>/COCO_train2014_000000xxxxxx.jpg
//! ```
//!
//! `refs(*).p` is a Python pickle (Python 2 `cPickle`) of a list of refs, each a dict
//! with `ref_id`, `ann_id`, `image_id`, `split`, `category_id` and `sentences` (dicts
//! with `sent_id`, `sent`, `raw` and `tokens`). The official evaluation
//! (`--dataset refcoco|refcoco_plus|refcocog --split val|testA|testB|test`):
//!
//! * selects refs with the refer toolkit's `getRefIds(split=...)`: `train` and `val`
//!   by equality, `testA`/`testB`/`testC` when the ref's split contains that letter
//!   (so `testAB` refs count for both), `test` when it contains `test`, and the
//!   `testAB`/`testBC`/`testAC` pairs by equality; see [`select_split`];
//! * takes each selected ref's sentences in order, the text of `sent` (the lower-cased,
//!   tokenised sentence, not `raw`), one evaluated sample per sentence;
//! * opens `image_dir/<file_name>` with the `file_name` of the image in
//!   `instances.json` (`COCO_train2014_%012d.jpg`; the refs' own `file_name` carries an
//!   annotation suffix and is not used);
//! * builds the ground truth from the ref's annotation `segmentation`:
//!   `mask.frPyObjects(polygons, height, width)`, decoded and *added up* over the
//!   polygons. Here [`RefCocoSample::mask`] is the union of the polygons, the choice of
//!   [`crate::referring`] (whose docs explain the difference: a pixel covered by two
//!   polygons counts as background in the official metric);
//!   [`RefCocoSample::official_mask`] gives the pixels the official sum marks with
//!   exactly 1, for an exact reproduction.
//!
//! Samples are ordered as the refs in the pickle (the official loop groups them by
//! image in a hash-set order, which no metric depends on). A sample's id is
//! `"{ref_id}_{sentence index}"`, stable across runs.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use omg_masks::BinaryMask;
use serde::Deserialize;

use super::coco::CocoImage;

use super::{Segmentation, bad, read_json};
use crate::EvalError;

/// Which of the three referring datasets: names its folder and its refs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefDataset {
    /// RefCOCO, `refcoco/refs(unc).p`.
    RefCoco,
    /// RefCOCO+, `refcoco+/refs(unc).p`.
    RefCocoPlus,
    /// RefCOCOg with the UMD splits, `refcocog/refs(umd).p`.
    RefCocoG,
}

impl RefDataset {
    /// The folder name the refer toolkit uses (`refcoco`, `refcoco+`, `refcocog`).
    pub fn folder(self) -> &'static str {
        match self {
            RefDataset::RefCoco => "refcoco",
            RefDataset::RefCocoPlus => "refcoco+",
            RefDataset::RefCocoG => "refcocog",
        }
    }

    /// The official evaluation's `--dataset` name (`refcoco`, `refcoco_plus`,
    /// `refcocog`).
    pub fn eval_name(self) -> &'static str {
        match self {
            RefDataset::RefCoco => "refcoco",
            RefDataset::RefCocoPlus => "refcoco_plus",
            RefDataset::RefCocoG => "refcocog",
        }
    }

    /// The refer toolkit's `splitBy` (`unc` or `umd`).
    pub fn split_by(self) -> &'static str {
        match self {
            RefDataset::RefCocoG => "umd",
            _ => "unc",
        }
    }

    /// The refs file name, `refs(unc).p` or `refs(umd).p`.
    pub fn refs_file(self) -> String {
        format!("refs({}).p", self.split_by())
    }

    /// The splits the official evaluation is run on: `val`, `testA`, `testB` for
    /// RefCOCO and RefCOCO+, `val` and `test` for RefCOCOg.
    pub fn eval_splits(self) -> &'static [&'static str] {
        match self {
            RefDataset::RefCocoG => &["val", "test"],
            _ => &["val", "testA", "testB"],
        }
    }

    /// Parses an official `--dataset` or folder name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "refcoco" => Some(RefDataset::RefCoco),
            "refcoco+" | "refcoco_plus" => Some(RefDataset::RefCocoPlus),
            "refcocog" => Some(RefDataset::RefCocoG),
            _ => None,
        }
    }
}

/// Split names the refer toolkit's `getRefIds` accepts.
pub const SPLIT_NAMES: [&str; 9] = [
    "train", "val", "test", "testA", "testB", "testC", "testAB", "testBC", "testAC",
];

/// Whether a ref whose `split` field is `ref_split` is selected by `split`, as the refer
/// toolkit's `getRefIds(split=...)` decides; `None` for a split name it does not know.
pub fn select_split(split: &str, ref_split: &str) -> Option<bool> {
    Some(match split {
        "testA" | "testB" | "testC" => ref_split.contains(&split[4..]),
        "testAB" | "testBC" | "testAC" | "train" | "val" => ref_split == split,
        "test" => ref_split.contains("test"),
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
struct RawSentence {
    sent: String,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    sent_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawRef {
    ref_id: i64,
    ann_id: i64,
    image_id: i64,
    split: String,
    sentences: Vec<RawSentence>,
}

#[derive(Debug, Deserialize)]
struct RawAnnotation {
    id: i64,
    #[serde(default)]
    segmentation: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct RawInstances {
    images: Vec<CocoImage>,
    annotations: Vec<RawAnnotation>,
}

/// One evaluated sentence: an image, a referring sentence and its object's mask.
#[derive(Debug, Clone, PartialEq)]
pub struct RefCocoSample {
    /// `"{ref_id}_{sentence_index}"`: unique in a split and stable across runs.
    pub id: String,
    /// The ref's `ref_id`.
    pub ref_id: i64,
    /// Position of the sentence in the ref's `sentences`.
    pub sentence_index: usize,
    /// The sentence's `sent_id`, when the file has one.
    pub sent_id: Option<i64>,
    /// The referred annotation's id in `instances.json`.
    pub ann_id: i64,
    /// The COCO image id.
    pub image_id: i64,
    /// `image_dir/<file_name of the image in instances.json>`.
    pub image_path: PathBuf,
    /// Image width in pixels (from `instances.json`).
    pub width: u32,
    /// Image height in pixels (from `instances.json`).
    pub height: u32,
    /// The sentence as the official evaluation uses it (`sent`).
    pub sentence: String,
    /// The raw sentence (`raw`), for reference only.
    pub raw: Option<String>,
    /// The referred annotation's segmentation.
    pub segmentation: Segmentation,
    /// `instances.json`, named in mask errors.
    instances: PathBuf,
}

impl RefCocoSample {
    /// The official question for this sample (see [`crate::prompts::refcoco_question`]).
    pub fn question(&self) -> String {
        crate::prompts::refcoco_question(&self.sentence)
    }

    /// The ground truth: the union of the annotation's polygons (an empty mask if it
    /// has none).
    pub fn mask(&self) -> Result<BinaryMask, EvalError> {
        self.segmentation
            .union_mask(self.height, self.width)
            .map_err(|m| self.mask_error(m))
    }

    /// The ground truth exactly as the official metric sees it: the pixels where the
    /// sum of the decoded polygons (as `uint8`) is 1. It differs from [`mask`](Self::mask)
    /// only where polygons of the annotation overlap.
    pub fn official_mask(&self) -> Result<BinaryMask, EvalError> {
        let c = self
            .segmentation
            .coverage(self.height, self.width)
            .map_err(|m| self.mask_error(m))?;
        BinaryMask::from_array(c.mapv(|v| v == 1)).map_err(|e| self.mask_error(e.to_string()))
    }

    fn mask_error(&self, m: String) -> EvalError {
        bad(
            &self.instances,
            format!("annotation {} (ref {}): {m}", self.ann_id, self.ref_id),
        )
    }
}

/// One split of a referring dataset.
#[derive(Debug, Clone)]
pub struct RefCocoSplit {
    /// The dataset.
    pub dataset: RefDataset,
    /// The split name as requested.
    pub split: String,
    /// The samples, one per sentence.
    pub samples: Vec<RefCocoSample>,
    /// Number of selected refs.
    pub refs: usize,
    /// Number of distinct images of the selected refs.
    pub images: usize,
}

/// Reads `split` of `dataset` from `ann_dir` (the folder holding `refs(unc|umd).p` and
/// `instances.json`; in the refer toolkit's layout `<data_root>/<dataset folder>`),
/// with the photos in `image_dir`.
///
/// Fails with [`EvalError::Io`] for a missing file, [`EvalError::BadFile`] for a file
/// that is not a pickle or JSON of the refer toolkit's layout (naming the key or ref at
/// fault, an annotation or image id that `instances.json` does not list, a polygon with
/// an odd number of coordinates), [`EvalError::UnknownSplit`] for a split name the
/// refer toolkit does not know or one that selects no ref (listing the splits present).
/// Photos are not opened; [`RefCocoSplit::missing_images`] checks them.
pub fn load(
    ann_dir: &Path,
    dataset: RefDataset,
    split: &str,
    image_dir: &Path,
) -> Result<RefCocoSplit, EvalError> {
    let refs_path = ann_dir.join(dataset.refs_file());
    let instances_path = ann_dir.join("instances.json");
    if select_split(split, "").is_none() {
        return Err(EvalError::UnknownSplit {
            path: refs_path,
            split: split.to_string(),
            valid: SPLIT_NAMES.join(", "),
        });
    }
    let value = super::read_pickle(&refs_path)?;
    let serde_json::Value::Array(items) = value else {
        return Err(bad(&refs_path, "expected a list of refs"));
    };
    let mut refs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let r: RawRef =
            serde_json::from_value(item).map_err(|e| bad(&refs_path, format!("ref {i}: {e}")))?;
        refs.push(r);
    }
    let present: BTreeSet<&str> = refs.iter().map(|r| r.split.as_str()).collect();
    let selected: Vec<&RawRef> = refs
        .iter()
        .filter(|r| select_split(split, &r.split) == Some(true))
        .collect();
    if selected.is_empty() {
        return Err(EvalError::UnknownSplit {
            path: refs_path,
            split: split.to_string(),
            valid: format!(
                "{} (the splits present in the file; no ref is in {split:?})",
                present.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }

    let instances: RawInstances = read_json(&instances_path)?;
    let images: HashMap<i64, &CocoImage> = instances.images.iter().map(|i| (i.id, i)).collect();
    let anns: HashMap<i64, &RawAnnotation> =
        instances.annotations.iter().map(|a| (a.id, a)).collect();

    let mut samples = Vec::new();
    let mut image_ids = BTreeSet::new();
    let mut segs: HashMap<i64, Segmentation> = HashMap::new();
    for r in &selected {
        let img = images.get(&r.image_id).ok_or_else(|| {
            bad(
                &instances_path,
                format!(
                    "image id {} (of ref {} in {}) is not in \"images\"",
                    r.image_id,
                    r.ref_id,
                    refs_path.display()
                ),
            )
        })?;
        let ann = anns.get(&r.ann_id).ok_or_else(|| {
            bad(
                &instances_path,
                format!(
                    "annotation id {} (of ref {} in {}) is not in \"annotations\"",
                    r.ann_id,
                    r.ref_id,
                    refs_path.display()
                ),
            )
        })?;
        let seg = match segs.get(&r.ann_id) {
            Some(s) => s.clone(),
            None => {
                let s = Segmentation::from_json(&ann.segmentation)
                    .map_err(|m| bad(&instances_path, format!("annotation {}: {m}", r.ann_id)))?;
                segs.insert(r.ann_id, s.clone());
                s
            }
        };
        let image_path = super::join_inside(image_dir, &img.file_name, &instances_path)?;
        image_ids.insert(r.image_id);
        for (k, s) in r.sentences.iter().enumerate() {
            samples.push(RefCocoSample {
                id: format!("{}_{k}", r.ref_id),
                ref_id: r.ref_id,
                sentence_index: k,
                sent_id: s.sent_id,
                ann_id: r.ann_id,
                image_id: r.image_id,
                image_path: image_path.clone(),
                width: img.width,
                height: img.height,
                sentence: s.sent.clone(),
                raw: s.raw.clone(),
                segmentation: seg.clone(),
                instances: instances_path.clone(),
            });
        }
    }
    Ok(RefCocoSplit {
        dataset,
        split: split.to_string(),
        refs: selected.len(),
        images: image_ids.len(),
        samples,
    })
}

impl RefCocoSplit {
    /// The image files of the split that do not exist (each listed once, in sample
    /// order).
    pub fn missing_images(&self) -> Vec<PathBuf> {
        let mut seen = BTreeSet::new();
        self.samples
            .iter()
            .filter(|s| seen.insert(s.image_path.clone()) && !s.image_path.is_file())
            .map(|s| s.image_path.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_toolkit_split_selection() {
        assert_eq!(select_split("testA", "testA"), Some(true));
        assert_eq!(select_split("testA", "testAB"), Some(true));
        assert_eq!(select_split("testB", "testA"), Some(false));
        assert_eq!(select_split("test", "testB"), Some(true));
        assert_eq!(select_split("test", "val"), Some(false));
        assert_eq!(select_split("val", "val"), Some(true));
        assert_eq!(select_split("train", "val"), Some(false));
        assert_eq!(select_split("testAB", "testA"), Some(false));
        assert_eq!(select_split("dev", "val"), None);
    }

    #[test]
    fn dataset_names() {
        for d in [
            RefDataset::RefCoco,
            RefDataset::RefCocoPlus,
            RefDataset::RefCocoG,
        ] {
            assert_eq!(RefDataset::from_name(d.folder()), Some(d));
            assert_eq!(RefDataset::from_name(d.eval_name()), Some(d));
        }
        assert_eq!(RefDataset::RefCocoG.refs_file(), "refs(umd).p");
        assert_eq!(RefDataset::RefCocoPlus.refs_file(), "refs(unc).p");
    }
}
