//! `[SEG]` hidden states → masks (`OMG_LLaVA.projector_text2vision` +
//! `OMGSegVisualEncoder.forward_llm_seg`): each `[SEG]` state is mapped to a content
//! query and a positional query, which run through the mask decoder's layers on the
//! cached features of its image (the task-finetuned `_llm` copies when the checkpoint
//! has them). No class head is used.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use omg_encoder::{DecoderStack, MaskDecoder, QueryDecoding, QueryMemory};
use omg_projector::{ProjectorMlp, Text2VisionConfig};

use crate::error::DecoderError;

/// The `[SEG]` mask head.
#[derive(Module, Debug)]
pub struct SegHead<B: Backend> {
    /// `projector_text2vision`: LLM hidden → `[query_feat | query_pos]`.
    pub text2vision: ProjectorMlp<B>,
    /// The task-finetuned decoder copy (`transformer_decoder_llm`, `mask_embed_llm`)
    /// of the RES / GCG checkpoints, if the checkpoint has one.
    pub llm_decoder: Option<DecoderStack<B>>,
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
    /// A head of `config` with random weights and no decoder copy (the encoder's own
    /// decoder runs); loading fills a head from a checkpoint instead
    /// ([`crate::loader::load_seg_head`]).
    pub fn init(config: &Text2VisionConfig, device: &B::Device) -> Self {
        Self {
            text2vision: ProjectorMlp::init(
                config.llm_hidden_size,
                config.query_dim,
                config.depth,
                config.bias,
                device,
            ),
            llm_decoder: None,
        }
    }

    /// Decodes `[SEG]` hidden states `[N, D]` (final-norm outputs of the LLM) into
    /// mask logits on the cached features `memory` of a batch of images, through the
    /// encoder's mask `decoder` (its task-finetuned copy when the checkpoint has one);
    /// `batch_idxs[i]` is the image of the i-th state.
    pub fn decode(
        &self,
        decoder: &MaskDecoder<B>,
        hidden: Tensor<B, 2>,
        batch_idxs: &[usize],
        memory: QueryMemory<'_, B>,
    ) -> Result<SegDecoding<B>, DecoderError> {
        let [n, _] = hidden.dims();
        let c = decoder.config().feat_channels;
        if n == 0 {
            return Err(DecoderError::Input("no [SEG] hidden state given".into()));
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
        let decoding = decoder
            .decode_external(
                self.llm_decoder.as_ref(),
                query,
                query_pos,
                batch_idxs,
                memory,
                "[SEG] state",
            )
            .map_err(|e| DecoderError::Input(e.to_string()))?;
        Ok(SegDecoding {
            seg_queries,
            decoding,
        })
    }
}
