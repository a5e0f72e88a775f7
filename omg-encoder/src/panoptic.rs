//! "Segment everything": OMG-Seg's panoptic output from the mask decoder's last stage.
//!
//! # What the official code does
//!
//! OMG-LLaVA's config (`omg_llava/omg_llava/configs/finetune/omg_llava_7b_finetune_8gpus.py` in
//! github.com/lxtGH/OMG-Seg) builds the OMG-Seg model with
//! `panoptic_fusion_head=dict(type=MaskFormerFusionHead, num_things_classes=80, num_stuff_classes=53)`
//! and `test_cfg=dict(panoptic_on=True, semantic_on=False, instance_on=True, max_per_image=100,
//! iou_thr=0.8, filter_low_score=True)` (`object_mask_thr` is not set: the head's default 0.8).
//! The panoptic path, read in the official sources, is:
//!
//! 1. **Logits** (`omg_llava/omg_llava/model/omg_seg/mask2former_vid_semanticsam.py`,
//!    `Mask2FormerVideoSemSamHead`). `_forward_head` computes the open-vocabulary class logits
//!    `[B, Q, K+1]` (`forward_logit`: the last class embedding is the all-zero `back_token`, so the
//!    background logit is always 0) and, because the config sets `loss_iou`, **appends the `iou_embed`
//!    output as one more column** (`cls_pred = torch.cat([cls_pred, iou_pred], dim=-1)`).
//!    `predict` **strips that IoU column again** (`cls_score[..., :-1]`), returns it separately as
//!    `iou_results`, takes the last stage only, and **upsamples the mask logits of all `Q` queries**
//!    to `batch_input_shape` with `F.interpolate(mode='bilinear', align_corners=False)`.
//!    This crate's [`StagePrediction`] already keeps `iou` apart from `cls_logits`, so `cls_logits` is
//!    exactly what the fusion head receives.
//! 2. **Fusion** (`omg_llava/omg_llava/model/omg_seg/mask2former_vid.py`, `Mask2formerVideo.predict`
//!    with `rescale=True`) calls `panoptic_fusion_head.predict(mask_cls, mask_pred, data_samples,
//!    iou_results=..., rescale=True)`. mmdet 3.1.0's `MaskFormerFusionHead.predict`
//!    (`mmdet/models/seg_heads/panoptic_fusion_heads/maskformer_fusion_head.py`) swallows
//!    `iou_results` in `**kwargs` (unused; only OMG-Seg's own variant
//!    `seg/models/fusion_head/omgseg_fusionhead.py::OMGFusionHead` reads it, for `proposal_on`, and
//!    its `panoptic_postprocess` is identical), crops the batch padding `[:, :img_h, :img_w]`, resizes
//!    to `ori_shape` with bilinear `align_corners=False`, then runs `panoptic_postprocess` per image.
//!    `OVERLAPPING` is `None` in OMG-LLaVA, so the CLIP re-scoring `open_voc_inference` is skipped
//!    (OMG-Seg's `tools/test.py` sets it for its own open-vocabulary evaluation).
//! 3. **Shapes.** OMG-LLaVA's `OMGSegVisualEncoder.prepare_input`
//!    (`omg_llava/omg_llava/model/omg_seg/omg_seg_visual_encoder.py`) sets `batch_input_shape`,
//!    `img_shape` and `ori_shape` all to the model input size (1024×1024, the `expand2square`'d and
//!    resized image), so the crop and the rescale are identities: **the official panoptic map is the
//!    1024×1024 model frame**, padding included. (In OMG-Seg's own mmdet pipeline the image is resized
//!    keeping its ratio and padded at the bottom/right, hence the crop-then-resize.) Note that OMG-LLaVA's
//!    chat path never calls the fusion head: `OMGSegVisualEncoder.forward` runs `panoptic_head.predict`
//!    and its own soft `panoptic_postprocess` to build pixel queries; "segment everything" is the
//!    inherited `Mask2formerVideo.predict`.
//! 4. **`panoptic_postprocess`** (mmdet 3.1.0, same file):
//!    `scores, labels = softmax(mask_cls).max(-1)`; `keep = (labels != K) & (scores > object_mask_thr)`;
//!    `prob = scores[keep] · sigmoid(masks[keep])`; `ids = prob.argmax(0)`; then for each kept query
//!    `k` in query order: `mask_area = #(ids == k)`, `original_area = #(sigmoid(mask_k) >= 0.5)`, and
//!    with `filter_low_score` the painted region is `(ids == k) & (sigmoid(mask_k) >= 0.5)` (the area
//!    test uses the **unfiltered** `mask_area`). Only if `mask_area > 0 and original_area > 0` and
//!    `mask_area / original_area >= iou_thr` is the region painted: stuff as `class` (so several stuff
//!    queries of one class merge), things as `class + instance_id · 1000` with `instance_id` counting
//!    1, 2, ... over the painted things (a thing whose filtered region is empty still takes an id).
//!    Unpainted pixels hold `K` (`num_classes`). `instance_on` additionally produces mmdet's top-100
//!    instance list (`instance_postprocess`), which this module does not port.
//!
//! # This port
//!
//! [`panoptic_segmentation`] follows step 4 exactly, with one change of order that does not change the
//! result: it **filters first and upsamples only the kept queries' logits** (the official head upsamples
//! all 300 queries to 1024×1024 before the fusion head discards most of them; bilinear interpolation is
//! per channel, so selecting before or after is identical). The upsampling runs on the backend in
//! bounded chunks of queries, with a running first-index argmax, so memory stays bounded for large
//! original images. Details that keep it exact:
//!
//! - `score > object_mask_thr` compares in `f32` (torch casts the Python float to the tensor dtype);
//!   `mask_area / original_area < iou_thr` in `f64`, like Python.
//! - The sigmoid is `1 / (1 + exp(−x))` (torch's formula; burn's default `sigmoid` is
//!   `exp(−log(1 + exp(−x)))`, a few ulps off in the tails).
//! - `argmax` ties go to the **first** kept query, as in torch (this matters: where every kept mask
//!   underflows to 0 all probabilities tie, and those pixels count in the first kept query's
//!   `mask_area`).
//! - Softmax, sigmoid and interpolation run in the backend's float precision: values can differ from
//!   torch by a few ulps, so a decision that sits exactly on a threshold or a near-tie of two
//!   probabilities can, in principle, go the other way.
//!
//! ## Output frames ([`PanopticFrame`])
//!
//! - [`PanopticFrame::Model`]: the model input frame (`height × width`, 1024×1024 for the released
//!   model) — the official output, padding included.
//! - [`PanopticFrame::Original`]: the original `W × H` image. The logits are upsampled **once**,
//!   bilinearly (`align_corners = false`), straight to the padded square `S × S` (`S = max(W, H)`), and
//!   the centred padding is cropped: rows `pad_y .. pad_y + H`, columns `pad_x .. pad_x + W`
//!   ([`SquareTransform`]'s offsets, the region `expand2square` pasted the image into). The postprocess
//!   then runs on those `W × H` pixels only. This is **not** an official path (the official map is
//!   1024×1024 of the padded square); mapping that map back would need a second resampling (1024 → S)
//!   of an already-thresholded label map, with a crop at non-integer 1024-frame coordinates. The port
//!   instead samples the logits where the original pixels are, and the padding never takes part in the
//!   argmax, the areas or the overlap test, so segment areas and the `iou_thr` decisions count original
//!   pixels, not 1024-frame pixels (decisions can therefore differ slightly from the 1024 map near the
//!   thresholds, and a query living only in the padding finds no pixels and is dropped).
//!
//! ## Segment ids
//!
//! [`PanopticResult::segment_map`] holds `0` for "no segment" and otherwise a segment id `1..=n`, the
//! index + 1 of the segment in [`PanopticResult::segments`]. Ids are given in the order the official
//! loop paints (query order; a stuff class gets its id when its first query is painted), and segments
//! that end up with no pixel (possible with `filter_low_score`) are left out before numbering. mmdet's
//! encoding is recovered with [`PanopticResult::to_mmdet_map`] (`class + instance_id · 1000` for things,
//! `class` for stuff, `num_classes` for none), using [`PanopticSegment::instance_id`], which keeps the
//! official counter (so instance ids can have gaps where a thing painted nothing).

use std::collections::HashMap;

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, TensorData, activation::softmax, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::coco_classes;
use crate::error::EncoderError;
use crate::mask_decoder::StagePrediction;
use crate::preprocess::SquareTransform;

/// mmdet's `INSTANCE_OFFSET` (`mmdet/evaluation/functional/panoptic_utils.py`): a thing pixel of the
/// official map holds `class + instance_id · INSTANCE_OFFSET`.
pub const INSTANCE_OFFSET: u32 = 1000;

/// Most upsampled logits (elements) held per chunk of queries: 2²⁴ floats (64 MiB in `f32`).
const CHUNK_ELEMENTS: usize = 1 << 24;

/// Most queries accepted: query indices are carried as exact integers in `f32` on the backend.
const MAX_QUERIES: usize = 1 << 24;

/// Thresholds and class split of the panoptic fusion (`MaskFormerFusionHead` + OMG-LLaVA's `test_cfg`).
///
/// Deserialises with defaults for missing fields and rejects unknown ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PanopticConfig {
    /// A query is kept when its best class is not the background and its softmax score is above
    /// this (`object_mask_thr`, default 0.8; compared in `f32`).
    pub object_mask_thr: f64,
    /// A kept query is painted only if `argmax area / area of (sigmoid ≥ 0.5)` is at least this
    /// (`iou_thr`, 0.8 in OMG-LLaVA's config).
    pub iou_thr: f64,
    /// Paint only the pixels where the query's own mask is ≥ 0.5 (`filter_low_score`, `true` in
    /// OMG-LLaVA's config).
    pub filter_low_score: bool,
    /// Number of "thing" classes: class ids `0..num_things` get instance ids (80 for COCO).
    pub num_things: usize,
    /// Number of "stuff" classes, ids `num_things..num_things + num_stuff` (53 for COCO).
    pub num_stuff: usize,
}

impl Default for PanopticConfig {
    /// The official values: `object_mask_thr = 0.8`, `iou_thr = 0.8`, `filter_low_score = true`,
    /// 80 things, 53 stuff.
    fn default() -> Self {
        Self {
            object_mask_thr: 0.8,
            iou_thr: 0.8,
            filter_low_score: true,
            num_things: coco_classes::NUM_THINGS,
            num_stuff: coco_classes::NUM_STUFF,
        }
    }
}

impl PanopticConfig {
    /// `num_things + num_stuff`; the class logits have one more column (the background).
    pub fn num_classes(&self) -> usize {
        self.num_things.saturating_add(self.num_stuff)
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`EncoderError::Config`] when `object_mask_thr` is not a finite number in `[0, 1]`, `iou_thr` is
    /// not finite and non-negative, there are no classes, or the class count overflows.
    pub fn validate(&self) -> Result<(), EncoderError> {
        if !self.object_mask_thr.is_finite() || !(0.0..=1.0).contains(&self.object_mask_thr) {
            return Err(EncoderError::Config(format!(
                "panoptic object_mask_thr must be a finite number in [0, 1], got {}",
                self.object_mask_thr
            )));
        }
        if !self.iou_thr.is_finite() || self.iou_thr < 0.0 {
            return Err(EncoderError::Config(format!(
                "panoptic iou_thr must be a finite non-negative number, got {}",
                self.iou_thr
            )));
        }
        let total = self.num_things.checked_add(self.num_stuff).ok_or_else(|| {
            EncoderError::Config("panoptic num_things + num_stuff overflows".into())
        })?;
        if total == 0 {
            return Err(EncoderError::Config(
                "panoptic num_things + num_stuff must be at least 1".into(),
            ));
        }
        if u32::try_from(total).is_err() {
            return Err(EncoderError::Config(format!(
                "panoptic class count {total} does not fit in u32"
            )));
        }
        Ok(())
    }
}

/// Where the panoptic map is produced (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PanopticFrame {
    /// The model input frame of `height × width` pixels (1024×1024 for the released model, padding
    /// included): the official output.
    Model {
        /// Rows of the map.
        height: usize,
        /// Columns of the map.
        width: usize,
    },
    /// The original image: logits upsampled to the padded square `side × side`, then the centred
    /// padding cropped, giving an `orig_width × orig_height` map.
    Original(SquareTransform),
}

impl PanopticFrame {
    /// The model frame of a preprocessed image: `target × target`.
    pub fn model_input(transform: &SquareTransform) -> Self {
        Self::Model {
            height: transform.target as usize,
            width: transform.target as usize,
        }
    }

    /// `(height, width)` of the map this frame produces.
    pub fn output_size(&self) -> (usize, usize) {
        match *self {
            Self::Model { height, width } => (height, width),
            Self::Original(t) => (t.orig_height as usize, t.orig_width as usize),
        }
    }

    /// `(upsampled height, upsampled width, crop)`, crop = `(y0, x0)` of the output window.
    fn plan(&self) -> Result<(usize, usize, (usize, usize)), EncoderError> {
        match *self {
            Self::Model { height, width } => {
                if height == 0 || width == 0 {
                    return Err(EncoderError::Input(format!(
                        "the panoptic model frame must be non-empty, got {height}x{width}"
                    )));
                }
                Ok((height, width, (0, 0)))
            }
            Self::Original(t) => {
                let consistent = t.orig_width > 0
                    && t.orig_height > 0
                    && t.side == t.orig_width.max(t.orig_height)
                    && u64::from(t.pad_x) + u64::from(t.orig_width) <= u64::from(t.side)
                    && u64::from(t.pad_y) + u64::from(t.orig_height) <= u64::from(t.side);
                if !consistent {
                    return Err(EncoderError::Input(format!(
                        "inconsistent square transform for the panoptic original frame: {t:?}"
                    )));
                }
                Ok((
                    t.side as usize,
                    t.side as usize,
                    (t.pad_y as usize, t.pad_x as usize),
                ))
            }
        }
    }
}

/// One segment of the panoptic map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanopticSegment {
    /// The value of this segment's pixels in [`PanopticResult::segment_map`] (`1..=n`).
    pub id: u32,
    /// Class index (column of the class logits).
    pub class_id: usize,
    /// The COCO-panoptic class name when the classifier has the 133 COCO classes, else `class_<id>`.
    pub label: String,
    /// Whether the class is a thing (`class_id < num_things`); stuff segments merge every painted query
    /// of their class.
    pub is_thing: bool,
    /// The official instance counter for things (1, 2, ... over the painted things, gaps where a
    /// thing painted no pixel); 0 for stuff. The mmdet map value is
    /// `class_id + instance_id · INSTANCE_OFFSET`.
    pub instance_id: u32,
    /// The softmax class score of the query (for a merged stuff segment, the highest of its queries).
    pub score: f32,
    /// Number of pixels of the segment in the map.
    pub area: u64,
    /// The decoder queries that painted the segment, in order (one for things).
    pub queries: Vec<usize>,
}

/// The panoptic segmentation of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanopticResult {
    /// Columns of the map.
    pub width: usize,
    /// Rows of the map.
    pub height: usize,
    /// `num_things + num_stuff` of the config (mmdet's "no segment" value).
    pub num_classes: usize,
    /// The segments, `segments[i].id == i + 1`.
    pub segments: Vec<PanopticSegment>,
    /// Row-major `height × width` map: 0 = no segment, else the segment id.
    pub segment_map: Vec<u32>,
}

impl PanopticResult {
    /// The segment with id `id` (`None` for 0 or an unknown id).
    pub fn segment(&self, id: u32) -> Option<&PanopticSegment> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.segments.get(i)
    }

    /// The segment id at column `x`, row `y` (`None` outside the map).
    pub fn id_at(&self, x: usize, y: usize) -> Option<u32> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.segment_map.get(y * self.width + x).copied()
    }

    /// The map in mmdet's encoding (`pred_panoptic_seg.sem_seg`): `class + instance_id · 1000` for
    /// things, `class` for stuff, `num_classes` where there is no segment.
    ///
    /// `None` when the encoding is ambiguous (`num_classes >= INSTANCE_OFFSET`) or a value overflows.
    pub fn to_mmdet_map(&self) -> Option<Vec<u32>> {
        let void = u32::try_from(self.num_classes).ok()?;
        if void >= INSTANCE_OFFSET {
            return None;
        }
        let mut lut = Vec::with_capacity(self.segments.len() + 1);
        lut.push(void);
        for s in &self.segments {
            let class = u32::try_from(s.class_id).ok()?;
            lut.push(
                s.instance_id
                    .checked_mul(INSTANCE_OFFSET)?
                    .checked_add(class)?,
            );
        }
        self.segment_map
            .iter()
            .map(|&id| lut.get(id as usize).copied())
            .collect()
    }
}

/// The label of class `class_id` for a classifier with `num_classes` classes: the COCO-panoptic name if
/// `num_classes` is 133, else `class_<id>`.
pub fn class_label(class_id: usize, num_classes: usize) -> String {
    match coco_classes::class_name(class_id) {
        Some(name) if num_classes == coco_classes::NUM_CLASSES => name.to_string(),
        _ => format!("class_{class_id}"),
    }
}

/// [`panoptic_segmentation`] of image `image` of a decoder stage (use `DecoderOutput.stages.last()`,
/// the official choice).
///
/// # Errors
/// As [`panoptic_segmentation`], plus [`EncoderError::Input`] when `image` is out of range and
/// [`EncoderError::ShapeMismatch`] when the stage's logits disagree on the batch size.
pub fn panoptic_from_stage<B: Backend>(
    stage: &StagePrediction<B>,
    image: usize,
    frame: PanopticFrame,
    config: &PanopticConfig,
) -> Result<PanopticResult, EncoderError> {
    let cls_logits = stage.cls_logits.as_ref().ok_or_else(|| {
        EncoderError::Input("this decoder stage has no class logits (see StageHeads)".into())
    })?;
    let [b, q, k1] = cls_logits.dims();
    let mask_logits = stage.mask_logits.as_ref().ok_or_else(|| {
        EncoderError::Input("this decoder stage has no mask logits (see StageHeads)".into())
    })?;
    let [bm, qm, h, w] = mask_logits.dims();
    if bm != b {
        return Err(EncoderError::ShapeMismatch {
            what: "mask_logits (batch)".into(),
            expected: format!("[{b}, Q, h, w] (the batch of cls_logits)"),
            actual: vec![bm, qm, h, w],
        });
    }
    if image >= b {
        return Err(EncoderError::Input(format!(
            "image index {image} is out of range for a batch of {b}"
        )));
    }
    let cls = cls_logits
        .clone()
        .slice([image..image + 1, 0..q, 0..k1])
        .reshape([q, k1]);
    let masks = mask_logits
        .clone()
        .slice([image..image + 1, 0..qm, 0..h, 0..w])
        .reshape([qm, h, w]);
    panoptic_segmentation(cls, masks, frame, config)
}

/// OMG-Seg's panoptic ("segment everything") output of one image, exactly as mmdet 3.1.0's
/// `MaskFormerFusionHead.panoptic_postprocess` computes it (see the module docs), in `frame`.
///
/// - `cls_logits`: `[Q, K+1]`, the last column the background (`K = config.num_classes()`); the IoU
///   head's output must not be appended.
/// - `mask_logits`: `[Q, h, w]` mask logits (the mask-feature resolution, `H/4 × W/4` of the input).
///
/// Only the kept queries' logits are upsampled. `Q = 0` gives an empty map.
///
/// # Errors
/// [`EncoderError::Config`] for an invalid `config`; [`EncoderError::ShapeMismatch`] when
/// `cls_logits` does not have `K+1` columns, `mask_logits` has another `Q` or an empty `h × w`;
/// [`EncoderError::Input`] for an empty or inconsistent `frame` or an upsampled frame of more than
/// `i32::MAX` pixels.
pub fn panoptic_segmentation<B: Backend>(
    cls_logits: Tensor<B, 2>,
    mask_logits: Tensor<B, 3>,
    frame: PanopticFrame,
    config: &PanopticConfig,
) -> Result<PanopticResult, EncoderError> {
    segment_chunked(cls_logits, mask_logits, frame, config, CHUNK_ELEMENTS)
}

/// [`panoptic_segmentation`] with at most `chunk_elements` upsampled logits per chunk of queries (at
/// least one query per chunk).
fn segment_chunked<B: Backend>(
    cls_logits: Tensor<B, 2>,
    mask_logits: Tensor<B, 3>,
    frame: PanopticFrame,
    config: &PanopticConfig,
    chunk_elements: usize,
) -> Result<PanopticResult, EncoderError> {
    config.validate()?;
    let num_classes = config.num_classes();
    let [q, k1] = cls_logits.dims();
    let [qm, h, w] = mask_logits.dims();
    if k1 != num_classes + 1 {
        return Err(EncoderError::ShapeMismatch {
            what: "cls_logits".into(),
            expected: format!(
                "[Q, {}] ({} things + {} stuff + 1 background column, no IoU column)",
                num_classes + 1,
                config.num_things,
                config.num_stuff
            ),
            actual: vec![q, k1],
        });
    }
    if qm != q || h == 0 || w == 0 {
        return Err(EncoderError::ShapeMismatch {
            what: "mask_logits".into(),
            expected: format!("[{q}, h > 0, w > 0] (one mask per query of cls_logits)"),
            actual: vec![qm, h, w],
        });
    }
    let (up_h, up_w, (y0, x0)) = frame.plan()?;
    let (out_h, out_w) = frame.output_size();
    let too_large = || {
        EncoderError::Input(format!(
            "the panoptic map {up_w}x{up_h} is too large to index"
        ))
    };
    // Backends may index and count with i32; query ids travel as exact f32 integers.
    let limit = i32::MAX as usize;
    let per_query = up_h.checked_mul(up_w).ok_or_else(too_large)?;
    if per_query > limit {
        return Err(too_large());
    }
    let pixels = out_h * out_w; // <= per_query: the output is a crop of the upsampled frame
    if q > MAX_QUERIES {
        return Err(EncoderError::ShapeMismatch {
            what: "cls_logits (queries)".into(),
            expected: format!("at most {MAX_QUERIES} queries"),
            actual: vec![q, k1],
        });
    }

    let mut result = PanopticResult {
        width: out_w,
        height: out_h,
        num_classes,
        segments: Vec::new(),
        segment_map: vec![0; pixels],
    };
    if q == 0 {
        return Ok(result);
    }

    // scores, labels = softmax(mask_cls).max(-1); keep = labels != K & scores > thr.
    let probs: Vec<f32> = softmax(cls_logits, 1).into_data().iter::<f32>().collect();
    let thr = config.object_mask_thr as f32;
    let mut kept: Vec<(usize, usize, f32)> = Vec::new(); // (query, class, score)
    for (query, row) in probs.chunks_exact(k1).enumerate() {
        let (label, score) = row_max(row);
        if label != num_classes && score > thr {
            kept.push((query, label, score));
        }
    }
    if kept.is_empty() {
        return Ok(result);
    }

    let fields = kept_fields(
        &kept,
        mask_logits,
        (up_h, up_w),
        (y0, x0),
        (out_h, out_w),
        chunk_elements,
    );
    paint(&mut result, &kept, &fields, config);
    Ok(result)
}

/// torch's `max(-1)` of one row: the first maximum, NaN counting as the maximum.
fn row_max(row: &[f32]) -> (usize, f32) {
    let mut best = (0, row[0]);
    for (i, &v) in row.iter().enumerate().skip(1) {
        if best.1.is_nan() {
            break;
        }
        if v.is_nan() || v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// What the painting loop needs from the kept queries' upsampled masks.
struct KeptFields {
    /// Per pixel: index into `kept` of the first maximum of `score · sigmoid` (`usize::MAX` if none).
    winner: Vec<usize>,
    /// Per pixel: whether the winner's own `sigmoid ≥ 0.5`.
    winner_valid: Vec<bool>,
    /// Per kept query: pixels with `sigmoid ≥ 0.5` (`original_area`).
    original_area: Vec<u64>,
}

/// Upsamples the kept queries' logits chunk by chunk on the backend and reduces them to the per-pixel
/// winner (first-index argmax, carried across chunks with a strict `>`), its validity and the areas.
fn kept_fields<B: Backend>(
    kept: &[(usize, usize, f32)],
    mask_logits: Tensor<B, 3>,
    (up_h, up_w): (usize, usize),
    (y0, x0): (usize, usize),
    (out_h, out_w): (usize, usize),
    chunk_elements: usize,
) -> KeptFields {
    let device = mask_logits.device();
    let [_, h, w] = mask_logits.dims();
    let n = kept.len();
    let p = out_h * out_w;
    let chunk = (chunk_elements / (up_h * up_w).max(1)).clamp(1, n);

    let mut original_area = Vec::with_capacity(n);
    let mut running: Option<(Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>)> = None; // max, id, valid
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let c = end - start;
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                kept[start..end]
                    .iter()
                    .map(|&(query, _, _)| query as i64)
                    .collect::<Vec<_>>(),
                [c],
            ),
            &device,
        );
        let m = mask_logits.clone().select(0, idx);
        let up = if (h, w) == (up_h, up_w) {
            m
        } else {
            interpolate(
                m.reshape([c, 1, h, w]),
                [up_h, up_w],
                InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
            )
            .reshape([c, up_h, up_w])
        };
        let up = if (out_h, out_w) == (up_h, up_w) {
            up
        } else {
            up.slice([0..c, y0..y0 + out_h, x0..x0 + out_w])
        };
        let logits = up.reshape([c, p]);
        // torch's sigmoid formula, 1 / (1 + exp(-x)).
        let sig = logits.neg().exp().add_scalar(1.0).recip();
        let on = sig.clone().greater_equal_elem(0.5);
        original_area.extend(
            on.int()
                .sum_dim(1)
                .into_data()
                .iter::<i64>()
                .map(|a| a.max(0) as u64),
        );

        let scores = Tensor::<B, 2>::from_data(
            TensorData::new(
                kept[start..end]
                    .iter()
                    .map(|&(_, _, s)| s)
                    .collect::<Vec<_>>(),
                [c, 1],
            ),
            &device,
        );
        let prob = sig.clone() * scores;
        let cmax = prob.clone().max_dim(0); // [1, p]
        // First index of the maximum: max over rows of (is_max · (c − k)), then k = c − that.
        let rank = Tensor::<B, 2>::from_data(
            TensorData::new((0..c).map(|k| (c - k) as f32).collect::<Vec<_>>(), [c, 1]),
            &device,
        );
        let is_max = prob.equal(cmax.clone().expand([c, p])).float();
        let local = (is_max * rank)
            .max_dim(0)
            .neg()
            .add_scalar(c as f32)
            .clamp(0.0, (c - 1) as f32); // [1, p]; clamp only matters for NaN logits
        let valid = sig
            .gather(0, local.clone().int())
            .greater_equal_elem(0.5)
            .float();
        let global = local.add_scalar(start as f32);
        running = Some(match running {
            None => (cmax, global, valid),
            Some((run_max, run_id, run_valid)) => {
                let better = cmax.clone().greater(run_max.clone());
                (
                    run_max.mask_where(better.clone(), cmax),
                    run_id.mask_where(better.clone(), global),
                    run_valid.mask_where(better, valid),
                )
            }
        });
    }

    let (winner, winner_valid) = match running {
        Some((_, id, valid)) => (
            id.into_data()
                .iter::<f32>()
                .map(|v| {
                    if v >= 0.0 && (v as usize) < n {
                        v as usize
                    } else {
                        usize::MAX
                    }
                })
                .collect(),
            valid.into_data().iter::<f32>().map(|v| v > 0.5).collect(),
        ),
        None => (vec![usize::MAX; p], vec![false; p]),
    };
    KeptFields {
        winner,
        winner_valid,
        original_area,
    }
}

/// The official painting loop over the kept queries, then compaction of the segment ids.
fn paint(
    result: &mut PanopticResult,
    kept: &[(usize, usize, f32)],
    fields: &KeptFields,
    config: &PanopticConfig,
) {
    let n = kept.len();
    // Pixels grouped by winner (counting sort): pixels of k are order[offsets[k]..offsets[k + 1]].
    let mut offsets = vec![0usize; n + 1];
    for &k in &fields.winner {
        if k < n {
            offsets[k + 1] += 1;
        }
    }
    for k in 0..n {
        offsets[k + 1] += offsets[k];
    }
    let mut fill = offsets.clone();
    let mut order = vec![0usize; offsets[n]];
    for (px, &k) in fields.winner.iter().enumerate() {
        if k < n {
            order[fill[k]] = px;
            fill[k] += 1;
        }
    }

    let map = &mut result.segment_map;
    let mut segments: Vec<PanopticSegment> = Vec::new();
    let mut stuff_of_class: HashMap<usize, usize> = HashMap::new();
    let mut instance_id = 1u32;
    for (k, &(query, class, score)) in kept.iter().enumerate() {
        let pixels = &order[offsets[k]..offsets[k + 1]];
        let mask_area = pixels.len() as u64;
        let original_area = fields.original_area.get(k).copied().unwrap_or(0);
        if mask_area == 0 || original_area == 0 {
            continue;
        }
        if (mask_area as f64) / (original_area as f64) < config.iou_thr {
            continue;
        }
        let is_thing = class < config.num_things;
        let index = if is_thing {
            segments.push(new_segment(class, instance_id, score, query, config));
            instance_id = instance_id.saturating_add(1);
            segments.len() - 1
        } else if let Some(&i) = stuff_of_class.get(&class) {
            let s = &mut segments[i];
            s.score = s.score.max(score);
            s.queries.push(query);
            i
        } else {
            segments.push(new_segment(class, 0, score, query, config));
            stuff_of_class.insert(class, segments.len() - 1);
            segments.len() - 1
        };
        let value = index as u32 + 1;
        for &px in pixels {
            if !config.filter_low_score || fields.winner_valid[px] {
                map[px] = value;
            }
        }
    }

    // Areas, then drop empty segments and renumber 1..=n in painting order.
    let mut area = vec![0u64; segments.len() + 1];
    for &v in map.iter() {
        area[v as usize] += 1;
    }
    let mut remap = vec![0u32; segments.len() + 1];
    let mut kept_segments = Vec::with_capacity(segments.len());
    for (i, mut s) in segments.into_iter().enumerate() {
        let a = area[i + 1];
        if a == 0 {
            continue;
        }
        s.area = a;
        s.id = kept_segments.len() as u32 + 1;
        remap[i + 1] = s.id;
        kept_segments.push(s);
    }
    for v in map.iter_mut() {
        *v = remap[*v as usize];
    }
    result.segments = kept_segments;
}

fn new_segment(
    class: usize,
    instance_id: u32,
    score: f32,
    query: usize,
    config: &PanopticConfig,
) -> PanopticSegment {
    PanopticSegment {
        id: 0,
        class_id: class,
        label: class_label(class, config.num_classes()),
        is_thing: class < config.num_things,
        instance_id,
        score,
        area: 0,
        queries: vec![query],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// Chunking the kept queries (running first-index argmax across chunks) changes nothing, including
    /// for pixels where every mask underflows to 0 (a tie across all chunks).
    #[test]
    fn chunking_is_exact() {
        let (q, k, h, w) = (9usize, 5usize, 8usize, 8usize);
        let mut state = 11u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let mut cls = Vec::new();
        for i in 0..q {
            for j in 0..k {
                cls.push(if j == i % k { 5.0 } else { next() });
            }
            cls.push(0.0);
        }
        let mut masks: Vec<f32> = (0..q * h * w).map(|_| 6.0 * next()).collect();
        for m in masks.chunks_exact_mut(h * w) {
            m[..2 * w].fill(-200.0); // the first two rows tie at exactly 0
        }
        let device = Default::default();
        let cls = Tensor::<Flex, 2>::from_data(TensorData::new(cls, [q, k + 1]), &device);
        let masks = Tensor::<Flex, 3>::from_data(TensorData::new(masks, [q, h, w]), &device);
        let config = PanopticConfig {
            num_things: 3,
            num_stuff: 2,
            iou_thr: 0.3,
            ..Default::default()
        };
        for frame in [
            PanopticFrame::Model {
                height: 24,
                width: 20,
            },
            PanopticFrame::Original(SquareTransform::new(17, 30, 64)),
        ] {
            let whole =
                segment_chunked(cls.clone(), masks.clone(), frame, &config, usize::MAX).unwrap();
            assert!(!whole.segments.is_empty());
            for chunk in [1, 700, 2000] {
                let r = segment_chunked(cls.clone(), masks.clone(), frame, &config, chunk).unwrap();
                assert_eq!(r, whole, "chunk {chunk}");
            }
        }
    }

    #[test]
    fn row_max_matches_torch() {
        assert_eq!(row_max(&[0.1, 0.5, 0.5, 0.2]), (1, 0.5));
        let (i, v) = row_max(&[0.1, f32::NAN, 0.9]);
        assert_eq!(i, 1);
        assert!(v.is_nan());
        assert_eq!(row_max(&[0.7]), (0, 0.7));
    }

    #[test]
    fn labels() {
        assert_eq!(class_label(0, 133), "person");
        assert_eq!(class_label(131, 133), "wall-other-merged");
        assert_eq!(class_label(0, 5), "class_0");
        assert_eq!(class_label(200, 133), "class_200");
    }

    #[test]
    fn config_validation() {
        assert!(PanopticConfig::default().validate().is_ok());
        for bad in [
            PanopticConfig {
                object_mask_thr: f64::NAN,
                ..Default::default()
            },
            PanopticConfig {
                object_mask_thr: 1.5,
                ..Default::default()
            },
            PanopticConfig {
                iou_thr: -0.1,
                ..Default::default()
            },
            PanopticConfig {
                num_things: 0,
                num_stuff: 0,
                ..Default::default()
            },
            PanopticConfig {
                num_things: usize::MAX,
                num_stuff: 1,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(EncoderError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
