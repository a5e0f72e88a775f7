//! Placeholder splicing (`prepare_inputs_labels_for_multimodal_with_visual_prompts`):
//! token ids become LLM input embeddings, with the image placeholder (−200) replaced
//! by the image's visual token block and each `<region>` / `<mark>` by the next
//! visual-prompt embedding, in order of appearance across the batch. Rows are
//! right-padded with zeros; the attention mask marks the valid positions.
//!
//! This is where the projector's outputs (visual tokens, prompt embeddings) enter the
//! language model's input sequence; the text embedding itself is the caller's
//! (`embed`), so this crate does not depend on the LLM.

use burn::tensor::{Tensor, backend::Backend};

use crate::error::ProjectorError;

/// The official image placeholder id (`IMAGE_TOKEN_INDEX`).
pub const IMAGE_TOKEN_INDEX: i64 = -200;

/// Which ids are placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceholderIds {
    /// `<region>`.
    pub region: i64,
    /// `<mark>`.
    pub mark: i64,
}

/// The spliced LLM input.
#[derive(Debug, Clone)]
pub struct Spliced<B: Backend> {
    /// `[B, L, D]`, zero-padded on the right.
    pub inputs_embeds: Tensor<B, 3>,
    /// Valid length of each row (the attention mask is `true` on `0..len`).
    pub lengths: Vec<usize>,
}

impl<B: Backend> Spliced<B> {
    /// The attention mask as rows of booleans.
    pub fn attention_mask(&self) -> Vec<Vec<bool>> {
        let l = self.inputs_embeds.dims()[1];
        self.lengths
            .iter()
            .map(|&n| (0..l).map(|i| i < n).collect())
            .collect()
    }
}

/// Splices one batch of prompts. `ids` are the rows (no padding); `embed` maps text
/// ids to `[n, D]` embeddings; `images[k]` is the visual block of the k-th image in
/// batch order (a row without `<image>` still consumes one, as the official code
/// does); `regions` `[N_r, D]` and `marks` `[N_m, D]` are consumed in order.
///
/// # Errors
///
/// Those of `embed`, and [`ProjectorError::Splice`] when the prompts need more images,
/// regions or points than given, or leave some unused.
pub fn splice<B: Backend, E: From<ProjectorError>>(
    ids: &[Vec<i64>],
    embed: impl Fn(&[i64]) -> Result<Tensor<B, 2>, E>,
    images: &[Tensor<B, 2>],
    regions: Option<Tensor<B, 2>>,
    marks: Option<Tensor<B, 2>>,
    placeholders: PlaceholderIds,
) -> Result<Spliced<B>, E> {
    let count = |t: &Option<Tensor<B, 2>>| t.as_ref().map_or(0, |t| t.dims()[0]);
    let (n_regions, n_marks) = (count(&regions), count(&marks));
    let (mut next_image, mut next_region, mut next_mark) = (0usize, 0usize, 0usize);
    let mut rows: Vec<Tensor<B, 2>> = Vec::with_capacity(ids.len());
    for row in ids {
        let mut parts = Vec::new();
        let mut text: Vec<i64> = Vec::new();
        let has_image = row.contains(&IMAGE_TOKEN_INDEX);
        let take_image = |next: &mut usize| -> Result<Tensor<B, 2>, E> {
            let block = images.get(*next).cloned().ok_or_else(|| {
                ProjectorError::Splice(format!(
                    "the prompts need more than the {} image(s) given",
                    images.len()
                ))
            })?;
            *next += 1;
            Ok(block)
        };
        if !has_image {
            // The official code still consumes one image for such a row.
            take_image(&mut next_image)?;
            rows.push(embed(row)?);
            continue;
        }
        let flush = |text: &mut Vec<i64>, parts: &mut Vec<Tensor<B, 2>>| {
            if !text.is_empty() {
                parts.push(embed(text)?);
                text.clear();
            }
            Ok::<(), E>(())
        };
        for &id in row {
            if id == IMAGE_TOKEN_INDEX {
                flush(&mut text, &mut parts)?;
                parts.push(take_image(&mut next_image)?);
            } else if id == placeholders.region {
                flush(&mut text, &mut parts)?;
                let r = regions.as_ref().filter(|_| next_region < n_regions).ok_or_else(|| {
                    ProjectorError::Splice(format!(
                        "the prompt has more <region> tokens than the {n_regions} region(s) given"
                    ))
                })?;
                let d = r.dims()[1];
                parts.push(r.clone().slice([next_region..next_region + 1, 0..d]));
                next_region += 1;
            } else if id == placeholders.mark {
                flush(&mut text, &mut parts)?;
                let m = marks
                    .as_ref()
                    .filter(|_| next_mark < n_marks)
                    .ok_or_else(|| {
                        ProjectorError::Splice(format!(
                            "the prompt has more <mark> tokens than the {n_marks} point(s) given"
                        ))
                    })?;
                let d = m.dims()[1];
                parts.push(m.clone().slice([next_mark..next_mark + 1, 0..d]));
                next_mark += 1;
            } else {
                text.push(id);
            }
        }
        flush(&mut text, &mut parts)?;
        rows.push(Tensor::cat(parts, 0));
    }
    if next_region != n_regions || next_mark != n_marks {
        return Err(ProjectorError::Splice(format!(
            "{n_regions} region(s) and {n_marks} point(s) given but the prompt has {next_region} <region> and {next_mark} <mark> tokens"
        ))
        .into());
    }
    let lengths: Vec<usize> = rows.iter().map(|r| r.dims()[0]).collect();
    let max_len = lengths.iter().copied().max().unwrap_or(0);
    let padded = rows
        .into_iter()
        .map(|r| {
            let [n, d] = r.dims();
            let r = if n < max_len {
                Tensor::cat(
                    vec![r.clone(), Tensor::zeros([max_len - n, d], &r.device())],
                    0,
                )
            } else {
                r
            };
            r.unsqueeze_dim::<3>(0)
        })
        .collect();
    Ok(Spliced {
        inputs_embeds: Tensor::cat(padded, 0),
        lengths,
    })
}
