//! Configuration of the visual projector (`ProjectorConfig_OMG_LLaVA`).

use serde::{Deserialize, Serialize};

/// Sizes of `ProjectorModel_OMG_LLaVA` / `Naive_Proj`. Defaults are the released 7B
/// model (`query_channels = 256`, `feat_channels = 1536·2·2`, `llm_hidden_size = 4096`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectorConfig {
    /// Width of one object query (the decoder width); the projector reads
    /// `[query_feat | query_pos]`, i.e. `2 · query_channels`.
    pub query_channels: usize,
    /// Channels of one pixel-shuffled CLIP token (`C4 · ratio²`).
    pub feat_channels: usize,
    /// Hidden size of the LLM the tokens are fed to.
    pub llm_hidden_size: usize,
    /// Number of linears in each MLP (`Linear`, then `GELU, Linear` repeated).
    pub depth: usize,
    /// Whether the linears carry a bias.
    pub bias: bool,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            query_channels: 256,
            feat_channels: 1536 * 4,
            llm_hidden_size: 4096,
            depth: 2,
            bias: true,
        }
    }
}

impl ProjectorConfig {
    /// Width of the prompt / object-query vectors (`2 · query_channels`).
    pub fn query_dim(&self) -> usize {
        2 * self.query_channels
    }

    /// Width of one pixel token entering `model_feat` (CLIP channels + prior).
    pub fn token_dim(&self) -> usize {
        self.feat_channels + self.query_dim()
    }

    /// Checks that every size is usable
    /// ([`ProjectorError::ZeroSize`](crate::ProjectorError::ZeroSize) names the one that
    /// is not).
    pub fn validate(&self) -> Result<(), crate::ProjectorError> {
        for (name, v) in [
            ("query_channels", self.query_channels),
            ("feat_channels", self.feat_channels),
            ("llm_hidden_size", self.llm_hidden_size),
            ("depth", self.depth),
        ] {
            if v == 0 {
                return Err(crate::ProjectorError::ZeroSize { field: name });
            }
        }
        Ok(())
    }
}

/// Sizes of the text-to-vision projector (xtuner `ProjectorModel`), which maps a
/// `[SEG]` hidden state to `[query_feat | query_pos]` of the mask decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Text2VisionConfig {
    /// Input: the LLM hidden size.
    pub llm_hidden_size: usize,
    /// Output: `2 ·` decoder width.
    pub query_dim: usize,
    /// Number of linears.
    pub depth: usize,
    /// Whether the linears carry a bias.
    pub bias: bool,
}

impl Default for Text2VisionConfig {
    fn default() -> Self {
        Self {
            llm_hidden_size: 4096,
            query_dim: 512,
            depth: 2,
            bias: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProjectorError;

    #[test]
    fn a_zero_size_is_named_by_a_typed_error() {
        assert!(ProjectorConfig::default().validate().is_ok());
        let config = ProjectorConfig {
            depth: 0,
            ..ProjectorConfig::default()
        };
        match config.validate() {
            Err(ProjectorError::ZeroSize { field }) => assert_eq!(field, "depth"),
            other => panic!("{other:?}"),
        }
    }
}
