//! cIoU and gIoU of referring and reasoning segmentation, as the official OMG-LLaVA
//! evaluation computes them. Written from that definition:
//!
//! * Each sample is one referring sentence with one ground-truth mask (the union of the
//!   referred object's polygons) and the first mask the model predicted for it. A
//!   prediction is binarised with `sigmoid(logit) > 0.5` (see [`mask_from_logits`]).
//! * Per sample, `I` and `U` are the foreground pixels of the intersection and union of
//!   prediction and ground truth.
//! * cIoU is `ΣI / (ΣU + 1e-10)` over all samples.
//! * gIoU is the mean over samples of `I / (U + 1e-5)`, where a sample with `U == 0`
//!   (both masks empty) scores `1.0`.
//! * A sample where the model emitted no `[SEG]` token has no prediction: it adds
//!   nothing to `ΣI` or `ΣU`, but still counts in the gIoU denominator with a score of
//!   0. (The official loop skips such a sentence but divides by the number of
//!   sentences of the image.) An *empty* predicted mask, in contrast, is a prediction:
//!   its union is the ground truth's area, and it scores `1.0` when the ground truth is
//!   empty too. (The official script stops with an error when no sentence of an image
//!   has a prediction; here such samples simply score 0.)
//!
//! The ground truth here is binary ([`union_of`] the parts). The official loader adds
//! up the polygons of an annotation instead, so a pixel covered by two polygons of the
//! same annotation has the value 2, which its two-bin histogram then leaves out of the
//! ground truth; such overlaps are rare in the COCO referring sets.
//!
//! The official code sums `I`, `U` and the per-sample scores in 32-bit floats; this
//! accumulator sums the pixel counts exactly in integers and the scores in `f64`, which
//! agrees with it to the precision of those float sums (about 7 significant digits on
//! small sets).

use omg_masks::BinaryMask;
use serde::{Deserialize, Serialize};

use crate::overlap::check_same_size;
use crate::{EvalError, Overlap};

/// Added to `ΣU` in the cIoU denominator.
pub const CIOU_EPSILON: f64 = 1e-10;
/// Added to `U` in each sample's gIoU term.
pub const GIOU_EPSILON: f64 = 1e-5;

/// Binarises mask logits of shape `height x width` (row-major, pixel `[y, x]` at
/// `logits[y * width + x]`) as the official evaluation does: a pixel is foreground
/// when `sigmoid(logit) > 0.5`, with the sigmoid computed in 32-bit floats (so a
/// positive logit below about `6e-8` rounds to `0.5` and stays background).
///
/// Fails with [`EvalError::Mask`] if `logits` does not hold `height * width` values.
pub fn mask_from_logits(
    height: usize,
    width: usize,
    logits: &[f32],
) -> Result<BinaryMask, EvalError> {
    let bits = logits
        .iter()
        .map(|&x| 1.0f32 / (1.0 + (-x).exp()) > 0.5)
        .collect();
    BinaryMask::from_vec(height, width, bits).map_err(|source| EvalError::Mask {
        what: "mask logits".to_string(),
        source,
    })
}

/// The union of a sample's ground-truth masks (a referred object annotated with several
/// polygons, or several referred objects), as the ground truth of one sample.
///
/// Fails with [`EvalError::Invalid`] for an empty list (its size is unknown) and
/// [`EvalError::SizeMismatch`] when the masks differ in size.
pub fn union_of(masks: &[BinaryMask], what: &str) -> Result<BinaryMask, EvalError> {
    let Some(first) = masks.first() else {
        return Err(EvalError::Invalid(format!("{what}: no ground-truth mask")));
    };
    let mut out = first.array().clone();
    for m in &masks[1..] {
        check_same_size(first, m, what)?;
        ndarray::Zip::from(&mut out)
            .and(m.array())
            .for_each(|a, &b| *a |= b);
    }
    BinaryMask::from_array(out).map_err(|source| EvalError::Mask {
        what: what.to_string(),
        source,
    })
}

/// The scores of one referring sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReferringSample {
    /// Intersection and union with the ground truth; `None` when there was no
    /// prediction.
    pub overlap: Option<Overlap>,
    /// The sample's gIoU term: `I / (U + 1e-5)`, `1.0` if `U == 0`, `0.0` without a
    /// prediction.
    pub giou: f64,
}

impl ReferringSample {
    /// Scores one sample: `prediction` is the model's first predicted mask for the
    /// sentence, or `None` if it emitted no `[SEG]` token. `what` names the sample in
    /// the error returned when the sizes differ.
    pub fn score(
        prediction: Option<&BinaryMask>,
        ground_truth: &BinaryMask,
        what: &str,
    ) -> Result<Self, EvalError> {
        let Some(prediction) = prediction else {
            return Ok(Self {
                overlap: None,
                giou: 0.0,
            });
        };
        let overlap = Overlap::of(ground_truth, prediction, what)?;
        let giou = if overlap.union == 0 {
            1.0
        } else {
            overlap.intersection as f64 / (overlap.union as f64 + GIOU_EPSILON)
        };
        Ok(Self {
            overlap: Some(overlap),
            giou,
        })
    }
}

/// Final referring scores of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReferringScores {
    /// Cumulative IoU: `ΣI / (ΣU + 1e-10)`.
    pub ciou: f64,
    /// Mean per-sample IoU (see the module docs for empty masks and missing
    /// predictions).
    pub giou: f64,
    /// Number of samples (sentences).
    pub samples: u64,
    /// Samples without a prediction.
    pub missing_predictions: u64,
    /// `ΣI` in pixels.
    pub intersection: u64,
    /// `ΣU` in pixels.
    pub union: u64,
}

/// Accumulates cIoU and gIoU over referring samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferringAccumulator {
    intersection: u64,
    union: u64,
    giou_sum: f64,
    samples: u64,
    missing: u64,
}

impl ReferringAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample (see [`ReferringSample::score`]) and returns its scores.
    pub fn add(
        &mut self,
        prediction: Option<&BinaryMask>,
        ground_truth: &BinaryMask,
        what: &str,
    ) -> Result<ReferringSample, EvalError> {
        let sample = ReferringSample::score(prediction, ground_truth, what)?;
        match sample.overlap {
            Some(o) => {
                self.intersection += o.intersection;
                self.union += o.union;
            }
            None => self.missing += 1,
        }
        self.giou_sum += sample.giou;
        self.samples += 1;
        Ok(sample)
    }

    /// Number of samples added so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The scores over all samples added so far.
    ///
    /// Fails with [`EvalError::Empty`] when no sample was added (the official
    /// evaluation divides by the number of samples).
    pub fn scores(&self) -> Result<ReferringScores, EvalError> {
        if self.samples == 0 {
            return Err(EvalError::Empty("referring segmentation".to_string()));
        }
        Ok(ReferringScores {
            ciou: self.intersection as f64 / (self.union as f64 + CIOU_EPSILON),
            giou: self.giou_sum / self.samples as f64,
            samples: self.samples,
            missing_predictions: self.missing,
            intersection: self.intersection,
            union: self.union,
        })
    }
}
