//! [`InternLM2Config`]: the official HF `config.json` of InternLM2, with presets and
//! validation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LlmError;

/// RoPE scaling as in the official `rope_scaling` field
/// (`{"type": "dynamic", "factor": 2.0}` for internlm2-chat-7b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `"dynamic"` (NTK-aware, only past `max_position_embeddings`) or `"linear"`
    /// (positions divided by `factor`).
    #[serde(rename = "type")]
    pub kind: RopeScalingKind,
    /// Scaling factor (> 1).
    pub factor: f64,
}

/// The two RoPE scaling kinds of the official InternLM2 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeScalingKind {
    /// `InternLM2DynamicNTKScalingRotaryEmbedding`: for a sequence of length
    /// `L > max_position_embeddings` the base becomes
    /// `θ·(factor·L/max_pos − (factor−1))^(d/(d−2))`.
    Dynamic,
    /// `InternLM2LinearScalingRotaryEmbedding`: positions divided by `factor`.
    Linear,
}

/// InternLM2 hyper-parameters, read from (and written to) the official HF
/// `config.json` field names. Unknown fields of that file are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternLM2Config {
    /// Model width (4096 for 7B).
    pub hidden_size: usize,
    /// Number of decoder layers (32 for 7B).
    pub num_hidden_layers: usize,
    /// Number of query heads (32 for 7B).
    pub num_attention_heads: usize,
    /// Number of key/value heads for grouped-query attention (8 for 7B).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// SwiGLU inner width (14336 for 7B).
    pub intermediate_size: usize,
    /// Rows of the token embedding and of the LM head (92544 for the base model;
    /// 92548 after OMG-LLaVA's added tokens).
    pub vocab_size: usize,
    /// RoPE base θ (1e6 for 7B).
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Optional RoPE scaling.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Context length the model was trained for (32768 for 7B); dynamic NTK scaling
    /// starts past it.
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon (1e-5).
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Whether the attention and FFN linears carry a bias (`false` for InternLM2).
    #[serde(default)]
    pub bias: bool,
    /// Whether the LM head shares the embedding matrix (`false` for InternLM2).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Activation of the FFN; only `"silu"` exists in InternLM2.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Beginning-of-sequence id (1).
    #[serde(default = "default_bos")]
    pub bos_token_id: u32,
    /// End-of-sequence id (2).
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    /// Padding id (2).
    #[serde(default = "default_eos")]
    pub pad_token_id: u32,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_hidden_act() -> String {
    "silu".to_owned()
}
fn default_bos() -> u32 {
    1
}
fn default_eos() -> u32 {
    2
}

impl InternLM2Config {
    /// The configuration of `internlm/internlm2-chat-7b` (the OMG-LLaVA-7B LLM),
    /// with the base vocabulary of 92544 rows.
    pub fn internlm2_chat_7b() -> Self {
        Self {
            hidden_size: 4096,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: Some(8),
            intermediate_size: 14336,
            vocab_size: 92544,
            rope_theta: 1_000_000.0,
            rope_scaling: Some(RopeScaling {
                kind: RopeScalingKind::Dynamic,
                factor: 2.0,
            }),
            max_position_embeddings: 32768,
            rms_norm_eps: 1e-5,
            bias: false,
            tie_word_embeddings: false,
            hidden_act: "silu".to_owned(),
            bos_token_id: 1,
            eos_token_id: 2,
            pad_token_id: 2,
        }
    }

    /// A small configuration with the 7B model's ratios (GQA group 4, head dim 128)
    /// and the given width and depth; used by benchmarks and tests.
    pub fn scaled(hidden_size: usize, num_hidden_layers: usize, vocab_size: usize) -> Self {
        let heads = (hidden_size / 128).max(1);
        Self {
            hidden_size,
            num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: Some((heads / 4).max(1)),
            intermediate_size: hidden_size * 7 / 2,
            vocab_size,
            ..Self::internlm2_chat_7b()
        }
    }

    /// Reads and validates a HF `config.json`.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, LlmError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json_str(&text).map_err(|e| match e {
            LlmError::Config(msg) => LlmError::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses and validates the text of a HF `config.json`.
    pub fn from_json_str(text: &str) -> Result<Self, LlmError> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| LlmError::Config(format!("invalid InternLM2 config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Number of key/value heads (`num_attention_heads` when the field is absent,
    /// as in the official code).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.kv_heads()
    }

    /// Rows of the fused `wqkv` weight: `(heads + 2·kv_heads)·head_dim`.
    pub fn qkv_dim(&self) -> usize {
        (self.num_attention_heads + 2 * self.kv_heads()) * self.head_dim()
    }

    /// Number of parameters of the model this configuration builds.
    pub fn num_params(&self) -> usize {
        let h = self.hidden_size;
        let attn = h * self.qkv_dim() + h * h;
        let ffn = 3 * h * self.intermediate_size;
        let bias = if self.bias {
            self.qkv_dim() + h + 2 * self.intermediate_size + h
        } else {
            0
        };
        let per_layer = attn + ffn + bias + 2 * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + self.num_hidden_layers * per_layer + h + head
    }

    /// Checks that the numbers describe a model this crate can build, with a message
    /// that says what is allowed.
    pub fn validate(&self) -> Result<(), LlmError> {
        let err = |m: String| Err(LlmError::Config(m));
        if self.hidden_size == 0 || self.num_hidden_layers == 0 || self.intermediate_size == 0 {
            return err(format!(
                "hidden_size ({}), num_hidden_layers ({}) and intermediate_size ({}) must be positive",
                self.hidden_size, self.num_hidden_layers, self.intermediate_size
            ));
        }
        if self.vocab_size == 0 {
            return err("vocab_size must be positive".into());
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return err(format!(
                "hidden_size ({}) must be divisible by num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return err(format!(
                "num_attention_heads ({}) must be divisible by num_key_value_heads ({kv})",
                self.num_attention_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return err(format!(
                "head dimension {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return err(format!(
                "rope_theta must be positive, got {}",
                self.rope_theta
            ));
        }
        if let Some(s) = self.rope_scaling
            && !(s.factor.is_finite() && s.factor > 1.0)
        {
            return err(format!(
                "rope_scaling.factor must be a float > 1, got {}",
                s.factor
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return err(format!(
                "rms_norm_eps must be positive, got {}",
                self.rms_norm_eps
            ));
        }
        if self.hidden_act != "silu" {
            return err(format!(
                "hidden_act `{}` is not supported: InternLM2 uses `silu`",
                self.hidden_act
            ));
        }
        if self.max_position_embeddings == 0 {
            return err("max_position_embeddings must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_7b_validates_and_has_the_official_sizes() {
        let c = InternLM2Config::internlm2_chat_7b();
        c.validate().unwrap();
        assert_eq!(c.head_dim(), 128);
        assert_eq!(c.group_size(), 4);
        assert_eq!(c.qkv_dim(), 6144);
        // 7.74 B parameters with the base vocabulary (HF model card: 7.7B).
        assert_eq!(c.num_params(), 7_737_708_544);
    }

    #[test]
    fn reads_the_official_field_names() {
        let text = r#"{"architectures":["InternLM2ForCausalLM"],"bias":false,"hidden_size":64,
            "intermediate_size":176,"max_position_embeddings":32768,"num_attention_heads":4,
            "num_hidden_layers":2,"num_key_value_heads":2,"rms_norm_eps":1e-05,
            "rope_scaling":{"type":"dynamic","factor":2.0},"rope_theta":1000000,
            "tie_word_embeddings":false,"vocab_size":256,"hidden_act":"silu"}"#;
        let c = InternLM2Config::from_json_str(text).unwrap();
        assert_eq!(c.kv_heads(), 2);
        assert_eq!(c.head_dim(), 16);
        assert_eq!(c.rope_scaling.unwrap().kind, RopeScalingKind::Dynamic);
        assert_eq!(c.rope_theta, 1e6);
    }

    #[test]
    fn rejects_heads_not_divisible_by_kv_heads() {
        let mut c = InternLM2Config::internlm2_chat_7b();
        c.num_key_value_heads = Some(5);
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("divisible by num_key_value_heads (5)"),
            "{msg}"
        );
        let mut c = InternLM2Config::internlm2_chat_7b();
        c.num_attention_heads = 30;
        assert!(c.validate().is_err());
        assert!(InternLM2Config::from_json_str("{\"hidden_size\": 3}").is_err());
    }
}
