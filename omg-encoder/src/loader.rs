//! Official parameter names of the encoder and loading by them.
//!
//! The same weights appear under three prefixes: `visual_encoder.` inside OMG-LLaVA
//! (as the parity fixtures hold them), none inside `omg_seg_convl.pth`'s `state_dict`
//! (`backbone.*`, `panoptic_head.*`), and the open_clip checkpoint's `visual.trunk.`
//! for the backbone (`stem.*`, `stages.{i}.*`).

use crate::EncoderError;
use crate::backbone::ConvNext;
use crate::ffn;
use crate::mask_decoder::MaskDecoder;
use crate::pixel_decoder::PixelDecoder;
use crate::prompt::PromptEmbedding;
use burn::tensor::backend::Backend;
use omg_checkpoint::TensorSource;
use omg_checkpoint::module_loader::{Layout, load_module};

/// Where the backbone's tensors are and how they are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackboneNaming {
    /// `OpenCLIPBackbone_omgseg` names under a prefix: `{prefix}stem.0.weight`,
    /// `{prefix}layer{k}.blocks.{j}.conv_dw.weight`, … (`"visual_encoder.backbone."` in
    /// OMG-LLaVA, `"backbone."` in `omg_seg_convl.pth`).
    OmgSeg(String),
    /// The open_clip checkpoint: `visual.trunk.stem.0.weight`,
    /// `visual.trunk.stages.{k−1}.blocks.{j}.…`.
    OpenClipTrunk,
}

/// burn's norm parameter names → PyTorch's.
fn norm(p: &str) -> &str {
    match p {
        "gamma" => "weight",
        "beta" => "bias",
        other => other,
    }
}

/// A `torch.nn.Linear` parameter: the weight is stored transposed, the bias as is.
fn linear(p: &str) -> Layout {
    if p == "weight" {
        Layout::Transposed
    } else {
        Layout::Same
    }
}

/// The official name of a backbone parameter (burn path → key, layout).
pub fn backbone_key(naming: &BackboneNaming, path: &str) -> (String, Layout) {
    let parts: Vec<&str> = path.split('.').collect();
    let (stage_prefix, root) = match naming {
        BackboneNaming::OmgSeg(prefix) => (None, prefix.clone()),
        BackboneNaming::OpenClipTrunk => (Some("stages."), "visual.trunk.".to_owned()),
    };
    let stage_name = |i: usize| match stage_prefix {
        Some(p) => format!("{p}{i}"),
        None => format!("layer{}", i + 1),
    };
    let (rel, layout) = match parts.as_slice() {
        ["stem_conv", p] => (format!("stem.0.{p}"), Layout::Same),
        ["stem_norm", p] => (format!("stem.1.{}", norm(p)), Layout::Same),
        ["stages", i, "downsample", "norm", p] => (
            format!(
                "{}.downsample.0.{}",
                stage_name(i.parse().unwrap_or(0)),
                norm(p)
            ),
            Layout::Same,
        ),
        ["stages", i, "downsample", "conv", p] => (
            format!("{}.downsample.1.{p}", stage_name(i.parse().unwrap_or(0))),
            Layout::Same,
        ),
        ["stages", i, "blocks", j, module, rest @ ..] => {
            let stage = stage_name(i.parse().unwrap_or(0));
            let (name, layout) = match (*module, rest) {
                ("gamma", []) => ("gamma".to_owned(), Layout::Same),
                ("conv_dw", [p]) => (format!("conv_dw.{p}"), Layout::Same),
                ("norm", [p]) => (format!("norm.{}", norm(p)), Layout::Same),
                ("fc1", [p]) | ("fc2", [p]) => (format!("mlp.{module}.{p}"), linear(p)),
                _ => (format!("?{path}"), Layout::Same),
            };
            (format!("{stage}.blocks.{j}.{name}"), layout)
        }
        _ => (format!("?{path}"), Layout::Same),
    };
    (format!("{root}{rel}"), layout)
}

/// Loads a [`ConvNext`] trunk built for its configuration from `source`. Returns the
/// trunk and the official keys it used. The open_clip projection head
/// (`head.*`) is not part of the trunk and is never read.
pub fn load_backbone<B: Backend>(
    backbone: ConvNext<B>,
    source: &dyn TensorSource,
    naming: &BackboneNaming,
) -> Result<(ConvNext<B>, Vec<String>), EncoderError> {
    Ok(load_module(backbone, source, |path| {
        backbone_key(naming, path)
    })?)
}

/// The official name of a pixel-decoder parameter, under `prefix` (the OMG-Seg head:
/// `"visual_encoder.panoptic_head."` in OMG-LLaVA, `"panoptic_head."` in
/// `omg_seg_convl.pth`).
pub fn pixel_decoder_key(prefix: &str, path: &str) -> (String, Layout) {
    let parts: Vec<&str> = path.split('.').collect();
    let (rel, layout) = match parts.as_slice() {
        ["input_convs", i, "conv", p] => (format!("input_convs.{i}.conv.{p}"), Layout::Same),
        ["input_convs", i, "gn", p] => (format!("input_convs.{i}.gn.{}", norm(p)), Layout::Same),
        ["layers", l, "self_attn", m, p] => {
            (format!("encoder.layers.{l}.self_attn.{m}.{p}"), linear(p))
        }
        ["layers", l, "ffn", fc, p] => (
            format!("encoder.layers.{l}.ffn.{}", ffn::official_suffix(fc, p)),
            linear(p),
        ),
        ["layers", l, "norm1", p] => (
            format!("encoder.layers.{l}.norms.0.{}", norm(p)),
            Layout::Same,
        ),
        ["layers", l, "norm2", p] => (
            format!("encoder.layers.{l}.norms.1.{}", norm(p)),
            Layout::Same,
        ),
        ["level_encoding", p] => (format!("level_encoding.{p}"), Layout::Same),
        ["lateral_conv", "conv", p] => (format!("lateral_convs.0.conv.{p}"), Layout::Same),
        ["lateral_conv", "gn", p] => (format!("lateral_convs.0.gn.{}", norm(p)), Layout::Same),
        ["output_conv", "conv", p] => (format!("output_convs.0.conv.{p}"), Layout::Same),
        ["output_conv", "gn", p] => (format!("output_convs.0.gn.{}", norm(p)), Layout::Same),
        ["mask_feature", p] => (format!("mask_feature.{p}"), Layout::Same),
        _ => (format!("?{path}"), Layout::Same),
    };
    (format!("{prefix}pixel_decoder.{rel}"), layout)
}

/// Loads a [`PixelDecoder`] built for its configuration from `source`, the OMG-Seg
/// head's tensors being under `prefix`. Returns it and the official keys it used.
pub fn load_pixel_decoder<B: Backend>(
    decoder: PixelDecoder<B>,
    source: &dyn TensorSource,
    prefix: &str,
) -> Result<(PixelDecoder<B>, Vec<String>), EncoderError> {
    Ok(load_module(decoder, source, |path| {
        pixel_decoder_key(prefix, path)
    })?)
}

/// The official module names of a [`DecoderStack`](crate::DecoderStack): the layers
/// and post-norm under `decoder`, the mask MLP under `mask_embed`. OMG-Seg's own stack
/// is [`MAIN_STACK`]; a model that keeps a finetuned copy of the stack under other
/// names (OMG-LLaVA's `[SEG]` head) gives its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackNames {
    /// `transformer_decoder` or `transformer_decoder_llm`.
    pub decoder: &'static str,
    /// `mask_embed` or `mask_embed_llm`.
    pub mask_embed: &'static str,
}

/// The main decoder of the OMG-Seg head.
pub const MAIN_STACK: StackNames = StackNames {
    decoder: "transformer_decoder",
    mask_embed: "mask_embed",
};

/// The `.0` / `.2` / `.4` index of an [`Mlp3`](crate::decoder_layer::Mlp3) linear.
fn mlp_index(fc: &str) -> &'static str {
    match fc {
        "fc0" => "0",
        "fc1" => "2",
        _ => "4",
    }
}

/// The official name of a [`DecoderStack`](crate::DecoderStack) parameter (burn path
/// `layers.…`, `post_norm.…`, `mask_embed.…`) under `prefix`, with the module names
/// `names`.
pub fn decoder_stack_key(prefix: &str, names: StackNames, path: &str) -> (String, Layout) {
    let parts: Vec<&str> = path.split('.').collect();
    let d = names.decoder;
    let (rel, layout) = match parts.as_slice() {
        [
            "layers",
            i,
            attn @ ("cross_attn" | "self_attn"),
            "in_proj",
            p,
        ] => (format!("{d}.layers.{i}.{attn}.attn.in_proj_{p}"), linear(p)),
        [
            "layers",
            i,
            attn @ ("cross_attn" | "self_attn"),
            "out_proj",
            p,
        ] => (
            format!("{d}.layers.{i}.{attn}.attn.out_proj.{p}"),
            linear(p),
        ),
        ["layers", i, "ffn", fc, p] => (
            format!("{d}.layers.{i}.ffn.{}", ffn::official_suffix(fc, p)),
            linear(p),
        ),
        ["layers", i, n, p] if n.starts_with("norm") => (
            format!("{d}.layers.{i}.norms.{}.{}", &n[4..], norm(p)),
            Layout::Same,
        ),
        ["post_norm", p] => (format!("{d}.post_norm.{}", norm(p)), Layout::Same),
        ["mask_embed", fc, p] => (
            format!("{}.{}.{p}", names.mask_embed, mlp_index(fc)),
            linear(p),
        ),
        _ => (format!("?{path}"), Layout::Same),
    };
    (format!("{prefix}{rel}"), layout)
}

/// The official name of a [`MaskDecoder`] parameter, under `prefix` (see
/// [`pixel_decoder_key`]); its [`DecoderStack`](crate::DecoderStack) follows
/// [`decoder_stack_key`] with [`MAIN_STACK`].
pub fn mask_decoder_key(prefix: &str, path: &str) -> (String, Layout) {
    if let Some(rest) = path.strip_prefix("decoder.") {
        return decoder_stack_key(prefix, MAIN_STACK, rest);
    }
    let parts: Vec<&str> = path.split('.').collect();
    let (rel, layout) = match parts.as_slice() {
        [emb @ ("query_feat" | "query_embed" | "level_embed"), p] => {
            (format!("{emb}.{p}"), Layout::Same)
        }
        [m @ ("iou_embed" | "cls_proj"), fc, p] => {
            (format!("{m}.{}.{p}", mlp_index(fc)), linear(p))
        }
        ["mask_pooling_norm", p] => (format!("mask_pooling_proj.0.{}", norm(p)), Layout::Same),
        ["mask_pooling_proj", p] => (format!("mask_pooling_proj.1.{p}"), linear(p)),
        _ => (format!("?{path}"), Layout::Same),
    };
    (format!("{prefix}{rel}"), layout)
}

/// Loads a [`MaskDecoder`] built for its configuration from `source` (the OMG-Seg
/// head's tensors under `prefix`). Returns it and the official keys it used.
pub fn load_mask_decoder<B: Backend>(
    decoder: MaskDecoder<B>,
    source: &dyn TensorSource,
    prefix: &str,
) -> Result<(MaskDecoder<B>, Vec<String>), EncoderError> {
    Ok(load_module(decoder, source, |path| {
        mask_decoder_key(prefix, path)
    })?)
}

/// Official key of a [`PromptEmbedding`] parameter under the head `prefix`
/// (`mask_tokens.weight`, `pb_embedding.weight`, `pos_linear.{weight,bias}`).
pub fn prompt_embedding_key(prefix: &str, path: &str) -> (String, Layout) {
    match path.split_once('.') {
        Some(("pos_linear", p)) => (format!("{prefix}pos_linear.{p}"), linear(p)),
        Some((m @ ("mask_tokens" | "pb_embedding"), p)) => {
            (format!("{prefix}{m}.{p}"), Layout::Same)
        }
        _ => (format!("?{path}"), Layout::Same),
    }
}

/// Loads the prompt embeddings of the OMG-Seg head under `prefix`. Returns them and
/// the official keys used.
pub fn load_prompt_embedding<B: Backend>(
    module: PromptEmbedding<B>,
    source: &dyn TensorSource,
    prefix: &str,
) -> Result<(PromptEmbedding<B>, Vec<String>), EncoderError> {
    Ok(load_module(module, source, |path| {
        prompt_embedding_key(prefix, path)
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backbone_names_follow_the_official_layouts() {
        let omg = BackboneNaming::OmgSeg("visual_encoder.backbone.".into());
        assert_eq!(
            backbone_key(&omg, "stages.2.blocks.26.fc1.weight"),
            (
                "visual_encoder.backbone.layer3.blocks.26.mlp.fc1.weight".into(),
                Layout::Transposed
            )
        );
        assert_eq!(
            backbone_key(&omg, "stages.1.downsample.norm.gamma").0,
            "visual_encoder.backbone.layer2.downsample.0.weight"
        );
        assert_eq!(
            backbone_key(&omg, "stem_norm.beta").0,
            "visual_encoder.backbone.stem.1.bias"
        );
        let clip = BackboneNaming::OpenClipTrunk;
        assert_eq!(
            backbone_key(&clip, "stages.3.blocks.0.gamma").0,
            "visual.trunk.stages.3.blocks.0.gamma"
        );
        assert_eq!(
            backbone_key(&clip, "stages.0.blocks.2.conv_dw.weight").0,
            "visual.trunk.stages.0.blocks.2.conv_dw.weight"
        );
    }

    #[test]
    fn mask_decoder_names_follow_the_official_head() {
        let p = "h.";
        assert_eq!(
            mask_decoder_key(p, "decoder.layers.8.cross_attn.in_proj.weight"),
            (
                "h.transformer_decoder.layers.8.cross_attn.attn.in_proj_weight".into(),
                Layout::Transposed
            )
        );
        assert_eq!(
            mask_decoder_key(p, "decoder.layers.0.self_attn.in_proj.bias").0,
            "h.transformer_decoder.layers.0.self_attn.attn.in_proj_bias"
        );
        assert_eq!(
            mask_decoder_key(p, "decoder.layers.3.norm2.gamma").0,
            "h.transformer_decoder.layers.3.norms.2.weight"
        );
        assert_eq!(
            mask_decoder_key(p, "cls_proj.fc2.weight").0,
            "h.cls_proj.4.weight"
        );
        assert_eq!(
            mask_decoder_key(p, "mask_pooling_norm.beta").0,
            "h.mask_pooling_proj.0.bias"
        );
        assert_eq!(
            mask_decoder_key(p, "query_embed.weight").0,
            "h.query_embed.weight"
        );
        assert_eq!(
            mask_decoder_key(p, "decoder.mask_embed.fc1.weight").0,
            "h.mask_embed.2.weight"
        );
        let copy = StackNames {
            decoder: "transformer_decoder_copy",
            mask_embed: "mask_embed_copy",
        };
        assert_eq!(
            decoder_stack_key(p, copy, "mask_embed.fc2.bias").0,
            "h.mask_embed_copy.4.bias"
        );
        assert_eq!(
            decoder_stack_key(p, copy, "post_norm.gamma").0,
            "h.transformer_decoder_copy.post_norm.weight"
        );
        assert!(mask_decoder_key(p, "mask_embed.fc0.weight").0.contains('?'));
    }

    #[test]
    fn pixel_decoder_names_follow_mmdet() {
        let p = "panoptic_head.";
        assert_eq!(
            pixel_decoder_key(p, "layers.5.ffn.fc1.weight"),
            (
                "panoptic_head.pixel_decoder.encoder.layers.5.ffn.layers.0.0.weight".into(),
                Layout::Transposed
            )
        );
        assert_eq!(
            pixel_decoder_key(p, "layers.0.norm2.beta").0,
            "panoptic_head.pixel_decoder.encoder.layers.0.norms.1.bias"
        );
        assert_eq!(
            pixel_decoder_key(p, "input_convs.2.gn.gamma").0,
            "panoptic_head.pixel_decoder.input_convs.2.gn.weight"
        );
        assert_eq!(
            pixel_decoder_key(p, "layers.1.self_attn.sampling_offsets.bias"),
            (
                "panoptic_head.pixel_decoder.encoder.layers.1.self_attn.sampling_offsets.bias"
                    .into(),
                Layout::Same
            )
        );
    }
}
