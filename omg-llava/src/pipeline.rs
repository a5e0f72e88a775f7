//! The typed [`Pipeline`]: a loaded model on a device, photos encoded once
//! ([`Pipeline::encode`] → [`ImageHandle`]), and [`Task`]s answered on them, streamed
//! ([`Pipeline::stream`]) or whole ([`Pipeline::run`]). The shortcuts of the common
//! tasks are in `shortcuts.rs`, batched generation in `batch.rs`.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData, backend::Backend};
use image::DynamicImage;
use omg_encoder::preprocess::{SquareTransform, preprocess};
use omg_llm::generation::{GenerationConfig, Generator};

use crate::bundle::CheckpointBundle;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::limits::ImageLimits;
use crate::load::LoadStep;
use crate::model::OmgLlava;
use crate::options::{GenerateOptions, LoadOptions};
use crate::output::Answer;
use crate::prompt::{Prompt, tokenize_prompt};
use crate::region::Region;
use crate::stream::ResponseStream;
use crate::task::Task;

/// OMG-LLaVA loaded on a device of backend `B`.
///
/// Load it from a bundle directory ([`from_dir`](Self::from_dir)), encode a photo once
/// ([`encode`](Self::encode)), then ask [`Task`]s about it. `Pipeline` is `Send + Sync`:
/// threads may share one and run tasks at the same time.
pub struct Pipeline<B: Backend> {
    model: OmgLlava<B>,
    device: B::Device,
    image_limits: ImageLimits,
}

impl<B: Backend> Pipeline<B> {
    /// Loads the bundle in directory `dir` (found as
    /// [`CheckpointBundle::from_dir`] describes) onto `device`; `progress` is called
    /// before each loading step.
    pub fn from_dir(
        dir: impl AsRef<Path>,
        options: &LoadOptions,
        device: B::Device,
        progress: impl FnMut(LoadStep),
    ) -> Result<Self, OmgLlavaError> {
        Self::from_bundle(&CheckpointBundle::from_dir(dir)?, options, device, progress)
    }

    /// Prepares the LLM of `bundle` for fast loads: loads it from the
    /// checkpoints as `options` say (the LoRA merged, the linears converted to
    /// `options.llm_weights`) and writes it beside the release as
    /// `omg_llava_llm_<weights>.safetensors` ([`CheckpointBundle::prepared_llm`]). Every
    /// later load of the bundle with these weights reads that file instead of converting
    /// the checkpoints, as long as the checkpoints are the same files (names, sizes,
    /// modification times): a file made from other ones is refused with an error naming
    /// it. Returns the path written.
    pub fn prepare_llm(
        bundle: &CheckpointBundle,
        options: &LoadOptions,
        device: B::Device,
    ) -> Result<PathBuf, OmgLlavaError> {
        crate::load::prepare_llm::<B>(bundle, options, &device)
    }

    /// Loads the files of `bundle` onto `device`. Every file is opened and every key
    /// checked before the pipeline is returned: a missing, mis-shaped or unknown tensor
    /// is an error naming it.
    pub fn from_bundle(
        bundle: &CheckpointBundle,
        options: &LoadOptions,
        device: B::Device,
        progress: impl FnMut(LoadStep),
    ) -> Result<Self, OmgLlavaError> {
        let model = OmgLlava::load(bundle, options, &device, progress)?;
        Ok(Self::from_model(model, device, ImageLimits::default()))
    }

    /// A pipeline around a built model.
    pub(crate) fn from_model(
        model: OmgLlava<B>,
        device: B::Device,
        image_limits: ImageLimits,
    ) -> Self {
        Self {
            model,
            device,
            image_limits,
        }
    }

    /// This pipeline with other limits on the photos it accepts.
    pub fn with_image_limits(mut self, limits: ImageLimits) -> Self {
        self.image_limits = limits;
        self
    }

    /// The limits on the photos this pipeline accepts.
    pub fn image_limits(&self) -> ImageLimits {
        self.image_limits
    }

    /// The device.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The class names of panoptic segmentation, by class index.
    pub fn class_names(&self) -> &[String] {
        &self.model.class_names
    }

    /// The id of `token` in this model's tokenizer (`"[SEG]"`, `"<|im_end|>"`, …).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.model.tokenizer.token_id(token)
    }

    /// The language model's positions: a prompt (visual tokens included) and its new
    /// tokens must fit in them.
    pub fn max_positions(&self) -> usize {
        self.model.llm.config().max_position_embeddings
    }

    /// Preprocesses and encodes a photo once; every query on it reuses the handle.
    /// A photo past the pipeline's [`ImageLimits`] is an error before anything is
    /// allocated for it.
    pub fn encode(&self, image: &DynamicImage) -> Result<ImageHandle<B>, OmgLlavaError> {
        let mut handles = self.encode_batch(std::slice::from_ref(image))?;
        Ok(handles.remove(0))
    }

    /// Preprocesses and encodes several photos in one forward pass of the encoder and
    /// projector; one handle per photo, in order, each the same as encoding that photo
    /// alone (up to the order of floating-point sums). Every photo is checked against
    /// the [`ImageLimits`] before any is preprocessed.
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

    /// Encodes a photo preprocessed elsewhere: `pixels` `[1, 3, S, S]` is the photo of
    /// `photo_size` (width, height) padded to its centred square, resized to the model
    /// size `S` and CLIP-normalised, as the official preprocessing does. Masks and
    /// regions are in the photo's pixels, which are held to the [`ImageLimits`].
    pub fn encode_pixels(
        &self,
        pixels: Tensor<B, 4>,
        photo_size: (u32, u32),
    ) -> Result<ImageHandle<B>, OmgLlavaError> {
        let (width, height) = photo_size;
        self.image_limits.check(width, height)?;
        let size = self.model.config.encoder.image_size as u32;
        let transform = SquareTransform::new(width, height, size);
        let mut handles = self.model.encode_images(pixels, &[transform])?;
        Ok(handles.remove(0))
    }

    /// Starts a streamed answer to `task` on `img`: text pieces as they are generated,
    /// each `[SEG]` mask as soon as it exists.
    pub fn stream<'a>(
        &'a self,
        img: &'a ImageHandle<B>,
        task: &Task,
        options: &GenerateOptions,
    ) -> Result<ResponseStream<'a, B>, OmgLlavaError> {
        self.stream_prompt(img, &task.prompt()?, task.regions(), options)
    }

    /// Answers `task` on `img` to the end: [`stream`](Self::stream), collected.
    pub fn run(
        &self,
        img: &ImageHandle<B>,
        task: &Task,
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        self.stream(img, task, options)?.finish()
    }

    /// Starts a streamed answer to a prompt of your own (chat template applied), with
    /// `regions` taken by its `<region>` / `<mark>` placeholders in order. The
    /// [`Task`]s cover the official prompts; see [`Prompt`] for keeping a user's text
    /// plain.
    pub fn stream_prompt<'a>(
        &'a self,
        img: &'a ImageHandle<B>,
        prompt: &Prompt,
        regions: &[Region],
        options: &GenerateOptions,
    ) -> Result<ResponseStream<'a, B>, OmgLlavaError> {
        let config = self.generation_config(options)?;
        if options.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            return Err(OmgLlavaError::Cancelled);
        }
        let m = &self.model;
        let prepared = m.prepare(img, prompt, regions, options.max_new_tokens)?;
        // transformers 4.36 generating from `inputs_embeds` starts `input_ids` with BOS
        // alone, so the repetition penalty sees BOS and the new tokens only.
        let generator =
            Generator::from_embeds(&m.llm, prepared.embeds, vec![vec![m.tokens.bos]], config)?;
        Ok(ResponseStream::new(
            m,
            img,
            generator,
            prepared.prompt_tokens,
            options.cancel.clone(),
        ))
    }

    /// The token ids the language model is given for `prompt`, −200 where the photo's
    /// visual tokens go (to count or inspect what a task sends).
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<i64>, OmgLlavaError> {
        tokenize_prompt(&self.model.tokenizer, prompt)
    }

    /// The LLM's generation settings for `options` (checked): the model's end and stop
    /// tokens, `[SEG]` hidden states captured.
    pub(crate) fn generation_config(
        &self,
        options: &GenerateOptions,
    ) -> Result<GenerationConfig, OmgLlavaError> {
        options.validate()?;
        let t = &self.model.tokens;
        let mut forced: Vec<(usize, u32)> = options.forced_tokens.clone();
        if let Some(k) = options.forced_seg {
            forced.push((k, t.seg));
        }
        Ok(GenerationConfig {
            max_new_tokens: options.max_new_tokens,
            sampling: options.sampling,
            repetition_penalty: options.repetition_penalty,
            eos_token_id: (!options.ignore_eos).then_some(t.eos),
            stop_token_ids: if options.ignore_eos {
                Vec::new()
            } else {
                vec![t.im_end]
            },
            pad_token_id: t.eos,
            forced_tokens: forced.into_iter().collect(),
            capture_hidden_for: vec![t.seg],
            ..GenerationConfig::greedy(options.max_new_tokens)
        })
    }

    /// The model, for the task shortcuts and batched generation.
    pub(crate) fn model(&self) -> &OmgLlava<B> {
        &self.model
    }
}
