//! Configurations of the encoder's parts, with the official OMG-LLaVA-7B defaults.

use serde::{Deserialize, Serialize};

use crate::EncoderError;

/// The open_clip / timm ConvNeXt trunk (`OpenCLIPBackbone_omgseg`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneConfig {
    /// Blocks per stage (ConvNeXt-L: `[3, 3, 27, 3]`).
    pub depths: Vec<usize>,
    /// Channels per stage (ConvNeXt-L: `[192, 384, 768, 1536]`).
    pub dims: Vec<usize>,
    /// Input channels (3).
    pub in_channels: usize,
    /// Epsilon of every LayerNorm (timm: 1e-6).
    pub layer_norm_eps: f64,
}

impl Default for BackboneConfig {
    /// `convnext_large_d_320` as OMG-LLaVA loads it.
    fn default() -> Self {
        Self {
            depths: vec![3, 3, 27, 3],
            dims: vec![192, 384, 768, 1536],
            in_channels: 3,
            layer_norm_eps: 1e-6,
        }
    }
}

impl BackboneConfig {
    /// Checks the numbers describe a buildable trunk.
    pub fn validate(&self) -> Result<(), EncoderError> {
        if self.depths.is_empty() || self.depths.len() != self.dims.len() {
            return Err(EncoderError::Config(format!(
                "backbone depths {:?} and dims {:?} must be non-empty and of equal length",
                self.depths, self.dims
            )));
        }
        if self.dims.contains(&0) || self.in_channels == 0 {
            return Err(EncoderError::Config(format!(
                "backbone dims {:?} and in_channels {} must be positive",
                self.dims, self.in_channels
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(EncoderError::Config(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }

    /// Total stride of the last stage (4 · 2^(stages−1); 32 for ConvNeXt).
    pub fn output_stride(&self) -> usize {
        4 << (self.dims.len() - 1)
    }
}
