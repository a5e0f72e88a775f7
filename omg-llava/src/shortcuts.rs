//! Shortcuts for the common tasks (each is [`Pipeline::run`] of its [`Task`], with the
//! typed output of that task), and the encoder's own segmentation: panoptic, and the
//! mask a region names.

use burn::tensor::backend::Backend;
use omg_encoder::panoptic::PanopticFrame;
use omg_masks::BinaryMask;

use crate::conversation::Conversation;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::model::mask_outputs;
use crate::options::GenerateOptions;
use crate::output::{Answer, GroundedAnswer, MaskOutput, PanopticSegment, Segmentation};
use crate::pipeline::Pipeline;
use crate::region::{ModelFramePrompts, Region};
use crate::task::Task;

impl<B: Backend> Pipeline<B> {
    /// A turn of a chat about the photo: `question` after the turns of
    /// `conversation`, which then records this turn.
    pub fn chat(
        &self,
        img: &ImageHandle<B>,
        conversation: &mut Conversation,
        question: &str,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        let answer = self.run(img, &Task::chat_after(conversation, question), options)?;
        conversation.record(question, &answer);
        Ok(answer)
    }

    /// A short caption of the photo ([`Task::Caption`]).
    pub fn caption(
        &self,
        img: &ImageHandle<B>,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        self.run(img, &Task::Caption, options)
    }

    /// A question about regions ([`Task::AskRegions`]).
    pub fn ask_regions(
        &self,
        img: &ImageHandle<B>,
        regions: &[Region],
        question: &str,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        self.run(img, &Task::ask_regions(regions.to_vec(), question), options)
    }

    /// Referring / reasoning segmentation ([`Task::Segment`]): `expression` in, the
    /// mask of its first `[SEG]` out.
    pub fn segment(
        &self,
        img: &ImageHandle<B>,
        expression: &str,
        options: &GenerateOptions,
    ) -> Result<Segmentation, OmgLlavaError> {
        Ok(self.run(img, &Task::segment(expression), options)?.into())
    }

    /// Grounded conversation ([`Task::Ground`]): a description whose phrases each come
    /// with a mask.
    pub fn ground(
        &self,
        img: &ImageHandle<B>,
        options: &GenerateOptions,
    ) -> Result<GroundedAnswer, OmgLlavaError> {
        Ok(self.run(img, &Task::Ground, options)?.into())
    }

    /// OMG-Seg's panoptic segmentation of the photo (no language model), in its pixels.
    pub fn panoptic(&self, img: &ImageHandle<B>) -> Result<Vec<PanopticSegment>, OmgLlavaError> {
        let m = self.model();
        m.check_image(img)?;
        let result =
            m.encoder
                .panoptic(img.encoded(), 0, PanopticFrame::Original(img.transform()))?;
        result
            .segments
            .iter()
            .map(|s| {
                let data = result.segment_map.iter().map(|&v| v == s.id).collect();
                let mask = BinaryMask::from_vec(result.height, result.width, data)?;
                Ok(PanopticSegment {
                    class_id: s.class_id,
                    label: m
                        .class_names
                        .get(s.class_id)
                        .cloned()
                        .unwrap_or_else(|| s.label.clone()),
                    is_thing: s.is_thing,
                    mask: MaskOutput::new(mask, s.score),
                })
            })
            .collect()
    }

    /// Interactive segmentation (no language model): the mask of the object a point,
    /// rectangle or mask names, as OMG-Seg's prompt mode predicts it.
    pub fn segment_region(
        &self,
        img: &ImageHandle<B>,
        region: &Region,
    ) -> Result<MaskOutput, OmgLlavaError> {
        let m = self.model();
        m.check_image(img)?;
        region.validate(img.width(), img.height())?;
        let size = m.config.encoder.image_size;
        let prompts = ModelFramePrompts::new(std::slice::from_ref(region), img.transform())?;
        let batch = prompts
            .point_batch(size)
            .or_else(|| prompts.box_batch(size))
            .or_else(|| prompts.mask_batch())
            .ok_or(OmgLlavaError::NoRegion)?;
        let out = m.encoder.prompts(img.encoded(), &batch, &[0])?;
        let mut masks = mask_outputs(out.decoding.final_mask_logits(), img.transform())?;
        Ok(masks.remove(0))
    }
}
