//! # omg-encoder
//!
//! The visual half of OMG-LLaVA: the frozen **OMG-Seg** universal segmentation model
//! (ConvNeXt-L CLIP backbone, multi-scale deformable-attention pixel decoder, Mask2Former
//! mask decoder with object queries, point/box/mask prompts), generic over burn's
//! `B: Backend`, with the official image preprocessing, the panoptic output and the
//! loading of official checkpoints (through `omg-checkpoint`).

pub mod backbone;
pub mod class_embedding;
pub mod coco_classes;
pub mod config;
pub mod decoder_layer;
pub mod decoding;
pub mod distance_transform;
mod error;
mod external_queries;
pub mod ffn;
pub mod loader;
pub mod mask_decoder;
pub mod msdeform_attn;
pub mod omg_seg;
pub mod omg_seg_loader;
pub mod panoptic;
pub mod pixel_decoder;
pub mod position_encoding;
pub mod preprocess;
pub mod prompt;

pub use backbone::ConvNext;
pub use class_embedding::ClassEmbedding;
pub use config::{BackboneConfig, MaskDecoderConfig, PixelDecoderConfig};
pub use decoding::{AttentionGuide, DecoderStack, MaskStage, QueryDecoding};
pub use error::EncoderError;
pub use external_queries::QueryMemory;
pub use mask_decoder::{DecoderOutput, MaskDecoder, StageHeads, StagePrediction};
pub use omg_seg::{EncodedImage, OmgSeg, OmgSegConfig, encode_with};
pub use omg_seg_loader::{BackboneWeights, OmgSegReport, OmgSegWeights, load_omg_seg};
pub use pixel_decoder::{PixelDecoder, PixelDecoderOutput};
pub use prompt::{PromptBatch, PromptDecoding, PromptEmbedding, RegionMask};
