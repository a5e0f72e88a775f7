//! The generation fields every generating endpoint takes, checked against the
//! server's limits and turned into the Pipeline's `GenerateOptions` (which the Pipeline
//! checks itself: a setting out of its range is a 400 `bad_parameter`).

use omg_llava::{GenerateOptions, OmgLlavaError, Sampling};
use serde::Deserialize;

use super::ServeConfig;
use super::error::ApiError;

/// `max_tokens`, `temperature`, `top_p`, `seed` and the `force_seg` and `ignore_eos`
/// extensions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SamplingFields {
    /// Most new tokens (default: the server's `--max-tokens-default`).
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// OpenAI's newer name for `max_tokens` (used when `max_tokens` is absent).
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    /// Absent or 0: greedy decoding (the official evaluation); above 0: sampling.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling's mass (with a temperature; default 1 = off).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Seed of sampling (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Extension: force `[SEG]` as the K-th new token (shows the mask path on weights
    /// that never emit it, such as the random demo bundle's).
    #[serde(default)]
    pub force_seg: Option<usize>,
    /// Extension (vLLM's): generate all `max_tokens`, past the end-of-turn tokens.
    #[serde(default)]
    pub ignore_eos: bool,
}

/// The Pipeline options of `fields`, or a 400 `bad_parameter` naming the bad field.
pub fn generate_options(
    fields: &SamplingFields,
    config: &ServeConfig,
) -> Result<GenerateOptions, ApiError> {
    let bad = |m: String| ApiError::bad_request("bad_parameter", m);
    let n = fields
        .max_tokens
        .or(fields.max_completion_tokens)
        .unwrap_or(config.default_max_tokens);
    if n == 0 || n > config.max_tokens_limit {
        return Err(bad(format!(
            "max_tokens must be between 1 and {} (this server's limit), got {n}",
            config.max_tokens_limit
        )));
    }
    let mut options = GenerateOptions::default().with_max_new_tokens(n);
    match fields.temperature {
        Some(t) if t.is_nan() || t < 0.0 => {
            return Err(bad(format!("temperature must be 0 or more, got {t}")));
        }
        Some(t) if t > 0.0 => {
            options = options.with_sampling(Sampling::Sample {
                temperature: t,
                top_k: 0,
                top_p: fields.top_p.unwrap_or(1.0),
                seed: fields.seed.unwrap_or(0),
            });
        }
        // none, or 0: greedy (OpenAI's convention)
        _ => {}
    }
    if let Some(k) = fields.force_seg {
        options = options.with_forced_seg(k);
    }
    options = options.with_ignore_eos(fields.ignore_eos);
    options.validate().map_err(|e| match e {
        OmgLlavaError::InvalidOption { option, reason } => bad(format!(
            "{}: {}",
            request_field(option),
            // the reason may name another setting by its Pipeline name
            reason.replace("max_new_tokens", "max_tokens")
        )),
        other => other.into(),
    })?;
    Ok(options)
}

/// The request field of one of the Pipeline's generation settings.
fn request_field(option: &str) -> &str {
    match option {
        "max_new_tokens" => "max_tokens",
        "forced_seg" => "force_seg",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServeConfig {
        ServeConfig {
            default_max_tokens: 7,
            max_tokens_limit: 50,
            ..ServeConfig::default()
        }
    }

    fn options(fields: SamplingFields) -> Result<GenerateOptions, String> {
        generate_options(&fields, &config()).map_err(|e| e.to_string())
    }

    #[test]
    fn ignore_eos_is_off_unless_the_request_asks() {
        let ignore = |ignore_eos| {
            options(SamplingFields {
                ignore_eos,
                ..Default::default()
            })
            .map(|o| o.ignore_eos)
        };
        assert_eq!(ignore(false), Ok(false));
        assert_eq!(ignore(true), Ok(true));
    }

    #[test]
    fn max_tokens_comes_from_the_request_its_newer_name_or_the_default() {
        let n = |max_tokens, max_completion_tokens| {
            options(SamplingFields {
                max_tokens,
                max_completion_tokens,
                ..Default::default()
            })
            .map(|o| o.max_new_tokens)
        };
        assert_eq!(n(None, None), Ok(7));
        assert_eq!(n(Some(3), None), Ok(3));
        assert_eq!(n(None, Some(4)), Ok(4));
        assert_eq!(n(Some(3), Some(4)), Ok(3));
        assert_eq!(n(Some(50), None), Ok(50));
        for bad in [0, 51] {
            let e = n(Some(bad), None).unwrap_err();
            assert!(
                e.contains("between 1 and 50") && e.contains(&format!("got {bad}")),
                "{e}"
            );
        }
    }

    #[test]
    fn temperature_zero_is_greedy_and_above_zero_samples_with_top_p_and_seed() {
        let sampling = |temperature, top_p, seed| {
            options(SamplingFields {
                temperature,
                top_p,
                seed,
                ..Default::default()
            })
            .map(|o| o.sampling)
        };
        assert_eq!(sampling(None, Some(0.5), Some(3)), Ok(Sampling::Greedy));
        assert_eq!(sampling(Some(0.0), None, None), Ok(Sampling::Greedy));
        assert_eq!(
            sampling(Some(0.7), Some(0.9), Some(42)),
            Ok(Sampling::Sample {
                temperature: 0.7,
                top_k: 0,
                top_p: 0.9,
                seed: 42
            })
        );
        assert_eq!(
            sampling(Some(1.5), None, None),
            Ok(Sampling::Sample {
                temperature: 1.5,
                top_k: 0,
                top_p: 1.0,
                seed: 0
            })
        );
        for bad in [-0.1, f32::NAN] {
            let e = sampling(Some(bad), None, None).unwrap_err();
            assert!(e.contains("temperature must be 0 or more"), "{e}");
        }
        // the Pipeline's own range check, named by the request's field
        let e = sampling(Some(1.0), Some(1.5), None).unwrap_err();
        assert!(e.contains("top_p"), "{e}");
    }

    #[test]
    fn force_seg_is_passed_on_and_its_errors_name_the_request_field() {
        let forced = |force_seg, max_tokens| {
            options(SamplingFields {
                force_seg,
                max_tokens,
                ..Default::default()
            })
            .map(|o| o.forced_seg)
        };
        assert_eq!(forced(None, None), Ok(None));
        assert_eq!(forced(Some(1), Some(5)), Ok(Some(1)));
        let e = forced(Some(4), Some(5)).unwrap_err();
        assert!(e.contains("force_seg:") && !e.contains("forced_seg"), "{e}");
        assert!(
            e.contains("max_tokens of at least 6") && !e.contains("max_new"),
            "{e}"
        );
        assert_eq!(request_field("max_new_tokens"), "max_tokens");
        assert_eq!(request_field("forced_seg"), "force_seg");
        assert_eq!(request_field("top_p"), "top_p");
    }
}
