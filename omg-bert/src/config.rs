//! `config.json` of a Hugging Face BERT folder, with `bert-base-uncased`'s values as
//! the defaults of the fields a file leaves out.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BertError;

/// The fields of a BERT `config.json` that the encoder reads (others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    /// Number of token embeddings (30 522).
    pub vocab_size: usize,
    /// Width of the hidden states (768).
    pub hidden_size: usize,
    /// Number of transformer layers (12).
    pub num_hidden_layers: usize,
    /// Number of attention heads (12); divides `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer (3 072).
    pub intermediate_size: usize,
    /// Feed-forward activation; only `"gelu"` (the exact, erf form) is supported.
    pub hidden_act: String,
    /// Number of absolute position embeddings (512).
    pub max_position_embeddings: usize,
    /// Number of token-type (segment) embeddings (2); a phrase uses type 0.
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm (1e-12).
    pub layer_norm_eps: f64,
    /// Kind of position embeddings; only `"absolute"` is supported.
    pub position_embedding_type: String,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30_522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3_072,
            hidden_act: "gelu".to_owned(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: "absolute".to_owned(),
        }
    }
}

impl BertConfig {
    /// Reads and checks `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<Self, BertError> {
        let text = std::fs::read_to_string(path).map_err(|source| BertError::Io {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| BertError::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| BertError::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks that the encoder can run this configuration.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be > 0"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(format!(
                "layer_norm_eps must be finite and >= 0, got {}",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }
}
