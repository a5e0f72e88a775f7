//! Loading the projectors by their official names (`projector.model.*`,
//! `projector_text2vision.model.*` in the OMG-LLaVA `.pth`).

use burn::tensor::backend::Backend;
use omg_checkpoint::TensorSource;
use omg_checkpoint::module_loader::{Layout, load_module};

use crate::config::{ProjectorConfig, Text2VisionConfig};
use crate::error::ProjectorError;
use crate::mlp::{ProjectorMlp, official_suffix};
use crate::visual_projector::VisualProjector;

/// Official prefix of the visual projector inside `OMG_LLaVA`.
pub const VISUAL_PROJECTOR_PREFIX: &str = "projector.model.";
/// Official prefix of the text-to-vision projector inside `OMG_LLaVA`.
pub const TEXT2VISION_PREFIX: &str = "projector_text2vision.model.";

fn layout(param: &str) -> Layout {
    if param.ends_with("weight") {
        Layout::Transposed
    } else {
        Layout::Same
    }
}

/// Official key of a [`VisualProjector`] parameter path under `prefix`.
pub fn visual_projector_key(prefix: &str, path: &str) -> (String, Layout) {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    match head {
        "model" | "model_feat" => match official_suffix(rest) {
            Some(s) => (format!("{prefix}{head}.{s}"), layout(rest)),
            None => (format!("?{path}"), Layout::Same),
        },
        "query_proj" => (format!("{prefix}query_proj.{rest}"), layout(rest)),
        "seperate_embed" => (format!("{prefix}seperate_embed.{rest}"), Layout::Same),
        _ => (format!("?{path}"), Layout::Same),
    }
}

/// Loads the visual projector from `source` (keys `{prefix}query_proj.weight`, …).
/// Returns it and the official keys it used.
pub fn load_visual_projector<B: Backend>(
    config: &ProjectorConfig,
    source: &dyn TensorSource,
    prefix: &str,
    device: &B::Device,
) -> Result<(VisualProjector<B>, Vec<String>), ProjectorError> {
    config.validate()?;
    let module = VisualProjector::init(config, device);
    Ok(load_module(module, source, |p| {
        visual_projector_key(prefix, p)
    })?)
}

/// Loads the text-to-vision projector MLP (keys `{prefix}0.weight`, `{prefix}2.weight`, …).
pub fn load_text2vision<B: Backend>(
    config: &Text2VisionConfig,
    source: &dyn TensorSource,
    prefix: &str,
    device: &B::Device,
) -> Result<(ProjectorMlp<B>, Vec<String>), ProjectorError> {
    if config.llm_hidden_size == 0 || config.query_dim == 0 || config.depth == 0 {
        return Err(ProjectorError::Config(format!(
            "text2vision sizes must be positive: {config:?}"
        )));
    }
    let module = ProjectorMlp::init(
        config.llm_hidden_size,
        config.query_dim,
        config.depth,
        config.bias,
        device,
    );
    Ok(load_module(module, source, |p| match official_suffix(p) {
        Some(s) => (format!("{prefix}{s}"), layout(p)),
        None => (format!("?{p}"), Layout::Same),
    })?)
}
