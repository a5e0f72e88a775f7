//! An image encoded once: the encoder's cached state and its visual tokens, made by
//! [`OmgLlava::encode_image`] and reused by every query about the image.

use burn::tensor::{Tensor, backend::Backend};
use omg_encoder::EncodedImage;
use omg_encoder::preprocess::SquareTransform;
use omg_projector::project_image;

use crate::error::OmgLlavaError;
use crate::model::OmgLlava;

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

impl<B: Backend> OmgLlava<B> {
    /// Encodes an already preprocessed image `[1, 3, S, S]` (padded, resized to the
    /// model size and CLIP-normalised) whose original frame is given by `transform`:
    /// OMG-Seg, the perception prior and the visual projector.
    pub fn encode_image(
        &self,
        pixels: Tensor<B, 4>,
        transform: SquareTransform,
    ) -> Result<ImageHandle<B>, OmgLlavaError> {
        let size = self.config.encoder.image_size;
        let dims = pixels.dims();
        if dims != [1, 3, size, size] || transform.target as usize != size {
            return Err(OmgLlavaError::Input(format!(
                "expected normalised pixels [1, 3, {size}, {size}] and a transform to {size}, got {dims:?} and {}",
                transform.target
            )));
        }
        let mut handles = self.encode_images(pixels, &[transform])?;
        Ok(handles.remove(0))
    }

    /// Encodes a batch of preprocessed images `[N, 3, S, S]` in one forward pass of the
    /// encoder and projector, `transforms[i]` being the frame of the `i`-th; one handle
    /// per image, each the same as [`encode_image`](Self::encode_image) of that image
    /// alone (up to the order of floating-point sums).
    pub fn encode_images(
        &self,
        pixels: Tensor<B, 4>,
        transforms: &[SquareTransform],
    ) -> Result<Vec<ImageHandle<B>>, OmgLlavaError> {
        let size = self.config.encoder.image_size;
        let dims = pixels.dims();
        let n = transforms.len();
        if n == 0
            || dims != [n, 3, size, size]
            || transforms.iter().any(|t| t.target as usize != size)
        {
            return Err(OmgLlavaError::Input(format!(
                "expected normalised pixels [{n}, 3, {size}, {size}] (n ≥ 1) and {n} transforms to {size}, got {dims:?}"
            )));
        }
        let encoded = self.encoder.encode(pixels)?;
        let image = project_image(&self.projector, &encoded, self.config.prior_smooth_ratio)?;
        let tokens = image.projected.visual_tokens.into_iter();
        let valid = image.projected.valid_queries.into_iter();
        tokens
            .zip(valid)
            .zip(transforms)
            .enumerate()
            .map(|(i, ((visual_tokens, valid_queries), &transform))| {
                Ok(ImageHandle {
                    encoded: if n == 1 {
                        encoded.clone()
                    } else {
                        encoded.image(i)?
                    },
                    visual_tokens,
                    valid_queries,
                    transform,
                })
            })
            .collect()
    }
}
