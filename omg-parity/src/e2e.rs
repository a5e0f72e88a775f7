//! Stage `e2e`: the official chat flow on one image — visual encoder, projector,
//! placeholder splicing, greedy generation with a forced `[SEG]`, the `[SEG]` hidden
//! state, and its mask.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use omg_checkpoint::PrefixView;
use omg_decoder::postprocess::upsample_logits;
use omg_encoder::loader::{BackboneNaming, load_backbone, load_pixel_decoder};
use omg_encoder::{ClassEmbedding, ConvNext, PixelDecoder, encode_with};
use omg_llm::LlmWeights;
use omg_llm::generation::{GenerationConfig, Generator};
use omg_llm::loader::load_hf_with;
use omg_projector::project_image;
use omg_projector::splice::{PlaceholderIds, splice};

use crate::ParityError;
use crate::checker::{Checker, load_f32};
use crate::compare::Comparison;
use crate::fixture::{Fixture, Weights};
use crate::hparams::{HEAD, backbone_config, pixel_decoder_config};
use crate::llm::config_from_shapes;
use crate::projector::load_projector;
use crate::seg_head::{check_seg, load_heads};
use crate::tolerance::Tolerances;

fn token_id(fx: &Fixture, name: &str) -> Result<i64, ParityError> {
    fx.json(&format!("/token_ids/{name}"))
        .and_then(|v| v.as_i64())
        .ok_or_else(|| fx.malformed(format!("the sidecar has no token_ids.{name}")))
}

/// The forced tokens `(new-token index, id)` of the sidecar's
/// `forced_decoder_ids [[k, id], …]` (HF counts `k` from the BOS that transformers
/// 4.36 prefixes, so the new-token index is `k − 1`).
pub fn forced_tokens(fx: &Fixture) -> Result<Vec<(usize, u32)>, ParityError> {
    let text = fx
        .json("/deviations_from_chat_tool")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let Some(start) = text.find("forced_decoder_ids") else {
        return Ok(Vec::new());
    };
    let rest = &text[start + "forced_decoder_ids".len()..];
    let open = rest
        .find("[[")
        .ok_or_else(|| fx.malformed("forced_decoder_ids without a list"))?;
    let close = rest[open..]
        .find("]]")
        .ok_or_else(|| fx.malformed("unterminated forced_decoder_ids list"))?;
    let numbers: Vec<i64> = rest[open..open + close]
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|e| fx.malformed(format!("forced_decoder_ids: {e}")))?;
    if !numbers.len().is_multiple_of(2) {
        return Err(fx.malformed("forced_decoder_ids must be pairs"));
    }
    numbers
        .chunks(2)
        .map(|p| {
            if p[0] < 1 || p[1] < 0 {
                return Err(fx.malformed(format!("forced_decoder_ids pair {p:?}")));
            }
            Ok((p[0] as usize - 1, p[1] as u32))
        })
        .collect()
}

/// What the chain produced, to compare LLM precisions ([`crate::precision`]).
#[derive(Debug, Clone, Default)]
pub struct E2eTrace {
    /// Logits of every generation step `[vocab]`.
    pub step_logits: Vec<Vec<f32>>,
    /// The generated ids (the forced `[SEG]` included).
    pub tokens: Vec<u32>,
    /// Final-norm hidden states at the `[SEG]` tokens, flattened.
    pub seg_hidden: Vec<f32>,
    /// The `[SEG]` masks at image size (`sigmoid > 0.5`), flattened.
    pub mask: Vec<bool>,
}

/// Stage `e2e`.
pub fn run_e2e<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    run_e2e_with::<B>(fx, LlmWeights::F32, device).map(|(c, _)| c)
}

/// Stage `e2e` with the LLM's linears held as `weights`; also returns the trace.
pub fn run_e2e_with<B: Backend>(
    fx: &Fixture,
    weights_precision: LlmWeights,
    device: &B::Device,
) -> Result<(Vec<Comparison>, E2eTrace), ParityError> {
    let mut trace = E2eTrace::default();
    let tols = Tolerances::from_sidecar(fx.json("/tolerance"));
    let tol = tols.float("features");
    let weights = Weights(&fx.tensors);
    let mut c = Checker::new(fx);
    // the fixture's prompt embeddings are not run by this flow, but checked
    crate::coverage::load_carried::<B>(fx, &[crate::coverage::Carried::PromptEmbedding], device)?;

    // Visual encoder.
    let bb_config = backbone_config(fx)?;
    let (backbone, _) = load_backbone(
        ConvNext::<B>::init(&bb_config, device),
        &weights,
        &BackboneNaming::OmgSeg("visual_encoder.backbone.".into()),
    )?;
    let (pixel_decoder, _) = load_pixel_decoder(
        PixelDecoder::<B>::init(&pixel_decoder_config(fx)?, device),
        &weights,
        HEAD,
    )?;
    let (decoder, seg_head, _) = load_heads::<B>(fx, device)?;
    let (cs, cv) = fx.f32("buf.visual_encoder.panoptic_head.cls_embed")?;
    let classes = ClassEmbedding::<B>::from_buffer(TensorData::new(cv, cs), device)?;
    let pixels = load_f32::<B, 4>(fx, "in.pixel_values", device)?;
    let [_, _, h, w] = pixels.dims();
    // The encoding and projection the Pipeline runs on every image.
    let encoded = encode_with(&backbone, &pixel_decoder, &decoder, &classes, pixels);
    let projector = load_projector::<B>(fx, device)?;
    let image = project_image(&projector, &encoded, 0.5)?;
    let vis = &image.outputs;
    c.float(
        "out.encoder.clip_feature_with_prior",
        vis.clip_feature_with_prior.clone(),
        tol,
    )?;
    c.float(
        "out.encoder.query_pos_feat",
        vis.query_pos_feat.clone(),
        tol,
    )?;
    c.boolean("out.encoder.attn_mask", vis.prior.attn_mask.clone())?;

    // Splicing.
    let proj = image.projected;
    c.float("out.visual_tokens", proj.visual_tokens[0].clone(), tol)?;
    let llm_weights = PrefixView::new(&weights, "llm.");
    let config = config_from_shapes(fx, &llm_weights)?;
    let llm = load_hf_with::<B>(&config, &llm_weights, weights_precision, device)?;
    let (is, ids) = fx.i64("in.input_ids")?;
    let rows: Vec<Vec<i64>> = ids.chunks(is[1]).map(|r| r.to_vec()).collect();
    let vocab = config.vocab_size;
    let spliced = splice::<B, ParityError>(
        &rows,
        |t| Ok(llm.embed_ids(t)?),
        &proj.visual_tokens,
        None,
        None,
        PlaceholderIds {
            region: token_id(fx, "<region>")?,
            mark: token_id(fx, "<mark>")?,
        },
    )
    .map_err(|e| fx.malformed(format!("splicing failed: {e}")))?;
    c.float("out.inputs_embeds", spliced.inputs_embeds.clone(), tol)?;

    // Greedy generation with the forced [SEG], capturing its hidden state.
    let seg = token_id(fx, "[SEG]")? as u32;
    let steps = fx.shape("out.gen_ids")?[0];
    let bos = token_id(fx, "bos").unwrap_or(1);
    let mut gen_config = GenerationConfig {
        eos_token_id: token_id(fx, "eos").ok().map(|v| v as u32),
        pad_token_id: token_id(fx, "pad").unwrap_or(2) as u32,
        keep_step_logits: true,
        capture_hidden_for: vec![seg],
        ..GenerationConfig::greedy(steps)
    };
    gen_config.forced_tokens = forced_tokens(fx)?.into_iter().collect();
    let generated =
        Generator::from_embeds(&llm, spliced.inputs_embeds, Vec::new(), gen_config)?.run()?;
    trace.tokens = generated.tokens[0].clone();
    trace.step_logits = generated.step_logits.iter().map(|s| s[0].clone()).collect();
    let tokens: Vec<i64> = generated.tokens[0].iter().map(|&t| t as i64).collect();
    c.ints("out.gen_ids", &[tokens.len()], &tokens)?;
    let mut sequence = vec![bos];
    sequence.extend(&tokens);
    c.ints("out.gen_sequences", &[sequence.len()], &sequence)?;
    let logits: Vec<f32> = generated
        .step_logits
        .iter()
        .flat_map(|s| s[0].clone())
        .collect();
    c.float(
        "out.gen_step_logits",
        Tensor::<B, 2>::from_data(TensorData::new(logits, [steps, vocab]), device),
        tols.float("logits"),
    )?;
    let positions: Vec<i64> = generated.captured.iter().map(|h| h.index as i64).collect();
    c.ints("out.seg_positions", &[positions.len()], &positions)?;
    if generated.captured.is_empty() {
        // No [SEG] with a state: any recorded mask output is reported as not compared.
        return Ok((c.finish(), trace));
    }
    let hidden = Tensor::stack::<2>(
        generated
            .captured
            .iter()
            .map(|h| h.hidden.clone())
            .collect(),
        0,
    );
    trace.seg_hidden = hidden
        .clone()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| fx.malformed(format!("hidden read-back: {e:?}")))?;
    c.float(
        "out.seg_hidden_states",
        hidden.clone(),
        tols.float("hidden"),
    )?;

    // [SEG] → mask.
    let idx = vec![0; generated.captured.len()];
    let seg_out = seg_head.decode(&decoder, hidden, &idx, encoded.query_memory())?;
    check_seg(
        &mut c,
        fx,
        "out.",
        &seg_out,
        (h, w),
        tol,
        tols.float("upsampled"),
    )?;
    trace.mask = upsample_logits(seg_out.decoding.final_mask_logits(), (h, w))
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| fx.malformed(format!("mask read-back: {e:?}")))?
        .into_iter()
        .map(|v| v > 0.0)
        .collect();
    Ok((c.finish(), trace))
}
