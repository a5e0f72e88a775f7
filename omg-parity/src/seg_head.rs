//! Stage `seg_head`: `[SEG]` hidden states → `projector_text2vision` → the decoder
//! layers on the saved image features → mask logits per stage, the upsampled final
//! logits and their binarisation.

use burn::tensor::backend::Backend;
use omg_decoder::loader::load_seg_head;
use omg_decoder::postprocess::{binarize, upsample_logits};
use omg_decoder::{SegDecoding, SegHead};
use omg_encoder::decoder_layer::LevelMemory;
use omg_encoder::loader::load_mask_decoder;
use omg_encoder::{MaskDecoder, MaskDecoderConfig, QueryMemory};

use crate::ParityError;
use crate::checker::{Checker, load_f32};
use crate::compare::{Comparison, Tolerance};
use crate::fixture::{Fixture, Weights};
use crate::hparams::{HEAD, mask_decoder_config, text2vision_config};
use crate::tolerance::Tolerances;

/// The main decoder and the `[SEG]` head of a fixture.
pub fn load_heads<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<(MaskDecoder<B>, SegHead<B>, MaskDecoderConfig), ParityError> {
    let weights = Weights(&fx.tensors);
    let config = mask_decoder_config(fx)?;
    let (decoder, _) = load_mask_decoder(MaskDecoder::<B>::init(&config, device), &weights, HEAD)?;
    let (head, _) = load_seg_head::<B>(
        &text2vision_config(fx)?,
        &config,
        &weights,
        "projector_text2vision.model.",
        HEAD,
        device,
    )?;
    Ok((decoder, head, config))
}

/// Compares a `[SEG]` decoding: queries, per-stage masks (`prefix` + `mask_pred.i`,
/// `attn_mask.i` where recorded), and the final logits upsampled to `size` and
/// binarised.
pub fn check_seg<B: Backend>(
    c: &mut Checker<'_>,
    fx: &Fixture,
    prefix: &str,
    out: &SegDecoding<B>,
    size: (usize, usize),
    tol: Tolerance,
    upsampled_tol: Tolerance,
) -> Result<(), ParityError> {
    c.float(
        &format!("{prefix}seg_queries"),
        out.seg_queries.clone(),
        tol,
    )?;
    for (i, stage) in out.decoding.stages.iter().enumerate() {
        c.float(
            &format!("{prefix}mask_pred.{i}"),
            stage.mask_logits.clone(),
            tol,
        )?;
        let key = format!("{prefix}attn_mask.{i}");
        if fx.has(&key) {
            c.boolean(&key, stage.attn_mask.clone())?;
        }
    }
    let last = out.decoding.final_mask_logits();
    c.float(&format!("{prefix}final_mask_logits"), last.clone(), tol)?;
    let up = upsample_logits(last, size);
    c.float(
        &format!("{prefix}final_mask_logits_upsampled"),
        up.clone(),
        upsampled_tol,
    )?;
    // `sigmoid > 0.5` is `logit > 0`.
    c.thresholded(
        &format!("{prefix}final_mask_binary"),
        binarize(up),
        &format!("{prefix}final_mask_logits_upsampled"),
        0.0,
        upsampled_tol,
    )?;
    Ok(())
}

/// Stage `seg_head`.
pub fn run_seg_head<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    let tols = Tolerances::from_sidecar(fx.json("/tolerance"));
    let (decoder, head, config) = load_heads::<B>(fx, device)?;
    // the fixture's pixel decoder and prompt embeddings are not run here, but checked
    use crate::coverage::{Carried, load_carried};
    load_carried::<B>(
        fx,
        &[Carried::PixelDecoder, Carried::PromptEmbedding],
        device,
    )?;
    let mask_features = load_f32::<B, 4>(fx, "in.mask_features", device)?;
    let memory = (0..config.num_levels)
        .map(|i| load_f32::<B, 4>(fx, &format!("in.multi_scale_memory.{i}"), device))
        .collect::<Result<Vec<_>, _>>()?;
    let levels: Vec<LevelMemory<B>> = decoder.level_memory(&memory);
    let (_, idx) = fx.i64("in.batch_idxs")?;
    let idx: Vec<usize> = idx.into_iter().map(|i| i.max(0) as usize).collect();
    let hidden = load_f32::<B, 2>(fx, "in.seg_hidden_states", device)?;
    let out = head
        .decode(
            &decoder,
            hidden,
            &idx,
            QueryMemory {
                mask_features: &mask_features,
                levels: &levels,
            },
        )
        .map_err(|e| fx.malformed(e))?;
    let [_, _, h, w] = fx.shape("in.pixel_values")?[..] else {
        return Err(fx.malformed("in.pixel_values must be (B,3,H,W)"));
    };
    let mut c = Checker::new(fx);
    check_seg(
        &mut c,
        fx,
        "out.",
        &out,
        (h, w),
        tols.float("features"),
        tols.float("upsampled"),
    )?;
    Ok(c.finish())
}
