//! Stage `encoder` (OMG-Seg visual encoder). Implemented so far: the ConvNeXt
//! backbone. Every other recorded output is reported as FAIL ("not implemented
//! yet") so the stage cannot pass before it is complete.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use omg_encoder::loader::{BackboneNaming, load_backbone, load_pixel_decoder};
use omg_encoder::{BackboneConfig, ConvNext, PixelDecoder, PixelDecoderConfig};

use super::ParityError;
use super::compare::{Comparison, Tolerance, compare_f32};
use super::fixture::{Fixture, Weights};
use super::tolerance::Tolerances;

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

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    (
        shape,
        t.into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap_or_default(),
    )
}

/// Stage `encoder`.
pub fn run_encoder<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    let tols = Tolerances::from_sidecar(fx.json("/tolerance"));
    let config = backbone_config(fx)?;
    let weights = Weights(&fx.tensors);
    let (backbone, _) = load_backbone(
        ConvNext::<B>::init(&config, device),
        &weights,
        &BackboneNaming::OmgSeg("visual_encoder.backbone.".into()),
    )?;
    let (shape, values) = fx.f32("in.pixel_values")?;
    let images = Tensor::<B, 4>::from_data(
        TensorData::new(values, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    );
    let mut results = Vec::new();
    let mut compared = std::collections::BTreeSet::new();
    let mut check = |key: String, t: Tensor<B, 4>| -> Result<(), ParityError> {
        let (s, v) = host(t);
        let (es, ev) = fx.f32(&key)?;
        results.push(compare_f32(
            &key,
            (&s, &v),
            (&es, &ev),
            tols.float("features"),
        ));
        compared.insert(key);
        Ok(())
    };
    let levels = backbone.forward(images);
    for (i, level) in levels.iter().enumerate() {
        check(format!("out.backbone.{i}"), level.clone())?;
    }

    let (pixel_decoder, _) = load_pixel_decoder(
        PixelDecoder::<B>::init(&pixel_decoder_config(fx)?, device),
        &weights,
        "visual_encoder.panoptic_head.",
    )?;
    let pd = pixel_decoder.forward(&levels);
    check("out.pixel_decoder.mask_features".into(), pd.mask_features)?;
    check(
        "out.pixel_decoder.fpn_stride4_pre_mask_feature".into(),
        pd.fpn_stride4,
    )?;
    for (i, m) in pd.multi_scale_memory.into_iter().enumerate() {
        check(format!("out.pixel_decoder.multi_scale_memory.{i}"), m)?;
    }
    for key in fx.tensors_names() {
        if key.starts_with("out.") && !compared.contains(&key) {
            results.push(Comparison {
                key,
                max_abs_diff: f64::NAN,
                tolerance: Tolerance::Exact,
                pass: false,
                note: Some("not implemented yet".into()),
            });
        }
    }
    Ok(results)
}
