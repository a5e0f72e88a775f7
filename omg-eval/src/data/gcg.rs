//! Grounded conversation generation (GCG) on GranD-f, as the official OMG-LLaVA
//! evaluation (GLaMM's scorer) reads it:
//!
//! ```text
//! <ann_dir>/val_gcg_coco_caption_gt.json    <ann_dir>/test_gcg_coco_caption_gt.json
//! <ann_dir>/val_gcg_coco_mask_gt.json       <ann_dir>/test_gcg_coco_mask_gt.json
//! <image_dir>/<image>.jpg                   (one folder, `val_test`, for both splits)
//! ```
//!
//! (`<ann_dir>` is `annotations/gcg_val_test` and `<image_dir>` `images/grandf/val_test`
//! in the official data folder.)
//!
//! * The split's images are the `images` of `{split}_gcg_coco_caption_gt.json`, in
//!   file order; their `id` is the photo's name without `.jpg` (a string), which is also
//!   the name of the prediction file the scorer reads (`<id>.json`). The inference
//!   script itself runs over every photo of the folder.
//! * An image's caption and phrases are the `caption` and `labels` of the first
//!   annotation of the caption file with its `image_id` (COCOEvalCap scores the caption
//!   against all of them, normally one).
//! * Its ground-truth masks are the `segmentation`s (COCO RLE) of the annotations of
//!   `{split}_gcg_coco_mask_gt.json` with its `image_id`, in file order; the recall
//!   pairs mask `i` with phrase `i`.
//!
//! Splits are `val` and `test`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use omg_masks::BinaryMask;
use serde::Deserialize;

use super::{Segmentation, bad, read_json, require_dir};
use crate::EvalError;
use crate::coco_ap::GroundTruth;

/// The GCG splits.
pub const SPLITS: [&str; 2] = ["val", "test"];

/// The caption ground-truth file of `split`.
pub fn caption_file(split: &str) -> String {
    format!("{split}_gcg_coco_caption_gt.json")
}

/// The mask ground-truth file of `split`.
pub fn mask_file(split: &str) -> String {
    format!("{split}_gcg_coco_mask_gt.json")
}

#[derive(Debug, Deserialize)]
struct RawImage {
    id: String,
    #[serde(default)]
    file_name: Option<String>,
    height: u32,
    width: u32,
}

#[derive(Debug, Deserialize)]
struct RawCaption {
    image_id: String,
    caption: String,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawCaptionFile {
    images: Vec<RawImage>,
    annotations: Vec<RawCaption>,
}

#[derive(Debug, Deserialize)]
struct RawMask {
    id: u64,
    image_id: String,
    segmentation: serde_json::Value,
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Debug, Deserialize)]
struct RawMaskFile {
    annotations: Vec<RawMask>,
}

/// One ground-truth mask of a GCG image.
#[derive(Debug, Clone, PartialEq)]
pub struct GcgMask {
    /// The annotation id in the mask file.
    pub ann_id: u64,
    /// Its segmentation (COCO RLE in the official files).
    pub segmentation: Segmentation,
    /// Its `iscrowd` flag (0 in the official files).
    pub iscrowd: bool,
}

/// One GCG image with its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct GcgImage {
    /// The image id (the photo name without `.jpg`); predictions are keyed by it.
    pub id: String,
    /// The photo.
    pub image_path: PathBuf,
    /// Width in pixels (from the caption file).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The ground-truth caption (of the first caption annotation).
    pub caption: String,
    /// All captions of the image (the references COCOEvalCap uses).
    pub captions: Vec<String>,
    /// The grounded phrases of the caption (`labels`), in order.
    pub phrases: Vec<String>,
    /// The ground-truth masks, in file order (mask `i` goes with phrase `i`).
    pub masks: Vec<GcgMask>,
    mask_file: PathBuf,
}

impl GcgImage {
    /// The decoded ground-truth masks.
    pub fn decode_masks(&self) -> Result<Vec<BinaryMask>, EvalError> {
        self.masks
            .iter()
            .map(|m| {
                m.segmentation
                    .union_mask(self.height, self.width)
                    .map_err(|e| bad(&self.mask_file, format!("annotation {}: {e}", m.ann_id)))
            })
            .collect()
    }

    /// The masks as the ground truth of [`crate::evaluate_segm`].
    pub fn ground_truth(&self) -> Result<Vec<GroundTruth>, EvalError> {
        Ok(self
            .decode_masks()?
            .into_iter()
            .zip(&self.masks)
            .map(|(mask, m)| GroundTruth {
                id: m.ann_id,
                mask,
                iscrowd: m.iscrowd,
            })
            .collect())
    }
}

/// Reads split `split` (`val` or `test`) from `ann_dir`, with the photos in `image_dir`.
///
/// Fails with [`EvalError::UnknownSplit`] for another split, [`EvalError::Io`] for a
/// missing file or folder (the photos are checked to exist), [`EvalError::BadFile`] for
/// a file not in the layout above: a missing key, an image without a caption
/// annotation, a mask annotation of an image the caption file does not list, a
/// segmentation that is not COCO RLE or polygons.
pub fn load(ann_dir: &Path, split: &str, image_dir: &Path) -> Result<Vec<GcgImage>, EvalError> {
    if !SPLITS.contains(&split) {
        return Err(EvalError::UnknownSplit {
            path: ann_dir.to_path_buf(),
            split: split.to_string(),
            valid: SPLITS.join(", "),
        });
    }
    require_dir(image_dir)?;
    let cap_path = ann_dir.join(caption_file(split));
    let mask_path = ann_dir.join(mask_file(split));
    let caps: RawCaptionFile = read_json(&cap_path)?;
    let masks: RawMaskFile = read_json(&mask_path)?;

    let mut captions: HashMap<&str, Vec<&RawCaption>> = HashMap::new();
    for c in &caps.annotations {
        captions.entry(c.image_id.as_str()).or_default().push(c);
    }
    let known: HashMap<&str, usize> = caps
        .images
        .iter()
        .enumerate()
        .map(|(i, im)| (im.id.as_str(), i))
        .collect();
    let mut per_image: Vec<Vec<GcgMask>> = vec![Vec::new(); caps.images.len()];
    for m in &masks.annotations {
        let Some(&i) = known.get(m.image_id.as_str()) else {
            return Err(bad(
                &mask_path,
                format!(
                    "annotation {} is of image {:?}, which {} does not list",
                    m.id,
                    m.image_id,
                    cap_path.display()
                ),
            ));
        };
        let segmentation = Segmentation::from_json(&m.segmentation)
            .map_err(|e| bad(&mask_path, format!("annotation {}: {e}", m.id)))?;
        per_image[i].push(GcgMask {
            ann_id: m.id,
            segmentation,
            iscrowd: m.iscrowd != 0,
        });
    }

    let mut out = Vec::with_capacity(caps.images.len());
    for (im, masks) in caps.images.iter().zip(per_image) {
        let Some(cs) = captions.get(im.id.as_str()) else {
            return Err(bad(
                &cap_path,
                format!("image {:?} has no caption annotation", im.id),
            ));
        };
        let name = im
            .file_name
            .clone()
            .unwrap_or_else(|| format!("{}.jpg", im.id));
        let image_path = super::join_inside(image_dir, &name, &cap_path)?;
        super::require_file(&image_path)?;
        out.push(GcgImage {
            id: im.id.clone(),
            image_path,
            width: im.width,
            height: im.height,
            caption: cs[0].caption.clone(),
            captions: cs.iter().map(|c| c.caption.clone()).collect(),
            phrases: cs[0].labels.clone(),
            masks,
            mask_file: mask_path.clone(),
        });
    }
    Ok(out)
}
