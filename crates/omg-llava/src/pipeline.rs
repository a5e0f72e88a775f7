//! The typed `Pipeline`: image-level chat and captions, object-level questions about
//! points / boxes / masks, pixel-level segmentation and grounded conversation, and the
//! encoder's own panoptic and interactive segmentation — all on an image encoded once
//! ([`Pipeline::encode`] → [`ImageHandle`]).

use burn::tensor::{Tensor, TensorData, backend::Backend};
use image::DynamicImage;
use omg_decoder::BinaryMask;
use omg_decoder::postprocess::masks_in_original;
use omg_encoder::panoptic::PanopticFrame;
use omg_encoder::preprocess::{SquareTransform, preprocess};
use omg_encoder::{EncodedImage, PromptBatch};
use omg_llm::generation::{GenerationConfig, Generator};
use omg_llm::sampling::Sampling;

use crate::bundle::CheckpointBundle;
use crate::error::OmgLlavaError;
use crate::model::{LoadStep, OmgLlava};
use crate::output::{
    Answer, GroundedAnswer, GroundedPhrase, MaskOutput, PanopticOutput, PanopticSegmentOutput,
    Segmentation, caption, phrases,
};
use crate::region::{ModelFramePrompts, Placeholder, Region};
use crate::splice::{PlaceholderIds, id_tensor, splice};
use crate::stream::ResponseStream;
use crate::template::{Conversation, instruction, tokenize_prompt};

/// The referring-segmentation question of the official RES evaluation.
pub fn segment_question(expression: &str) -> String {
    format!("Please segment {expression} in this image.")
}

/// The first grounded-conversation question of the official GCG evaluation.
pub const GCG_QUESTION: &str = "Could you please give me a detailed description of the image? Please respond with interleaved segmentation masks for the corresponding parts of the answer.";

/// The caption question used by [`Pipeline::caption`].
pub const CAPTION_QUESTION: &str = "Could you please give me a brief description of the image?";

/// The prompt [`Pipeline::ask_regions`] sends: the question as is when it places the
/// `<region>` / `<mark>` placeholders itself, else the regions listed first as in the
/// training data (`region1 <region>`, `Mark 1 <mark>`, …).
pub fn region_prompt(regions: &[Region], question: &str) -> String {
    let text = if question.contains("<region>") || question.contains("<mark>") {
        question.to_owned()
    } else {
        let (mut r, mut m) = (0, 0);
        let names: Vec<String> = regions
            .iter()
            .map(|x| match x.placeholder() {
                Placeholder::Region => {
                    r += 1;
                    format!("region{r} <region>")
                }
                Placeholder::Mark => {
                    m += 1;
                    format!("Mark {m} <mark>")
                }
            })
            .collect();
        format!("There are some regions: {}.\n{question}", names.join(", "))
    };
    instruction(&format!("<image>\n{text}"))
}

/// The official region-caption question for one region ([`Pipeline::describe_region`]).
pub fn describe_question(region: &Region) -> String {
    let placeholder = match region.placeholder() {
        Placeholder::Region => "<region>",
        Placeholder::Mark => "<mark>",
    };
    format!(
        "Can you provide me with a detailed description of the region in the picture marked by region1 {placeholder}?"
    )
}

/// Generation settings of a Pipeline call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Maximum number of new tokens.
    pub max_new_tokens: usize,
    /// Greedy (the official evaluation, the default) or sampling (the demo).
    pub sampling: Sampling,
    /// HF repetition penalty (1 = off).
    pub repetition_penalty: f32,
    /// Tokens forced at given new-token indices `(index, id)` (HF `forced_decoder_ids`
    /// counted from the first new token); for reproductions and tests.
    pub forced_tokens: Vec<(usize, u32)>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 100,
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            forced_tokens: Vec::new(),
        }
    }
}

impl GenerateOptions {
    /// The official demo's sampling (temperature 0.1, top-p 0.75, top-k 40).
    pub fn demo(max_new_tokens: usize, seed: u64) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Sample {
                temperature: 0.1,
                top_k: 40,
                top_p: 0.75,
                seed,
            },
            repetition_penalty: 1.0,
            forced_tokens: Vec::new(),
        }
    }
}

/// An image encoded once: the encoder's cached state and its visual token block.
pub struct ImageHandle<B: Backend> {
    /// The encoder state (features, memories, query decoding).
    pub encoded: EncodedImage<B>,
    /// The visual tokens spliced at `<image>` `[hw + 1 + n_valid, D]`.
    pub visual_tokens: Tensor<B, 2>,
    /// Indices of the object queries that became tokens.
    pub valid_queries: Vec<usize>,
    /// Original-pixel ↔ model-frame mapping.
    pub transform: SquareTransform,
}

impl<B: Backend> ImageHandle<B> {
    /// Width of the original image.
    pub fn width(&self) -> u32 {
        self.transform.orig_width
    }

    /// Height of the original image.
    pub fn height(&self) -> u32 {
        self.transform.orig_height
    }
}

/// The LLM input of one prompt.
#[derive(Debug, Clone)]
pub struct PreparedPrompt<B: Backend> {
    /// Token ids, −200 at the image placeholder.
    pub ids: Vec<i64>,
    /// The spliced input embeddings `[1, L, D]`.
    pub spliced: crate::splice::Spliced<B>,
}

/// LLM embeddings of a prompt's regions: `<region>` rows and `<mark>` rows.
type RegionEmbeddings<B> = (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>);

/// The OMG-LLaVA pipeline on backend `B`.
pub struct Pipeline<B: Backend> {
    model: OmgLlava<B>,
    device: B::Device,
}

/// Mean foreground probability of `logits` `[1, h, w]` where they are positive.
fn mask_score<B: Backend>(logits: Tensor<B, 4>) -> f32 {
    let v: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap_or_default();
    let (sum, n) = v
        .iter()
        .filter(|&&x| x > 0.0)
        .fold((0f64, 0usize), |(s, n), &x| {
            (s + 1.0 / (1.0 + f64::from(-x).exp()), n + 1)
        });
    if n == 0 { 0.0 } else { (sum / n as f64) as f32 }
}

/// Masks in original pixels, with scores, from final logits `[N, 1, h, w]`.
pub(crate) fn mask_outputs<B: Backend>(
    logits: Tensor<B, 4>,
    transform: SquareTransform,
) -> Result<Vec<MaskOutput>, OmgLlavaError> {
    let [n, _, h, w] = logits.dims();
    let masks = masks_in_original(logits.clone(), transform).map_err(decoder_err)?;
    Ok(masks
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let score = mask_score(logits.clone().slice([i..i + 1, 0..1, 0..h, 0..w]));
            debug_assert!(i < n);
            MaskOutput::new(m, score)
        })
        .collect())
}

pub(crate) fn decoder_err(e: omg_decoder::DecoderError) -> OmgLlavaError {
    OmgLlavaError::Decoder(e)
}

impl<B: Backend> Pipeline<B> {
    /// A pipeline around a loaded model.
    pub fn new(model: OmgLlava<B>, device: B::Device) -> Self {
        Self { model, device }
    }

    /// Loads a checkpoint bundle directory (see [`CheckpointBundle::from_dir`]).
    pub fn from_dir(
        dir: impl AsRef<std::path::Path>,
        device: B::Device,
        progress: impl FnMut(LoadStep),
    ) -> Result<Self, OmgLlavaError> {
        let bundle = CheckpointBundle::from_dir(dir)?;
        let model = OmgLlava::load(&bundle, &device, progress)?;
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
    pub fn encode(&self, image: &DynamicImage) -> Result<ImageHandle<B>, OmgLlavaError> {
        let size = self.model.config.encoder.image_size;
        let pre = preprocess(image, size as u32)
            .map_err(|e| OmgLlavaError::Input(format!("image: {e}")))?;
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(pre.pixel_values, [1, 3, size, size]),
            &self.device,
        );
        self.encode_normalized(pixels, pre.transform)
    }

    /// Encodes an already preprocessed image `[1, 3, S, S]` (padded, resized to the
    /// model size and CLIP-normalised) whose original frame is given by `transform`.
    pub fn encode_normalized(
        &self,
        pixels: Tensor<B, 4>,
        transform: SquareTransform,
    ) -> Result<ImageHandle<B>, OmgLlavaError> {
        let size = self.model.config.encoder.image_size;
        let dims = pixels.dims();
        if dims != [1, 3, size, size] || transform.target as usize != size {
            return Err(OmgLlavaError::Input(format!(
                "expected normalised pixels [1, 3, {size}, {size}] and a transform to {size}, got {dims:?} and {}",
                transform.target
            )));
        }
        let encoder = &self.model.encoder;
        let encoded = encoder.encode(pixels)?;
        let last = encoded
            .queries
            .stages
            .last()
            .ok_or_else(|| OmgLlavaError::Input("the encoder produced no stage".into()))?;
        let vis = omg_projector::visual_encoder_outputs(
            last.cls_logits.clone(),
            last.mask_logits.clone(),
            encoded.queries.query_feat.clone(),
            encoded.queries.query_pos.clone(),
            encoded.backbone_levels[encoded.backbone_levels.len() - 1].clone(),
            (size, size),
            2 * self.model.config.encoder.backbone.output_stride(),
            self.model.config.prior_smooth_ratio,
        );
        let mut out = self.model.projector.forward(
            vis.clip_feature_with_prior,
            vis.query_pos_feat,
            vis.prior.attn_mask,
        )?;
        Ok(ImageHandle {
            encoded,
            visual_tokens: out.visual_tokens.remove(0),
            valid_queries: out.valid_queries.remove(0),
            transform,
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
        let size = self.model.config.encoder.image_size;
        let prompts = ModelFramePrompts::new(regions, img.transform);
        let embed = |batch: Option<PromptBatch>| -> Result<Option<Tensor<B, 2>>, OmgLlavaError> {
            let Some(batch) = batch else { return Ok(None) };
            let idx = vec![0; batch.len()];
            let out = self.model.encoder.prompts(&img.encoded, &batch, &idx)?;
            Ok(Some(
                self.model
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
        prompt: &str,
        regions: &[Region],
    ) -> Result<PreparedPrompt<B>, OmgLlavaError> {
        let m = &self.model;
        let ids = tokenize_prompt(&m.tokenizer, prompt)?;
        let region_id = m.special.region.map(i64::from);
        let mark_id = m.special.mark.map(i64::from);
        let count = |id: Option<i64>| id.map_or(0, |id| ids.iter().filter(|&&t| t == id).count());
        let wanted = |p: Placeholder| regions.iter().filter(|r| r.placeholder() == p).count();
        if count(region_id) != wanted(Placeholder::Region)
            || count(mark_id) != wanted(Placeholder::Mark)
        {
            return Err(OmgLlavaError::Prompt(format!(
                "the prompt has {} <region> and {} <mark> placeholders but {} box/mask and {} point regions were given",
                count(region_id),
                count(mark_id),
                wanted(Placeholder::Region),
                wanted(Placeholder::Mark)
            )));
        }
        let (region_feats, mark_feats) = self.region_embeddings(img, regions)?;
        let vocab = m.llm.config().vocab_size;
        let device = self.device.clone();
        let spliced = splice(
            std::slice::from_ref(&ids),
            |t| {
                let e = m
                    .llm
                    .embed(id_tensor::<B>(t, vocab, &device)?.unsqueeze_dim(0));
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

    /// Starts a streamed answer to a full prompt text (template applied), with
    /// `regions` consumed by its `<region>` / `<mark>` placeholders in order.
    pub fn stream_prompt<'a>(
        &'a self,
        img: &'a ImageHandle<B>,
        prompt: &str,
        regions: &[Region],
        options: &GenerateOptions,
    ) -> Result<ResponseStream<'a, B>, OmgLlavaError> {
        let m = &self.model;
        let PreparedPrompt { spliced, .. } = self.prepare_prompt(img, prompt, regions)?;
        let length = spliced.lengths[0];
        let limit = m.llm.config().max_position_embeddings;
        if length + options.max_new_tokens > limit {
            return Err(OmgLlavaError::Prompt(format!(
                "the prompt is {length} tokens long; with {} new tokens it exceeds the model's {limit} positions",
                options.max_new_tokens
            )));
        }
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
        // transformers 4.36 generating from `inputs_embeds` starts `input_ids` with BOS
        // alone, so the repetition penalty sees BOS and the new tokens only.
        let generator = Generator::from_embeds(
            &m.llm,
            spliced.inputs_embeds,
            vec![vec![m.special.bos]],
            config,
        )?;
        Ok(ResponseStream::new(self, img, generator))
    }

    /// Answers a full prompt text (template applied) to the end.
    pub fn answer_prompt(
        &self,
        img: &ImageHandle<B>,
        prompt: &str,
        regions: &[Region],
        options: &GenerateOptions,
    ) -> Result<Answer, OmgLlavaError> {
        self.stream_prompt(img, prompt, regions, options)?.finish()
    }

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
            return Err(OmgLlavaError::Input("no region given".into()));
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
        let result =
            self.model
                .encoder
                .panoptic(&img.encoded, 0, PanopticFrame::Original(img.transform))?;
        let segments = result
            .segments
            .iter()
            .map(|s| {
                let data = result.segment_map.iter().map(|&v| v == s.id).collect();
                let mask = BinaryMask::from_vec(result.height, result.width, data)
                    .map_err(|e| OmgLlavaError::Input(e.to_string()))?;
                Ok(PanopticSegmentOutput {
                    class_id: s.class_id,
                    label: self
                        .model
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
        let size = self.model.config.encoder.image_size;
        let prompts = ModelFramePrompts::new(std::slice::from_ref(region), img.transform);
        let batch = prompts
            .point_batch(size)
            .or_else(|| prompts.box_batch(size))
            .or_else(|| prompts.mask_batch())
            .ok_or_else(|| OmgLlavaError::Input("no prompt".into()))?;
        let out = self.model.encoder.prompts(&img.encoded, &batch, &[0])?;
        let mut masks = mask_outputs(out.decoding.final_mask_logits(), img.transform)?;
        Ok(masks.remove(0))
    }
}
