//! The sampling core of mmcv's multi-scale deformable attention
//! (`multi_scale_deformable_attn_pytorch`): for every query and head, bilinear samples of
//! the value maps of every level at `num_points` locations, weighted by the attention
//! weights and summed.

use burn::tensor::{Tensor, backend::Backend, ops::GridSampleOptions};

/// * `value` `[B, N, heads, dh]`: the value tokens of all levels, concatenated in the
///   order of `shapes` (`N = Σ h·w`, each level row-major);
/// * `shapes`: `(h, w)` of every level;
/// * `locations` `[B, Nq, heads, levels, points, 2]`: normalised `(x, y)` sampling
///   locations (0 and 1 are the outer edges of the map; outside it samples zeros);
/// * `weights` `[B, Nq, heads, levels, points]`: attention weights.
///
/// Returns `[B, Nq, heads·dh]`: `Σ_{l,p} weights · bilinear(value_l, location)` per head,
/// heads concatenated — `F.grid_sample(.., mode="bilinear", padding_mode="zeros",
/// align_corners=False)` semantics.
pub fn ms_deform_attn_sample<B: Backend>(
    value: Tensor<B, 4>,
    shapes: &[(usize, usize)],
    locations: Tensor<B, 6>,
    weights: Tensor<B, 5>,
) -> Tensor<B, 3> {
    #[cfg(feature = "flex")]
    if crate::flex::takes(&value) && crate::flex::takes(&locations) && crate::flex::takes(&weights)
    {
        use crate::flex::{from_flex, into_flex};
        let out = crate::flex::deform::ms_deform_sample(
            into_flex(value),
            shapes,
            into_flex(locations),
            into_flex(weights),
        );
        return from_flex(out);
    }
    ms_deform_attn_sample_fallback(value, shapes, locations, weights)
}

/// [`ms_deform_attn_sample`] with burn's `grid_sample_2d`, level by level, as mmcv's
/// pure-PyTorch path does (the reference of the kernel).
pub fn ms_deform_attn_sample_fallback<B: Backend>(
    value: Tensor<B, 4>,
    shapes: &[(usize, usize)],
    locations: Tensor<B, 6>,
    weights: Tensor<B, 5>,
) -> Tensor<B, 3> {
    let [b, _, heads, dh] = value.dims();
    let [_, nq, _, levels, points, _] = locations.dims();
    let grids = locations * 2.0 - 1.0;
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
        .reshape([b, nq, heads, levels * points])
        .swap_dims(1, 2)
        .reshape([b * heads, 1, nq, levels * points]);
    (sampled * weights)
        .sum_dim(3)
        .reshape([b, heads * dh, nq])
        .swap_dims(1, 2)
}
