//! `ProjectorModel_OMG_LLaVA` → `Naive_Proj`: pixel tokens through `model_feat`, object
//! queries through `query_proj` then `model`, and the learned separator between them.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use crate::config::ProjectorConfig;
use crate::error::ProjectorError;
use crate::mlp::ProjectorMlp;

/// The visual projector (official module `projector.model`).
#[derive(Module, Debug)]
pub struct VisualProjector<B: Backend> {
    /// `query_proj`: `[query_feat | query_pos]` (`2·query_channels`) → `feat_channels`.
    pub query_proj: Linear<B>,
    /// `model`: object queries and visual prompts → LLM hidden size.
    pub model: ProjectorMlp<B>,
    /// `model_feat`: pixel tokens (CLIP features ⊕ perception prior) → LLM hidden size.
    pub model_feat: ProjectorMlp<B>,
    /// `seperate_embed` (sic): the separator token between pixel and object tokens.
    pub seperate_embed: Embedding<B>,
    #[module(skip)]
    config: ProjectorConfig,
}

/// Everything the projector computes for a batch of images.
#[derive(Debug, Clone)]
pub struct ProjectorOutput<B: Backend> {
    /// `query_proj(query_pos_feat)` `[B, Q, feat_channels]`.
    pub query_proj: Tensor<B, 3>,
    /// `model(query_proj(…))` for every query `[B, Q, D]`.
    pub query_tokens: Tensor<B, 3>,
    /// `model_feat(clip_feature_with_prior)` `[B, hw, D]`.
    pub clip_tokens: Tensor<B, 3>,
    /// Indices of the valid queries of each image (those that win at least one
    /// cell of the perception prior), in query order.
    pub valid_queries: Vec<Vec<usize>>,
    /// The visual token block of each image, spliced at `<image>`:
    /// `[clip_tokens | seperate_embed | valid query tokens]` `[hw + 1 + n_valid, D]`.
    pub visual_tokens: Vec<Tensor<B, 2>>,
}

impl<B: Backend> VisualProjector<B> {
    /// A projector of the given sizes (weights lazily initialised).
    pub fn init(config: &ProjectorConfig, device: &B::Device) -> Self {
        let d = config.llm_hidden_size;
        Self {
            query_proj: LinearConfig::new(config.query_dim(), config.feat_channels).init(device),
            model: ProjectorMlp::init(config.feat_channels, d, config.depth, config.bias, device),
            model_feat: ProjectorMlp::init(
                config.token_dim(),
                d,
                config.depth,
                config.bias,
                device,
            ),
            seperate_embed: EmbeddingConfig::new(1, d).init(device),
            config: config.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProjectorConfig {
        &self.config
    }

    /// Projects the three outputs of the visual encoder:
    /// `clip_feature_with_prior` `[B, hw, token_dim]`, `query_pos_feat` `[B, Q, 2C]` and
    /// the prior's `attn_mask` `[B, Q, hw]` (`true` where a query does not win a cell).
    pub fn forward(
        &self,
        clip_feature_with_prior: Tensor<B, 3>,
        query_pos_feat: Tensor<B, 3>,
        attn_mask: Tensor<B, 3, Bool>,
    ) -> Result<ProjectorOutput<B>, ProjectorError> {
        let [b, hw, c] = clip_feature_with_prior.dims();
        let [bq, q, cq] = query_pos_feat.dims();
        let [bm, qm, hwm] = attn_mask.dims();
        if c != self.config.token_dim() || cq != self.config.query_dim() {
            return Err(ProjectorError::Shape(format!(
                "projector expects pixel tokens of width {} and queries of width {}, got {c} and {cq}",
                self.config.token_dim(),
                self.config.query_dim()
            )));
        }
        if bq != b || bm != b || qm != q || hwm != hw {
            return Err(ProjectorError::Shape(format!(
                "inconsistent encoder outputs: tokens [{b}, {hw}, _], queries [{bq}, {q}, _], attn_mask [{bm}, {qm}, {hwm}]"
            )));
        }
        let device = query_pos_feat.device();
        let query_proj = self.query_proj.forward(query_pos_feat);
        let query_tokens = self.model.forward(query_proj.clone());
        let clip_tokens = self.model_feat.forward(clip_feature_with_prior);

        // valid = attn_mask.sum(-1) < hw: the query wins at least one cell.
        let blocked = attn_mask.int().sum_dim(2).into_data();
        let blocked: Vec<i64> = blocked
            .convert::<i64>()
            .to_vec()
            .map_err(|e| ProjectorError::Shape(format!("attention mask readback: {e:?}")))?;
        let valid_queries: Vec<Vec<usize>> = (0..b)
            .map(|i| {
                (0..q)
                    .filter(|&j| (blocked[i * q + j] as usize) < hw)
                    .collect()
            })
            .collect();

        let d = self.config.llm_hidden_size;
        let sep = self.seperate_embed.weight.val();
        let visual_tokens = valid_queries
            .iter()
            .enumerate()
            .map(|(i, valid)| {
                let clip = clip_tokens
                    .clone()
                    .slice([i..i + 1, 0..hw, 0..d])
                    .reshape([hw, d]);
                let mut parts = vec![clip, sep.clone()];
                if !valid.is_empty() {
                    let idx = Tensor::<B, 1, Int>::from_data(
                        TensorData::new(valid.iter().map(|&v| v as i64).collect(), [valid.len()]),
                        &device,
                    );
                    let rows = query_tokens
                        .clone()
                        .slice([i..i + 1, 0..q, 0..d])
                        .reshape([q, d]);
                    parts.push(rows.select(0, idx));
                }
                Tensor::cat(parts, 0)
            })
            .collect();
        Ok(ProjectorOutput {
            query_proj,
            query_tokens,
            clip_tokens,
            valid_queries,
            visual_tokens,
        })
    }

    /// The LLM embedding of visual prompts (`forward_visual_prompts_embeddings`):
    /// `model(query_proj(x))` for prompt vectors `[N, 2C]` → `[N, D]`.
    pub fn prompt_embeddings(&self, prompts: Tensor<B, 2>) -> Tensor<B, 2> {
        self.model.forward(self.query_proj.forward(prompts))
    }
}
