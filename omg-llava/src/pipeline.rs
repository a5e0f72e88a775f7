//! The typed `Pipeline`: a loaded model on a device, images encoded once
//! ([`Pipeline::encode`] → [`ImageHandle`]), and answers to full prompts, streamed or
//! whole. The typed tasks (chat, regions, segmentation, …) are in `tasks.rs`, the
//! prompt preparation in `prepare.rs`.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use image::DynamicImage;
use omg_encoder::preprocess::{SquareTransform, preprocess};
use omg_llm::generation::{GenerationConfig, Generator};

use crate::bundle::CheckpointBundle;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::model::{LoadStep, OmgLlava};
use crate::options::GenerateOptions;
use crate::output::Answer;
use crate::region::Region;
use crate::stream::ResponseStream;

/// The OMG-LLaVA pipeline on backend `B`.
pub struct Pipeline<B: Backend> {
    model: OmgLlava<B>,
    device: B::Device,
    image_limits: crate::ImageLimits,
}

impl<B: Backend> Pipeline<B> {
    /// A pipeline around a loaded model.
    pub fn new(model: OmgLlava<B>, device: B::Device) -> Self {
        Self {
            model,
            device,
            image_limits: crate::ImageLimits::default(),
        }
    }

    /// This pipeline with other limits on the photos it accepts.
    pub fn with_image_limits(mut self, limits: crate::ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// The limits on the photos this pipeline accepts.
    pub fn image_limits(&self) -> crate::ImageLimits {
        self.image_limits
    }

    /// Loads a checkpoint bundle directory (see [`CheckpointBundle::from_dir`]).
    pub fn from_dir(
        dir: impl AsRef<std::path::Path>,
        device: B::Device,
        progress: impl FnMut(LoadStep),
    ) -> Result<Self, OmgLlavaError> {
        Self::from_dir_with(dir, &crate::LoadOptions::default(), device, progress)
    }

    /// [`Self::from_dir`] with load `options` (e.g. int8 LLM weights).
    pub fn from_dir_with(
        dir: impl AsRef<std::path::Path>,
        options: &crate::LoadOptions,
        device: B::Device,
        progress: impl FnMut(LoadStep),
    ) -> Result<Self, OmgLlavaError> {
        let bundle = CheckpointBundle::from_dir(dir)?;
        let model = OmgLlava::load_with(&bundle, options, &device, progress)?;
        Ok(Self::new(model, device))
    }

    /// The model.
    pub fn model(&self) -> &OmgLlava<B> {
        &self.model
    }

    /// The device.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Preprocesses and encodes an image once; every query on it reuses the handle.
    /// A photo past the pipeline's [`crate::ImageLimits`] is an error before anything
    /// is allocated for it.
    pub fn encode(&self, image: &DynamicImage) -> Result<ImageHandle<B>, OmgLlavaError> {
        let mut handles = self.encode_batch(std::slice::from_ref(image))?;
        Ok(handles.remove(0))
    }

    /// Preprocesses and encodes several images in one forward pass of the encoder and
    /// projector (see [`OmgLlava::encode_images`](crate::OmgLlava::encode_images)); one
    /// handle per image, in order. Every image is checked against the
    /// [`crate::ImageLimits`] before any is preprocessed.
    pub fn encode_batch(
        &self,
        images: &[DynamicImage],
    ) -> Result<Vec<ImageHandle<B>>, OmgLlavaError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        for image in images {
            self.image_limits.check(image.width(), image.height())?;
        }
        let size = self.model.config.encoder.image_size;
        let mut values = Vec::new();
        let mut transforms = Vec::with_capacity(images.len());
        for image in images {
            let pre = preprocess(image, size as u32)?;
            if values.is_empty() {
                // One photo (the common case) is not copied.
                values = pre.pixel_values;
            } else {
                values.extend(pre.pixel_values);
            }
            transforms.push(pre.transform);
        }
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(values, [images.len(), 3, size, size]),
            &self.device,
        );
        self.model.encode_images(pixels, &transforms)
    }

    /// Encodes an already preprocessed image `[1, 3, S, S]` (padded, resized to the
    /// model size and CLIP-normalised) whose original frame is given by `transform`
    /// (which the masks are returned in: it is held to the [`crate::ImageLimits`]).
    pub fn encode_normalized(
        &self,
        pixels: Tensor<B, 4>,
        transform: SquareTransform,
    ) -> Result<ImageHandle<B>, OmgLlavaError> {
        self.image_limits
            .check(transform.orig_width, transform.orig_height)?;
        self.model.encode_image(pixels, transform)
    }

    /// Starts a streamed answer to a full prompt (template applied), with `regions`
    /// consumed by its `<region>` / `<mark>` placeholders in order.
    ///
    /// A `&str` or `String` prompt is all markup: every token spelled in it is a token
    /// (the official behaviour). Build a [`Prompt`](crate::Prompt) with plain parts,
    /// or use [`Conversation::prompt_for`](crate::Conversation::prompt_for), to keep a
    /// user's text as text.
    pub fn stream_prompt<'a>(
        &'a self,
        img: &'a ImageHandle<B>,
        prompt: impl Into<crate::Prompt>,
        regions: &[Region],
        options: &GenerateOptions,
    ) -> Result<ResponseStream<'a, B>, OmgLlavaError> {
        let m = &self.model;
        let embeds = self.prompt_embeds(img, &prompt.into(), regions, options)?;
        let config = self.generation_config(options);
        // transformers 4.36 generating from `inputs_embeds` starts `input_ids` with BOS
        // alone, so the repetition penalty sees BOS and the new tokens only.
        let generator = Generator::from_embeds(&m.llm, embeds, vec![vec![m.special.bos]], config)?;
        Ok(ResponseStream::new(m, img, generator))
    }

    /// The spliced input embeddings `[1, L, D]` of one prompt, refused with
    /// [`OmgLlavaError::PromptTooLong`] when `L` plus the new tokens exceed the context.
    pub(crate) fn prompt_embeds(
        &self,
        img: &ImageHandle<B>,
        prompt: &crate::Prompt,
        regions: &[Region],
        options: &GenerateOptions,
    ) -> Result<Tensor<B, 3>, OmgLlavaError> {
        let spliced = self.prepare_prompt(img, prompt, regions)?.spliced;
        let length = spliced.lengths[0];
        let limit = self.model.llm.config().max_position_embeddings;
        if length + options.max_new_tokens > limit {
            return Err(OmgLlavaError::PromptTooLong {
                prompt_tokens: length,
                max_new_tokens: options.max_new_tokens,
                limit,
            });
        }
        Ok(spliced.inputs_embeds)
    }

    /// The LLM's generation settings for `options`: the model's end and stop tokens,
    /// `[SEG]` hidden states captured.
    pub(crate) fn generation_config(&self, options: &GenerateOptions) -> GenerationConfig {
        let m = &self.model;
        let mut config = GenerationConfig {
            max_new_tokens: options.max_new_tokens,
            sampling: options.sampling,
            repetition_penalty: options.repetition_penalty,
            eos_token_id: Some(m.special.eos),
            stop_token_ids: vec![m.special.im_end],
            pad_token_id: m.special.eos,
            forced_tokens: options.forced_tokens.iter().copied().collect(),
            ..GenerationConfig::greedy(options.max_new_tokens)
        };
        if let Some(seg) = m.special.seg {
            config.capture_hidden_for = vec![seg];
        }
        config
    }

    /// Answers a full prompt (template applied) to the end; see
    /// [`stream_prompt`](Self::stream_prompt).
    pub fn answer_prompt(
        &self,
        img: &ImageHandle<B>,
        prompt: impl Into<crate::Prompt>,
        regions: &[Region],
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        self.stream_prompt(img, prompt, regions, options)?.finish()
    }
}
