//! Configurations of the encoder's parts, with the official OMG-LLaVA-7B defaults.

use serde::{Deserialize, Serialize};

use crate::EncoderError;

/// The open_clip / timm ConvNeXt trunk (`OpenCLIPBackbone_omgseg`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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

/// mmdet `MSDeformAttnPixelDecoder` (the deformable-attention encoder over the three
/// coarsest backbone levels, then an FPN step to stride 4 and the `mask_feature` conv).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PixelDecoderConfig {
    /// Channels of the backbone levels (stride 4 first).
    pub in_channels: Vec<usize>,
    /// Width of every map and token (256 officially).
    pub feat_channels: usize,
    /// Groups of every GroupNorm (32).
    pub num_groups: usize,
    /// Epsilon of the GroupNorms (1e-5).
    pub group_norm_eps: f64,
    /// Deformable-attention encoder layers (6).
    pub num_layers: usize,
    /// Attention heads (8).
    pub num_heads: usize,
    /// Levels the encoder attends over, the coarsest ones (3).
    pub num_levels: usize,
    /// Sampling points per head and level (4).
    pub num_points: usize,
    /// FFN width (1024).
    pub ffn_channels: usize,
    /// Epsilon of the encoder LayerNorms (1e-5).
    pub layer_norm_eps: f64,
}

impl Default for PixelDecoderConfig {
    fn default() -> Self {
        Self {
            in_channels: vec![192, 384, 768, 1536],
            feat_channels: 256,
            num_groups: 32,
            group_norm_eps: 1e-5,
            num_layers: 6,
            num_heads: 8,
            num_levels: 3,
            num_points: 4,
            ffn_channels: 1024,
            layer_norm_eps: 1e-5,
        }
    }
}

impl PixelDecoderConfig {
    /// Checks the numbers describe a buildable pixel decoder.
    pub fn validate(&self) -> Result<(), EncoderError> {
        let err = |m: String| Err(EncoderError::Config(m));
        if self.num_levels == 0 || self.num_levels >= self.in_channels.len() {
            return err(format!(
                "pixel decoder: num_levels ({}) must be in 1..{} (backbone levels minus the FPN level)",
                self.num_levels,
                self.in_channels.len()
            ));
        }
        if self.num_heads == 0 || !self.feat_channels.is_multiple_of(self.num_heads) {
            return err(format!(
                "pixel decoder: feat_channels ({}) must be divisible by num_heads ({})",
                self.feat_channels, self.num_heads
            ));
        }
        if self.num_groups == 0 || !self.feat_channels.is_multiple_of(self.num_groups) {
            return err(format!(
                "pixel decoder: feat_channels ({}) must be divisible by num_groups ({})",
                self.feat_channels, self.num_groups
            ));
        }
        if !self.feat_channels.is_multiple_of(2) || self.num_points == 0 || self.num_layers == 0 {
            return err(
                "pixel decoder: feat_channels must be even, num_points and num_layers positive"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The Mask2Former-style decoder of OMG-Seg (`Mask2FormerVideoSemSamHead`): learned
/// queries refined by masked cross-attention over the pixel decoder's levels, with the
/// open-vocabulary class head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MaskDecoderConfig {
    /// Width of queries and features (256).
    pub feat_channels: usize,
    /// Object queries (300).
    pub num_queries: usize,
    /// Decoder layers (9).
    pub num_layers: usize,
    /// Attention heads (8).
    pub num_heads: usize,
    /// FFN width (2048).
    pub ffn_channels: usize,
    /// Feature levels cycled through (3).
    pub num_levels: usize,
    /// Epsilon of every LayerNorm (1e-5).
    pub layer_norm_eps: f64,
    /// Width of the CLIP text embeddings the class head compares against (768).
    pub clip_dim: usize,
    /// `logit_scale`; class logits are multiplied by `exp(logit_scale)` (4.6052 → 100).
    pub logit_scale: f32,
}

impl Default for MaskDecoderConfig {
    fn default() -> Self {
        Self {
            feat_channels: 256,
            num_queries: 300,
            num_layers: 9,
            num_heads: 8,
            ffn_channels: 2048,
            num_levels: 3,
            layer_norm_eps: 1e-5,
            clip_dim: 768,
            logit_scale: 4.6052,
        }
    }
}

impl MaskDecoderConfig {
    /// Checks the numbers describe a buildable decoder.
    pub fn validate(&self) -> Result<(), EncoderError> {
        if self.num_heads == 0 || !self.feat_channels.is_multiple_of(self.num_heads) {
            return Err(EncoderError::Config(format!(
                "mask decoder: feat_channels ({}) must be divisible by num_heads ({})",
                self.feat_channels, self.num_heads
            )));
        }
        if self.num_queries == 0
            || self.num_layers == 0
            || self.num_levels == 0
            || self.clip_dim == 0
        {
            return Err(EncoderError::Config(
                "mask decoder: num_queries, num_layers, num_levels and clip_dim must be positive"
                    .into(),
            ));
        }
        if !self.feat_channels.is_multiple_of(2) {
            return Err(EncoderError::Config(
                "mask decoder: feat_channels must be even".into(),
            ));
        }
        Ok(())
    }
}
