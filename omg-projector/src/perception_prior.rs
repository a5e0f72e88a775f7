//! The perception prior embedding of `OMGSegVisualEncoder` (`panoptic_postprocess` +
//! `llava_visual_feat`): per-pixel score-weighted mask probabilities of the object
//! queries, resampled to the LLM token grid, turned into a softmax mixture of the query
//! features; and the pixel-shuffled stride-32 CLIP features.

use burn::tensor::{
    Bool, Int, Tensor, TensorData, activation::sigmoid, activation::softmax, backend::Backend,
};

/// What the prior produces for a batch of images (`hw` = LLM grid cells).
#[derive(Debug, Clone)]
pub struct PerceptionPrior<B: Backend> {
    /// Softmax-over-queries mixture of `[query_feat | query_pos]` per cell, `[B, hw, 2C]`.
    pub pixel_query: Tensor<B, 3>,
    /// `true` where the query is not the arg-max of the cell, `[B, Q, hw]`.
    pub attn_mask: Tensor<B, 3, Bool>,
    /// The winning query of each cell, `[B, hw]`.
    pub winner: Tensor<B, 2, Int>,
}

/// Bilinear (`align_corners=False`) interpolation weights from `src` samples to
/// `dst` outputs, only at the output indices `rows`, as a `[rows.len(), src]` matrix.
fn bilinear_rows(src: usize, dst: usize, rows: &[usize]) -> Vec<f32> {
    let scale = src as f32 / dst as f32;
    let mut m = vec![0f32; rows.len() * src];
    for (r, &o) in rows.iter().enumerate() {
        let x = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(src - 1);
        let x1 = (x0 + 1).min(src - 1);
        let l1 = x - x0 as f32;
        m[r * src + x0] += 1.0 - l1;
        m[r * src + x1] += l1;
    }
    m
}

/// Computes the prior from the last decoder stage.
///
/// - `mask_cls` `[B, Q, K+1]`: class logits (last column background);
/// - `mask_logits` `[B, Q, h, w]`: mask logits at the mask-feature resolution;
/// - `query_feat`, `query_pos` `[B, Q, C]`;
/// - `input_size` `(H, W)`: the model input, to which the official code upsamples the
///   masks before resampling them to the `(H/cell, W/cell)` grid (`cell` = 64: stride
///   32 × pixel shuffle 2);
/// - `smooth_ratio` (0.5): `P = ((1−r) + r·score)·sigmoid(mask)`.
///
/// The official 1024² round trip is computed only where the grid samples it: with a
/// `cell`-fold bilinear downsample every output averages rows/columns `cell·i + cell/2
/// − 1` and `cell·i + cell/2` of the upsampled map, so only those are interpolated.
pub fn perception_prior<B: Backend>(
    mask_cls: Tensor<B, 3>,
    mask_logits: Tensor<B, 4>,
    query_feat: Tensor<B, 3>,
    query_pos: Tensor<B, 3>,
    input_size: (usize, usize),
    cell: usize,
    smooth_ratio: f32,
) -> PerceptionPrior<B> {
    let [b, q, h, w] = mask_logits.dims();
    let k1 = mask_cls.dims()[2];
    let device = mask_logits.device();
    let (gh, gw) = (input_size.0 / cell, input_size.1 / cell);

    // Foreground score: max over the K classes of the softmax over K+1 logits.
    let score = softmax(mask_cls, 2)
        .slice([0..b, 0..q, 0..k1 - 1])
        .max_dim(2); // [b, q, 1]
    let factor = score * smooth_ratio + (1.0 - smooth_ratio);

    let picks = |n: usize| -> Vec<usize> {
        (0..n)
            .flat_map(|i| [cell * i + cell / 2 - 1, cell * i + cell / 2])
            .collect()
    };
    let rows = Tensor::<B, 2>::from_data(
        TensorData::new(bilinear_rows(h, input_size.0, &picks(gh)), [2 * gh, h]),
        &device,
    );
    let cols = Tensor::<B, 2>::from_data(
        TensorData::new(bilinear_rows(w, input_size.1, &picks(gw)), [2 * gw, w]),
        &device,
    );
    // [b·q, 2gh, 2gw] = R · M · Cᵀ
    let sampled = rows
        .unsqueeze_dim::<3>(0)
        .matmul(mask_logits.reshape([b * q, h, w]))
        .matmul(cols.transpose().unsqueeze_dim::<3>(0));
    let probs = sigmoid(sampled).reshape([b, q, 2 * gh * 2 * gw]) * factor.clone();
    // Average each 2×2 group (the 0.5/0.5 bilinear downsample in both directions).
    let p16 = probs
        .reshape([b, q, gh, 2, gw, 2])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([b, q, gh * gw]);

    let winner = p16.clone().argmax(1).reshape([b, gh * gw]);
    let ids = Tensor::<B, 1, Int>::arange(0..q as i64, &device).reshape([1, q, 1]);
    let attn_mask = ids.not_equal(winner.clone().reshape([b, 1, gh * gw]));
    let weights = softmax(p16, 1).swap_dims(1, 2); // [b, hw, q]
    let qf = Tensor::cat(vec![query_feat, query_pos], 2);
    PerceptionPrior {
        pixel_query: weights.matmul(qf),
        attn_mask,
        winner,
    }
}

/// `llava_visual_feat`: pixel shuffle ×2 of the stride-32 map `[B, C, h, w]` into
/// tokens `[B, (h/2)·(w/2), 4C]`, channel `(r_h·2 + r_w)·C + c`, token `i·(w/2) + j`.
pub fn pixel_shuffle_tokens<B: Backend>(c4: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, c, h, w] = c4.dims();
    c4.reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 2, 4, 3, 5, 1])
        .reshape([b, (h / 2) * (w / 2), 4 * c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_rows_reproduce_upsampling_at_the_picked_rows() {
        // 4 → 16 upsampling: output 7 samples at (7.5)/4 − 0.5 = 1.375.
        let m = bilinear_rows(4, 16, &[7, 0, 15]);
        assert_eq!(&m[0..4], &[0.0, 0.625, 0.375, 0.0]);
        assert_eq!(&m[4..8], &[1.0, 0.0, 0.0, 0.0]); // clamped at the start
        assert_eq!(&m[8..12], &[0.0, 0.0, 0.0, 1.0]); // clamped at the end
    }
}
