//! Stage `projector` (`ProjectorModel_OMG_LLaVA` / `Naive_Proj`): object and pixel
//! tokens, the valid-query selection and the visual token block of each image.

use burn::tensor::{Tensor, backend::Backend};
use omg_projector::loader::{VISUAL_PROJECTOR_PREFIX, load_visual_projector};
use omg_projector::{ProjectorConfig, VisualProjector};

use crate::ParityError;
use crate::checker::{Checker, load_bool, load_f32};
use crate::compare::Comparison;
use crate::fixture::{Fixture, Weights};
use crate::tolerance::Tolerances;

fn usize_at(fx: &Fixture, pointer: &str) -> Option<usize> {
    fx.json(pointer)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
}

/// The projector configuration of a fixture: its `projector_config` when present,
/// else derived from `tiny_hparams` (decoder width, last backbone width × ratio²,
/// LLM hidden size, projector depth).
pub fn projector_config(fx: &Fixture) -> Result<ProjectorConfig, ParityError> {
    let config = if fx.json("/projector_config").is_some() {
        ProjectorConfig {
            query_channels: usize_at(fx, "/projector_config/query_channels")
                .ok_or_else(|| fx.malformed("projector_config.query_channels missing"))?,
            feat_channels: usize_at(fx, "/projector_config/feat_channels")
                .ok_or_else(|| fx.malformed("projector_config.feat_channels missing"))?,
            llm_hidden_size: usize_at(fx, "/projector_config/llm_hidden_size")
                .ok_or_else(|| fx.malformed("projector_config.llm_hidden_size missing"))?,
            depth: usize_at(fx, "/projector_config/depth").unwrap_or(2),
            bias: fx
                .json("/projector_config/bias")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
        }
    } else {
        let dims = fx
            .json("/tiny_hparams/backbone_dims")
            .and_then(|v| v.as_array())
            .and_then(|a| a.last())
            .and_then(|v| v.as_u64())
            .ok_or_else(|| fx.malformed("tiny_hparams.backbone_dims missing"))?
            as usize;
        let ratio = usize_at(fx, "/tiny_hparams/pixel_shuffle_ratio").unwrap_or(2);
        ProjectorConfig {
            query_channels: usize_at(fx, "/tiny_hparams/feat")
                .ok_or_else(|| fx.malformed("tiny_hparams.feat missing"))?,
            feat_channels: dims * ratio * ratio,
            llm_hidden_size: usize_at(fx, "/tiny_hparams/llm_hidden")
                .ok_or_else(|| fx.malformed("tiny_hparams.llm_hidden missing"))?,
            depth: usize_at(fx, "/tiny_hparams/projector_depth").unwrap_or(2),
            bias: true,
        }
    };
    config.validate().map_err(|e| fx.malformed(e))?;
    Ok(config)
}

/// Loads the fixture's visual projector by its official names.
pub fn load_projector<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<VisualProjector<B>, ParityError> {
    let config = projector_config(fx)?;
    let (projector, _) = load_visual_projector::<B>(
        &config,
        &Weights(&fx.tensors),
        VISUAL_PROJECTOR_PREFIX,
        device,
    )?;
    Ok(projector)
}

/// Stage `projector`.
pub fn run_projector<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    let tol = Tolerances::from_sidecar(fx.json("/tolerance")).float("features");
    let projector = load_projector::<B>(fx, device)?;
    let out = projector.forward(
        load_f32::<B, 3>(fx, "in.clip_feature_with_prior", device)?,
        load_f32::<B, 3>(fx, "in.query_pos_feat", device)?,
        load_bool::<B, 3>(fx, "in.attn_mask", device)?,
    )?;
    let mut c = Checker::new(fx);
    c.float("out.query_proj", out.query_proj.clone(), tol)?;
    c.float("out.query_tokens_all", out.query_tokens.clone(), tol)?;
    c.float("out.clip_tokens", out.clip_tokens.clone(), tol)?;
    let q = out.query_tokens.dims()[1];
    let valid: Vec<i64> = out
        .valid_queries
        .iter()
        .flat_map(|v| (0..q).map(move |j| v.contains(&j) as i64))
        .collect();
    c.ints("out.valid_mask", &[out.valid_queries.len(), q], &valid)?;
    let d = projector.config().llm_hidden_size;
    for (i, tokens) in out.visual_tokens.iter().enumerate() {
        c.float(&format!("out.visual_tokens.{i}"), tokens.clone(), tol)?;
        let n = out.valid_queries[i].len();
        let hw = out.clip_tokens.dims()[1];
        let rows: Tensor<B, 2> = tokens.clone().slice([hw + 1..hw + 1 + n, 0..d]);
        c.float(&format!("out.valid_query_tokens.{i}"), rows, tol)?;
    }
    Ok(c.finish())
}
