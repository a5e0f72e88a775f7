//! A prompt's LLM input: its tokens with the image's visual tokens and the regions'
//! embeddings spliced at `<image>`, `<region>` and `<mark>`.

use burn::tensor::{Tensor, backend::Backend};
use omg_encoder::PromptBatch;

use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::pipeline::Pipeline;
use crate::region::{ModelFramePrompts, Placeholder, Region};
use crate::splice::{PlaceholderIds, Spliced, id_tensor, splice};
use crate::template::{Prompt, tokenize_prompt};

/// The LLM input of one prompt.
#[derive(Debug, Clone)]
pub struct PreparedPrompt<B: Backend> {
    /// Token ids, −200 at the image placeholder.
    pub ids: Vec<i64>,
    /// The spliced input embeddings `[1, L, D]`.
    pub spliced: Spliced<B>,
}

/// LLM embeddings of a prompt's regions: `<region>` rows and `<mark>` rows.
type RegionEmbeddings<B> = (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>);

impl<B: Backend> Pipeline<B> {
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
        let size = self.model().config.encoder.image_size;
        let prompts = ModelFramePrompts::new(regions, img.transform)?;
        let embed = |batch: Option<PromptBatch>| -> Result<Option<Tensor<B, 2>>, OmgLlavaError> {
            let Some(batch) = batch else { return Ok(None) };
            let idx = vec![0; batch.len()];
            let out = self.model().encoder.prompts(&img.encoded, &batch, &idx)?;
            Ok(Some(
                self.model()
                    .projector
                    .prompt_embeddings(out.prompt_features()),
            ))
        };
        let marks = embed(prompts.point_batch(size))?;
        let boxes = embed(prompts.box_batch(size))?;
        let masks = embed(prompts.mask_batch())?;
        let n_regions = prompts.boxes.len() + prompts.masks.len();
        let regions = if n_regions == 0 {
            None
        } else {
            // Put box and mask embeddings back in <region> order.
            let mut order = vec![(0usize, 0usize); n_regions];
            for (k, (i, _)) in prompts.boxes.iter().enumerate() {
                order[*i] = (0, k);
            }
            for (k, (i, _)) in prompts.masks.iter().enumerate() {
                order[*i] = (1, k);
            }
            let rows = order
                .into_iter()
                .map(|(src, k)| {
                    let t = if src == 0 { &boxes } else { &masks };
                    let t = t.as_ref().expect("the batch of this kind exists");
                    let d = t.dims()[1];
                    t.clone().slice([k..k + 1, 0..d])
                })
                .collect();
            Some(Tensor::cat(rows, 0))
        };
        Ok((regions, marks))
    }

    /// The LLM input of a full prompt text (template applied): token ids (−200 at the
    /// image) and the spliced embeddings, with `regions` consumed by the prompt's
    /// `<region>` / `<mark>` placeholders in order.
    pub fn prepare_prompt(
        &self,
        img: &ImageHandle<B>,
        prompt: &Prompt,
        regions: &[Region],
    ) -> Result<PreparedPrompt<B>, OmgLlavaError> {
        let m = self.model();
        let ids = tokenize_prompt(&m.tokenizer, prompt)?;
        let region_id = m.special.region.map(i64::from);
        let mark_id = m.special.mark.map(i64::from);
        let count = |id: Option<i64>| id.map_or(0, |id| ids.iter().filter(|&&t| t == id).count());
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
        let vocab = m.llm.config().vocab_size;
        let device = self.device().clone();
        let spliced = splice(
            std::slice::from_ref(&ids),
            |t| {
                let e = m
                    .llm
                    .embed(id_tensor::<B>(t, vocab, &device)?.unsqueeze_dim(0))?;
                let [_, n, d] = e.dims();
                Ok(e.reshape([n, d]))
            },
            std::slice::from_ref(&img.visual_tokens),
            region_feats,
            mark_feats,
            PlaceholderIds {
                region: region_id.unwrap_or(i64::MIN),
                mark: mark_id.unwrap_or(i64::MIN),
            },
        )?;
        Ok(PreparedPrompt { ids, spliced })
    }
}
