//! The JSON forms of regions and masks that `omg batch` reads and writes and the server
//! speaks: regions in a photo's pixels, masks as COCO RLE with their summary numbers.

use omg_llava::{
    BinaryMask, CocoRle, GroundedPhrase, MaskOutput, OmgLlavaError, PanopticSegment, Region,
};
use serde::{Deserialize, Serialize};

/// A region as JSON, in the photo's pixels: `{"point": [x, y]}`,
/// `{"box": [x1, y1, x2, y2]}` or `{"mask_rle": {"size": [h, w], "counts": "..."}}`
/// (COCO compressed RLE). A mask is decoded only when the region is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionSpec {
    /// `{"point": [x, y]}`.
    Point([f32; 2]),
    /// `{"box": [x1, y1, x2, y2]}`.
    Box([f32; 4]),
    /// `{"mask_rle": {"size": [h, w], "counts": "..."}}`.
    MaskRle(CocoRle),
}

impl RegionSpec {
    /// The Pipeline's region (an RLE is decoded here, bounded by
    /// `omg_masks::DEFAULT_DECODE_PIXELS`; its size is checked against the photo when
    /// the region is used).
    pub fn to_region(&self) -> Result<Region, OmgLlavaError> {
        Ok(match self {
            RegionSpec::Point([x, y]) => Region::point(*x, *y),
            RegionSpec::Box([x1, y1, x2, y2]) => Region::rect(*x1, *y1, *x2, *y2),
            RegionSpec::MaskRle(rle) => Region::Mask(BinaryMask::from_rle(rle)?),
        })
    }
}

/// A mask of a result, in the photo's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputMask {
    /// COCO compressed RLE (`{"size": [h, w], "counts": "..."}`).
    pub rle: CocoRle,
    /// `[x, y, width, height]`, absent for an empty mask.
    pub bbox: Option<[u32; 4]>,
    /// Pixels inside.
    pub area: u64,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// The class name (`panoptic`) or the region it was asked for (`interactive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The class index (`panoptic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_id: Option<usize>,
    /// The phrase the mask grounds (`ground`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase: Option<String>,
}

impl OutputMask {
    /// A mask of the Pipeline with no label or phrase.
    pub fn new(m: &MaskOutput) -> Self {
        let s = m.summary();
        Self {
            rle: s.segmentation,
            bbox: s.bbox,
            area: s.area,
            score: s.score,
            label: None,
            class_id: None,
            phrase: None,
        }
    }

    /// A mask with the phrase it grounds.
    pub fn with_phrase(m: &MaskOutput, phrase: Option<String>) -> Self {
        Self {
            phrase,
            ..Self::new(m)
        }
    }

    /// A panoptic segment's mask with its class.
    pub fn panoptic(s: &PanopticSegment) -> Self {
        Self {
            label: Some(s.label.clone()),
            class_id: Some(s.class_id),
            ..Self::new(&s.mask)
        }
    }

    /// The masks of a grounded answer's phrases, each with its phrase.
    pub fn grounded(phrases: &[GroundedPhrase]) -> Vec<Self> {
        phrases
            .iter()
            .filter_map(|p| {
                p.mask
                    .as_ref()
                    .map(|m| Self::with_phrase(m, Some(p.phrase.clone())))
            })
            .collect()
    }
}
