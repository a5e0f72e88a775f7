//! The error budget of reduced LLM precisions ([`LlmWeights`]): the `llm` and `e2e`
//! fixtures run with the f32 LLM (which matches the official numbers) and with the
//! reduced one, and the two are compared:
//!
//! * logits and hidden states: largest absolute difference and cosine similarity;
//! * greedy ids: compared only at positions where the f32 top-1/top-2 logit gap exceeds
//!   the precision's fixed margin ([`id_margin`]; random weights give near-ties, where
//!   any rounding may flip the arg-max). The positions are chosen from the f32 run alone,
//!   so a larger error cannot shrink the set it is judged on; the count of such positions
//!   is reported, and a budget with none fails its goal;
//! * masks (`e2e`): IoU of the `[SEG]` mask against the f32 mask.
//!
//! `llm`: the fixture's prompts, continued greedily by the f32 model to
//! [`CONTINUATION`] more tokens, then both models teacher-forced over the same ids.
//! `e2e`: the official chat flow (forced `[SEG]`) run once per precision.

use std::fmt;

use burn::tensor::backend::Backend;
use omg_llm::loader::load_hf_with;
use omg_llm::{ForwardOptions, InternLM2, InternLM2Config, LlmWeights, LogitsFor};

use crate::ParityError;
use crate::e2e::run_e2e_with;
use crate::fixture::{Fixture, Weights};

/// Tokens the f32 model appends to each `llm` prompt before the comparison.
pub const CONTINUATION: usize = 25;

/// The error of one precision against f32 on one fixture.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The fixture's stage (`llm` or `e2e`).
    pub stage: String,
    /// The precision measured.
    pub weights: LlmWeights,
    /// Largest absolute logit difference.
    pub logits_max_abs: f32,
    /// Cosine similarity of all logits (flattened).
    pub logits_cosine: f64,
    /// Largest absolute difference of the compared hidden states (final norm output;
    /// at `[SEG]` for `e2e`).
    pub hidden_max_abs: f32,
    /// Cosine similarity of those hidden states.
    pub hidden_cosine: f64,
    /// Positions whose greedy id was predicted.
    pub positions: usize,
    /// Positions where the f32 top-1/top-2 gap exceeds [`id_margin`] of `weights`.
    pub comparable: usize,
    /// Comparable positions where both precisions pick the same id.
    pub equal: usize,
    /// IoU of the `[SEG]` mask against the f32 mask (`e2e` only).
    pub mask_iou: Option<f64>,
}

impl Budget {
    /// Fraction of comparable greedy ids that are equal; `None` when no position is
    /// comparable (which misses every goal).
    pub fn equal_fraction(&self) -> Option<f64> {
        (self.comparable > 0).then(|| self.equal as f64 / self.comparable as f64)
    }
}

/// The f32 top-1/top-2 logit gap above which a position's greedy id is compared: twice
/// the largest logit error measured for the precision on the public fixtures
/// (`docs/precision.md`): 0 for f32, 0.1 for bf16, f16 and int8 (errors up to 0.049),
/// 2 for int4 (errors up to 1.07 on `llm`; its goal sets no greedy-id bound).
pub fn id_margin(weights: LlmWeights) -> f32 {
    match weights {
        LlmWeights::F32 => 0.0,
        LlmWeights::Int4 => 2.0,
        _ => 0.1,
    }
}

/// The documented budget of a precision (`docs/precision.md`): the least a [`Budget`]
/// measured on the public fixtures must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    /// Least cosine similarity of the compared hidden states.
    pub min_hidden_cosine: f64,
    /// Least fraction of comparable greedy ids that are equal; `None` where the goal sets
    /// no bound (int4: on the fixtures' random weights almost no f32 top-1/top-2 gap
    /// exceeds its logit error, so nothing could be compared).
    pub min_equal_fraction: Option<f64>,
    /// Least `[SEG]` mask IoU against f32 (`e2e`).
    pub min_mask_iou: f64,
}

/// The goal of `weights` (`docs/precision.md`): f32 exact; bf16, f16 and int8 keep the
/// mask (IoU ≥ 0.998) and ≥ 99 % of the comparable greedy ids; int4 its looser,
/// measured budget.
pub fn goal(weights: LlmWeights) -> Goal {
    match weights {
        LlmWeights::F32 => Goal {
            min_hidden_cosine: 1.0 - 1e-12,
            min_equal_fraction: Some(1.0),
            min_mask_iou: 1.0,
        },
        LlmWeights::Int4 => Goal {
            min_hidden_cosine: 0.97,
            min_equal_fraction: None,
            min_mask_iou: 0.8,
        },
        _ => Goal {
            min_hidden_cosine: 0.9999,
            min_equal_fraction: Some(0.99),
            min_mask_iou: 0.998,
        },
    }
}

impl Budget {
    /// What misses `goal` (empty: within it). NaN misses every bound.
    pub fn misses(&self, goal: Goal) -> Vec<String> {
        let mut out = Vec::new();
        if !reaches(self.hidden_cosine, goal.min_hidden_cosine) {
            out.push(format!(
                "hidden cosine {} < {}",
                self.hidden_cosine, goal.min_hidden_cosine
            ));
        }
        let Some(least) = goal.min_equal_fraction else {
            return self.mask_misses(goal, out);
        };
        match self.equal_fraction() {
            None => out.push(format!(
                "no greedy id comparable (no f32 top-1/top-2 gap above {} in {} positions)",
                id_margin(self.weights),
                self.positions
            )),
            Some(fraction) if !reaches(fraction, least) => out.push(format!(
                "greedy ids {}/{} equal < {least}",
                self.equal, self.comparable
            )),
            Some(_) => {}
        }
        self.mask_misses(goal, out)
    }

    /// `out` with the mask IoU's miss of `goal` added, if any.
    fn mask_misses(&self, goal: Goal, mut out: Vec<String>) -> Vec<String> {
        if let Some(iou) = self.mask_iou
            && !reaches(iou, goal.min_mask_iou)
        {
            out.push(format!("mask IoU {iou} < {}", goal.min_mask_iou));
        }
        out
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4} {:<5} logits max-abs {:.3e} cos {:.6} | hidden max-abs {:.3e} cos {:.6} | greedy ids {}/{} comparable of {} equal ({:.1} %)",
            self.weights,
            self.stage,
            self.logits_max_abs,
            self.logits_cosine,
            self.hidden_max_abs,
            self.hidden_cosine,
            self.equal,
            self.comparable,
            self.positions,
            100.0 * self.equal_fraction().unwrap_or(f64::NAN)
        )?;
        if let Some(iou) = self.mask_iou {
            write!(f, " | mask IoU {iou:.4}")?;
        }
        Ok(())
    }
}

/// `value ≥ least`; false for NaN, unlike `!(value < least)`.
fn reaches(value: f64, least: f64) -> bool {
    value >= least
}

/// Largest absolute difference (NaN against a number is infinite).
fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = (x - y).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0, f32::max)
}

/// Cosine similarity in f64 (0 when a side is all zeros, NaN stays NaN).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// IoU of two equally long masks (1 when both are empty).
pub fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// (arg-max, top-1 − top-2) of one logit row.
fn top2(row: &[f32]) -> (usize, f32) {
    let mut best = (0usize, f32::NEG_INFINITY);
    let mut second = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            second = best.1;
            best = (i, v);
        } else if v > second {
            second = v;
        }
    }
    (best.0, best.1 - second)
}

/// Greedy-id comparison of logit rows `[positions][vocab]` at the positions whose
/// reference top-1/top-2 gap exceeds `margin`: (positions, comparable, equal).
pub fn greedy_ids(
    reference: &[Vec<f32>],
    other: &[Vec<f32>],
    margin: f32,
) -> (usize, usize, usize) {
    let mut comparable = 0;
    let mut equal = 0;
    for (r, o) in reference.iter().zip(other) {
        let (id, gap) = top2(r);
        if gap > margin {
            comparable += 1;
            equal += usize::from(top2(o).0 == id);
        }
    }
    (reference.len(), comparable, equal)
}

/// The logits of each row's last position, from all-position logits `[rows, t, vocab]`.
fn last_positions(logits: &[f32], rows: usize, t: usize, vocab: usize) -> Vec<&[f32]> {
    (0..rows)
        .map(|r| &logits[((r + 1) * t - 1) * vocab..(r + 1) * t * vocab])
        .collect()
}

fn llm_config(fx: &Fixture) -> Result<InternLM2Config, ParityError> {
    let json = fx
        .json("/config")
        .ok_or_else(|| fx.malformed("the llm sidecar has no `config`"))?;
    Ok(InternLM2Config::from_json_str(&json.to_string())?)
}

/// All-position logits and final hidden states of `ids` (`rows` equal rows).
fn forward<B: Backend>(
    model: &InternLM2<B>,
    ids: &[u32],
    rows: usize,
) -> Result<(Vec<f32>, Vec<f32>), ParityError> {
    let out = model.forward_ids(
        ids,
        rows,
        None,
        ForwardOptions {
            logits: LogitsFor::All,
            output_hidden_states: false,
        },
    )?;
    let read = |t: burn::tensor::Tensor<B, 3>| {
        t.into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| ParityError::Malformed(format!("read-back: {e:?}")))
    };
    let logits = out
        .logits
        .ok_or_else(|| ParityError::Malformed("no logits".into()))?;
    Ok((read(logits)?, read(out.last_hidden_state)?))
}

/// The budget of `weights` on the `llm` fixture.
pub fn llm_budget<B: Backend>(
    fx: &Fixture,
    weights: LlmWeights,
    device: &B::Device,
) -> Result<Budget, ParityError> {
    let config = llm_config(fx)?;
    let vocab = config.vocab_size;
    let reference: InternLM2<B> =
        load_hf_with(&config, &Weights(&fx.tensors), LlmWeights::F32, device)?;
    let reduced: InternLM2<B> = load_hf_with(&config, &Weights(&fx.tensors), weights, device)?;
    let (shape, ids) = fx.i64("in.input_ids")?;
    let rows = shape[0];
    let mut seqs: Vec<Vec<u32>> = ids
        .chunks(shape[1])
        .map(|r| r.iter().map(|&i| i as u32).collect())
        .collect();
    // greedy continuation by the f32 model
    for _ in 0..CONTINUATION {
        let flat: Vec<u32> = seqs.concat();
        let (logits, _) = forward(&reference, &flat, rows)?;
        let last = last_positions(&logits, rows, seqs[0].len(), vocab);
        for (seq, row) in seqs.iter_mut().zip(last) {
            seq.push(top2(row).0 as u32);
        }
    }
    let flat: Vec<u32> = seqs.concat();
    let (l32, h32) = forward(&reference, &flat, rows)?;
    let (lq, hq) = forward(&reduced, &flat, rows)?;
    let logits_max_abs = max_abs(&l32, &lq);
    let split = |v: &[f32]| v.chunks(vocab).map(|c| c.to_vec()).collect::<Vec<_>>();
    let (positions, comparable, equal) = greedy_ids(&split(&l32), &split(&lq), id_margin(weights));
    Ok(Budget {
        stage: "llm".into(),
        weights,
        logits_max_abs,
        logits_cosine: cosine(&l32, &lq),
        hidden_max_abs: max_abs(&h32, &hq),
        hidden_cosine: cosine(&h32, &hq),
        positions,
        comparable,
        equal,
        mask_iou: None,
    })
}

/// The budget of `weights` on the `e2e` fixture (the mask included).
pub fn e2e_budget<B: Backend>(
    fx: &Fixture,
    weights: LlmWeights,
    device: &B::Device,
) -> Result<Budget, ParityError> {
    let (_, reference) = run_e2e_with::<B>(fx, LlmWeights::F32, device)?;
    let (_, reduced) = run_e2e_with::<B>(fx, weights, device)?;
    let flat = |rows: &[Vec<f32>]| rows.concat();
    let (l32, lq) = (flat(&reference.step_logits), flat(&reduced.step_logits));
    let logits_max_abs = max_abs(&l32, &lq);
    let (positions, comparable, equal) = greedy_ids(
        &reference.step_logits,
        &reduced.step_logits,
        id_margin(weights),
    );
    Ok(Budget {
        stage: "e2e".into(),
        weights,
        logits_max_abs,
        logits_cosine: cosine(&l32, &lq),
        hidden_max_abs: max_abs(&reference.seg_hidden, &reduced.seg_hidden),
        hidden_cosine: cosine(&reference.seg_hidden, &reduced.seg_hidden),
        positions,
        comparable,
        equal,
        mask_iou: (!reference.mask.is_empty()).then(|| iou(&reference.mask, &reduced.mask)),
    })
}

/// The budget of `weights` on a fixture whose stage is `llm` or `e2e`.
pub fn budget<B: Backend>(
    fx: &Fixture,
    weights: LlmWeights,
    device: &B::Device,
) -> Result<Budget, ParityError> {
    match fx.stage()? {
        "llm" => llm_budget::<B>(fx, weights, device),
        "e2e" => e2e_budget::<B>(fx, weights, device),
        other => Err(ParityError::UnknownStage(format!(
            "{other} (precision budgets are measured on the llm and e2e stages)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_positions_are_the_last_of_each_row() {
        // 2 rows of 3 positions of 2 logits: 0, 1, …, 11
        let logits: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(
            last_positions(&logits, 2, 3, 2),
            [&[4.0, 5.0][..], &[10.0, 11.0][..]]
        );
    }

    #[test]
    fn max_abs_is_the_largest_difference_and_nan_is_infinite() {
        assert_eq!(max_abs(&[1.0, 5.0, -2.0], &[1.5, 5.0, 1.0]), 3.0);
        assert_eq!(max_abs(&[2.0], &[2.0]), 0.0);
        assert_eq!(max_abs(&[f32::NAN], &[0.0]), f32::INFINITY);
    }
}
