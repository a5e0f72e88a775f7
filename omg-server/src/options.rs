//! The generation fields every generating endpoint takes, checked against the
//! server's limits and turned into the Pipeline's `GenerateOptions` (which the Pipeline
//! checks itself: a setting out of its range is a 400 `bad_parameter`).

use omg_llava::{GenerateOptions, OmgLlavaError, Sampling};
use serde::Deserialize;

use super::ServeConfig;
use super::error::ApiError;

/// `max_tokens`, `temperature`, `top_p`, `seed` and the `force_seg` extension.
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
        // 0 is greedy here (OpenAI's convention), so only a negative value is refused
        None | Some(0.0) => {}
        Some(t) if t > 0.0 => {
            options = options.with_sampling(Sampling::Sample {
                temperature: t,
                top_k: 0,
                top_p: fields.top_p.unwrap_or(1.0),
                seed: fields.seed.unwrap_or(0),
            });
        }
        Some(t) => return Err(bad(format!("temperature must be 0 or more, got {t}"))),
    }
    if let Some(k) = fields.force_seg {
        options = options.with_forced_seg(k);
    }
    options.validate().map_err(|e| match e {
        OmgLlavaError::InvalidOption { option, reason } => {
            bad(format!("{}: {reason}", request_field(option)))
        }
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
