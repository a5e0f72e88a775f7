//! Loading the composed model from a [`CheckpointBundle`]: every file is opened and
//! every key checked before the model is returned; any missing, mis-shaped or unknown
//! tensor is an error naming it, and nothing is half-loaded.

use burn::tensor::{TensorData, backend::Backend};
use omg_checkpoint::pth::{PthFile, SINGLE_TENSOR_NAME};
use omg_checkpoint::safetensors::{SafetensorsFile, open_hf_dir};
use omg_checkpoint::{CheckpointError, FiniteCheck, TensorSource};
use omg_decoder::loader::load_seg_head;
use omg_encoder::coco_classes::COCO_PANOPTIC_CLASSES;
use omg_encoder::{OmgSegWeights, load_omg_seg};
use omg_llm::loader::{LoadReport, LoraOptions, PeftRelease, load_hf_peft};
use omg_llm::prepared::{load_prepared, save_prepared};
use omg_llm::tokenizer::InternLm2Tokenizer;
use omg_llm::{InternLM2, InternLM2Config};
use omg_projector::loader::{TEXT2VISION_PREFIX, VISUAL_PROJECTOR_PREFIX, load_visual_projector};

use crate::bundle::CheckpointBundle;
use crate::config::OmgLlavaConfig;
use crate::error::OmgLlavaError;
use crate::model::OmgLlava;
use crate::options::LoadOptions;
use crate::tokens::add_omg_llava_tokens;

/// Prefix of the OMG-Seg head inside `omg_seg_convl.pth`.
const OMG_SEG_HEAD_PREFIX: &str = "panoptic_head.";
/// Prefix of the backbone inside `omg_seg_convl.pth` (when present).
const OMG_SEG_BACKBONE_PREFIX: &str = "backbone.";
/// Prefix of the OMG-Seg head inside OMG-LLaVA (task-finetune decoder copies).
const LLAVA_HEAD_PREFIX: &str = "visual_encoder.panoptic_head.";
/// Prefix of the language model's keys in the released `.pth`.
const LLM_PREFIX: &str = "llm.";
/// The official LoRA scale numerator (`lora_alpha`) of the OMG-LLaVA finetune
/// (r = 512), used when the bundle has no `adapter_config.json`.
const OFFICIAL_LORA_ALPHA: f64 = 256.0;

/// One step of a load, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStep {
    /// 1-based index of the step.
    pub index: usize,
    /// Number of steps.
    pub total: usize,
    /// What is being loaded.
    pub what: &'static str,
}

fn open_any(path: &std::path::Path) -> Result<Box<dyn TensorSource>, OmgLlavaError> {
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    Ok(if is_safetensors {
        Box::new(SafetensorsFile::open(path)?)
    } else {
        Box::new(PthFile::open(path)?)
    })
}

/// Reads the class-embedding file: a single tensor `(K, P, D)` (or a dict with
/// exactly one tensor).
fn read_class_embedding_from(
    file: &dyn TensorSource,
    path: &std::path::Path,
) -> Result<TensorData, OmgLlavaError> {
    let names = file.names();
    let key = if names.iter().any(|n| n == SINGLE_TENSOR_NAME) {
        SINGLE_TENSOR_NAME.to_owned()
    } else if names.len() == 1 {
        names[0].clone()
    } else {
        return Err(OmgLlavaError::ClassEmbeddingTensors {
            path: path.to_owned(),
            found: names.len(),
        });
    };
    Ok(file.read(&key)?)
}

/// `source`, read through the finite check when `options` ask for it.
fn checked_source(options: &LoadOptions, source: Box<dyn TensorSource>) -> Box<dyn TensorSource> {
    if options.check_finite {
        Box::new(FiniteCheck::new(source))
    } else {
        source
    }
}

/// The LoRA options of `bundle`: its `adapter_config.json`, else the official ones.
fn lora_options(bundle: &CheckpointBundle) -> Result<LoraOptions, OmgLlavaError> {
    Ok(match &bundle.adapter_config {
        Some(p) => LoraOptions::from_adapter_config(p)?,
        None => LoraOptions {
            lora_alpha: OFFICIAL_LORA_ALPHA,
        },
    })
}

/// The LLM of `bundle` from its checkpoints: the HF base with the `release`'s LoRA
/// merged, its linears converted to `options.llm_weights` as they are read.
fn llm_from_checkpoints<B: Backend>(
    bundle: &CheckpointBundle,
    llm_config: &InternLM2Config,
    release: &dyn TensorSource,
    lora: LoraOptions,
    options: &LoadOptions,
    device: &B::Device,
) -> Result<(InternLM2<B>, LoadReport), OmgLlavaError> {
    let base = checked_source(options, open_hf_dir(&bundle.llm_dir)?);
    let peft = PeftRelease {
        source: release,
        prefix: LLM_PREFIX,
        lora,
    };
    Ok(load_hf_peft::<B>(
        llm_config,
        base.as_ref(),
        peft,
        options.llm_weights,
        device,
    )?)
}

/// Loads the LLM of `bundle` from its checkpoints (LoRA merged, converted to
/// `options.llm_weights`) and writes it as the bundle's prepared LLM
/// ([`CheckpointBundle::prepared_llm`]), which later loads with these weights read
/// instead. Returns the file's path.
pub(crate) fn prepare_llm<B: Backend>(
    bundle: &CheckpointBundle,
    options: &LoadOptions,
    device: &B::Device,
) -> Result<std::path::PathBuf, OmgLlavaError> {
    let llm_config = InternLM2Config::from_json_file(bundle.llm_dir.join("config.json"))?;
    let release = checked_source(options, Box::new(PthFile::open(&bundle.omg_llava)?));
    let lora = lora_options(bundle)?;
    let sources = bundle.llm_sources(lora.lora_alpha)?;
    let (llm, _) =
        llm_from_checkpoints::<B>(bundle, &llm_config, release.as_ref(), lora, options, device)?;
    let path = bundle.prepared_llm(options.llm_weights);
    save_prepared(&llm, &path, &sources)?;
    Ok(path)
}

impl<B: Backend> OmgLlava<B> {
    /// Loads every file of `bundle` onto `device` as `options` say (e.g. int8 LLM
    /// weights: each linear is converted as it is read, so the f32 LLM never exists in
    /// memory); `progress` is called before each step.
    pub(crate) fn load(
        bundle: &CheckpointBundle,
        options: &LoadOptions,
        device: &B::Device,
        mut progress: impl FnMut(LoadStep),
    ) -> Result<Self, OmgLlavaError> {
        const TOTAL: usize = 5;
        let mut step = |index, what| {
            progress(LoadStep {
                index,
                total: TOTAL,
                what,
            })
        };
        step(1, "tokenizer and configuration");
        let config = match &bundle.config {
            Some(p) => OmgLlavaConfig::from_json_file(p)?,
            None => OmgLlavaConfig::default(),
        };
        let mut tokenizer = InternLm2Tokenizer::from_dir(&bundle.llm_dir)?;
        let tokens = add_omg_llava_tokens(&mut tokenizer)?;
        let llm_config = InternLM2Config::from_json_file(bundle.llm_dir.join("config.json"))?;
        config.validate(llm_config.hidden_size)?;

        step(2, "OMG-Seg encoder");
        let checked = |source| checked_source(options, source);
        let seg_file = checked(Box::new(PthFile::open(&bundle.omg_seg)?));
        let clip = bundle
            .open_clip
            .as_deref()
            .map(open_any)
            .transpose()?
            .map(checked);
        let class_data = read_class_embedding_from(
            checked(Box::new(PthFile::open(&bundle.class_embedding)?)).as_ref(),
            &bundle.class_embedding,
        )?;
        let k = class_data.shape.first().copied().unwrap_or(0);
        let weights = OmgSegWeights::detect(
            seg_file.as_ref(),
            OMG_SEG_HEAD_PREFIX,
            OMG_SEG_BACKBONE_PREFIX,
            clip.as_deref(),
            class_data,
        )?;
        let panoptic = &config.encoder.panoptic;
        if panoptic.num_things + panoptic.num_stuff != k {
            return Err(OmgLlavaError::InconsistentConfig {
                field: "encoder.panoptic.num_things + num_stuff",
                found: panoptic.num_things + panoptic.num_stuff,
                expected: k,
                why: "the classes of the class-embedding file",
            });
        }
        let (encoder, _) = load_omg_seg::<B>(&config.encoder, weights, device)?;

        let release = checked(Box::new(PthFile::open(&bundle.omg_llava)?));
        let lora = lora_options(bundle)?;
        let sources = bundle.llm_sources(lora.lora_alpha)?;
        let prepared = bundle.prepared_llm(options.llm_weights);
        let (llm, foreign_keys) = if prepared.is_file() {
            step(3, "language model (prepared file)");
            let llm = load_prepared::<B>(&prepared, options.llm_weights, &sources, device)?;
            let foreign = release
                .names()
                .into_iter()
                .filter(|k| !k.starts_with(LLM_PREFIX))
                .collect();
            (llm, foreign)
        } else {
            step(3, "language model");
            let (llm, report) = llm_from_checkpoints::<B>(
                bundle,
                &llm_config,
                release.as_ref(),
                lora,
                options,
                device,
            )?;
            (llm, report.foreign_keys)
        };
        if llm.config().hidden_size != config.projector.llm_hidden_size {
            return Err(OmgLlavaError::InconsistentConfig {
                field: "projector.llm_hidden_size",
                found: config.projector.llm_hidden_size,
                expected: llm.config().hidden_size,
                why: "the hidden size of the loaded LLM",
            });
        }

        step(4, "projectors");
        let (projector, mut used) = load_visual_projector::<B>(
            &config.projector,
            &release,
            VISUAL_PROJECTOR_PREFIX,
            device,
        )?;
        let (seg_head, seg_used) = load_seg_head::<B>(
            &config.text2vision,
            &config.encoder.mask_decoder,
            &release,
            TEXT2VISION_PREFIX,
            LLAVA_HEAD_PREFIX,
            device,
        )?;
        used.extend(seg_used);

        step(5, "checking the release's keys");
        let used: std::collections::BTreeSet<String> = used.into_iter().collect();
        if let Some(key) = foreign_keys.iter().find(|k| !used.contains(*k)) {
            return Err(CheckpointError::UnexpectedKey {
                key: key.clone(),
                source_name: release.describe(),
            }
            .into());
        }
        let class_names = match &config.class_names {
            Some(names) if names.len() == k => names.clone(),
            Some(names) => {
                return Err(OmgLlavaError::InconsistentConfig {
                    field: "class_names (their number)",
                    found: names.len(),
                    expected: k,
                    why: "the classes of the class-embedding file",
                });
            }
            None if k == COCO_PANOPTIC_CLASSES.len() => COCO_PANOPTIC_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            None => (0..k).map(|i| format!("class_{i}")).collect(),
        };
        Ok(Self {
            encoder,
            projector,
            llm,
            seg_head,
            tokenizer,
            tokens,
            config,
            class_names,
        })
    }
}
