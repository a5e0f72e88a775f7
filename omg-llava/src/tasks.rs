//! The typed tasks of the Pipeline: image-level chat and captions, object-level
//! questions about regions, pixel-level segmentation and grounded conversation, and
//! the encoder's own panoptic and interactive segmentation.

use burn::tensor::backend::Backend;
use omg_decoder::BinaryMask;
use omg_encoder::panoptic::PanopticFrame;

use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::masks::mask_outputs;
use crate::options::GenerateOptions;
use crate::output::{
    Answer, GroundedAnswer, GroundedPhrase, MaskOutput, PanopticOutput, PanopticSegmentOutput,
    Segmentation, caption, phrases,
};
use crate::pipeline::Pipeline;
use crate::questions::{
    CAPTION_QUESTION, GCG_QUESTION, describe_question, region_prompt, segment_question,
};
use crate::region::{ModelFramePrompts, Region};
use crate::template::Conversation;

impl<B: Backend> Pipeline<B> {
    /// One turn of a multi-turn chat about the image; the conversation keeps the
    /// history as the official chat tool does.
    pub fn chat(
        &self,
        img: &ImageHandle<B>,
        conversation: &mut Conversation,
        question: &str,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        let prompt = conversation.prompt_for(question);
        let answer = self.answer_prompt(img, &prompt, &[], options)?;
        conversation.push(prompt, question, &answer.raw_text);
        Ok(answer)
    }

    /// A short caption of the image.
    pub fn caption(
        &self,
        img: &ImageHandle<B>,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        self.chat(img, &mut Conversation::new(), CAPTION_QUESTION, options)
    }

    /// A question about regions. `question` may contain the placeholders itself
    /// (`<region>` for boxes and masks, `<mark>` for points, in the order of
    /// `regions`); without any, the regions are listed first as the training data
    /// does (`region1 <region>`, `Mark 1 <mark>`, …).
    pub fn ask_regions(
        &self,
        img: &ImageHandle<B>,
        regions: &[Region],
        question: &str,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        if regions.is_empty() {
            return Err(OmgLlavaError::NoRegion);
        }
        let prompt = region_prompt(regions, question);
        self.answer_prompt(img, &prompt, regions, options)
    }

    /// A detailed description of one region (the official region-caption prompt).
    pub fn describe_region(
        &self,
        img: &ImageHandle<B>,
        region: &Region,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        let question = describe_question(region);
        self.ask_regions(img, std::slice::from_ref(region), &question, options)
    }

    /// Referring / reasoning segmentation: `expression` in, mask out.
    pub fn segment(
        &self,
        img: &ImageHandle<B>,
        expression: &str,
        options: &GenerateOptions,
    ) -> Result<Segmentation, OmgLlavaError> {
        let answer = self.chat(
            img,
            &mut Conversation::new(),
            &segment_question(expression),
            options,
        )?;
        Ok(Segmentation {
            mask: answer.masks.first().cloned(),
            answer,
        })
    }

    /// Grounded conversation: a description whose `<p>…</p>` phrases each come with
    /// the mask of the `[SEG]` that follows (k-th phrase ↔ k-th mask).
    pub fn ground(
        &self,
        img: &ImageHandle<B>,
        options: &GenerateOptions,
    ) -> Result<GroundedAnswer, OmgLlavaError> {
        let answer = self.chat(img, &mut Conversation::new(), GCG_QUESTION, options)?;
        let grounded = phrases(&answer.text)
            .into_iter()
            .enumerate()
            .map(|(k, phrase)| GroundedPhrase {
                phrase,
                mask: answer.masks.get(k).cloned(),
            })
            .collect();
        Ok(GroundedAnswer {
            caption: caption(&answer.text),
            phrases: grounded,
            answer,
        })
    }

    /// OMG-Seg's panoptic segmentation, in the original image's pixels.
    pub fn panoptic(&self, img: &ImageHandle<B>) -> Result<PanopticOutput, OmgLlavaError> {
        let result = self.model().encoder.panoptic(
            &img.encoded,
            0,
            PanopticFrame::Original(img.transform),
        )?;
        let segments = result
            .segments
            .iter()
            .map(|s| {
                let data = result.segment_map.iter().map(|&v| v == s.id).collect();
                let mask = BinaryMask::from_vec(result.height, result.width, data)?;
                Ok(PanopticSegmentOutput {
                    class_id: s.class_id,
                    label: self
                        .model()
                        .class_names
                        .get(s.class_id)
                        .cloned()
                        .unwrap_or_else(|| s.label.clone()),
                    is_thing: s.is_thing,
                    mask: MaskOutput::new(mask, s.score),
                })
            })
            .collect::<Result<_, OmgLlavaError>>()?;
        Ok(PanopticOutput { segments })
    }

    /// Interactive segmentation: the prompt's own final mask (point, box or mask).
    pub fn interactive(
        &self,
        img: &ImageHandle<B>,
        region: &Region,
    ) -> Result<MaskOutput, OmgLlavaError> {
        region.validate(img.width(), img.height())?;
        let size = self.model().config.encoder.image_size;
        let prompts = ModelFramePrompts::new(std::slice::from_ref(region), img.transform)?;
        let batch = prompts
            .point_batch(size)
            .or_else(|| prompts.box_batch(size))
            .or_else(|| prompts.mask_batch())
            .ok_or(OmgLlavaError::NoRegion)?;
        let out = self.model().encoder.prompts(&img.encoded, &batch, &[0])?;
        let mut masks = mask_outputs(out.decoding.final_mask_logits(), img.transform)?;
        Ok(masks.remove(0))
    }
}
