//! Downloading a checkpoint bundle from the Hugging Face hub (cargo feature `hub`).
//!
//! The official files live in three repositories: the OMG-LLaVA release
//! (`zhangtao-whu/OMG-LLaVA`: the finetuned `.pth`, `omg_seg_convl.pth` and the
//! class-embedding file), the base LLM (`internlm/internlm2-chat-7b`) and, only when
//! `omg_seg_convl.pth` has no backbone weights, the open_clip ConvNeXt-L
//! (`laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup`). Files are cached
//! by `hf-hub` (default `~/.cache/huggingface/hub`, or `HF_HOME`).

use std::path::PathBuf;

use hf_hub::api::sync::{Api, ApiBuilder};
use omg_checkpoint::TensorSource;
use omg_checkpoint::pth::PthFile;

use crate::bundle::CheckpointBundle;
use crate::error::OmgLlavaError;

/// Where each file of a bundle is on the hub.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HubSources {
    /// Repository of the OMG-LLaVA release files.
    pub release_repo: String,
    /// The finetuned OMG-LLaVA `.pth` in `release_repo`.
    pub release_file: String,
    /// The OMG-Seg checkpoint in `release_repo`.
    pub omg_seg_file: String,
    /// The class-embedding file in `release_repo`.
    pub class_embedding_file: String,
    /// Repository of the base InternLM2 model.
    pub llm_repo: String,
    /// Repository of the open_clip ConvNeXt-L.
    pub open_clip_repo: String,
    /// The open_clip weights file in `open_clip_repo`.
    pub open_clip_file: String,
}

impl Default for HubSources {
    fn default() -> Self {
        Self {
            release_repo: "zhangtao-whu/OMG-LLaVA".into(),
            release_file: "omg_llava_7b_finetune_8gpus.pth".into(),
            omg_seg_file: "omg_seg_convl.pth".into(),
            class_embedding_file: "convnext_large_d_320_CocoPanopticOVDataset.pth".into(),
            llm_repo: "internlm/internlm2-chat-7b".into(),
            open_clip_repo: "laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup".into(),
            open_clip_file: "open_clip_pytorch_model.bin".into(),
        }
    }
}

fn hub_err(what: &str, e: impl std::fmt::Display) -> OmgLlavaError {
    OmgLlavaError::Hub {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

fn get(api: &Api, repo: &str, file: &str) -> Result<PathBuf, OmgLlavaError> {
    api.model(repo.to_owned())
        .get(file)
        .map_err(|e| hub_err(&format!("{repo}/{file}"), e))
}

/// Downloads (or finds in the cache) every file of a bundle and returns their paths.
/// `cache_dir` overrides the hub cache location.
pub fn download_bundle(
    sources: &HubSources,
    cache_dir: Option<PathBuf>,
) -> Result<CheckpointBundle, OmgLlavaError> {
    let mut builder = ApiBuilder::new().with_progress(true);
    if let Some(dir) = cache_dir {
        builder = builder.with_cache_dir(dir);
    }
    let api = builder.build().map_err(|e| hub_err("the hub client", e))?;

    // Base LLM: config, tokenizer, and the weights (sharded through the index).
    let llm = &sources.llm_repo;
    let config = get(&api, llm, "config.json")?;
    for f in [
        "tokenizer.model",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        get(&api, llm, f)?;
    }
    let index = get(&api, llm, "model.safetensors.index.json")?;
    let text = std::fs::read_to_string(&index).map_err(|e| hub_err("the weight index", e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| hub_err("the weight index", e))?;
    let mut shards: Vec<String> = json["weight_map"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    shards.dedup();
    if shards.is_empty() {
        return Err(hub_err("the weight index", "no shards listed"));
    }
    for shard in &shards {
        get(&api, llm, shard)?;
    }
    let llm_dir = config
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| hub_err("the LLM", "no snapshot directory"))?;

    let omg_llava = get(&api, &sources.release_repo, &sources.release_file)?;
    let omg_seg = get(&api, &sources.release_repo, &sources.omg_seg_file)?;
    let class_embedding = get(&api, &sources.release_repo, &sources.class_embedding_file)?;
    // The open_clip trunk only if the OMG-Seg checkpoint lacks the backbone.
    let has_backbone = PthFile::open(&omg_seg)?.contains("backbone.stem.0.weight");
    let open_clip = if has_backbone {
        None
    } else {
        Some(get(&api, &sources.open_clip_repo, &sources.open_clip_file)?)
    };
    Ok(CheckpointBundle {
        llm_dir,
        omg_llava,
        omg_seg,
        class_embedding,
        open_clip,
        config: None,
        adapter_config: None,
    })
}
