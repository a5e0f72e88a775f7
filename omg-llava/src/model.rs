//! The composed model (OMG-Seg encoder → projector → InternLM2 → `[SEG]` head), as
//! loaded from a bundle, and the steps of it that the Pipeline's tasks share:
//! encoding photos, and turning mask logits into masks in the photo's pixels.

use burn::tensor::{Tensor, backend::Backend};
use omg_decoder::SegHead;
use omg_decoder::postprocess::masks_in_original;
use omg_encoder::OmgSeg;
use omg_encoder::preprocess::SquareTransform;
use omg_llm::InternLM2;
use omg_llm::tokenizer::InternLm2Tokenizer;
use omg_projector::{VisualProjector, project_image};

use crate::config::OmgLlavaConfig;
use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::output::MaskOutput;
use crate::tokens::Tokens;

/// The loaded model.
pub(crate) struct OmgLlava<B: Backend> {
    /// OMG-Seg (frozen visual encoder).
    pub encoder: OmgSeg<B>,
    /// Visual projector.
    pub projector: VisualProjector<B>,
    /// InternLM2 with the release merged in.
    pub llm: InternLM2<B>,
    /// `[SEG]` head.
    pub seg_head: SegHead<B>,
    /// Tokenizer with OMG-LLaVA's added tokens.
    pub tokenizer: InternLm2Tokenizer,
    /// Ids of the chat and OMG-LLaVA tokens.
    pub tokens: Tokens,
    /// Architecture.
    pub config: OmgLlavaConfig,
    /// Class names of the class-embedding rows.
    pub class_names: Vec<String>,
}

impl<B: Backend> OmgLlava<B> {
    /// Encodes preprocessed photos `[N, 3, S, S]` in one forward pass of the encoder and
    /// projector, `transforms[i]` being the frame of the `i`-th; one handle per photo,
    /// each the same as encoding that photo alone (up to the order of floating-point
    /// sums).
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
            return Err(OmgLlavaError::PixelShape {
                found: dims.to_vec(),
                expected: vec![n.max(1), 3, size, size],
            });
        }
        let encoded = self.encoder.encode(pixels)?;
        let image = project_image(&self.projector, &encoded, self.config.prior_smooth_ratio)?;
        let tokens = image.projected.visual_tokens.into_iter();
        tokens
            .zip(transforms)
            .enumerate()
            .map(|(i, (visual_tokens, &transform))| {
                let encoded = if n == 1 {
                    encoded.clone()
                } else {
                    encoded.image(i)?
                };
                Ok(ImageHandle::new(encoded, visual_tokens, transform))
            })
            .collect()
    }

    /// The masks of `[SEG]` hidden states `hidden` `[N, D]` (final-norm outputs of
    /// the LLM) on the photo `img`, in its pixels.
    pub fn decode_seg(
        &self,
        img: &ImageHandle<B>,
        hidden: Tensor<B, 2>,
    ) -> Result<Vec<MaskOutput>, OmgLlavaError> {
        let n = hidden.dims()[0];
        let out = self.seg_head.decode(
            &self.encoder.mask_decoder,
            hidden,
            &vec![0; n],
            img.encoded().query_memory(),
        )?;
        mask_outputs(out.decoding.final_mask_logits(), img.transform())
    }
}

/// Mean foreground probability of `logits` where they are positive (0 if none is).
fn mask_score(logits: &[f32]) -> f32 {
    let (sum, n) = logits
        .iter()
        .filter(|&&x| x > 0.0)
        .fold((0f64, 0usize), |(s, n), &x| {
            (s + 1.0 / (1.0 + f64::from(-x).exp()), n + 1)
        });
    if n == 0 { 0.0 } else { (sum / n as f64) as f32 }
}

/// Masks in the photo's pixels, with scores, from final logits `[N, 1, h, w]` at the
/// mask-feature resolution.
pub(crate) fn mask_outputs<B: Backend>(
    logits: Tensor<B, 4>,
    transform: SquareTransform,
) -> Result<Vec<MaskOutput>, OmgLlavaError> {
    let [n, _, h, w] = logits.dims();
    let values: Vec<f32> = logits
        .clone()
        .into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| OmgLlavaError::ReadBack(format!("mask logits: {e:?}")))?;
    let masks = masks_in_original(logits, transform)?;
    if masks.len() != n || values.len() != n * h * w {
        return Err(OmgLlavaError::ReadBack(format!(
            "{} masks and {} logits for {n} queries of {h}×{w}",
            masks.len(),
            values.len()
        )));
    }
    Ok(masks
        .into_iter()
        .zip(values.chunks(h * w))
        .map(|(m, v)| MaskOutput::new(m, mask_score(v)))
        .collect())
}
