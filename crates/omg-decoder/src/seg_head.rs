//! `[SEG]` hidden states → masks (`OMG_LLaVA.projector_text2vision` +
//! `OMGSegVisualEncoder.forward_llm_seg`): each `[SEG]` state is mapped to a content
//! query and a positional query, which run through the mask decoder's layers on the
//! cached features of its image (the task-finetuned `_llm` copies when the checkpoint
//! has them). No class head is used.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use omg_encoder::MaskDecoderConfig;
use omg_encoder::decoding::{AttentionGuide, DecoderParts, QueryDecoding};
use omg_encoder::mask_decoder::{DecoderLayer, LevelMemory, MaskDecoder, Mlp3};
use omg_projector::ProjectorMlp;

use crate::error::DecoderError;

/// The task-finetuned decoder copy (`transformer_decoder_llm`, `mask_embed_llm`) of
/// the RES / GCG checkpoints.
#[derive(Module, Debug)]
pub struct LlmDecoderCopy<B: Backend> {
    /// `transformer_decoder_llm.layers`.
    pub layers: Vec<DecoderLayer<B>>,
    /// `transformer_decoder_llm.post_norm`.
    pub post_norm: LayerNorm<B>,
    /// `mask_embed_llm`.
    pub mask_embed: Mlp3<B>,
}

impl<B: Backend> LlmDecoderCopy<B> {
    /// A copy with the sizes of `cfg` (lazily initialised).
    pub fn init(cfg: &MaskDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        Self {
            layers: (0..cfg.num_layers)
                .map(|_| DecoderLayer::init(cfg, device))
                .collect(),
            post_norm: LayerNormConfig::new(c)
                .with_epsilon(cfg.layer_norm_eps)
                .init(device),
            mask_embed: Mlp3::init(c, c, c, device),
        }
    }
}

/// The `[SEG]` mask head.
#[derive(Module, Debug)]
pub struct SegHead<B: Backend> {
    /// `projector_text2vision`: LLM hidden → `[query_feat | query_pos]`.
    pub text2vision: ProjectorMlp<B>,
    /// The task-finetuned decoder copy, if the checkpoint has one.
    pub llm_decoder: Option<LlmDecoderCopy<B>>,
}

/// What the head computes for a batch of `[SEG]` states.
#[derive(Debug, Clone)]
pub struct SegDecoding<B: Backend> {
    /// `projector_text2vision(hidden)` `[N, 2C]`.
    pub seg_queries: Tensor<B, 2>,
    /// Per-stage masks `[N, 1, H/4, W/4]` and the final queries.
    pub decoding: QueryDecoding<B>,
}

impl<B: Backend> SegHead<B> {
    /// The decoder parts this head uses: the `_llm` copy when present, else the
    /// encoder's main decoder.
    pub fn parts<'a>(&'a self, decoder: &'a MaskDecoder<B>) -> DecoderParts<'a, B> {
        match &self.llm_decoder {
            Some(copy) => DecoderParts {
                layers: &copy.layers,
                post_norm: &copy.post_norm,
                mask_embed: &copy.mask_embed,
            },
            None => decoder.parts(),
        }
    }

    /// Decodes `[SEG]` hidden states `[N, D]` (final-norm outputs of the LLM) into
    /// mask logits on the cached features (`mask_features` `[B, C, H/4, W/4]`,
    /// `levels` of the batch); `batch_idxs[i]` is the image of the i-th state.
    pub fn decode(
        &self,
        decoder: &MaskDecoder<B>,
        hidden: Tensor<B, 2>,
        batch_idxs: &[usize],
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
    ) -> Result<SegDecoding<B>, DecoderError> {
        let [n, _] = hidden.dims();
        let c = decoder.config().feat_channels;
        if n == 0 {
            return Err(DecoderError::Input("no [SEG] hidden state given".into()));
        }
        if batch_idxs.len() != n {
            return Err(DecoderError::Input(format!(
                "{n} [SEG] states but {} batch indices",
                batch_idxs.len()
            )));
        }
        let images = mask_features.dims()[0];
        if let Some(&bad) = batch_idxs.iter().find(|&&i| i >= images) {
            return Err(DecoderError::Input(format!(
                "[SEG] batch index {bad} is out of range for {images} image(s)"
            )));
        }
        let seg_queries = self.text2vision.forward(hidden);
        if seg_queries.dims()[1] != 2 * c {
            return Err(DecoderError::Input(format!(
                "text2vision gives {} channels, the decoder needs 2·{c}",
                seg_queries.dims()[1]
            )));
        }
        let query = seg_queries.clone().slice([0..n, 0..c]).reshape([n, 1, c]);
        let query_pos = seg_queries
            .clone()
            .slice([0..n, c..2 * c])
            .reshape([n, 1, c]);
        let device = mask_features.device();
        let idx = Tensor::<B, 1, Int>::from_data(
            TensorData::new(batch_idxs.iter().map(|&i| i as i64).collect(), [n]),
            &device,
        );
        let feats = mask_features.clone().select(0, idx.clone());
        let levels: Vec<_> = levels.iter().map(|l| l.select(idx.clone())).collect();
        let decoding = self.parts(decoder).decode(
            query,
            query_pos,
            &feats,
            &levels,
            &AttentionGuide::Predicted,
        );
        Ok(SegDecoding {
            seg_queries,
            decoding,
        })
    }
}
