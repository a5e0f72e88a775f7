//! Loading the `[SEG]` head by official names: `projector_text2vision.model.*` and,
//! when present, `visual_encoder.panoptic_head.{transformer_decoder_llm,mask_embed_llm}.*`.

use burn::tensor::backend::Backend;
use omg_checkpoint::TensorSource;
use omg_checkpoint::module_loader::{Layout, load_module};
use omg_encoder::loader::{StackNames, decoder_stack_key};
use omg_encoder::{DecoderStack, MaskDecoderConfig};
use omg_projector::Text2VisionConfig;
use omg_projector::loader::load_text2vision;

use crate::error::DecoderError;
use crate::seg_head::SegHead;

/// The official names of the task-finetuned decoder copy that OMG-LLaVA's RES / GCG
/// checkpoints keep for `[SEG]` queries, beside OMG-Seg's own decoder in the head.
pub const SEG_DECODER_NAMES: StackNames = StackNames {
    decoder: "transformer_decoder_llm",
    mask_embed: "mask_embed_llm",
};

/// Official key of a parameter of the task-finetuned decoder copy (a [`DecoderStack`]
/// named by [`SEG_DECODER_NAMES`]) under the head `prefix`.
pub fn llm_decoder_key(prefix: &str, path: &str) -> (String, Layout) {
    decoder_stack_key(prefix, SEG_DECODER_NAMES, path)
}

/// Whether `source` holds the task-finetuned decoder copy under `head_prefix`.
pub fn has_llm_decoder(source: &dyn TensorSource, head_prefix: &str) -> bool {
    source.contains(&format!(
        "{head_prefix}{}.post_norm.weight",
        SEG_DECODER_NAMES.decoder
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
        let (copy, keys) = load_module(DecoderStack::init(decoder, device), source, |p| {
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
