//! The whole OMG-Seg encoder as OMG-LLaVA runs it, with the per-image state cached:
//! [`OmgSeg::encode`] runs backbone, pixel decoder and the panoptic decoder once and
//! returns an [`EncodedImage`]; prompts, `[SEG]` queries and the panoptic output are
//! then computed from that state without touching the image again.

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::backbone::ConvNext;
use crate::class_embedding::ClassEmbedding;
use crate::config::{BackboneConfig, MaskDecoderConfig, PixelDecoderConfig};
use crate::decoder_layer::LevelMemory;
use crate::error::EncoderError;
use crate::mask_decoder::{DecoderOutput, MaskDecoder, StagePrediction};
use crate::panoptic::{PanopticConfig, PanopticFrame, PanopticResult, panoptic_from_stage};
use crate::pixel_decoder::PixelDecoder;
use crate::prompt::{PromptBatch, PromptDecoding, PromptEmbedding};

/// Architecture of the OMG-Seg encoder (official OMG-LLaVA-7B defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OmgSegConfig {
    /// Side of the square model input (1024).
    pub image_size: usize,
    /// ConvNeXt trunk.
    pub backbone: BackboneConfig,
    /// Pixel decoder.
    pub pixel_decoder: PixelDecoderConfig,
    /// Mask decoder.
    pub mask_decoder: MaskDecoderConfig,
    /// Panoptic fusion.
    pub panoptic: PanopticConfig,
}

impl Default for OmgSegConfig {
    fn default() -> Self {
        Self {
            image_size: 1024,
            backbone: BackboneConfig::default(),
            pixel_decoder: PixelDecoderConfig::default(),
            mask_decoder: MaskDecoderConfig::default(),
            panoptic: PanopticConfig::default(),
        }
    }
}

impl OmgSegConfig {
    /// Checks every part and their consistency.
    pub fn validate(&self) -> Result<(), EncoderError> {
        self.backbone.validate()?;
        self.pixel_decoder.validate()?;
        self.mask_decoder.validate()?;
        self.panoptic.validate()?;
        let cell = 2 * self.backbone.output_stride();
        if self.image_size == 0 || !self.image_size.is_multiple_of(cell) {
            return Err(EncoderError::Config(format!(
                "image_size ({}) must be a positive multiple of {cell}",
                self.image_size
            )));
        }
        if self.pixel_decoder.in_channels != self.backbone.dims {
            return Err(EncoderError::Config(format!(
                "pixel_decoder.in_channels {:?} must equal backbone.dims {:?}",
                self.pixel_decoder.in_channels, self.backbone.dims
            )));
        }
        if self.pixel_decoder.feat_channels != self.mask_decoder.feat_channels {
            return Err(EncoderError::Config(format!(
                "pixel_decoder.feat_channels ({}) must equal mask_decoder.feat_channels ({})",
                self.pixel_decoder.feat_channels, self.mask_decoder.feat_channels
            )));
        }
        if self.pixel_decoder.num_levels != self.mask_decoder.num_levels {
            return Err(EncoderError::Config(format!(
                "pixel_decoder.num_levels ({}) must equal mask_decoder.num_levels ({})",
                self.pixel_decoder.num_levels, self.mask_decoder.num_levels
            )));
        }
        Ok(())
    }
}

/// The OMG-Seg encoder: backbone, pixel decoder, mask decoder with its prompt
/// embeddings, and the class embeddings of its open-vocabulary head.
#[derive(Debug)]
pub struct OmgSeg<B: Backend> {
    /// ConvNeXt trunk.
    pub backbone: ConvNext<B>,
    /// Multi-scale deformable-attention pixel decoder.
    pub pixel_decoder: PixelDecoder<B>,
    /// Mask decoder (queries, layers, heads).
    pub mask_decoder: MaskDecoder<B>,
    /// Point/box/mask prompt embeddings.
    pub prompt: PromptEmbedding<B>,
    /// Class embeddings (CLIP text features of the class names + background).
    pub classes: ClassEmbedding<B>,
    /// The configuration.
    pub config: OmgSegConfig,
}

/// The cached state of a batch of encoded images.
#[derive(Debug, Clone)]
pub struct EncodedImage<B: Backend> {
    /// Model input size `(H, W)`.
    pub input_size: (usize, usize),
    /// Backbone levels, fine to coarse (strides 4, 8, 16, 32).
    pub backbone_levels: Vec<Tensor<B, 4>>,
    /// Mask features at stride 4 `[B, C, H/4, W/4]`.
    pub mask_features: Tensor<B, 4>,
    /// Deformable-encoder memories, coarse to fine `[B, C, h_l, w_l]`.
    pub multi_scale_memory: Vec<Tensor<B, 4>>,
    /// Cross-attention keys of every level (memory + level embedding, 3-D sine positions).
    pub levels: Vec<LevelMemory<B>>,
    /// The panoptic decoding of the learned queries (every stage).
    pub queries: DecoderOutput<B>,
}

impl<B: Backend> EncodedImage<B> {
    /// Number of images.
    pub fn batch_size(&self) -> usize {
        self.mask_features.dims()[0]
    }

    /// Bytes the cached tensors hold (elements × their type's size, every tensor
    /// counted once as stored): what keeping this state costs.
    pub fn memory_bytes(&self) -> usize {
        fn bytes<B: Backend, const D: usize, K: burn::tensor::BasicOps<B>>(
            t: &Tensor<B, D, K>,
        ) -> usize {
            t.shape().num_elements() * t.dtype().size()
        }
        let levels: usize = self
            .levels
            .iter()
            .map(|l| bytes(&l.key) + bytes(&l.key_pos) + bytes(&l.key_with_pos))
            .sum();
        let stages: usize = self
            .queries
            .stages
            .iter()
            .map(|s| {
                s.cls_logits.as_ref().map_or(0, bytes)
                    + s.iou.as_ref().map_or(0, bytes)
                    + s.mask_logits.as_ref().map_or(0, bytes)
                    + bytes(&s.attn_mask)
            })
            .sum();
        self.backbone_levels.iter().map(bytes).sum::<usize>()
            + bytes(&self.mask_features)
            + self.multi_scale_memory.iter().map(bytes).sum::<usize>()
            + levels
            + stages
            + bytes(&self.queries.query_feat)
            + bytes(&self.queries.query_pos)
    }

    /// The state of the `i`-th image alone (a batch of one): every cached tensor
    /// narrowed to that image, as encoding it by itself gives (up to the order of
    /// floating-point sums in the batched kernels).
    ///
    /// # Errors
    ///
    /// [`EncoderError::Input`] when `i` is not below [`batch_size`](Self::batch_size).
    pub fn image(&self, i: usize) -> Result<Self, EncoderError> {
        let n = self.batch_size();
        if i >= n {
            return Err(EncoderError::Input(format!("image {i} of a batch of {n}")));
        }
        let one = |t: &Tensor<B, 4>| t.clone().narrow(0, i, 1);
        let one3 = |t: &Tensor<B, 3>| t.clone().narrow(0, i, 1);
        let q = &self.queries;
        Ok(Self {
            input_size: self.input_size,
            backbone_levels: self.backbone_levels.iter().map(one).collect(),
            mask_features: one(&self.mask_features),
            multi_scale_memory: self.multi_scale_memory.iter().map(one).collect(),
            levels: self
                .levels
                .iter()
                .map(|l| LevelMemory {
                    key: one3(&l.key),
                    key_pos: one3(&l.key_pos),
                    key_with_pos: one3(&l.key_with_pos),
                    size: l.size,
                })
                .collect(),
            queries: DecoderOutput {
                stages: q
                    .stages
                    .iter()
                    .map(|s| StagePrediction {
                        cls_logits: s.cls_logits.as_ref().map(one3),
                        iou: s.iou.as_ref().map(one3),
                        mask_logits: s.mask_logits.as_ref().map(one),
                        attn_mask: s.attn_mask.clone().narrow(0, i, 1),
                    })
                    .collect(),
                query_feat: one3(&q.query_feat),
                query_pos: one3(&q.query_pos),
            },
        })
    }
}

impl<B: Backend> OmgSeg<B> {
    /// OMG-Seg of `config` with random weights and unit-norm random class embeddings
    /// (17 prompts per class, as the official file has): for measuring memory and speed
    /// at real sizes without the checkpoint.
    pub fn init_random(config: &OmgSegConfig, device: &B::Device) -> Result<Self, EncoderError> {
        let dec = &config.mask_decoder;
        let classes = config.panoptic.num_things + config.panoptic.num_stuff;
        let raw = Tensor::<B, 3>::random(
            [classes, 17, dec.clip_dim],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        );
        let unit = raw.clone() / raw.square().sum_dim(2).sqrt();
        Ok(Self {
            backbone: ConvNext::init(&config.backbone, device),
            pixel_decoder: PixelDecoder::init(&config.pixel_decoder, device),
            mask_decoder: MaskDecoder::init(dec, device),
            prompt: PromptEmbedding::init(dec, device),
            classes: ClassEmbedding::from_ov_file(unit.into_data(), device)?,
            config: config.clone(),
        })
    }

    /// Encodes normalised images `[B, 3, H, W]` (`H`, `W` multiples of 64).
    pub fn encode(&self, pixel_values: Tensor<B, 4>) -> Result<EncodedImage<B>, EncoderError> {
        let [b, c, h, w] = pixel_values.dims();
        let cell = 2 * self.config.backbone.output_stride();
        if b == 0 || c != self.config.backbone.in_channels {
            return Err(EncoderError::Input(format!(
                "expected images [B ≥ 1, {}, H, W], got [{b}, {c}, {h}, {w}]",
                self.config.backbone.in_channels
            )));
        }
        if h == 0 || w == 0 || !h.is_multiple_of(cell) || !w.is_multiple_of(cell) {
            return Err(EncoderError::Input(format!(
                "image height and width must be positive multiples of {cell}, got {h}×{w}"
            )));
        }
        Ok(encode_with(
            &self.backbone,
            &self.pixel_decoder,
            &self.mask_decoder,
            &self.classes,
            pixel_values,
        ))
    }

    /// Runs a batch of prompts (in the model-input frame) on encoded images;
    /// `batch_idxs[i]` is the image of prompt `i`.
    pub fn prompts(
        &self,
        encoded: &EncodedImage<B>,
        prompts: &PromptBatch,
        batch_idxs: &[usize],
    ) -> Result<PromptDecoding<B>, EncoderError> {
        self.prompt.decode(
            &self.mask_decoder.decoder,
            prompts,
            batch_idxs,
            &encoded.mask_features,
            &encoded.levels,
        )
    }

    /// The panoptic segmentation ("segment everything") of image `image`.
    pub fn panoptic(
        &self,
        encoded: &EncodedImage<B>,
        image: usize,
        frame: PanopticFrame,
    ) -> Result<PanopticResult, EncoderError> {
        let last = encoded
            .queries
            .stages
            .last()
            .ok_or_else(|| EncoderError::Input("the decoding has no stage".into()))?;
        panoptic_from_stage(last, image, frame, &self.config.panoptic)
    }
}

/// The encoding [`OmgSeg::encode`] runs, on separately held parts and without its
/// input checks: backbone, pixel decoder, level memories and the panoptic decoding
/// of normalised images `[B, 3, H, W]`.
pub fn encode_with<B: Backend>(
    backbone: &ConvNext<B>,
    pixel_decoder: &PixelDecoder<B>,
    mask_decoder: &MaskDecoder<B>,
    classes: &ClassEmbedding<B>,
    pixel_values: Tensor<B, 4>,
) -> EncodedImage<B> {
    let [_, _, h, w] = pixel_values.dims();
    let backbone_levels = backbone.forward(pixel_values);
    let pd = pixel_decoder.forward(&backbone_levels);
    let levels = mask_decoder.level_memory(&pd.multi_scale_memory);
    let queries = mask_decoder.forward(&pd.mask_features, &levels, classes);
    EncodedImage {
        input_size: (h, w),
        backbone_levels,
        mask_features: pd.mask_features,
        multi_scale_memory: pd.multi_scale_memory,
        levels,
        queries,
    }
}
