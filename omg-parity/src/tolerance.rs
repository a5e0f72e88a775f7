//! Tolerances read from a fixture sidecar's `tolerance` field.
//!
//! The sidecars state them in words, e.g. `"max abs diff <= 1e-4 (logits), <= 1e-5
//! (hidden); ids exact"` or `"max abs diff <= 1e-4 for features/logits (relative 1e-4
//! on values > 10); ..."`. Every `<= X (name)` sets the tolerance of that category,
//! `<= X for a/b` sets the default float tolerance, and `relative X on values > Y`
//! adds a relative bound for large values. Categories a sidecar does not name use
//! the README's suggested values (1e-4; 1e-3 after a bilinear upsample).

use crate::compare::Tolerance;

/// The tolerances of one fixture.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerances {
    default_abs: f64,
    named: Vec<(String, f64)>,
    relative: Option<(f64, f64)>,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            default_abs: 1e-4,
            named: Vec::new(),
            relative: None,
        }
    }
}

fn parse_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(end);
    let num = num.trim_end_matches('.');
    num.parse().ok().map(|v| (v, rest))
}

impl Tolerances {
    /// Parses the sidecar's `tolerance` value (a string or an object of strings).
    pub fn from_sidecar(value: Option<&serde_json::Value>) -> Self {
        let mut out = Self::default();
        let mut texts = Vec::new();
        match value {
            Some(serde_json::Value::String(s)) => texts.push(s.clone()),
            Some(serde_json::Value::Object(m)) => {
                texts.extend(m.values().filter_map(|v| v.as_str().map(str::to_owned)))
            }
            _ => {}
        }
        for text in texts {
            let mut rest = text.as_str();
            while let Some(at) = rest.find("<=") {
                rest = &rest[at + 2..];
                let Some((v, tail)) = parse_number(rest) else {
                    continue;
                };
                let tail = tail.trim_start();
                if let Some(inner) = tail.strip_prefix('(') {
                    let name = inner.split(')').next().unwrap_or("").trim();
                    out.named.push((name.to_owned(), v));
                } else {
                    out.default_abs = v;
                }
            }
            if let Some(at) = text.find("relative") {
                let tail = &text[at + "relative".len()..];
                if let Some((rel, tail)) = parse_number(tail)
                    && let Some(gt) = tail.find('>')
                    && let Some((thr, _)) = parse_number(&tail[gt + 1..])
                {
                    out.relative = Some((rel, thr));
                }
            }
        }
        out
    }

    /// The tolerance for a float output of `category` (e.g. `"logits"`, `"hidden"`).
    pub fn float(&self, category: &str) -> Tolerance {
        let abs = self
            .named
            .iter()
            .find(|(n, _)| n == category)
            .map(|&(_, v)| v)
            .unwrap_or(self.default_abs);
        match self.relative {
            Some((rel, threshold)) => Tolerance::AbsRel {
                abs,
                rel,
                threshold,
            },
            None => Tolerance::Abs(abs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_named_and_default_bounds() {
        let t = Tolerances::from_sidecar(Some(&json!({
            "float": "max abs diff <= 1e-4 (logits), <= 1e-5 (hidden); ids exact"
        })));
        assert_eq!(t.float("logits"), Tolerance::Abs(1e-4));
        assert_eq!(t.float("hidden"), Tolerance::Abs(1e-5));
        assert_eq!(t.float("other"), Tolerance::Abs(1e-4));
    }

    #[test]
    fn reads_relative_bounds() {
        let t = Tolerances::from_sidecar(Some(&json!({"float32":
            "max abs diff <= 1e-4 for features/logits (relative 1e-4 on values > 10); masks exact"})));
        assert_eq!(
            t.float("features"),
            Tolerance::AbsRel {
                abs: 1e-4,
                rel: 1e-4,
                threshold: 10.0
            }
        );
    }
}
