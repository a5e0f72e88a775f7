//! The core of mmcv's multi-scale deformable attention after its linear layers
//! (`multi_scale_deformable_attn_pytorch` and the lines before it): sampling locations
//! from reference points and offsets, softmax of the attention weights, bilinear samples
//! of every level, weighted and summed.

use burn::tensor::{
    Tensor, TensorData, activation::softmax, backend::Backend, ops::GridSampleOptions,
};

/// * `value` `[B, N, heads, dh]`: the value tokens of all levels, concatenated in the
///   order of `shapes` (`N = Σ h·w`, each level row-major);
/// * `shapes`: `(h, w)` of every level;
/// * `reference_points` `[B or 1, Nq, 2]`: normalised `(x, y)`, shared by all levels;
/// * `offsets` `[B, Nq, heads, levels, points, 2]`: `sampling_offsets` output, `(x, y)`
///   in pixels of each level (location = reference + offset / (w, h));
/// * `attention_logits` `[B, Nq, heads, levels·points]`: `attention_weights` output
///   (softmax over levels·points).
///
/// Returns `[B, Nq, heads·dh]`: per head `Σ_{l,p} weight · bilinear(value_l, location)`,
/// heads concatenated — `F.grid_sample(.., mode="bilinear", padding_mode="zeros",
/// align_corners=False)` semantics (0 and 1 are the outer edges of a map; outside it
/// samples zeros).
pub fn ms_deform_attn<B: Backend>(
    value: Tensor<B, 4>,
    shapes: &[(usize, usize)],
    reference_points: Tensor<B, 3>,
    offsets: Tensor<B, 6>,
    attention_logits: Tensor<B, 4>,
) -> Tensor<B, 3> {
    #[cfg(feature = "flex")]
    if crate::flex::takes(&value)
        && crate::flex::takes(&reference_points)
        && crate::flex::takes(&offsets)
        && crate::flex::takes(&attention_logits)
        && crate::flex::deform::fits(&value.dims(), &reference_points.dims(), &offsets.dims())
    {
        use crate::flex::{from_flex, into_flex};
        let out = crate::flex::deform::ms_deform_attn(
            into_flex(value),
            shapes,
            into_flex(reference_points),
            into_flex(offsets),
            into_flex(attention_logits),
        );
        return from_flex(out);
    }
    ms_deform_attn_fallback(value, shapes, reference_points, offsets, attention_logits)
}

/// [`ms_deform_attn`] in plain burn ops, with `grid_sample_2d` level by level as mmcv's
/// pure-PyTorch path (the reference of the kernel).
pub fn ms_deform_attn_fallback<B: Backend>(
    value: Tensor<B, 4>,
    shapes: &[(usize, usize)],
    reference_points: Tensor<B, 3>,
    offsets: Tensor<B, 6>,
    attention_logits: Tensor<B, 4>,
) -> Tensor<B, 3> {
    let [b, _, heads, dh] = value.dims();
    let [_, nq, _, levels, points, _] = offsets.dims();
    let weights = softmax(attention_logits, 3);
    // offset / (w, h) of its level
    let normalizer: Vec<f32> = shapes
        .iter()
        .flat_map(|&(h, w)| [w as f32, h as f32])
        .collect();
    let normalizer = Tensor::<B, 6>::from_data(
        TensorData::new(normalizer, [1, 1, 1, levels, 1, 2]),
        &value.device(),
    );
    let rb = reference_points.dims()[0];
    let reference = reference_points.reshape([rb, nq, 1, 1, 1, 2]);
    let grids = (reference + offsets / normalizer) * 2.0 - 1.0;
    let mut sampled = Vec::with_capacity(levels);
    let mut start = 0;
    for (l, &(h, w)) in shapes.iter().enumerate() {
        let value_l = value
            .clone()
            .slice([0..b, start..start + h * w, 0..heads, 0..dh])
            .permute([0, 2, 3, 1])
            .reshape([b * heads, dh, h, w]);
        start += h * w;
        let grid_l = grids
            .clone()
            .slice([0..b, 0..nq, 0..heads, l..l + 1, 0..points, 0..2])
            .reshape([b, nq, heads, points, 2])
            .swap_dims(1, 2)
            .reshape([b * heads, nq, points, 2]);
        sampled.push(value_l.grid_sample_2d(grid_l, GridSampleOptions::default()));
    }
    // [b·heads, dh, nq, levels·points], level-major like the official stack/flatten
    let sampled = Tensor::cat(sampled, 3);
    let weights = weights
        .swap_dims(1, 2)
        .reshape([b * heads, 1, nq, levels * points]);
    (sampled * weights)
        .sum_dim(3)
        .reshape([b, heads * dh, nq])
        .swap_dims(1, 2)
}
