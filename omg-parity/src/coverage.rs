//! Key coverage of a fixture: after a stage ran, every weight of the fixture must have
//! been read by a loader, or be on the stage's documented ignore list. An unknown
//! tensor next to real weights is then an error (`UnexpectedKey`), as in the library's
//! own loaders, instead of passing unnoticed.
//!
//! A stage's fixture may carry modules the stage does not run (the `seg_head` fixture
//! holds the pixel decoder, the `encoder` one the prompt embeddings): the stage loads
//! them anyway ([`load_carried`]), so their keys and shapes are checked too.

use burn::tensor::backend::Backend;
use omg_encoder::loader::{load_pixel_decoder, load_prompt_embedding};
use omg_encoder::omg_seg_loader::{BACKBONE_IGNORED_PREFIXES, HEAD_IGNORED_PREFIXES};
use omg_encoder::{PixelDecoder, PromptEmbedding};

use crate::ParityError;
use crate::fixture::{Fixture, Weights};
use crate::hparams::{HEAD, mask_decoder_config, pixel_decoder_config};

/// The official prefix of the backbone in the fixtures.
const BACKBONE: &str = "visual_encoder.backbone.";

/// A module a fixture carries but its stage does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// The pixel decoder (`panoptic_head.pixel_decoder.*`).
    PixelDecoder,
    /// The point/box prompt embeddings (`mask_tokens`, `pb_embedding`, `pos_linear`).
    PromptEmbedding,
}

/// Loads (and drops) the `carried` modules from the fixture's weights: their keys
/// count as consumed, and a missing or mis-shaped one is an error.
pub fn load_carried<B: Backend>(
    fx: &Fixture,
    carried: &[Carried],
    device: &B::Device,
) -> Result<(), ParityError> {
    let weights = Weights(&fx.tensors);
    for module in carried {
        match module {
            Carried::PixelDecoder => {
                let init = PixelDecoder::<B>::init(&pixel_decoder_config(fx)?, device);
                load_pixel_decoder(init, &weights, HEAD)?;
            }
            Carried::PromptEmbedding => {
                let init = PromptEmbedding::<B>::init(&mask_decoder_config(fx)?, device);
                load_prompt_embedding(init, &weights, HEAD)?;
            }
        }
    }
    Ok(())
}

/// The weights `stage` leaves unread on purpose (name prefixes):
///
/// * every stage with OMG-Seg weights: the library's own ignore lists
///   ([`BACKBONE_IGNORED_PREFIXES`] under the backbone, [`HEAD_IGNORED_PREFIXES`] under
///   the panoptic head), exactly what `load_omg_seg` leaves;
/// * `checkpoint_format`: the base model's `tok_embeddings` and `output`, whose rows the
///   release replaces (the LLM loader checks their presence and shape), and the
///   release's projector tensors, which that stage (about the LLM's part of the
///   format) does not build; the `projector`, `seg_head` and `e2e` stages load them.
pub fn ignored(stage: &str) -> Vec<String> {
    let mut out: Vec<String> = BACKBONE_IGNORED_PREFIXES
        .iter()
        .map(|p| format!("{BACKBONE}{p}"))
        .chain(HEAD_IGNORED_PREFIXES.iter().map(|p| format!("{HEAD}{p}")))
        .collect();
    if stage == "checkpoint_format" {
        out.extend(
            [
                "hf.model.tok_embeddings.weight",
                "hf.output.weight",
                "pth.projector.",
                "pth.projector_text2vision.",
            ]
            .map(String::from),
        );
    }
    out
}
