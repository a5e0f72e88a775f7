//! Loading the `[SEG]` head by official names: `projector_text2vision.model.*` and,
//! when present, `visual_encoder.panoptic_head.{transformer_decoder_llm,mask_embed_llm}.*`.

use burn::tensor::backend::Backend;
use omg_encoder::MaskDecoderConfig;
use omg_encoder::checkpoint::TensorSource;
use omg_encoder::checkpoint::module_loader::load_module;
use omg_encoder::loader::mask_decoder_key;
use omg_projector::Text2VisionConfig;
use omg_projector::loader::load_text2vision;

use crate::error::DecoderError;
use crate::seg_head::{LlmDecoderCopy, SegHead};

/// Official key of a [`LlmDecoderCopy`] parameter under the head `prefix`.
pub fn llm_decoder_key(
    prefix: &str,
    path: &str,
) -> (String, omg_encoder::checkpoint::module_loader::Layout) {
    let (key, layout) = mask_decoder_key(prefix, path);
    let rel = key.strip_prefix(prefix).unwrap_or(&key);
    let rel = if let Some(r) = rel.strip_prefix("transformer_decoder.") {
        format!("transformer_decoder_llm.{r}")
    } else if let Some(r) = rel.strip_prefix("mask_embed.") {
        format!("mask_embed_llm.{r}")
    } else {
        format!("?{rel}")
    };
    (format!("{prefix}{rel}"), layout)
}

/// Whether `source` holds the task-finetuned decoder copy under `head_prefix`.
pub fn has_llm_decoder(source: &dyn TensorSource, head_prefix: &str) -> bool {
    source.contains(&format!(
        "{head_prefix}transformer_decoder_llm.post_norm.weight"
    ))
}

/// Loads the `[SEG]` head: the text-to-vision projector under `text2vision_prefix`
/// and, if `source` has it, the decoder copy under `head_prefix`. Returns the head
/// and the official keys used.
pub fn load_seg_head<B: Backend>(
    text2vision: &Text2VisionConfig,
    decoder: &MaskDecoderConfig,
    source: &dyn TensorSource,
    text2vision_prefix: &str,
    head_prefix: &str,
    device: &B::Device,
) -> Result<(SegHead<B>, Vec<String>), DecoderError> {
    let (mlp, mut used) = load_text2vision::<B>(text2vision, source, text2vision_prefix, device)
        .map_err(|e| match e {
            omg_projector::ProjectorError::Checkpoint(c) => DecoderError::Checkpoint(c),
            other => DecoderError::Input(other.to_string()),
        })?;
    let llm_decoder = if has_llm_decoder(source, head_prefix) {
        let (copy, keys) = load_module(LlmDecoderCopy::init(decoder, device), source, |p| {
            llm_decoder_key(head_prefix, p)
        })?;
        used.extend(keys);
        Some(copy)
    } else {
        None
    };
    Ok((
        SegHead {
            text2vision: mlp,
            llm_decoder,
        },
        used,
    ))
}
