//! From mask logits to [`MaskOutput`]s in the original image's pixels, with scores:
//! the `[SEG]` path ([`OmgLlava::decode_seg`]) and the prompt path of interactive
//! segmentation share it.

use burn::tensor::{Tensor, backend::Backend};
use omg_decoder::postprocess::masks_in_original;
use omg_encoder::preprocess::SquareTransform;

use crate::error::OmgLlavaError;
use crate::image_handle::ImageHandle;
use crate::model::OmgLlava;
use crate::output::MaskOutput;

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

/// Masks in original pixels, with scores, from final logits `[N, 1, h, w]` at the
/// mask-feature resolution.
pub fn mask_outputs<B: Backend>(
    logits: Tensor<B, 4>,
    transform: SquareTransform,
) -> Result<Vec<MaskOutput>, OmgLlavaError> {
    let [n, _, h, w] = logits.dims();
    let values: Vec<f32> = logits
        .clone()
        .into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| OmgLlavaError::Input(format!("reading the mask logits back: {e:?}")))?;
    let masks = masks_in_original(logits, transform)?;
    if masks.len() != n || values.len() != n * h * w {
        return Err(OmgLlavaError::Input(format!(
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

impl<B: Backend> OmgLlava<B> {
    /// The masks of `[SEG]` hidden states `hidden` `[N, D]` (final-norm outputs of
    /// the LLM) on the image `img`, in its original pixels.
    pub fn decode_seg(
        &self,
        img: &ImageHandle<B>,
        hidden: Tensor<B, 2>,
    ) -> Result<Vec<MaskOutput>, OmgLlavaError> {
        let n = hidden.dims()[0];
        let enc = &img.encoded;
        let out = self.seg_head.decode(
            &self.encoder.mask_decoder,
            hidden,
            &vec![0; n],
            &enc.mask_features,
            &enc.levels,
        )?;
        mask_outputs(out.decoding.final_mask_logits(), img.transform)
    }
}
