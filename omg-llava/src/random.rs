//! A pipeline of the official architecture with random weights: for measuring memory
//! and speed at real sizes without the checkpoint files.

use std::path::Path;

use burn::tensor::backend::Backend;
use omg_checkpoint::SyntheticSource;
use omg_decoder::SegHead;
use omg_encoder::OmgSeg;
use omg_llm::loader::{load_hf_with, official_tensors};
use omg_llm::tokenizer::InternLm2Tokenizer;
use omg_llm::{InternLM2, InternLM2Config};
use omg_projector::VisualProjector;

use crate::config::OmgLlavaConfig;
use crate::error::OmgLlavaError;
use crate::limits::ImageLimits;
use crate::model::OmgLlava;
use crate::options::LlmWeights;
use crate::pipeline::Pipeline;
use crate::tokens::add_omg_llava_tokens;

/// The sizes of a model built with random weights
/// ([`Pipeline::with_random_weights`]): the official vision side (OMG-Seg ConvNeXt-L at
/// 1024², the projectors) and an InternLM2 of the given sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomWeights {
    /// The language model's architecture.
    llm: InternLM2Config,
    /// Precision of the LLM's linear weights.
    llm_weights: LlmWeights,
}

impl RandomWeights {
    /// OMG-LLaVA-7B's shapes (InternLM2-chat-7B, 7.7 B parameters in all).
    pub fn official_7b(llm_weights: LlmWeights) -> Self {
        Self {
            llm: InternLM2Config::internlm2_chat_7b(),
            llm_weights,
        }
    }

    /// The official vision side with a smaller InternLM2 (InternLM2's proportions at
    /// `hidden_size` and `layers`, its vocabulary).
    pub fn scaled(hidden_size: usize, layers: usize, llm_weights: LlmWeights) -> Self {
        let vocab = InternLM2Config::internlm2_chat_7b().vocab_size;
        Self {
            llm: InternLM2Config::scaled(hidden_size, layers, vocab),
            llm_weights,
        }
    }
}

impl<B: Backend> Pipeline<B> {
    /// A pipeline of `sizes` with deterministic random weights, its tokenizer read from
    /// the InternLM2 directory `tokenizer_dir` (a tokenizer whose ids fit the
    /// vocabulary, such as the demo bundle's). Its answers are meaningless; its memory
    /// and speed are those of a real model of these sizes. The LLM's linears are
    /// converted to the precision `sizes` names one tensor at a time, so a 7B model in
    /// int8 never exists in f32.
    pub fn with_random_weights(
        sizes: &RandomWeights,
        tokenizer_dir: impl AsRef<Path>,
        device: B::Device,
    ) -> Result<Self, OmgLlavaError> {
        let llm_config = &sizes.llm;
        llm_config.validate()?;
        let mut config = OmgLlavaConfig::default();
        config.projector.llm_hidden_size = llm_config.hidden_size;
        config.text2vision.llm_hidden_size = llm_config.hidden_size;
        config.validate(llm_config.hidden_size)?;
        let encoder = OmgSeg::init_random(&config.encoder, &device)?;
        let llm = match sizes.llm_weights {
            LlmWeights::F32 => InternLM2::init(llm_config, &device)?,
            weights => {
                let source = SyntheticSource::new(official_tensors(llm_config), 2406);
                load_hf_with(llm_config, &source, weights, &device)?
            }
        };
        let mut tokenizer = InternLm2Tokenizer::from_dir(tokenizer_dir)?;
        let tokens = add_omg_llava_tokens(&mut tokenizer)?;
        let panoptic = &config.encoder.panoptic;
        let classes = panoptic.num_things + panoptic.num_stuff;
        let model = OmgLlava {
            encoder,
            projector: VisualProjector::init(&config.projector, &device),
            llm,
            seg_head: SegHead::init(&config.text2vision, &device),
            tokenizer,
            tokens,
            class_names: (0..classes).map(|i| format!("class_{i}")).collect(),
            config,
        };
        Ok(Self::from_model(model, device, ImageLimits::default()))
    }
}
