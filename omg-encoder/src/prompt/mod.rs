//! Prompt ("interactive", SAM-like) mode of the OMG-Seg head: a point, box or mask
//! region becomes one query (`prepare_sam_query`) that runs through the same decoder
//! layers on the cached features of its image (`forward_point_prompt`,
//! `forward_box_prompt`, `forward_visual_prompt`). Its output `[query | query_pos]`
//! is what OMG-LLaVA projects into the LLM for `<region>` / `<mark>`; its final mask
//! is an interactive segmentation.

pub mod region_mask;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::config::MaskDecoderConfig;
use crate::decoder_layer::LevelMemory;
use crate::decoding::{AttentionGuide, DecoderStack, QueryDecoding};
use crate::distance_transform::region_center;
use crate::error::EncoderError;
use crate::position_encoding::coordinate_encoding;
pub use region_mask::RegionMask;

/// The prompt embeddings of the head (official `mask_tokens`, `pb_embedding`,
/// `pos_linear`).
#[derive(Module, Debug)]
pub struct PromptEmbedding<B: Backend> {
    /// `mask_tokens` `[1, C]`.
    pub mask_tokens: Embedding<B>,
    /// `pb_embedding` `[2, C]` (label embeddings; prompts use label 0).
    pub pb_embedding: Embedding<B>,
    /// `pos_linear`: box encoding `4·C/2` → `C`.
    pub pos_linear: Linear<B>,
}

/// A prompt's query point `(x, y)` with the `(width, height)` of its frame.
pub type QueryPoint = ((f32, f32), (usize, usize));

/// A batch of prompts of one kind, in the frame of the model input.
#[derive(Debug, Clone)]
pub enum PromptBatch {
    /// Points `(x, y)` in pixels of a `width × height` frame.
    Points {
        /// The points.
        points: Vec<(f32, f32)>,
        /// Frame width (the model input width).
        width: usize,
        /// Frame height.
        height: usize,
    },
    /// Boxes `[x1, y1, x2, y2]` in pixels of a `width × height` frame.
    Boxes {
        /// The boxes.
        boxes: Vec<[f32; 4]>,
        /// Frame width.
        width: usize,
        /// Frame height.
        height: usize,
    },
    /// Region masks (each in its own frame, normally the model input size).
    Regions(Vec<RegionMask>),
}

impl PromptBatch {
    /// Number of prompts.
    pub fn len(&self) -> usize {
        match self {
            PromptBatch::Points { points, .. } => points.len(),
            PromptBatch::Boxes { boxes, .. } => boxes.len(),
            PromptBatch::Regions(r) => r.len(),
        }
    }

    /// Whether there is no prompt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The query point `(x, y)` and its frame `(w, h)` of each prompt: the point
    /// itself, the box centre, or the region's most interior pixel (kornia distance
    /// transform, as `get_center_coords`).
    pub fn query_points(&self) -> Result<Vec<QueryPoint>, EncoderError> {
        match self {
            PromptBatch::Points {
                points,
                width,
                height,
            } => Ok(points.iter().map(|&p| (p, (*width, *height))).collect()),
            PromptBatch::Boxes {
                boxes,
                width,
                height,
            } => Ok(boxes
                .iter()
                .map(|b| {
                    (
                        ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0),
                        (*width, *height),
                    )
                })
                .collect()),
            PromptBatch::Regions(regions) => regions
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (x, y) =
                        region_center(r.data(), r.height(), r.width()).ok_or_else(|| {
                            EncoderError::Input(format!("region prompt {i} is empty"))
                        })?;
                    Ok(((x as f32, y as f32), (r.width(), r.height())))
                })
                .collect(),
        }
    }

    /// How the prompts steer cross-attention.
    pub fn guide(&self) -> AttentionGuide {
        match self {
            PromptBatch::Points { .. } => AttentionGuide::Predicted,
            PromptBatch::Boxes {
                boxes,
                width,
                height,
            } => AttentionGuide::Boxes(
                boxes
                    .iter()
                    .map(|b| {
                        let (w, h) = (*width as f32, *height as f32);
                        [b[0] / w, b[1] / h, b[2] / w, b[3] / h]
                    })
                    .collect(),
            ),
            PromptBatch::Regions(r) => AttentionGuide::Regions(r.clone()),
        }
    }
}

/// The relative `cxcywh` box the official query is built from: a 6-pixel box around
/// the point, divided by the frame, through `sigmoid(inverse_sigmoid(·))` (a clamp
/// to `[1e-5, 1 − 1e-5]` computed as the official code does).
pub fn sam_query_box(point: (f32, f32), frame: (usize, usize)) -> [f32; 4] {
    let (w, h) = (frame.0 as f32, frame.1 as f32);
    let (x1, y1) = ((point.0 - 3.0) / w, (point.1 - 3.0) / h);
    let (x2, y2) = ((point.0 + 3.0) / w, (point.1 + 3.0) / h);
    let b = [(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1];
    b.map(|v| {
        let x = v.clamp(0.0, 1.0);
        let logit = (x.max(1e-5) / (1.0 - x).max(1e-5)).ln();
        1.0 / (1.0 + (-logit).exp())
    })
}

impl<B: Backend> PromptEmbedding<B> {
    /// Prompt embeddings for decoder width `cfg.feat_channels` (lazily initialised).
    pub fn init(cfg: &MaskDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        Self {
            mask_tokens: EmbeddingConfig::new(1, c).init(device),
            pb_embedding: EmbeddingConfig::new(2, c).init(device),
            pos_linear: LinearConfig::new(2 * c, c).init(device),
        }
    }

    /// `prepare_sam_query`: the content query `pb_embedding[0] + mask_tokens[0]` and
    /// the positional query `pos_linear(coordinate_to_encoding(box))` of each point,
    /// both `[N, 1, C]`.
    pub fn sam_query(&self, points: &[QueryPoint]) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let n = points.len();
        let c = self.mask_tokens.weight.dims()[1];
        let device = self.mask_tokens.weight.device();
        let content = (self.pb_embedding.weight.val().slice([0..1, 0..c])
            + self.mask_tokens.weight.val())
        .reshape([1, 1, c])
        .repeat_dim(0, n);
        let enc: Vec<f32> = points
            .iter()
            .flat_map(|&(p, frame)| coordinate_encoding(sam_query_box(p, frame), c / 2))
            .collect();
        let enc = Tensor::<B, 3>::from_data(TensorData::new(enc, [n, 1, 2 * c]), &device);
        (content, self.pos_linear.forward(enc))
    }

    /// Runs a batch of prompts through the layers of `decoder` on the cached
    /// features: `mask_features` `[B, C, H, W]` and `levels` of the batch's images,
    /// `batch_idxs` the image of each prompt.
    pub fn decode(
        &self,
        decoder: &DecoderStack<B>,
        prompts: &PromptBatch,
        batch_idxs: &[usize],
        mask_features: &Tensor<B, 4>,
        levels: &[LevelMemory<B>],
    ) -> Result<PromptDecoding<B>, EncoderError> {
        if prompts.is_empty() {
            return Err(EncoderError::Input("no prompt given".into()));
        }
        if batch_idxs.len() != prompts.len() {
            return Err(EncoderError::Input(format!(
                "{} prompts but {} batch indices",
                prompts.len(),
                batch_idxs.len()
            )));
        }
        let points = prompts.query_points()?;
        let (query, query_pos) = self.sam_query(&points);
        let decoding = decoder.decode_per_image(
            query.clone(),
            query_pos,
            batch_idxs,
            mask_features,
            levels,
            &prompts.guide(),
            "prompt",
        )?;
        Ok(PromptDecoding {
            center_points: points.iter().map(|&(p, _)| p).collect(),
            initial_query: query,
            decoding,
        })
    }
}

/// The result of a prompt batch.
#[derive(Debug, Clone)]
pub struct PromptDecoding<B: Backend> {
    /// The query point of each prompt `(x, y)` in its frame.
    pub center_points: Vec<(f32, f32)>,
    /// The initial content queries `[N, 1, C]`.
    pub initial_query: Tensor<B, 3>,
    /// Per-stage masks and the final queries.
    pub decoding: QueryDecoding<B>,
}

impl<B: Backend> PromptDecoding<B> {
    /// `[query_feat | query_pos]` after the last layer, `[N, 2C]`: what OMG-LLaVA
    /// projects into the LLM.
    pub fn prompt_features(&self) -> Tensor<B, 2> {
        let [n, _, c] = self.decoding.query_feat.dims();
        Tensor::cat(
            vec![
                self.decoding.query_feat.clone(),
                self.decoding.query_pos.clone(),
            ],
            2,
        )
        .reshape([n, 2 * c])
    }
}
