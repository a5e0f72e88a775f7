//! Choosing the next token from logits, as HF `generate`'s processors and warpers do:
//! repetition penalty, then temperature, top-k and top-p, then a seeded draw.

use rand::{RngExt, rngs::StdRng};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The arg-max of the logits (first index on ties), as the official evaluation.
    Greedy,
    /// Sampling from the processed distribution, as the official demo
    /// (`temperature 0.1, top_p 0.75, top_k 40`).
    Sample {
        /// Logits are divided by this (> 0).
        temperature: f32,
        /// Keep only the `top_k` largest logits (0 = off).
        top_k: usize,
        /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
        top_p: f32,
        /// Seed of the random generator (runs with the same seed are identical). The
        /// rows of a batch share the generator: at each step the unfinished rows draw
        /// in row order, so a row's tokens depend on its batch, as in HF.
        seed: u64,
    },
}

/// HF `RepetitionPenaltyLogitsProcessor`: the score of every id in `seen` is divided by
/// `penalty` when positive and multiplied by it when negative (1 = off).
pub(crate) fn apply_repetition_penalty(scores: &mut [f32], seen: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = seen.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for t in seen {
        if let Some(s) = scores.get_mut(t as usize) {
            // `score < 0` in HF; a zero (of either sign) is unchanged either way
            *s = if s.is_sign_negative() {
                *s * penalty
            } else {
                *s / penalty
            };
        }
    }
}

/// Index of the largest score (the first one on ties, like `torch.argmax`).
pub fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

/// HF's warpers in order (temperature, top-k, top-p), then a draw from the softmax.
pub(crate) fn sample(
    scores: &mut [f32],
    temperature: f32,
    top_k: usize,
    top_p: f32,
    rng: &mut StdRng,
) -> u32 {
    for s in scores.iter_mut() {
        *s /= temperature;
    }
    if top_k > 0 {
        let mut sorted: Vec<f32> = scores.to_vec();
        sorted.sort_unstable_by(|a, b| b.total_cmp(a));
        // fewer tokens than `top_k`: all stay
        if let Some(&kth) = sorted.get(top_k - 1) {
            for s in scores.iter_mut() {
                if *s < kth {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
    if top_p < 1.0 {
        // Sort ascending; drop the tokens whose cumulative probability stays within
        // 1 − top_p, always keeping the most likely one.
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let probs = softmax(&order.iter().map(|&i| scores[i]).collect::<Vec<_>>());
        let mut cum = 0.0f32;
        for (rank, &i) in order.iter().enumerate() {
            cum += probs[rank];
            if cum <= 1.0 - top_p && rank + 1 < order.len() {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
    let probs = softmax(scores);
    let u: f32 = rng.random();
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p;
            last = i;
            if u < acc {
                return i as u32;
            }
        }
    }
    last as u32
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn repetition_penalty_lowers_the_scores_of_seen_ids() {
        let mut s = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn repetition_penalty_leaves_zeros_and_ids_past_the_vocabulary_alone() {
        let mut s = vec![0.0, -0.0, 3.0];
        apply_repetition_penalty(&mut s, &[0, 1, 7], 1.5);
        assert_eq!(s, vec![0.0, -0.0, 3.0]);
        assert!(s[1].is_sign_negative());
    }

    #[test]
    fn a_tiny_top_p_keeps_the_most_likely_token() {
        // top-p keeps the smallest set reaching p, and never less than the top token,
        // even where the probabilities' f32 sum rounds to 1 − p or below
        let mut rng = StdRng::seed_from_u64(3);
        for seed in 0..20u64 {
            let mut draw = StdRng::seed_from_u64(seed);
            let logits: Vec<f32> = (0..97).map(|_| draw.random::<f32>() * 8.0).collect();
            let best = argmax(&logits);
            assert_ne!(best, 0, "seed {seed}");
            assert_eq!(sample(&mut logits.clone(), 1.0, 0, 1e-9, &mut rng), best);
        }
    }

    #[test]
    fn large_logits_do_not_overflow_the_softmax() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..10 {
            assert_eq!(sample(&mut [0.0, 1000.0], 1.0, 0, 1.0, &mut rng), 1);
        }
        let p = softmax(&[1000.0, 1000.0]);
        assert_eq!(p, vec![0.5, 0.5]);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeded_sampling_repeats() {
        let logits = vec![0.5, 2.0, 1.9, -1.0, 0.0];
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20 {
            assert_eq!(sample(&mut logits.clone(), 1.0, 1, 1.0, &mut rng), 1);
        }
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| sample(&mut logits.clone(), 1.0, 0, 1.0, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        // With temperature 1 and no truncation every token is reachable.
        let all = draws(3);
        assert!(all.contains(&0) && all.contains(&2));
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probs ≈ [0.64, 0.24, 0.09, 0.03]: top_p 0.7 keeps tokens 0 and 1 only.
        let logits = vec![3.0f32, 2.0, 1.0, 0.0];
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[sample(&mut logits.clone(), 1.0, 0, 0.7, &mut rng) as usize] = true;
        }
        assert_eq!(seen, [true, true, false, false]);
    }

    /// How often each token is drawn in `n` seeded draws.
    fn frequencies(
        logits: &[f32],
        temperature: f32,
        top_k: usize,
        top_p: f32,
        n: usize,
    ) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(11);
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..n {
            counts[sample(&mut logits.to_vec(), temperature, top_k, top_p, &mut rng) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    #[test]
    fn draws_follow_the_softmax_of_the_tempered_logits() {
        let logits = [1.0f32, 0.2, -0.5, 1.4, 0.0];
        let temperature = 0.7;
        let n = 40_000;
        let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
        let want = softmax(&scaled);
        let got = frequencies(&logits, temperature, 0, 1.0, n);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            // within five standard deviations of a binomial count
            let sigma = (f64::from(w) * (1.0 - f64::from(w)) / n as f64).sqrt();
            assert!(
                (g - f64::from(w)).abs() < 5.0 * sigma,
                "token {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn top_k_of_the_whole_vocabulary_or_more_keeps_every_token() {
        let logits = [1.0f32, 0.0, -1.0];
        for k in [3, 4] {
            assert!(
                frequencies(&logits, 1.0, k, 1.0, 2000)
                    .iter()
                    .all(|&f| f > 0.0)
            );
        }
    }

    #[test]
    fn top_k_keeps_every_token_tied_with_the_kth() {
        // as transformers' TopKLogitsWarper: scores below the k-th largest are removed,
        // so three tokens tied at the 2nd place all stay
        let logits = [1.0f32, 3.0, 3.0, 2.0, 3.0];
        let got = frequencies(&logits, 1.0, 2, 1.0, 3000);
        assert_eq!(got[0], 0.0);
        assert_eq!(got[3], 0.0);
        for i in [1, 2, 4] {
            assert!((got[i] - 1.0 / 3.0).abs() < 0.05, "{got:?}");
        }
    }

    #[test]
    fn top_p_applies_after_top_k() {
        // top-k 3 leaves [3, 2, 1] (probabilities ≈ 0.665, 0.245, 0.090); top-p 0.9
        // then drops the last, whose share stays under 1 − 0.9. Without top-k the
        // probabilities are ≈ 0.636, 0.234, 0.086, 0.032, 0.012: the three smallest
        // sum to 0.130 > 0.1, so top-p alone keeps the third token.
        let logits = [3.0f32, 2.0, 1.0, 0.0, -1.0];
        let kept = |k| {
            frequencies(&logits, 1.0, k, 0.9, 2000)
                .iter()
                .map(|&f| f > 0.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(kept(3), [true, true, false, false, false]);
        assert_eq!(kept(0), [true, true, true, false, false]);
    }
}
