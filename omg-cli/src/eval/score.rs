//! Results of an `omg eval` run to the benchmark's metric table, each metric computed
//! by `omg-eval` as its official scorer does, and the running figure the progress bar
//! shows.
//!
//! A sample is scored from the results line with its id. A sample without a line (a
//! shard not run yet, a `--limit` run) is left out and counted; a line with an error
//! counts as an answer without a mask (referring and reasoning segmentation: no
//! prediction) or an empty caption.

use std::collections::HashMap;

use omg_eval::data::reasonseg::ReasonSegSample;
use omg_eval::data::refcoco::RefCocoSample;
use omg_eval::gcg::{PhraseSimilarity, recall_unavailable_reason};
use omg_eval::prompts::{gcg_postprocess, region_caption_postprocess};
use omg_eval::{
    CaptionSample, CocoImage, Detection, EvalError, MetricTable, MetricValue, MiouAccumulator,
    RecallAccumulator, ReferringAccumulator, cider_d, evaluate_segm, find_meteor_jar,
    meteor_metric,
};
use omg_masks::BinaryMask;

use super::{EvalSet, Samples};
use crate::batch::Output;

/// Why a set could not be scored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// A ground truth or a metric failed (a mask of the wrong size names its sample).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A result's mask does not decode.
    #[error("result {id}: mask {index} does not decode: {source}")]
    Mask {
        /// The sample's id.
        id: String,
        /// The mask's position in the result.
        index: usize,
        /// Why.
        #[source]
        source: omg_masks::MaskError,
    },
}

/// The masks of a result, decoded.
fn masks(out: &Output) -> Result<Vec<BinaryMask>, ScoreError> {
    out.masks
        .iter()
        .enumerate()
        .map(|(index, m)| {
            BinaryMask::from_rle(&m.rle).map_err(|source| ScoreError::Mask {
                id: out.id.clone(),
                index,
                source,
            })
        })
        .collect()
}

/// The first mask of a result (`None`: no `[SEG]` in the answer, or a failed input).
fn first_mask(out: &Output) -> Result<Option<BinaryMask>, ScoreError> {
    Ok(masks(out)?.into_iter().next())
}

/// Adds a referring sample: the official ground truth (the polygons' sum equal to 1).
fn add_referring(
    acc: &mut ReferringAccumulator,
    sample: &RefCocoSample,
    out: &Output,
) -> Result<(), ScoreError> {
    let gt = sample.official_mask()?;
    acc.add(
        first_mask(out)?.as_ref(),
        &gt,
        &format!("sample {}", sample.id),
    )?;
    Ok(())
}

/// Adds a ReasonSeg sample: its ignored pixels out of the prediction and the target.
fn add_reasonseg(
    acc: &mut ReferringAccumulator,
    sample: &ReasonSegSample,
    out: &Output,
) -> Result<(), ScoreError> {
    let (target, ignore) = sample.masks()?;
    let prediction = first_mask(out)?
        .map(|p| ReasonSegSample::without_ignored(&p, &ignore))
        .transpose()?;
    acc.add(
        prediction.as_ref(),
        &target,
        &format!("sample {}", sample.id),
    )?;
    Ok(())
}

/// The caption of a results line (empty for a failed input).
fn text(out: &Output) -> &str {
    out.text.as_deref().unwrap_or("")
}

/// CIDEr-D and METEOR of caption samples (pycocoevalcap's tokenization first);
/// METEOR is unavailable without a Java runtime and its jar.
fn caption_rows(table: &mut MetricTable, samples: &[CaptionSample]) {
    let tokenized: Vec<CaptionSample> = samples.iter().map(CaptionSample::ptb_tokenized).collect();
    let jar = find_meteor_jar();
    table.push(
        "METEOR",
        if tokenized.is_empty() {
            MetricValue::unavailable("no sample scored")
        } else {
            meteor_metric(&tokenized, jar.as_deref().map_err(String::as_str))
        },
    );
    table.push(
        "CIDEr",
        match cider_d(&tokenized) {
            Ok(s) => MetricValue::value(s.score),
            Err(e) => MetricValue::unavailable(e.to_string()),
        },
    );
}

impl EvalSet {
    /// The metric table of the samples that `results` holds a line for (see the
    /// module's documentation), with the counts of samples scored and left out.
    ///
    /// # Errors
    /// A ground truth that cannot be built, a result mask that does not decode or is
    /// not of its photo's size.
    pub fn score(&self, results: &[Output]) -> Result<MetricTable, ScoreError> {
        self.score_with(results, None)
    }

    /// [`EvalSet::score`], with the GCG recall computed with `similarity` (the official
    /// one: `omg_bert::BertPhraseSimilarity` with `bert-base-uncased`); without it the
    /// recall is reported unavailable.
    ///
    /// # Errors
    /// As [`EvalSet::score`], and a phrase the similarity model fails on.
    pub fn score_with(
        &self,
        results: &[Output],
        similarity: Option<&dyn PhraseSimilarity>,
    ) -> Result<MetricTable, ScoreError> {
        let by_id: HashMap<&str, &Output> = results.iter().map(|o| (o.id.as_str(), o)).collect();
        let mut table = MetricTable::new(format!("{} {}", self.benchmark.name(), self.split));
        let mut scored = 0usize;
        let mut failed = 0usize;
        let mut take = |id: &str| {
            let out = by_id.get(id).copied();
            scored += usize::from(out.is_some());
            failed += usize::from(out.is_some_and(|o| o.error.is_some()));
            out
        };
        match &self.samples {
            Samples::Referring(samples) => {
                let mut acc = ReferringAccumulator::new();
                for s in samples {
                    if let Some(out) = take(&s.id) {
                        add_referring(&mut acc, s, out)?;
                    }
                }
                referring_rows(&mut table, &acc)?;
            }
            Samples::ReasonSeg(samples) => {
                let mut acc = ReferringAccumulator::new();
                for s in samples {
                    if let Some(out) = take(&s.id) {
                        add_reasonseg(&mut acc, s, out)?;
                    }
                }
                referring_rows(&mut table, &acc)?;
            }
            Samples::Gcg(images) => {
                let mut captions = Vec::new();
                let mut miou = MiouAccumulator::new();
                let mut recall = RecallAccumulator::new();
                let mut coco = Vec::new();
                for (n, image) in images.iter().enumerate() {
                    let Some(out) = take(&image.id) else { continue };
                    let predicted = masks(out)?;
                    let truth = image.decode_masks()?;
                    let what = format!("image {}", image.id);
                    miou.add_image(&predicted, &truth, &what)?;
                    let answer = gcg_postprocess(text(out));
                    if let Some(similarity) = similarity {
                        let gt_phrases: Vec<&str> =
                            image.phrases.iter().map(String::as_str).collect();
                        let pred_phrases: Vec<&str> =
                            answer.phrases.iter().map(String::as_str).collect();
                        recall.add_image_with(
                            &truth,
                            &gt_phrases,
                            &predicted,
                            &pred_phrases,
                            similarity,
                            &what,
                        )?;
                    }
                    coco.push(CocoImage {
                        id: n as u64,
                        ground_truth: image.ground_truth()?,
                        // the official GCG evaluation gives every mask the score 1
                        detections: predicted
                            .into_iter()
                            .map(|mask| Detection { mask, score: 1.0 })
                            .collect(),
                    });
                    captions.push(CaptionSample {
                        references: image.captions.clone(),
                        candidate: answer.caption,
                    });
                }
                caption_rows(&mut table, &captions);
                let ap50 = if coco.is_empty() {
                    None
                } else {
                    evaluate_segm(&coco)?.ap50
                };
                table.push(
                    "AP50",
                    ap50.map_or_else(
                        || MetricValue::unavailable("no ground-truth mask scored"),
                        MetricValue::value,
                    ),
                );
                table.push("mIoU", MetricValue::value(miou.miou()));
                table.push(
                    "recall",
                    match similarity {
                        Some(_) if coco.is_empty() => MetricValue::unavailable("no sample scored"),
                        Some(_) => MetricValue::value(recall.recall()),
                        None => MetricValue::unavailable(recall_unavailable_reason()),
                    },
                );
            }
            Samples::RegionCaption(samples) => {
                let captions: Vec<CaptionSample> = samples
                    .iter()
                    .filter_map(|s| {
                        take(&s.id.to_string()).map(|out| CaptionSample {
                            references: s.references.clone(),
                            candidate: region_caption_postprocess(text(out)),
                        })
                    })
                    .collect();
                caption_rows(&mut table, &captions);
            }
        }
        table.push("samples scored", MetricValue::value(scored as f64));
        table.push(
            "samples without a result",
            MetricValue::value((self.len() - scored) as f64),
        );
        table.push("results with an error", MetricValue::value(failed as f64));
        Ok(table)
    }
}

/// cIoU, gIoU and the answers without a mask.
fn referring_rows(table: &mut MetricTable, acc: &ReferringAccumulator) -> Result<(), ScoreError> {
    if acc.samples() == 0 {
        table.push("cIoU", MetricValue::unavailable("no sample scored"));
        table.push("gIoU", MetricValue::unavailable("no sample scored"));
        return Ok(());
    }
    let s = acc.scores()?;
    table.push("cIoU", MetricValue::value(s.ciou));
    table.push("gIoU", MetricValue::value(s.giou));
    table.push(
        "answers without a mask",
        MetricValue::value(s.missing_predictions as f64),
    );
    Ok(())
}

/// The running figure of a segmentation benchmark while it runs (cIoU and gIoU so
/// far); the caption benchmarks have none until the end.
pub struct RunningScore<'a> {
    set: &'a EvalSet,
    /// Sample ids to their positions.
    index: HashMap<String, usize>,
    acc: ReferringAccumulator,
}

impl<'a> RunningScore<'a> {
    /// Nothing scored yet.
    pub fn new(set: &'a EvalSet) -> Self {
        let ids: Vec<String> = match &set.samples {
            Samples::Referring(s) => s.iter().map(|x| x.id.clone()).collect(),
            Samples::ReasonSeg(s) => s.iter().map(|x| x.id.clone()).collect(),
            Samples::Gcg(_) | Samples::RegionCaption(_) => Vec::new(),
        };
        Self {
            set,
            index: ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect(),
            acc: ReferringAccumulator::new(),
        }
    }

    /// Adds a finished sample; the figure so far (`None` for the caption benchmarks,
    /// or when the sample cannot be scored).
    pub fn update(&mut self, out: &Output) -> Option<String> {
        let &i = self.index.get(&out.id)?;
        let added = match &self.set.samples {
            Samples::Referring(s) => add_referring(&mut self.acc, &s[i], out),
            Samples::ReasonSeg(s) => add_reasonseg(&mut self.acc, &s[i], out),
            Samples::Gcg(_) | Samples::RegionCaption(_) => return None,
        };
        added.ok()?;
        let s = self.acc.scores().ok()?;
        Some(format!("cIoU {:.4} gIoU {:.4}", s.ciou, s.giou))
    }
}
