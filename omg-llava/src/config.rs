//! The architecture of a whole OMG-LLaVA model (everything except the LLM, whose
//! numbers come from its HF `config.json`), with the official 7B defaults: the format
//! of a bundle's optional `omg_llava_config.json`, which overrides any of them (the tiny
//! demo bundle carries one); fields it leaves out keep the defaults.

use std::path::Path;

use omg_encoder::OmgSegConfig;
use omg_projector::{ProjectorConfig, Text2VisionConfig};
use serde::{Deserialize, Serialize};

use crate::error::OmgLlavaError;

/// Architecture numbers of OMG-LLaVA's vision side and projectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OmgLlavaConfig {
    /// The OMG-Seg encoder (image size, backbone, pixel and mask decoders, panoptic).
    #[serde(flatten)]
    pub encoder: OmgSegConfig,
    /// The visual projector.
    pub projector: ProjectorConfig,
    /// The `[SEG]` → query projector.
    pub text2vision: Text2VisionConfig,
    /// Class names of the class-embedding file, in order (default: the 133 COCO
    /// panoptic classes).
    pub class_names: Option<Vec<String>>,
    /// `smooth_ratio` of the perception prior (0.5).
    pub prior_smooth_ratio: f32,
}

impl Default for OmgLlavaConfig {
    fn default() -> Self {
        Self {
            encoder: OmgSegConfig::default(),
            projector: ProjectorConfig::default(),
            text2vision: Text2VisionConfig::default(),
            class_names: None,
            prior_smooth_ratio: 0.5,
        }
    }
}

impl OmgLlavaConfig {
    /// Reads a JSON file (missing fields take the official values).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, OmgLlavaError> {
        let path = path.as_ref();
        let invalid = |reason: String| OmgLlavaError::InvalidConfigFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
    }

    /// Checks the parts and that they fit together (given the LLM hidden size).
    pub fn validate(&self, llm_hidden_size: usize) -> Result<(), OmgLlavaError> {
        self.encoder.validate()?;
        self.projector.validate()?;
        let c = self.encoder.mask_decoder.feat_channels;
        let last = self.encoder.backbone.dims.last().copied().unwrap_or(0);
        let p = &self.projector;
        let t = &self.text2vision;
        let checks = [
            (
                "projector.query_channels",
                p.query_channels,
                c,
                "the decoder width",
            ),
            (
                "projector.feat_channels",
                p.feat_channels,
                4 * last,
                "4 × the last backbone width",
            ),
            (
                "projector.llm_hidden_size",
                p.llm_hidden_size,
                llm_hidden_size,
                "the LLM hidden size",
            ),
            (
                "text2vision.llm_hidden_size",
                t.llm_hidden_size,
                llm_hidden_size,
                "the LLM hidden size",
            ),
            (
                "text2vision.query_dim",
                t.query_dim,
                2 * c,
                "2 × the decoder width",
            ),
        ];
        for (field, found, expected, why) in checks {
            if found != expected {
                return Err(OmgLlavaError::InconsistentConfig {
                    field,
                    found,
                    expected,
                    why,
                });
            }
        }
        Ok(())
    }
}
