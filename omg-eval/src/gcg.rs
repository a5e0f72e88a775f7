//! Grounded conversation generation (GCG): the mask mIoU and the phrase-grounded mask
//! recall of the official GCG evaluation (GLaMM's, which OMG-LLaVA uses), written from
//! its definition. The mask AP of the same evaluation is in [`crate::coco_ap`], the
//! caption metrics in [`crate::cider`] and [`crate::meteor`].
//!
//! **IoU.** Two masks' IoU is `I / U`; when both are empty it is undefined (`NaN`, the
//! official `0 / 0` in numpy), which matters below.
//!
//! **mIoU.** Per image, the IoU matrix of predicted (rows) against ground-truth
//! (columns) masks is paired greedily: while the matrix is not empty and its maximum is
//! `> 0`, the first maximum in row-major order is taken as a pair and its row and
//! column are deleted. A `NaN` anywhere in the remaining matrix makes its maximum `NaN`
//! and ends the pairing. The image scores the mean IoU of its pairs, `0.0` without a
//! pair (no prediction, no ground truth, or no overlap); unmatched masks are not
//! penalised. The mIoU is the mean over all images of the split.
//!
//! **Recall.** Per image, the IoU matrix of ground-truth (rows) against predicted
//! (columns) masks and the phrase-similarity matrix of ground-truth phrases (rows)
//! against predicted phrases (columns) drive a greedy matching: repeatedly take the
//! first maximum of the IoU matrix (the first `NaN` if there is one, as numpy's
//! `argmax`); if its IoU is `< 0.5` or the similarity of the same cell is `< 0.5` the
//! matching stops (it does not look further), otherwise the pair is a match and its row
//! and column are set to zero. Recall is the number of matches over the number of
//! ground-truth phrases of all images (`0.0` if there are none). If a chosen cell lies
//! outside the similarity matrix (fewer phrases than masks), the official evaluation
//! catches the error: the image's phrases still count, its matches do not.
//!
//! The official similarity is the cosine of the mean last-layer `bert-base-uncased`
//! embeddings of the two phrases. That model is not part of this crate (which has no
//! tensor library): similarity is the [`PhraseSimilarity`] trait, which the `omg-bert`
//! crate implements with a BERT folder; without an implementation the recall is
//! reported as unavailable (see [`recall_unavailable_reason`]).

use ndarray::{Array2, ArrayView2};
use omg_masks::BinaryMask;
use serde::{Deserialize, Serialize};

use crate::{EvalError, Overlap};

/// IoU threshold of a recalled ground-truth mask.
pub const RECALL_IOU_THRESHOLD: f64 = 0.5;
/// Phrase-similarity threshold of a recalled ground-truth mask.
pub const RECALL_SIMILARITY_THRESHOLD: f64 = 0.5;

/// IoU as the GCG evaluation computes it: `I / U`, `NaN` when both masks are empty.
pub fn gcg_iou(a: &BinaryMask, b: &BinaryMask, what: &str) -> Result<f64, EvalError> {
    let o = Overlap::of(a, b, what)?;
    Ok(if o.union == 0 {
        f64::NAN
    } else {
        o.intersection as f64 / o.union as f64
    })
}

/// The `rows.len() x cols.len()` matrix of [`gcg_iou`] values.
pub fn iou_matrix(
    rows: &[BinaryMask],
    cols: &[BinaryMask],
    what: &str,
) -> Result<Array2<f64>, EvalError> {
    let mut m = Array2::zeros((rows.len(), cols.len()));
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in cols.iter().enumerate() {
            m[[i, j]] = gcg_iou(r, c, &format!("{what}, masks {i} and {j}"))?;
        }
    }
    Ok(m)
}

/// Row-major index of the first `NaN`, or else of the first maximum (numpy's `argmax`).
/// `None` for an empty matrix.
fn argmax(m: &Array2<f64>) -> Option<(usize, usize)> {
    let mut best: Option<((usize, usize), f64)> = None;
    for (idx, &v) in m.indexed_iter() {
        if v.is_nan() {
            return Some(idx);
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((idx, v));
        }
    }
    best.map(|(idx, _)| idx)
}

/// Greedy one-to-one pairing of the mIoU: returns the paired `(row, column, IoU)`
/// triples in the order they were taken (indices into the original matrix).
pub fn greedy_pairs(ious: ArrayView2<'_, f64>) -> Vec<(usize, usize, f64)> {
    let mut m = ious.to_owned();
    let mut rows: Vec<usize> = (0..m.nrows()).collect();
    let mut cols: Vec<usize> = (0..m.ncols()).collect();
    let mut pairs = Vec::new();
    while let Some((r, c)) = argmax(&m) {
        let v = m[[r, c]];
        // A NaN maximum fails `> 0` like numpy's `np.max(m) > 0`.
        if v.is_nan() || v <= 0.0 {
            break;
        }
        pairs.push((rows[r], cols[c], v));
        rows.remove(r);
        cols.remove(c);
        m = remove_row_col(&m, r, c);
    }
    pairs
}

/// `m` without row `r` and column `c`.
fn remove_row_col(m: &Array2<f64>, r: usize, c: usize) -> Array2<f64> {
    let (nr, nc) = m.dim();
    Array2::from_shape_fn((nr - 1, nc - 1), |(i, j)| {
        m[[i + usize::from(i >= r), j + usize::from(j >= c)]]
    })
}

/// One image's mIoU term: the mean IoU of the greedy pairs of `predictions` and
/// `ground_truth`, `0.0` without a pair.
pub fn image_miou(
    predictions: &[BinaryMask],
    ground_truth: &[BinaryMask],
    what: &str,
) -> Result<f64, EvalError> {
    let m = iou_matrix(predictions, ground_truth, what)?;
    let pairs = greedy_pairs(m.view());
    Ok(if pairs.is_empty() {
        0.0
    } else {
        pairs.iter().map(|p| p.2).sum::<f64>() / pairs.len() as f64
    })
}

/// Accumulates the GCG mIoU over images.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MiouAccumulator {
    sum: f64,
    images: u64,
}

impl MiouAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one image (see [`image_miou`]) and returns its term.
    pub fn add_image(
        &mut self,
        predictions: &[BinaryMask],
        ground_truth: &[BinaryMask],
        what: &str,
    ) -> Result<f64, EvalError> {
        let v = image_miou(predictions, ground_truth, what)?;
        self.sum += v;
        self.images += 1;
        Ok(v)
    }

    /// Number of images added.
    pub fn images(&self) -> u64 {
        self.images
    }

    /// Mean over the images added; `0.0` when there are none (as the official script).
    pub fn miou(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.sum / self.images as f64
        }
    }
}

/// Similarity of a ground-truth phrase and a predicted phrase, for the GCG recall.
/// The official evaluation uses the cosine similarity of mean-pooled last-layer
/// `bert-base-uncased` embeddings.
pub trait PhraseSimilarity {
    /// Similarity of `reference` (a ground-truth phrase) and `candidate` (a predicted
    /// phrase); the recall counts a pair at `>= 0.5`.
    fn similarity(&self, reference: &str, candidate: &str) -> Result<f64, EvalError>;
}

/// Why the GCG recall is unavailable when no [`PhraseSimilarity`] is configured.
pub fn recall_unavailable_reason() -> String {
    "GCG recall needs a phrase-similarity model (the official evaluation uses \
     bert-base-uncased embeddings), and none is configured (omg eval: --bert DIR)"
        .to_string()
}

/// The `gt_phrases.len() x pred_phrases.len()` matrix of similarities.
pub fn similarity_matrix(
    similarity: &dyn PhraseSimilarity,
    gt_phrases: &[&str],
    pred_phrases: &[&str],
) -> Result<Array2<f64>, EvalError> {
    let mut m = Array2::zeros((gt_phrases.len(), pred_phrases.len()));
    for (i, g) in gt_phrases.iter().enumerate() {
        for (j, p) in pred_phrases.iter().enumerate() {
            m[[i, j]] = similarity.similarity(g, p)?;
        }
    }
    Ok(m)
}

/// Outcome of the recall matching of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhraseMatches {
    /// The matched `(ground-truth index, prediction index)` pairs, in matching order.
    Matched(Vec<(usize, usize)>),
    /// The matching chose the mask pair `(gt, pred)`, which has no cell in the
    /// similarity matrix; the official evaluation drops the image's matches.
    OutOfRange {
        /// Ground-truth mask index.
        gt: usize,
        /// Predicted mask index.
        pred: usize,
    },
}

impl PhraseMatches {
    /// Number of matches the image contributes to the recall.
    pub fn count(&self) -> usize {
        match self {
            PhraseMatches::Matched(m) => m.len(),
            PhraseMatches::OutOfRange { .. } => 0,
        }
    }
}

/// The recall matching of one image: `ious` is ground truth (rows) by prediction
/// (columns), `similarities` ground-truth phrases by predicted phrases.
///
/// Fails with [`EvalError::Invalid`] unless `iou_threshold > 0` (with a threshold of 0
/// the official loop does not end).
pub fn match_phrases(
    ious: ArrayView2<'_, f64>,
    similarities: ArrayView2<'_, f64>,
    iou_threshold: f64,
    similarity_threshold: f64,
) -> Result<PhraseMatches, EvalError> {
    if iou_threshold.is_nan() || iou_threshold <= 0.0 {
        return Err(EvalError::Invalid(format!(
            "recall IoU threshold must be > 0, got {iou_threshold}"
        )));
    }
    let mut m = ious.to_owned();
    let mut matches = Vec::new();
    while let Some((g, p)) = argmax(&m) {
        // NaN compares false, so a NaN IoU passes this test as it does in numpy.
        if m[[g, p]] < iou_threshold {
            break;
        }
        let Some(&sim) = similarities.get([g, p]) else {
            return Ok(PhraseMatches::OutOfRange { gt: g, pred: p });
        };
        if sim < similarity_threshold {
            break;
        }
        matches.push((g, p));
        m.row_mut(g).fill(0.0);
        m.column_mut(p).fill(0.0);
    }
    Ok(PhraseMatches::Matched(matches))
}

/// Accumulates the GCG recall over images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecallAccumulator {
    true_positives: u64,
    actual_positives: u64,
}

impl RecallAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one image given its phrase similarities (ground-truth phrases by predicted
    /// phrases; the number of rows is the image's number of ground-truth phrases), with
    /// the official thresholds of 0.5.
    pub fn add_image(
        &mut self,
        gt_masks: &[BinaryMask],
        pred_masks: &[BinaryMask],
        similarities: ArrayView2<'_, f64>,
        what: &str,
    ) -> Result<PhraseMatches, EvalError> {
        let ious = iou_matrix(gt_masks, pred_masks, what)?;
        let matches = match_phrases(
            ious.view(),
            similarities,
            RECALL_IOU_THRESHOLD,
            RECALL_SIMILARITY_THRESHOLD,
        )?;
        self.actual_positives += similarities.nrows() as u64;
        self.true_positives += matches.count() as u64;
        Ok(matches)
    }

    /// Adds one image, computing the similarities with `similarity`.
    pub fn add_image_with(
        &mut self,
        gt_masks: &[BinaryMask],
        gt_phrases: &[&str],
        pred_masks: &[BinaryMask],
        pred_phrases: &[&str],
        similarity: &dyn PhraseSimilarity,
        what: &str,
    ) -> Result<PhraseMatches, EvalError> {
        let sims = similarity_matrix(similarity, gt_phrases, pred_phrases)?;
        self.add_image(gt_masks, pred_masks, sims.view(), what)
    }

    /// Matched ground-truth phrases so far.
    pub fn true_positives(&self) -> u64 {
        self.true_positives
    }

    /// Ground-truth phrases so far.
    pub fn actual_positives(&self) -> u64 {
        self.actual_positives
    }

    /// `true_positives / actual_positives`, `0.0` without ground-truth phrases.
    pub fn recall(&self) -> f64 {
        if self.actual_positives == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.actual_positives as f64
        }
    }
}
