//! Stage `visual_prompts`: mask (`<region>`), point (`<mark>`) and box prompts through
//! the OMG-Seg head in prompt mode on the saved image features, every stage's mask
//! logits and attention masks, the `[query | query_pos]` outputs, their projected LLM
//! embeddings, and the spliced LLM input.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use omg_encoder::loader::{load_mask_decoder, load_prompt_embedding};
use omg_encoder::{MaskDecoder, PromptBatch, PromptDecoding, PromptEmbedding, RegionMask};

use crate::ParityError;
use crate::checker::{Checker, load_f32};
use crate::compare::{Comparison, Tolerance};
use crate::fixture::{Fixture, Weights};
use crate::hparams::mask_decoder_config;
use crate::projector::load_projector;
use crate::tolerance::Tolerances;
use omg_projector::splice::{IMAGE_TOKEN_INDEX, PlaceholderIds, splice};

const HEAD: &str = "visual_encoder.panoptic_head.";

fn batch_idxs(fx: &Fixture, key: &str) -> Result<Vec<usize>, ParityError> {
    let (_, v) = fx.i64(key)?;
    v.into_iter()
        .map(|i| usize::try_from(i).map_err(|_| fx.malformed(format!("`{key}` has index {i}"))))
        .collect()
}

fn token_id(fx: &Fixture, name: &str) -> Result<i64, ParityError> {
    fx.json(&format!("/token_ids/{name}"))
        .and_then(|v| v.as_i64())
        .ok_or_else(|| fx.malformed(format!("the sidecar has no token_ids.{name}")))
}

fn check_decoding<B: Backend>(
    c: &mut Checker<'_>,
    kind: &str,
    out: &PromptDecoding<B>,
    tol: Tolerance,
) -> Result<Tensor<B, 2>, ParityError> {
    c.float(
        &format!("out.{kind}.query_feat_init"),
        out.initial_query.clone(),
        tol,
    )?;
    c.float(
        &format!("out.{kind}.query_embed"),
        out.decoding.query_pos.clone(),
        tol,
    )?;
    for (i, stage) in out.decoding.stages.iter().enumerate() {
        c.float(
            &format!("out.{kind}.mask_pred.{i}"),
            stage.mask_logits.clone(),
            tol,
        )?;
        c.boolean(
            &format!("out.{kind}.attn_mask.{i}"),
            stage.attn_mask.clone(),
        )?;
    }
    let sam_out = out.prompt_features();
    c.float(&format!("out.{kind}.sam_out"), sam_out.clone(), tol)?;
    Ok(sam_out)
}

/// Stage `visual_prompts`.
pub fn run_visual_prompts<B: Backend>(
    fx: &Fixture,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    let tol = Tolerances::from_sidecar(fx.json("/tolerance")).float("features");
    let weights = Weights(&fx.tensors);
    let config = mask_decoder_config(fx)?;
    // the fixture's pixel decoder is not run here (its outputs are inputs), but checked
    crate::coverage::load_carried::<B>(fx, &[crate::coverage::Carried::PixelDecoder], device)?;
    let (decoder, _) = load_mask_decoder(MaskDecoder::<B>::init(&config, device), &weights, HEAD)?;
    let (prompt, _) =
        load_prompt_embedding(PromptEmbedding::<B>::init(&config, device), &weights, HEAD)?;
    let projector = load_projector::<B>(fx, device)?;

    let mask_features = load_f32::<B, 4>(fx, "in.mask_features", device)?;
    let memory = (0..config.num_levels)
        .map(|i| load_f32::<B, 4>(fx, &format!("in.multi_scale_memory.{i}"), device))
        .collect::<Result<Vec<_>, _>>()?;
    let levels = decoder.level_memory(&memory);
    let [_, _, h, w] = fx.shape("in.pixel_values")?[..] else {
        return Err(fx.malformed("in.pixel_values must be (B,3,H,W)"));
    };
    let mut c = Checker::new(fx);

    // Mask regions.
    let (rs, rv) = fx.f32("in.regions")?;
    let [n_r, rh, rw] = rs[..] else {
        return Err(fx.malformed("in.regions must be (N,H,W)"));
    };
    let regions = (0..n_r)
        .map(|i| {
            let data = rv[i * rh * rw..(i + 1) * rh * rw]
                .iter()
                .map(|&v| v != 0.0)
                .collect();
            RegionMask::new(rh, rw, data)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let region_out = prompt.decode(
        &decoder.decoder,
        &PromptBatch::Regions(regions),
        &batch_idxs(fx, "in.region_batch_idxs")?,
        &mask_features,
        &levels,
    )?;
    let centers: Vec<i64> = region_out
        .center_points
        .iter()
        .flat_map(|&(x, y)| [x as i64, y as i64])
        .collect();
    c.ints("out.region.center_points", &[n_r, 2], &centers)?;
    let region_sam = check_decoding(&mut c, "region", &region_out, tol)?;
    let region_emb = projector.prompt_embeddings(region_sam);
    c.float("out.region.embeddings", region_emb.clone(), tol)?;

    // Points.
    let (_, pv) = fx.f32("in.points")?;
    let points = pv.chunks(2).map(|p| (p[0], p[1])).collect();
    let point_out = prompt.decode(
        &decoder.decoder,
        &PromptBatch::Points {
            points,
            width: w,
            height: h,
        },
        &batch_idxs(fx, "in.point_batch_idxs")?,
        &mask_features,
        &levels,
    )?;
    let point_sam = check_decoding(&mut c, "point", &point_out, tol)?;
    let point_emb = projector.prompt_embeddings(point_sam);
    c.float("out.point.embeddings", point_emb.clone(), tol)?;

    // Boxes.
    let (_, bv) = fx.f32("in.boxes")?;
    let boxes = bv.chunks(4).map(|b| [b[0], b[1], b[2], b[3]]).collect();
    let box_out = prompt.decode(
        &decoder.decoder,
        &PromptBatch::Boxes {
            boxes,
            width: w,
            height: h,
        },
        &batch_idxs(fx, "in.box_batch_idxs")?,
        &mask_features,
        &levels,
    )?;
    let box_sam = check_decoding(&mut c, "box", &box_out, tol)?;
    c.float(
        "out.box.embeddings",
        projector.prompt_embeddings(box_sam),
        tol,
    )?;

    // Splicing. This fixture stores no backbone weights or class embeddings, so the
    // image's visual block cannot be recomputed here (stage `e2e` checks it); it is
    // taken from the recorded rows at the image position, and everything around it
    // (text embeddings, each <region> and <mark> in order, padding) is checked.
    let (is, ids) = fx.i64("in.input_ids")?;
    let [b, l] = is[..] else {
        return Err(fx.malformed("in.input_ids must be (B,L)"));
    };
    let rows: Vec<Vec<i64>> = ids.chunks(l).map(|r| r.to_vec()).collect();
    let (es, recorded) = fx.f32("out.spliced.inputs_embeds")?;
    let (_, recorded_mask) = fx.i64("out.spliced.attention_mask")?;
    let (lmax, d) = (es[1], es[2]);
    let mut images = Vec::new();
    for (bi, row) in rows.iter().enumerate() {
        let valid = recorded_mask[bi * lmax..(bi + 1) * lmax]
            .iter()
            .filter(|&&v| v != 0)
            .count();
        let positions: Vec<usize> = row
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t == IMAGE_TOKEN_INDEX)
            .map(|(i, _)| i)
            .collect();
        let (start, block) = match positions[..] {
            [p] => (p, valid + 1 - row.len()),
            [] => (0, 0),
            _ => return Err(fx.malformed("more than one <image> in a row")),
        };
        let rows_data = recorded[(bi * lmax + start) * d..(bi * lmax + start + block) * d].to_vec();
        images.push(Tensor::<B, 2>::from_data(
            TensorData::new(rows_data, [block, d]),
            device,
        ));
    }
    let table = load_f32::<B, 2>(fx, "llm.model.tok_embeddings.weight", device)?;
    let vocab = table.dims()[0];
    let spliced = splice::<B, ParityError>(
        &rows,
        |t| {
            if let Some(&bad) = t.iter().find(|&&v| v < 0 || v as usize >= vocab) {
                return Err(fx.malformed(format!("token id {bad} outside the table of {vocab}")));
            }
            let ids = TensorData::new(t.to_vec(), [t.len()]);
            Ok(table.clone().select(0, Tensor::from_data(ids, device)))
        },
        &images,
        Some(region_emb),
        Some(point_emb),
        PlaceholderIds {
            region: token_id(fx, "<region>")?,
            mark: token_id(fx, "<mark>")?,
        },
    )
    .map_err(|e| fx.malformed(format!("splicing failed: {e}")))?;
    c.float(
        "out.spliced.inputs_embeds",
        spliced.inputs_embeds.clone(),
        tol,
    )?;
    let mask: Vec<i64> = spliced
        .attention_mask()
        .into_iter()
        .flatten()
        .map(|v| v as i64)
        .collect();
    c.ints("out.spliced.attention_mask", &[b, lmax], &mask)?;
    Ok(c.finish())
}
