//! Comparison of computed tensors with the golden ones, and the report lines.

use std::fmt;

/// The allowed difference for one compared output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// `max |a − e| ≤ abs`.
    Abs(f64),
    /// `|a − e| ≤ abs` where `|e| ≤ threshold`, else `|a − e| ≤ rel·|e|`.
    AbsRel {
        /// Absolute bound for small values.
        abs: f64,
        /// Relative bound for large values.
        rel: f64,
        /// Magnitude above which the relative bound applies.
        threshold: f64,
    },
    /// Every element equal (ids, booleans, strings).
    Exact,
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Abs(a) => write!(f, "{a:.0e}"),
            Tolerance::AbsRel {
                abs,
                rel,
                threshold,
            } => write!(f, "{abs:.0e}|rel{rel:.0e}>{threshold}"),
            Tolerance::Exact => write!(f, "exact"),
        }
    }
}

/// One compared output: its key, the measured difference and the verdict.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What was compared (usually the fixture key).
    pub key: String,
    /// The largest absolute difference (for [`Tolerance::Exact`]: the number of
    /// differing elements; infinite on a shape mismatch).
    pub max_abs_diff: f64,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// Whether the output is within the tolerance.
    pub pass: bool,
    /// Extra information shown after the verdict (e.g. a shape mismatch).
    pub note: Option<String>,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let diff = match self.tolerance {
            Tolerance::Exact => format!("{}", self.max_abs_diff),
            _ => format!("{:.3e}", self.max_abs_diff),
        };
        write!(
            f,
            "{}  {}  {}  {}",
            self.key,
            diff,
            self.tolerance,
            if self.pass { "PASS" } else { "FAIL" }
        )?;
        if let Some(note) = &self.note {
            write!(f, "  ({note})")?;
        }
        Ok(())
    }
}

/// Compares float tensors given as shape + row-major values.
pub fn compare_f32(
    key: &str,
    actual: (&[usize], &[f32]),
    expected: (&[usize], &[f32]),
    tolerance: Tolerance,
) -> Comparison {
    if actual.0 != expected.0 || actual.1.len() != expected.1.len() {
        return Comparison {
            key: key.to_owned(),
            max_abs_diff: f64::INFINITY,
            tolerance,
            pass: false,
            note: Some(format!("shape {:?}, expected {:?}", actual.0, expected.0)),
        };
    }
    let mut max = 0f64;
    let mut pass = true;
    for (&a, &e) in actual.1.iter().zip(expected.1) {
        let d = (a as f64 - e as f64).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max = max.max(d);
        pass &= d <= tolerance.allowed(e as f64);
    }
    Comparison {
        key: key.to_owned(),
        max_abs_diff: max,
        tolerance,
        pass,
        note: None,
    }
}

/// Compares two sequences exactly; the difference is the number of differing
/// positions (plus the length difference).
pub fn compare_exact<T: PartialEq + fmt::Debug>(
    key: &str,
    actual: &[T],
    expected: &[T],
) -> Comparison {
    let differing = actual.iter().zip(expected).filter(|(a, e)| a != e).count()
        + actual.len().abs_diff(expected.len());
    let note = (differing > 0).then(|| {
        let show = |v: &[T]| {
            let s = format!("{:?}", &v[..v.len().min(16)]);
            if v.len() > 16 { format!("{s}…") } else { s }
        };
        format!("got {}, expected {}", show(actual), show(expected))
    });
    Comparison {
        key: key.to_owned(),
        max_abs_diff: differing as f64,
        tolerance: Tolerance::Exact,
        pass: differing == 0,
        note,
    }
}

impl Tolerance {
    /// The largest difference allowed from the expected value `e`.
    pub fn allowed(&self, e: f64) -> f64 {
        match *self {
            Tolerance::Abs(t) => t,
            Tolerance::AbsRel {
                abs,
                rel,
                threshold,
            } => {
                if e.abs() > threshold {
                    rel * e.abs()
                } else {
                    abs
                }
            }
            Tolerance::Exact => 0.0,
        }
    }
}

/// Compares a binary output made by thresholding a logit at `threshold` with the
/// recorded one, exactly **except** where the recorded logit (same shape, from the
/// fixture) lies within `logit_tol` of the threshold: any correct f32 implementation
/// may land on either side there. Those elements are counted and shown as
/// `ambiguous N`; they never fail the check.
pub fn compare_thresholded(
    key: &str,
    actual: &[u8],
    expected: &[u8],
    recorded_logits: &[f32],
    threshold: f32,
    logit_tol: Tolerance,
) -> Comparison {
    if actual.len() != expected.len() || recorded_logits.len() != expected.len() {
        return Comparison {
            key: key.to_owned(),
            max_abs_diff: f64::INFINITY,
            tolerance: Tolerance::Exact,
            pass: false,
            note: Some(format!(
                "{} values, expected {} (recorded logits: {})",
                actual.len(),
                expected.len(),
                recorded_logits.len()
            )),
        };
    }
    let mut ambiguous = 0usize;
    let mut differing = 0usize;
    for ((a, e), &l) in actual.iter().zip(expected).zip(recorded_logits) {
        let l = f64::from(l);
        if (l - f64::from(threshold)).abs() <= logit_tol.allowed(l) {
            ambiguous += 1;
        } else if a != e {
            differing += 1;
        }
    }
    Comparison {
        key: key.to_owned(),
        max_abs_diff: differing as f64,
        tolerance: Tolerance::Exact,
        pass: differing == 0,
        note: Some(format!("ambiguous {ambiguous}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholded_skips_only_logits_at_the_threshold() {
        let tol = Tolerance::Abs(1e-4);
        // Element 1's recorded logit is 5e-5 from 0: either side is right.
        let logits = [-2.0, 5e-5, 3.0, -1e-3];
        let c = compare_thresholded("bin", &[0, 0, 1, 0], &[0, 1, 1, 0], &logits, 0.0, tol);
        assert!(c.pass, "{c}");
        assert_eq!(c.note.as_deref(), Some("ambiguous 1"));
        // Element 3 (−1e-3) is outside the tolerance: a flip there fails.
        let c = compare_thresholded("bin", &[0, 1, 1, 1], &[0, 1, 1, 0], &logits, 0.0, tol);
        assert!(!c.pass);
        assert_eq!(c.max_abs_diff, 1.0);
        let c = compare_thresholded("bin", &[0, 1], &[0, 1, 1, 0], &logits, 0.0, tol);
        assert!(!c.pass && c.max_abs_diff.is_infinite());
    }

    #[test]
    fn abs_rel_switches_at_the_threshold() {
        let tol = Tolerance::AbsRel {
            abs: 1e-4,
            rel: 1e-4,
            threshold: 10.0,
        };
        let ok = compare_f32("x", (&[2], &[100.005, 1.00005]), (&[2], &[100.0, 1.0]), tol);
        assert!(ok.pass, "{ok}");
        let bad = compare_f32("x", (&[1], &[1.001]), (&[1], &[1.0]), tol);
        assert!(!bad.pass);
        let shape = compare_f32("x", (&[1, 2], &[1.0, 2.0]), (&[2], &[1.0, 2.0]), tol);
        assert!(!shape.pass && shape.max_abs_diff.is_infinite());
    }

    #[test]
    fn exact_counts_differences() {
        let c = compare_exact("ids", &[1, 2, 3], &[1, 5, 3, 4]);
        assert!(!c.pass);
        assert_eq!(c.max_abs_diff, 2.0);
        assert!(compare_exact("ids", &[7u32], &[7u32]).pass);
    }
}
