//! A prompt's LLM input: its tokens with the photo's visual tokens and the regions'
//! embeddings spliced at `<image>`, `<region>` and `<mark>`, refused before anything is
//! embedded when it would not fit the model's context.

use burn::tensor::{Tensor, backend::Backend};
use omg_encoder::PromptBatch;
use omg_projector::splice::{IMAGE_TOKEN_INDEX, PlaceholderIds, splice};

use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::model::OmgLlava;
use crate::prompt::{Prompt, tokenize_prompt};
use crate::region::{ModelFramePrompts, Placeholder, Region};

/// LLM embeddings of a prompt's regions: `<region>` rows and `<mark>` rows.
type RegionEmbeddings<B> = (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>);

/// The LLM input of one prompt.
pub(crate) struct Prepared<B: Backend> {
    /// Input embeddings `[1, L, D]`.
    pub embeds: Tensor<B, 3>,
    /// `L`, the prompt's length in the LLM (visual tokens included).
    pub length: usize,
    /// Tokens of the prompt text, the image counted as one.
    pub prompt_tokens: usize,
}

impl<B: Backend> OmgLlava<B> {
    /// Checks that `img` was encoded by this model.
    pub fn check_image(&self, img: &ImageHandle<B>) -> Result<(), OmgLlavaError> {
        let (expected_channels, expected_side) = (
            self.llm.config().hidden_size,
            self.config.encoder.image_size,
        );
        let found_channels = img.visual_tokens().dims()[1];
        let found_side = img.transform().target as usize;
        if (found_channels, found_side) != (expected_channels, expected_side) {
            return Err(OmgLlavaError::ForeignImage {
                found_side,
                found_channels,
                expected_side,
                expected_channels,
            });
        }
        Ok(())
    }

    /// The spliced input of a full prompt (template applied), with `regions` consumed
    /// by its `<region>` / `<mark>` placeholders in order; refused with
    /// [`OmgLlavaError::PromptTooLong`] when it and `max_new_tokens` exceed the
    /// context, before any embedding is computed.
    pub fn prepare(
        &self,
        img: &ImageHandle<B>,
        prompt: &Prompt,
        regions: &[Region],
        max_new_tokens: usize,
    ) -> Result<Prepared<B>, OmgLlavaError> {
        self.check_image(img)?;
        let ids = tokenize_prompt(&self.tokenizer, prompt)?;
        let images = ids.iter().filter(|&&t| t == IMAGE_TOKEN_INDEX).count();
        // each placeholder takes one position, the image its visual tokens (a prompt
        // without <image> still consumes the image, as the official code does)
        let length = ids.len() - images + images * img.visual_token_count();
        let limit = self.llm.config().max_position_embeddings;
        if length.saturating_add(max_new_tokens) > limit {
            return Err(OmgLlavaError::PromptTooLong {
                prompt_tokens: length,
                max_new_tokens,
                limit,
            });
        }
        let (region_id, mark_id) = (i64::from(self.tokens.region), i64::from(self.tokens.mark));
        let count = |id: i64| ids.iter().filter(|&&t| t == id).count();
        let wanted = |p: Placeholder| regions.iter().filter(|r| r.placeholder() == p).count();
        if count(region_id) != wanted(Placeholder::Region)
            || count(mark_id) != wanted(Placeholder::Mark)
        {
            return Err(OmgLlavaError::PlaceholderMismatch {
                region_placeholders: count(region_id),
                mark_placeholders: count(mark_id),
                regions_given: wanted(Placeholder::Region),
                points_given: wanted(Placeholder::Mark),
            });
        }
        let (region_feats, mark_feats) = self.region_embeddings(img, regions)?;
        let spliced = splice::<B, OmgLlavaError>(
            std::slice::from_ref(&ids),
            |t| Ok(self.llm.embed_ids(t)?),
            std::slice::from_ref(img.visual_tokens()),
            region_feats,
            mark_feats,
            PlaceholderIds {
                region: region_id,
                mark: mark_id,
            },
        )?;
        Ok(Prepared {
            length: spliced.lengths[0],
            embeds: spliced.inputs_embeds,
            prompt_tokens: ids.len(),
        })
    }

    /// LLM embeddings `[N, D]` of the regions, split into `<region>` order (boxes and
    /// masks) and `<mark>` order (points).
    fn region_embeddings(
        &self,
        img: &ImageHandle<B>,
        regions: &[Region],
    ) -> Result<RegionEmbeddings<B>, OmgLlavaError> {
        for r in regions {
            r.validate(img.width(), img.height())?;
        }
        let size = self.config.encoder.image_size;
        let prompts = ModelFramePrompts::new(regions, img.transform())?;
        let embed = |batch: Option<PromptBatch>| -> Result<Option<Tensor<B, 2>>, OmgLlavaError> {
            let Some(batch) = batch else { return Ok(None) };
            let idx = vec![0; batch.len()];
            let out = self.encoder.prompts(img.encoded(), &batch, &idx)?;
            Ok(Some(
                self.projector.prompt_embeddings(out.prompt_features()),
            ))
        };
        let marks = embed(prompts.point_batch(size))?;
        let boxes = embed(prompts.box_batch(size))?;
        let masks = embed(prompts.mask_batch())?;
        let n_regions = prompts.boxes.len() + prompts.masks.len();
        if n_regions == 0 {
            return Ok((None, marks));
        }
        // Box and mask embeddings back in <region> order.
        let mut rows: Vec<Option<Tensor<B, 2>>> = vec![None; n_regions];
        let box_places: Vec<usize> = prompts.boxes.iter().map(|(i, _)| *i).collect();
        let mask_places: Vec<usize> = prompts.masks.iter().map(|(i, _)| *i).collect();
        for (source, at) in [(&boxes, box_places), (&masks, mask_places)] {
            let Some(t) = source else { continue };
            let d = t.dims()[1];
            for (k, i) in at.into_iter().enumerate() {
                rows[i] = Some(t.clone().slice([k..k + 1, 0..d]));
            }
        }
        let rows: Vec<Tensor<B, 2>> = rows.into_iter().flatten().collect();
        Ok((Some(Tensor::cat(rows, 0)), marks))
    }
}
