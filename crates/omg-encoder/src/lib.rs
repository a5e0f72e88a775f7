//! # omg-encoder
//!
//! The visual half of OMG-LLaVA: the frozen **OMG-Seg** universal segmentation model
//! (ConvNeXt-L CLIP backbone, multi-scale deformable-attention pixel decoder, Mask2Former
//! mask decoder with object queries, point/box/mask prompts), generic over burn's
//! `B: Backend`. It is being built (see the project README's status table).
//!
//! It also holds the [`checkpoint`] readers (safetensors, PyTorch `.pth`) that every
//! later stage uses to load official weights: this crate is the first of the chain
//! image → encoder → projector → LLM → decoder, so the others can depend on it.

pub mod backbone;
pub mod checkpoint;
pub mod class_embedding;
pub mod config;
mod error;
pub mod ffn;
pub mod loader;
pub mod mask_decoder;
pub mod msdeform_attn;
pub mod pixel_decoder;
pub mod position_encoding;
pub mod preprocess;

pub use backbone::ConvNext;
pub use class_embedding::ClassEmbedding;
pub use config::{BackboneConfig, MaskDecoderConfig, PixelDecoderConfig};
pub use error::EncoderError;
pub use mask_decoder::{DecoderOutput, MaskDecoder, StagePrediction};
pub use pixel_decoder::{PixelDecoder, PixelDecoderOutput};
