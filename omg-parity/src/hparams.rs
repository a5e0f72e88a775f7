//! The configurations a fixture's `tiny_hparams` describe (numbers the sidecar does not
//! give are the official ones), shared by the stages.

use omg_encoder::{BackboneConfig, MaskDecoderConfig, PixelDecoderConfig};
use omg_projector::Text2VisionConfig;

use crate::ParityError;
use crate::fixture::Fixture;

/// Official prefix of the OMG-Seg head inside OMG-LLaVA.
pub const HEAD: &str = "visual_encoder.panoptic_head.";

/// The text-to-vision configuration of a fixture (LLM hidden → 2 · decoder width).
pub fn text2vision_config(fx: &Fixture) -> Result<Text2VisionConfig, ParityError> {
    let at = |p: &str| {
        fx.json(p)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| fx.malformed(format!("the sidecar has no integer at {p}")))
    };
    Ok(Text2VisionConfig {
        llm_hidden_size: at("/tiny_hparams/llm_hidden")?,
        query_dim: 2 * at("/tiny_hparams/feat")?,
        depth: at("/tiny_hparams/projector_depth").unwrap_or(2),
        bias: true,
    })
}

fn usize_list(fx: &Fixture, pointer: &str) -> Result<Vec<usize>, ParityError> {
    fx.json(pointer)
        .and_then(|v| v.as_array())
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
        .ok_or_else(|| fx.malformed(format!("the sidecar has no integer list at {pointer}")))
}

/// The backbone configuration a fixture's `tiny_hparams` describe.
pub fn backbone_config(fx: &Fixture) -> Result<BackboneConfig, ParityError> {
    let config = BackboneConfig {
        depths: usize_list(fx, "/tiny_hparams/backbone_depths")?,
        dims: usize_list(fx, "/tiny_hparams/backbone_dims")?,
        ..BackboneConfig::default()
    };
    config.validate().map_err(|e| fx.malformed(e.to_string()))?;
    Ok(config)
}

fn usize_at(fx: &Fixture, pointer: &str) -> Result<usize, ParityError> {
    fx.json(pointer)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| fx.malformed(format!("the sidecar has no integer at {pointer}")))
}

/// The pixel-decoder configuration a fixture's `tiny_hparams` describe (numbers the
/// sidecar does not give are the official ones).
pub fn pixel_decoder_config(fx: &Fixture) -> Result<PixelDecoderConfig, ParityError> {
    let config = PixelDecoderConfig {
        in_channels: usize_list(fx, "/tiny_hparams/backbone_dims")?,
        feat_channels: usize_at(fx, "/tiny_hparams/feat")?,
        num_layers: usize_at(fx, "/tiny_hparams/pixdec_layers")?,
        num_heads: usize_at(fx, "/tiny_hparams/heads")?,
        num_levels: usize_at(fx, "/tiny_hparams/msda_levels")?,
        num_points: usize_at(fx, "/tiny_hparams/msda_points")?,
        ffn_channels: usize_at(fx, "/tiny_hparams/pixdec_ffn")?,
        ..PixelDecoderConfig::default()
    };
    config.validate().map_err(|e| fx.malformed(e.to_string()))?;
    Ok(config)
}

/// The mask-decoder configuration a fixture's `tiny_hparams` describe.
pub fn mask_decoder_config(fx: &Fixture) -> Result<MaskDecoderConfig, ParityError> {
    let mut config = MaskDecoderConfig {
        feat_channels: usize_at(fx, "/tiny_hparams/feat")?,
        num_queries: usize_at(fx, "/tiny_hparams/num_queries")?,
        num_layers: usize_at(fx, "/tiny_hparams/dec_layers")?,
        num_heads: usize_at(fx, "/tiny_hparams/heads")?,
        ffn_channels: usize_at(fx, "/tiny_hparams/dec_ffn")?,
        num_levels: usize_at(fx, "/tiny_hparams/msda_levels")?,
        clip_dim: usize_at(fx, "/tiny_hparams/clip_embed_dim")?,
        ..MaskDecoderConfig::default()
    };
    if fx.has("buf.visual_encoder.panoptic_head.logit_scale") {
        let (_, v) = fx.f32("buf.visual_encoder.panoptic_head.logit_scale")?;
        config.logit_scale = v.first().copied().unwrap_or(config.logit_scale);
    }
    config.validate().map_err(|e| fx.malformed(e.to_string()))?;
    Ok(config)
}
