//! RefCOCOg region captioning, as the official OMG-LLaVA evaluation reads it:
//!
//! ```text
//! finetune_refcocog_val_with_mask.json   the regions the model is asked about
//! finetune_refcocog_val_captions.json    the ground-truth captions the scorer reads
//! <image_dir>/COCO_train2014_000000xxxxxx.jpg
//! ```
//!
//! Both files are COCO-style: `images` (`id`, `file_name`, `height`, `width`) and
//! `annotations` (`id`, `image_id`, `bbox` `[x, y, w, h]`, `caption`, and in the
//! `with_mask` file a `segmentation`). Each "image" entry is one region of a COCO
//! photo: the inference script iterates over `images` in file order and takes the
//! annotation whose **`id` equals the image id** (`coco.anns[image_id]`), whose
//! segmentation (polygons, added up as in the referring loaders) is the region prompt.
//! The scorer (COCOEvalCap) compares the prediction of an image id with the `caption`
//! of every annotation of that `image_id` in the captions file.
//!
//! [`load`] reads the regions file and, optionally, the captions file for the
//! references (by default the regions file's own captions). A sample's id is the
//! image id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use omg_masks::BinaryMask;
use serde::Deserialize;

use super::coco::CocoImage;

use super::{Segmentation, bad, read_json};
use crate::EvalError;

/// The regions file the official inference reads.
pub const REGIONS_FILE: &str = "finetune_refcocog_val_with_mask.json";
/// The ground-truth captions file the official scorer reads.
pub const CAPTIONS_FILE: &str = "finetune_refcocog_val_captions.json";

#[derive(Debug, Deserialize)]
struct RawAnnotation {
    id: i64,
    image_id: i64,
    #[serde(default)]
    bbox: Option<[f64; 4]>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    segmentation: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    images: Vec<CocoImage>,
    annotations: Vec<RawAnnotation>,
}

/// One region to caption.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionCaptionSample {
    /// The image id of the entry (one per region); results are keyed by it.
    pub id: i64,
    /// The photo.
    pub image_path: PathBuf,
    /// `file_name` as in the file.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The region's box `[x, y, w, h]`, when the file has one.
    pub bbox: Option<[f64; 4]>,
    /// The region's segmentation, when the file has one (the `with_mask` file).
    pub segmentation: Option<Segmentation>,
    /// The reference captions of the region.
    pub references: Vec<String>,
    regions_file: PathBuf,
}

impl RegionCaptionSample {
    /// The official question for a region (see
    /// [`crate::prompts::REGION_CAPTION_QUESTION`]).
    pub fn question(&self) -> &'static str {
        crate::prompts::REGION_CAPTION_QUESTION
    }

    /// The region mask: the union of its polygons. Fails with
    /// [`EvalError::BadFile`] when the file has no segmentation for it.
    pub fn mask(&self) -> Result<BinaryMask, EvalError> {
        let Some(seg) = &self.segmentation else {
            return Err(bad(
                &self.regions_file,
                format!("region {} has no segmentation", self.id),
            ));
        };
        seg.union_mask(self.height, self.width)
            .map_err(|e| bad(&self.regions_file, format!("region {}: {e}", self.id)))
    }
}

/// Reads the regions of `regions_file` (photos in `image_dir`) with the references of
/// `captions_file` (or, when `None`, of the regions file itself).
///
/// Fails with [`EvalError::Io`] for a missing file or photo, [`EvalError::BadFile`]
/// for a file not in the layout above: an image without the annotation of the same id,
/// an annotation of an unknown image, a region without any reference caption, a bad
/// segmentation.
pub fn load(
    regions_file: &Path,
    captions_file: Option<&Path>,
    image_dir: &Path,
) -> Result<Vec<RegionCaptionSample>, EvalError> {
    let regions: RawFile = read_json(regions_file)?;
    let captions_owned: Option<RawFile> = match captions_file {
        Some(p) => Some(read_json(p)?),
        None => None,
    };
    let (caps, caps_path) = match &captions_owned {
        Some(c) => (c, captions_file.unwrap_or(regions_file)),
        None => (&regions, regions_file),
    };
    let image_ids: std::collections::HashSet<i64> = caps.images.iter().map(|i| i.id).collect();
    let mut refs: HashMap<i64, Vec<String>> = HashMap::new();
    for a in &caps.annotations {
        if !image_ids.contains(&a.image_id) {
            return Err(bad(
                caps_path,
                format!(
                    "annotation {} is of image {}, which is not listed",
                    a.id, a.image_id
                ),
            ));
        }
        if let Some(c) = &a.caption {
            refs.entry(a.image_id).or_default().push(c.clone());
        }
    }
    let anns: HashMap<i64, &RawAnnotation> =
        regions.annotations.iter().map(|a| (a.id, a)).collect();
    let mut out = Vec::with_capacity(regions.images.len());
    for im in &regions.images {
        let Some(ann) = anns.get(&im.id) else {
            return Err(bad(
                regions_file,
                format!(
                    "image {} has no annotation with the same id (the official inference reads annotation <image id>)",
                    im.id
                ),
            ));
        };
        let segmentation = match &ann.segmentation {
            Some(v) => Some(
                Segmentation::from_json(v)
                    .map_err(|e| bad(regions_file, format!("annotation {}: {e}", ann.id)))?,
            ),
            None => None,
        };
        let references = refs.get(&im.id).cloned().unwrap_or_default();
        if references.is_empty() {
            return Err(bad(
                caps_path,
                format!("region {} has no reference caption", im.id),
            ));
        }
        let image_path = super::join_inside(image_dir, &im.file_name, regions_file)?;
        super::require_file(&image_path)?;
        out.push(RegionCaptionSample {
            id: im.id,
            image_path,
            file_name: im.file_name.clone(),
            width: im.width,
            height: im.height,
            bbox: ann.bbox,
            segmentation,
            references,
            regions_file: regions_file.to_path_buf(),
        });
    }
    Ok(out)
}
