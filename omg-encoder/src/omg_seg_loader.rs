//! Loading the whole OMG-Seg encoder through one entry point, with key coverage:
//! `omg_seg_convl.pth` (mmengine, `state_dict` wrapper, `panoptic_head.*`, maybe
//! `backbone.*`), the open_clip ConvNeXt trunk (`visual.trunk.*`) when the checkpoint
//! has no backbone, the class-embedding file, or the same weights under OMG-LLaVA's
//! `visual_encoder.` prefix. Every tensor under the head and backbone prefixes must be
//! used or be on a documented ignore list; the check runs before any weight is read,
//! so nothing is half-loaded.

use std::collections::BTreeSet;

use burn::module::Module;
use burn::tensor::{TensorData, backend::Backend};

use crate::backbone::ConvNext;
use crate::class_embedding::ClassEmbedding;
use crate::error::EncoderError;
use crate::loader::{
    BackboneNaming, backbone_key, load_backbone, load_mask_decoder, load_pixel_decoder,
    load_prompt_embedding, mask_decoder_key, pixel_decoder_key, prompt_embedding_key,
};
use crate::mask_decoder::MaskDecoder;
use crate::omg_seg::{OmgSeg, OmgSegConfig};
use crate::pixel_decoder::PixelDecoder;
use crate::prompt::PromptEmbedding;
use omg_checkpoint::module_loader::parameter_shapes;
use omg_checkpoint::{CheckpointError, TensorSource};

/// Head tensors that the encoder does not use: the task-finetune copies that the
/// `[SEG]` decoder loads (`omg-decoder`), modules OMG-LLaVA never runs, and buffers.
pub const HEAD_IGNORED_PREFIXES: &[&str] = &[
    "transformer_decoder_llm.",
    "mask_embed_llm.",
    "pixel_decoder_llm.",
    "additional_cross_attn_layers.",
    "additional_ffn.",
    "cls_embed",
    "logit_scale",
];

/// Backbone tensors that the encoder does not use (the CLIP classification head).
pub const BACKBONE_IGNORED_PREFIXES: &[&str] = &["head."];

/// Where the backbone weights come from.
pub enum BackboneWeights<'a> {
    /// The main checkpoint, under this prefix (`"backbone."` in `omg_seg_convl.pth`,
    /// `"visual_encoder.backbone."` in OMG-LLaVA's layout).
    Checkpoint(String),
    /// An open_clip checkpoint (`visual.trunk.*`), e.g. the
    /// `laion/CLIP-convnext_large_d_320…` weights.
    OpenClip(&'a dyn TensorSource),
}

/// The weights of an OMG-Seg encoder.
pub struct OmgSegWeights<'a> {
    /// The checkpoint holding the head.
    pub checkpoint: &'a dyn TensorSource,
    /// Prefix of the head in `checkpoint` (`"panoptic_head."` or
    /// `"visual_encoder.panoptic_head."`).
    pub head_prefix: String,
    /// The backbone's source.
    pub backbone: BackboneWeights<'a>,
    /// The class-embedding tensor `(K, P, D)` (content of the OV class file).
    pub class_embedding: TensorData,
}

impl<'a> OmgSegWeights<'a> {
    /// The usual case: head under `head_prefix`; the backbone from the same checkpoint
    /// under `backbone_prefix` when it has one there, else from `open_clip` (an error
    /// if neither has it).
    pub fn detect(
        checkpoint: &'a dyn TensorSource,
        head_prefix: &str,
        backbone_prefix: &str,
        open_clip: Option<&'a dyn TensorSource>,
        class_embedding: TensorData,
    ) -> Result<Self, EncoderError> {
        let backbone = if checkpoint.contains(&format!("{backbone_prefix}stem.0.weight")) {
            BackboneWeights::Checkpoint(backbone_prefix.to_owned())
        } else if let Some(clip) = open_clip {
            BackboneWeights::OpenClip(clip)
        } else {
            return Err(EncoderError::Checkpoint(CheckpointError::MissingKey {
                key: format!("{backbone_prefix}stem.0.weight"),
                sources: format!(
                    "{} (and no open_clip ConvNeXt checkpoint was given)",
                    checkpoint.describe()
                ),
            }));
        };
        Ok(Self {
            checkpoint,
            head_prefix: head_prefix.to_owned(),
            backbone,
            class_embedding,
        })
    }
}

/// What loading consumed and what it left.
#[derive(Debug, Clone, Default)]
pub struct OmgSegReport {
    /// Official keys read.
    pub used: Vec<String>,
    /// Keys under the head/backbone prefixes left on purpose (ignore lists).
    pub ignored: Vec<String>,
    /// Keys outside the head/backbone prefixes (not the encoder's).
    pub foreign: Vec<String>,
}

fn expected<B: Backend, M: Module<B>>(
    module: &M,
    key: impl Fn(&str) -> String,
    out: &mut BTreeSet<String>,
) {
    for path in parameter_shapes::<B, M>(module).keys() {
        out.insert(key(path));
    }
}

/// Classifies the keys of `source`: under one of `prefixes` they must be `expected`
/// or start (after the prefix) with an ignored prefix; other keys are foreign.
fn coverage(
    source: &dyn TensorSource,
    prefixes: &[(&str, &[&str])],
    expected: &BTreeSet<String>,
    report: &mut OmgSegReport,
) -> Result<(), EncoderError> {
    for key in source.names() {
        if expected.contains(&key) {
            continue;
        }
        let owner = prefixes
            .iter()
            .find(|(p, _)| !p.is_empty() && key.starts_with(p));
        match owner {
            Some((p, ignored)) => {
                let rel = &key[p.len()..];
                if ignored.iter().any(|i| rel.starts_with(i)) {
                    report.ignored.push(key);
                } else {
                    return Err(EncoderError::Checkpoint(CheckpointError::UnexpectedKey {
                        key,
                        source_name: source.describe(),
                    }));
                }
            }
            None => report.foreign.push(key),
        }
    }
    Ok(())
}

/// Builds the encoder of `config` from `weights`.
pub fn load_omg_seg<B: Backend>(
    config: &OmgSegConfig,
    weights: OmgSegWeights<'_>,
    device: &B::Device,
) -> Result<(OmgSeg<B>, OmgSegReport), EncoderError> {
    config.validate()?;
    let classes = ClassEmbedding::<B>::from_ov_file(weights.class_embedding, device)?;
    if classes.dim() != config.mask_decoder.clip_dim {
        return Err(EncoderError::Config(format!(
            "the class embeddings have width {}, the decoder's clip_dim is {}",
            classes.dim(),
            config.mask_decoder.clip_dim
        )));
    }
    let backbone = ConvNext::<B>::init(&config.backbone, device);
    let pixel_decoder = PixelDecoder::<B>::init(&config.pixel_decoder, device);
    let mask_decoder = MaskDecoder::<B>::init(&config.mask_decoder, device);
    let prompt = PromptEmbedding::<B>::init(&config.mask_decoder, device);
    let head = weights.head_prefix.as_str();
    let (naming, backbone_source): (BackboneNaming, &dyn TensorSource) = match &weights.backbone {
        BackboneWeights::Checkpoint(prefix) => {
            (BackboneNaming::OmgSeg(prefix.clone()), weights.checkpoint)
        }
        BackboneWeights::OpenClip(src) => (BackboneNaming::OpenClipTrunk, *src),
    };

    // Key coverage before anything is read.
    let mut head_keys = BTreeSet::new();
    expected::<B, _>(
        &pixel_decoder,
        |p| pixel_decoder_key(head, p).0,
        &mut head_keys,
    );
    expected::<B, _>(
        &mask_decoder,
        |p| mask_decoder_key(head, p).0,
        &mut head_keys,
    );
    expected::<B, _>(&prompt, |p| prompt_embedding_key(head, p).0, &mut head_keys);
    let mut backbone_keys = BTreeSet::new();
    expected::<B, _>(
        &backbone,
        |p| backbone_key(&naming, p).0,
        &mut backbone_keys,
    );
    let mut report = OmgSegReport::default();
    let backbone_prefix = match &naming {
        BackboneNaming::OmgSeg(p) => p.clone(),
        BackboneNaming::OpenClipTrunk => "visual.trunk.".to_owned(),
    };
    match &weights.backbone {
        BackboneWeights::Checkpoint(_) => {
            let all: BTreeSet<String> = head_keys.union(&backbone_keys).cloned().collect();
            coverage(
                weights.checkpoint,
                &[
                    (head, HEAD_IGNORED_PREFIXES),
                    (&backbone_prefix, BACKBONE_IGNORED_PREFIXES),
                ],
                &all,
                &mut report,
            )?;
        }
        BackboneWeights::OpenClip(clip) => {
            coverage(
                weights.checkpoint,
                &[(head, HEAD_IGNORED_PREFIXES)],
                &head_keys,
                &mut report,
            )?;
            coverage(
                *clip,
                &[(&backbone_prefix, BACKBONE_IGNORED_PREFIXES)],
                &backbone_keys,
                &mut report,
            )?;
        }
    }

    let (backbone, used) = load_backbone(backbone, backbone_source, &naming)?;
    report.used.extend(used);
    let (pixel_decoder, used) = load_pixel_decoder(pixel_decoder, weights.checkpoint, head)?;
    report.used.extend(used);
    let (mask_decoder, used) = load_mask_decoder(mask_decoder, weights.checkpoint, head)?;
    report.used.extend(used);
    let (prompt, used) = load_prompt_embedding(prompt, weights.checkpoint, head)?;
    report.used.extend(used);
    Ok((
        OmgSeg {
            backbone,
            pixel_decoder,
            mask_decoder,
            prompt,
            classes,
            config: config.clone(),
        },
        report,
    ))
}
