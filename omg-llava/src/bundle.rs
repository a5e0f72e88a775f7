//! The files of an OMG-LLaVA checkpoint bundle, found in one directory by the names
//! the official release uses (`internlm2-chat-7b/`, `omg_llava_7b_finetune_8gpus.pth`,
//! `omg_seg_convl.pth`, `convnext_large_d_320_CocoPanopticOVDataset.pth`) or by the
//! patterns they follow (the tiny demo bundle), each overridable.

use std::path::{Path, PathBuf};

use crate::error::OmgLlavaError;
use crate::options::LlmWeights;

/// Paths of the files a model is loaded from.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointBundle {
    /// HF InternLM2 directory (`config.json`, weights, tokenizer).
    pub llm_dir: PathBuf,
    /// The released OMG-LLaVA `.pth` (LoRA, embeddings, head, projectors).
    pub omg_llava: PathBuf,
    /// The OMG-Seg checkpoint (`omg_seg_convl.pth`).
    pub omg_seg: PathBuf,
    /// The class-embedding file.
    pub class_embedding: PathBuf,
    /// The open_clip ConvNeXt checkpoint, needed only if `omg_seg` has no backbone.
    pub open_clip: Option<PathBuf>,
    /// An `omg_llava_config.json` with architecture overrides (none: official 7B).
    pub config: Option<PathBuf>,
    /// A PEFT `adapter_config.json` giving `lora_alpha` (none: the official 256).
    pub adapter_config: Option<PathBuf>,
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, OmgLlavaError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| OmgLlavaError::NotADirectory {
            dir: dir.to_owned(),
            reason: Some(e.to_string()),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

fn pick(
    files: &[PathBuf],
    what: &str,
    dir: &Path,
    ok: impl Fn(&str) -> bool,
    prefer: impl Fn(&str) -> bool,
) -> Result<PathBuf, OmgLlavaError> {
    let found: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.is_file() && ok(&name(p)))
        .collect();
    found
        .iter()
        .find(|p| prefer(&name(p)))
        .or(found.first())
        .map(|p| (*p).clone())
        .ok_or_else(|| OmgLlavaError::MissingBundleFile {
            what: what.to_string(),
            dir: dir.to_path_buf(),
        })
}

impl CheckpointBundle {
    /// Finds the files in `dir`:
    /// - the LLM: a sub-directory whose `config.json` has `"model_type": "internlm2"`;
    /// - the release: `omg_llava*.pth` (a `finetune` file preferred over `pretrain`);
    /// - OMG-Seg: `omg_seg*.pth`;
    /// - class embeddings: `*CocoPanopticOV*.pth` or `class_embed*.pth`;
    /// - optional: `open_clip*` / `*convnext_large_d_320*.{bin,safetensors}`,
    ///   `omg_llava_config.json`, `adapter_config.json`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, OmgLlavaError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(OmgLlavaError::NotADirectory {
                dir: dir.to_owned(),
                reason: None,
            });
        }
        let files = entries(dir)?;
        let llm_dir = files
            .iter()
            .filter(|p| p.is_dir())
            .find(|p| {
                std::fs::read_to_string(p.join("config.json"))
                    .map(|t| t.contains("\"internlm2\""))
                    .unwrap_or(false)
            })
            .cloned()
            .ok_or_else(|| OmgLlavaError::MissingBundleFile {
                what: "InternLM2 directory (a sub-directory whose config.json has model_type \"internlm2\")".into(),
                dir: dir.to_owned(),
            })?;
        let omg_llava = pick(
            &files,
            "OMG-LLaVA release (omg_llava*.pth)",
            dir,
            |n| n.starts_with("omg_llava") && n.ends_with(".pth"),
            |n| n.contains("finetune"),
        )?;
        let omg_seg = pick(
            &files,
            "OMG-Seg checkpoint (omg_seg*.pth)",
            dir,
            |n| n.starts_with("omg_seg") && n.ends_with(".pth"),
            |_| true,
        )?;
        let class_embedding = pick(
            &files,
            "class-embedding file (*CocoPanopticOV*.pth or class_embed*.pth)",
            dir,
            |n| {
                (n.contains("cocopanopticov") || n.starts_with("class_embed"))
                    && n.ends_with(".pth")
            },
            |_| true,
        )?;
        let open_clip = pick(
            &files,
            "open_clip",
            dir,
            |n| {
                (n.starts_with("open_clip") || n.contains("convnext_large_d_320"))
                    && !n.contains("cocopanopticov")
                    && (n.ends_with(".bin") || n.ends_with(".safetensors") || n.ends_with(".pth"))
            },
            |_| true,
        )
        .ok();
        let optional = |f: &str| Some(dir.join(f)).filter(|p| p.is_file());
        Ok(Self {
            llm_dir,
            omg_llava,
            omg_seg,
            class_embedding,
            open_clip,
            config: optional("omg_llava_config.json"),
            adapter_config: optional("adapter_config.json"),
        })
    }

    /// Where the prepared LLM of `weights` is kept: `omg_llava_llm_<weights>.safetensors`
    /// beside the release (written by [`crate::Pipeline::prepare_llm`]; a load with
    /// these weights reads it instead of converting the checkpoints).
    pub fn prepared_llm(&self, weights: LlmWeights) -> PathBuf {
        self.omg_llava
            .with_file_name(format!("omg_llava_llm_{}.safetensors", weights.name()))
    }

    /// The files the LLM is made from (the InternLM2 directory's configuration and
    /// weights, the release, the adapter configuration), one `name size mtime` each,
    /// and the LoRA scale: a prepared LLM records it and is used only while it is the
    /// same.
    pub(crate) fn llm_sources(&self, lora_alpha: f64) -> Result<String, OmgLlavaError> {
        let mut files: Vec<PathBuf> = entries(&self.llm_dir)?
            .into_iter()
            .filter(|p| {
                let n = name(p);
                p.is_file()
                    && (n.ends_with(".safetensors")
                        || n == "config.json"
                        || n.ends_with(".index.json"))
            })
            .collect();
        files.push(self.omg_llava.clone());
        files.extend(self.adapter_config.clone());
        let mut out = vec![format!("lora_alpha {lora_alpha}")];
        for f in files {
            let meta =
                std::fs::metadata(&f).map_err(|source| omg_checkpoint::CheckpointError::Io {
                    path: f.clone(),
                    source,
                })?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push(format!("{} {} {modified}", name(&f), meta.len()));
        }
        Ok(out.join("; "))
    }
}
