//! From final mask logits to binary masks: bilinear upsampling (`align_corners=False`)
//! and `sigmoid > 0.5`, in the model frame (as the parity fixtures record it) or in
//! the original image's pixels (upsample to the padded square, crop the padding, then
//! threshold — the RES/GCG evaluation order).

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Bool, Tensor, backend::Backend};
use omg_encoder::preprocess::SquareTransform;

use crate::error::DecoderError;
use omg_masks::BinaryMask;

/// Bilinear upsampling of logits `[N, C, h, w]` to `size` `(H, W)`.
pub fn upsample_logits<B: Backend>(logits: Tensor<B, 4>, size: (usize, usize)) -> Tensor<B, 4> {
    interpolate(
        logits,
        [size.0, size.1],
        InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
    )
}

/// `sigmoid(x) > 0.5`, i.e. `x > 0`.
pub fn binarize<B: Backend, const D: usize>(logits: Tensor<B, D>) -> Tensor<B, D, Bool> {
    burn::tensor::activation::sigmoid(logits).greater_elem(0.5)
}

/// Masks in the original image's pixels from final logits `[N, 1, h, w]` in the model
/// frame: upsample to the padded square `S × S`, keep the rows/columns of the pasted
/// image (`[pad, pad + H)` — exactly where `expand2square` pasted it; the official demo
/// crops to `S − pad` instead, one pixel off when the padding is odd), threshold.
pub fn masks_in_original<B: Backend>(
    logits: Tensor<B, 4>,
    transform: SquareTransform,
) -> Result<Vec<BinaryMask>, DecoderError> {
    let [n, c, _, _] = logits.dims();
    if c != 1 {
        return Err(DecoderError::Input(format!(
            "expected one mask channel per query, got {c}"
        )));
    }
    let s = transform.side as usize;
    let (w, h) = (
        transform.orig_width as usize,
        transform.orig_height as usize,
    );
    let (x0, y0) = (transform.pad_x as usize, transform.pad_y as usize);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let one = logits.clone().slice([i..i + 1, 0..1]);
        let up = upsample_logits(one, (s, s)).slice([0..1, 0..1, y0..y0 + h, x0..x0 + w]);
        let data = binarize(up)
            .into_data()
            .into_vec::<bool>()
            .map_err(|e| DecoderError::Input(format!("mask readback: {e:?}")))?;
        out.push(BinaryMask::from_vec(h, w, data)?);
    }
    Ok(out)
}
