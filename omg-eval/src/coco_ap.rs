//! Mask average precision as pycocotools' `COCOeval` computes it with
//! `iouType="segm"`, one category, area range "all" and at most 100 detections per
//! image: the mask AP of the official GCG evaluation. Written from pycocotools'
//! definition:
//!
//! * **IoU** of a detection and a ground-truth mask is `I / U`; against a crowd
//!   ground truth it is `I / area(detection)`; `0` when `I == 0` (so two empty masks
//!   have IoU 0).
//! * **Per image**, detections are sorted by descending score (stable: ties keep their
//!   input order) and cut to the first 100; crowd ground truths are *ignored* and sorted
//!   after the others (stable). For each IoU threshold `t` of `0.50, 0.55, ..., 0.95`,
//!   each detection in turn takes the ground truth of highest IoU `>= min(t, 1 - 1e-10)`
//!   among those not yet taken (crowds can be taken many times; on equal IoU the later
//!   one wins; once it holds a regular ground truth it does not look at ignored ones).
//!   A detection matched to an ignored ground truth is ignored. An image with neither
//!   ground truth nor detections is skipped.
//! * **Accumulation**: the detections of all images (in ascending image id, each
//!   image's in its sorted order) are sorted again by descending score (stable);
//!   cumulative true and false positives give recall `tp / npig` (`npig`: ground truths
//!   not ignored) and precision `tp / (tp + fp + eps)`; precision is made
//!   non-increasing from the right, and read at the 101 recall thresholds
//!   `0.00, 0.01, ..., 1.00` (the first point whose recall reaches the threshold; 0
//!   past the last one). AP at `t` is the mean of those 101 values; AP is the mean over
//!   the ten thresholds. With no non-ignored ground truth pycocotools reports `-1`;
//!   here the value is `None`.
//!
//! pycocotools records a match by the ground truth's annotation id and treats id 0 as
//! "no match"; [`GroundTruth::id`] keeps that behaviour, so give ground truths ids from
//! 1, as COCO files do.

use std::collections::BTreeSet;

use omg_masks::BinaryMask;
use serde::{Deserialize, Serialize};

use crate::{EvalError, Overlap};

/// Number of IoU thresholds (`0.50:0.05:0.95`).
pub const IOU_THRESHOLDS: usize = 10;
/// Number of recall thresholds (`0.00:0.01:1.00`).
pub const RECALL_THRESHOLDS: usize = 101;
/// Detections kept per image.
pub const MAX_DETECTIONS: usize = 100;

/// The IoU thresholds, bit-identical to `np.linspace(.5, .95, 10)`.
pub fn iou_thresholds() -> [f64; IOU_THRESHOLDS] {
    linspace::<IOU_THRESHOLDS>(0.5, 0.95)
}

/// The recall thresholds, bit-identical to `np.linspace(0, 1, 101)`.
pub fn recall_thresholds() -> [f64; RECALL_THRESHOLDS] {
    linspace::<RECALL_THRESHOLDS>(0.0, 1.0)
}

/// numpy's `linspace(start, stop, N)`: `i * step + start`, the last value `stop`.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = i as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

/// A ground-truth instance mask.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Annotation id (non-zero; see the module docs).
    pub id: u64,
    /// The instance mask.
    pub mask: BinaryMask,
    /// COCO's `iscrowd`: the region is ignored, and its IoU is relative to the
    /// detection's area.
    pub iscrowd: bool,
}

/// A predicted instance mask with its confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The predicted mask.
    pub mask: BinaryMask,
    /// Confidence (the GCG evaluation gives every mask 1.0).
    pub score: f64,
}

/// One image of the evaluated set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CocoImage {
    /// Image id: images are accumulated in ascending id.
    pub id: u64,
    /// Ground-truth instances, in annotation-file order.
    pub ground_truth: Vec<GroundTruth>,
    /// Detections, in results-file order.
    pub detections: Vec<Detection>,
}

/// Mask AP results (area "all", 100 detections per image). A value is `None` where
/// pycocotools prints `-1` (no ground truth that is not ignored).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmScores {
    /// AP averaged over the IoU thresholds `0.50:0.95` (pycocotools' `stats[0]`).
    pub ap: Option<f64>,
    /// AP at IoU 0.50 (`stats[1]`): the GCG "mask AP50".
    pub ap50: Option<f64>,
    /// AP at IoU 0.75 (`stats[2]`).
    pub ap75: Option<f64>,
    /// Recall with 100 detections, averaged over the IoU thresholds (`stats[8]`).
    pub ar100: Option<f64>,
}

/// What one image contributes to the accumulation.
struct ImageEval {
    /// Scores of the kept detections, in sorted order.
    scores: Vec<f64>,
    /// Per threshold, per kept detection: matched to a ground truth with a non-zero id.
    matched: Vec<Vec<bool>>,
    /// Per threshold, per kept detection: ignored.
    ignored: Vec<Vec<bool>>,
    /// Ground truths that are not ignored.
    regular_gt: usize,
}

/// IoU of a detection against a ground truth, as pycocotools' `maskUtils.iou`.
fn segm_iou(dt: &BinaryMask, gt: &BinaryMask, crowd: bool, what: &str) -> Result<f64, EvalError> {
    let o = Overlap::of(dt, gt, what)?;
    if o.intersection == 0 {
        return Ok(0.0);
    }
    let u = if crowd { o.first_area } else { o.union };
    Ok(o.intersection as f64 / u as f64)
}

/// Stable order of `keys` ascending (numpy's mergesort `argsort`).
fn stable_order_by<K: PartialOrd>(keys: &[K]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|&a, &b| {
        keys[a]
            .partial_cmp(&keys[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx
}

fn evaluate_image(image: &CocoImage, thresholds: &[f64]) -> Result<Option<ImageEval>, EvalError> {
    if image.ground_truth.is_empty() && image.detections.is_empty() {
        return Ok(None);
    }
    let neg_scores: Vec<f64> = image.detections.iter().map(|d| -d.score).collect();
    let mut dt_order = stable_order_by(&neg_scores);
    dt_order.truncate(MAX_DETECTIONS);
    let gt_ignore_flags: Vec<u8> = image
        .ground_truth
        .iter()
        .map(|g| u8::from(g.iscrowd))
        .collect();
    let gt_order = stable_order_by(&gt_ignore_flags);
    let gts: Vec<&GroundTruth> = gt_order.iter().map(|&i| &image.ground_truth[i]).collect();
    let dts: Vec<&Detection> = dt_order.iter().map(|&i| &image.detections[i]).collect();

    let mut ious = vec![vec![0.0; gts.len()]; dts.len()];
    for (d, dt) in dts.iter().enumerate() {
        for (g, gt) in gts.iter().enumerate() {
            let what = format!(
                "image {}: detection {} and ground truth {}",
                image.id, dt_order[d], gt.id
            );
            ious[d][g] = segm_iou(&dt.mask, &gt.mask, gt.iscrowd, &what)?;
        }
    }

    let mut matched = Vec::with_capacity(thresholds.len());
    let mut ignored = Vec::with_capacity(thresholds.len());
    for &t in thresholds {
        let mut gt_taken = vec![false; gts.len()];
        let mut dt_matched = vec![false; dts.len()];
        let mut dt_ignored = vec![false; dts.len()];
        for d in 0..dts.len() {
            let mut best_iou = t.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (g, gt) in gts.iter().enumerate() {
                if gt_taken[g] && !gt.iscrowd {
                    continue;
                }
                if let Some(mi) = m
                    && !gts[mi].iscrowd
                    && gt.iscrowd
                {
                    break;
                }
                if ious[d][g] < best_iou {
                    continue;
                }
                best_iou = ious[d][g];
                m = Some(g);
            }
            if let Some(g) = m {
                dt_ignored[d] = gts[g].iscrowd;
                dt_matched[d] = gts[g].id != 0;
                gt_taken[g] = true;
            }
        }
        matched.push(dt_matched);
        ignored.push(dt_ignored);
    }
    Ok(Some(ImageEval {
        scores: dts.iter().map(|d| d.score).collect(),
        matched,
        ignored,
        regular_gt: gts.iter().filter(|g| !g.iscrowd).count(),
    }))
}

/// Evaluates mask AP over `images` (see the module docs).
///
/// Fails with [`EvalError::Invalid`] on a repeated image id or a score that is not
/// finite, and with [`EvalError::SizeMismatch`] when a detection and a ground truth of
/// the same image differ in size.
pub fn evaluate_segm(images: &[CocoImage]) -> Result<SegmScores, EvalError> {
    let mut ids = BTreeSet::new();
    for image in images {
        if !ids.insert(image.id) {
            return Err(EvalError::Invalid(format!(
                "image id {} repeated",
                image.id
            )));
        }
        if let Some(d) = image.detections.iter().position(|d| !d.score.is_finite()) {
            return Err(EvalError::Invalid(format!(
                "image {}: detection {d} has a score that is not finite",
                image.id
            )));
        }
    }
    let mut order: Vec<&CocoImage> = images.iter().collect();
    order.sort_by_key(|i| i.id);

    let thresholds = iou_thresholds();
    let mut evals = Vec::new();
    for image in order {
        if let Some(e) = evaluate_image(image, &thresholds)? {
            evals.push(e);
        }
    }
    let npig: usize = evals.iter().map(|e| e.regular_gt).sum();
    if evals.is_empty() || npig == 0 {
        return Ok(SegmScores {
            ap: None,
            ap50: None,
            ap75: None,
            ar100: None,
        });
    }

    let neg_scores: Vec<f64> = evals
        .iter()
        .flat_map(|e| e.scores.iter().map(|s| -s))
        .collect();
    let order = stable_order_by(&neg_scores);
    let rec_thrs = recall_thresholds();
    let mut ap_per_t = [0.0; IOU_THRESHOLDS];
    let mut recall_per_t = [0.0; IOU_THRESHOLDS];
    for t in 0..IOU_THRESHOLDS {
        let matched: Vec<bool> = evals.iter().flat_map(|e| e.matched[t].clone()).collect();
        let ignored: Vec<bool> = evals.iter().flat_map(|e| e.ignored[t].clone()).collect();
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        let mut rc = Vec::with_capacity(order.len());
        let mut pr = Vec::with_capacity(order.len());
        for &i in &order {
            if !ignored[i] {
                if matched[i] {
                    tp += 1.0;
                } else {
                    fp += 1.0;
                }
            }
            rc.push(tp / npig as f64);
            pr.push(tp / (fp + tp + f64::EPSILON));
        }
        recall_per_t[t] = rc.last().copied().unwrap_or(0.0);
        for i in (1..pr.len()).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        let mut sum = 0.0;
        for &r in &rec_thrs {
            // searchsorted(rc, r, side="left"): first index with rc >= r.
            let pi = rc.partition_point(|&x| x < r);
            match pr.get(pi) {
                Some(&p) => sum += p,
                None => break,
            }
        }
        ap_per_t[t] = sum / RECALL_THRESHOLDS as f64;
    }
    Ok(SegmScores {
        ap: Some(ap_per_t.iter().sum::<f64>() / IOU_THRESHOLDS as f64),
        ap50: Some(ap_per_t[0]),
        ap75: Some(ap_per_t[5]),
        ar100: Some(recall_per_t.iter().sum::<f64>() / IOU_THRESHOLDS as f64),
    })
}
