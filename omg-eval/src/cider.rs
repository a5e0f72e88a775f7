//! CIDEr-D as pycocoevalcap's `Cider` scorer computes it (the "CIDEr" of the COCO
//! caption evaluation), written from its definition. Captions are expected already
//! preprocessed ([`CaptionSample::ptb_tokenized`]); words are split on whitespace.
//!
//! * Each caption is a bag of its 1- to 4-grams.
//! * Document frequency `df(g)`: the number of samples whose references (any of them)
//!   contain the n-gram `g`; it comes from the references of the evaluated set only.
//! * An n-gram's weight in a caption is `tf * (ln N - ln max(1, df))`, `N` the number
//!   of samples (so with a single sample every weight, and the score, is 0).
//! * For each `n` and each reference: `Σ_g min(w_cand(g), w_ref(g)) * w_ref(g)` over the
//!   candidate's n-grams (the clipping of CIDEr-D), divided by the product of the two
//!   weight vectors' norms when both are non-zero, times the length penalty
//!   `exp(-δ² / (2σ²))` with `σ = 6`. `δ` is the difference of the candidate's and the
//!   reference's lengths, where pycocoevalcap counts a caption's length as its number of
//!   *bigrams* (words - 1).
//! * A sample scores `10 ×` the mean over `n` of the sum over references, divided by the
//!   number of references; CIDEr-D is the mean over samples.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{CaptionSample, EvalError};

/// Longest n-gram.
pub const CIDER_N: usize = 4;
/// Standard deviation of the length penalty.
pub const CIDER_SIGMA: f64 = 6.0;

/// CIDEr-D over a set and per sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiderScores {
    /// Mean over the samples.
    pub score: f64,
    /// Each sample's score, in input order.
    pub per_sample: Vec<f64>,
}

/// N-gram counts of one caption, per n (index `n - 1`); keys are words joined by
/// spaces.
type Counts = [HashMap<String, f64>; CIDER_N];

fn ngram_counts(caption: &str) -> Counts {
    let words: Vec<&str> = caption.split_whitespace().collect();
    let mut counts: Counts = Default::default();
    for (k, map) in counts.iter_mut().enumerate() {
        for gram in words.windows(k + 1) {
            *map.entry(gram.join(" ")).or_insert(0.0) += 1.0;
        }
    }
    counts
}

/// TF-IDF weights, their norms per n, and the caption "length" (its bigram count).
struct Vector {
    weights: [HashMap<String, f64>; CIDER_N],
    norms: [f64; CIDER_N],
    length: f64,
}

fn to_vector(counts: &Counts, df: &[HashMap<String, f64>; CIDER_N], log_n: f64) -> Vector {
    let mut weights: [HashMap<String, f64>; CIDER_N] = Default::default();
    let mut norms = [0.0; CIDER_N];
    for k in 0..CIDER_N {
        for (gram, &tf) in &counts[k] {
            let d = df[k].get(gram).copied().unwrap_or(0.0).max(1.0).ln();
            let w = tf * (log_n - d);
            norms[k] += w * w;
            weights[k].insert(gram.clone(), w);
        }
        norms[k] = norms[k].sqrt();
    }
    let length = counts[1].values().sum();
    Vector {
        weights,
        norms,
        length,
    }
}

fn similarity(cand: &Vector, reference: &Vector) -> f64 {
    let delta = cand.length - reference.length;
    let penalty = (-(delta * delta) / (2.0 * CIDER_SIGMA * CIDER_SIGMA)).exp();
    let mut total = 0.0;
    for k in 0..CIDER_N {
        let mut val = 0.0;
        for (gram, &w) in &cand.weights[k] {
            let r = reference.weights[k].get(gram).copied().unwrap_or(0.0);
            val += w.min(r) * r;
        }
        if cand.norms[k] != 0.0 && reference.norms[k] != 0.0 {
            val /= cand.norms[k] * reference.norms[k];
        }
        total += val * penalty;
    }
    total
}

/// CIDEr-D of tokenized samples (see the module docs).
///
/// Fails with [`EvalError::Empty`] without samples and [`EvalError::Invalid`] when a
/// sample has no reference.
pub fn cider_d(samples: &[CaptionSample]) -> Result<CiderScores, EvalError> {
    if samples.is_empty() {
        return Err(EvalError::Empty("CIDEr-D".to_string()));
    }
    if let Some(i) = samples.iter().position(|s| s.references.is_empty()) {
        return Err(EvalError::Invalid(format!(
            "CIDEr-D: caption sample {i} has no reference"
        )));
    }
    let cands: Vec<Counts> = samples.iter().map(|s| ngram_counts(&s.candidate)).collect();
    let refs: Vec<Vec<Counts>> = samples
        .iter()
        .map(|s| s.references.iter().map(|r| ngram_counts(r)).collect())
        .collect();

    let mut df: [HashMap<String, f64>; CIDER_N] = Default::default();
    for sample_refs in &refs {
        for (k, map) in df.iter_mut().enumerate() {
            let grams: HashSet<&String> = sample_refs.iter().flat_map(|r| r[k].keys()).collect();
            for g in grams {
                *map.entry(g.clone()).or_insert(0.0) += 1.0;
            }
        }
    }
    let log_n = (samples.len() as f64).ln();

    let per_sample: Vec<f64> = cands
        .iter()
        .zip(&refs)
        .map(|(cand, sample_refs)| {
            let cv = to_vector(cand, &df, log_n);
            let sum: f64 = sample_refs
                .iter()
                .map(|r| similarity(&cv, &to_vector(r, &df, log_n)))
                .sum();
            sum / CIDER_N as f64 / sample_refs.len() as f64 * 10.0
        })
        .collect();
    let score = per_sample.iter().sum::<f64>() / per_sample.len() as f64;
    Ok(CiderScores { score, per_sample })
}
