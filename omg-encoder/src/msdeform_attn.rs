//! mmcv `MultiScaleDeformableAttention` (the pure-PyTorch path
//! `multi_scale_deformable_attn_pytorch`): every query samples `num_points` values per
//! head and level around its reference point, with learned offsets and softmax weights.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::ops::GridSampleOptions;
use burn::tensor::{Tensor, TensorData, activation::softmax, backend::Backend};

/// Multi-scale deformable attention (`batch_first`, value = the un-positioned query).
#[derive(Module, Debug)]
pub struct MultiScaleDeformableAttention<B: Backend> {
    /// `sampling_offsets`: `C → heads·levels·points·2` (x, y in pixels of each level).
    pub sampling_offsets: Linear<B>,
    /// `attention_weights`: `C → heads·levels·points` (softmax over levels·points).
    pub attention_weights: Linear<B>,
    /// `value_proj`: `C → C`.
    pub value_proj: Linear<B>,
    /// `output_proj`: `C → C`.
    pub output_proj: Linear<B>,
    num_heads: usize,
    num_levels: usize,
    num_points: usize,
}

impl<B: Backend> MultiScaleDeformableAttention<B> {
    /// A layer of width `channels` (weights lazily initialised, to be loaded).
    pub fn init(
        channels: usize,
        num_heads: usize,
        num_levels: usize,
        num_points: usize,
        device: &B::Device,
    ) -> Self {
        let samples = num_heads * num_levels * num_points;
        Self {
            sampling_offsets: LinearConfig::new(channels, samples * 2).init(device),
            attention_weights: LinearConfig::new(channels, samples).init(device),
            value_proj: LinearConfig::new(channels, channels).init(device),
            output_proj: LinearConfig::new(channels, channels).init(device),
            num_heads,
            num_levels,
            num_points,
        }
    }

    /// `query`, `query_pos` `[B, Nq, C]`; `value` `[B, ΣHW, C]` (levels concatenated in
    /// the order of `shapes`, each `(h, w)`); `reference_points` `[1 or B, Nq, 2]`
    /// normalised `(x, y)`, shared by all levels. Returns `identity + attention`.
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        query_pos: Tensor<B, 3>,
        value: Tensor<B, 3>,
        reference_points: Tensor<B, 3>,
        shapes: &[(usize, usize)],
    ) -> Tensor<B, 3> {
        let [b, nq, c] = query.dims();
        let (heads, levels, points) = (self.num_heads, self.num_levels, self.num_points);
        let dh = c / heads;
        let device = query.device();
        let q = query.clone() + query_pos;
        let value = self.value_proj.forward(value);

        let offsets = self
            .sampling_offsets
            .forward(q.clone())
            .reshape([b, nq, heads, levels, points, 2]);
        let weights = softmax(
            self.attention_weights
                .forward(q)
                .reshape([b, nq, heads, levels * points]),
            3,
        );
        // offset / (w, h) of its level
        let mut normalizer = Vec::with_capacity(levels * 2);
        for &(h, w) in shapes {
            normalizer.extend_from_slice(&[w as f32, h as f32]);
        }
        let normalizer = Tensor::<B, 6>::from_data(
            TensorData::new(normalizer, [1, 1, 1, levels, 1, 2]),
            &device,
        );
        let rb = reference_points.dims()[0];
        let reference = reference_points.reshape([rb, nq, 1, 1, 1, 2]);
        let grids = (reference + offsets / normalizer) * 2.0 - 1.0;

        let mut sampled = Vec::with_capacity(levels);
        let mut start = 0;
        for (l, &(h, w)) in shapes.iter().enumerate() {
            let value_l = value
                .clone()
                .slice([0..b, start..start + h * w, 0..c])
                .reshape([b, h * w, heads, dh])
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
        let out = (sampled * weights)
            .sum_dim(3)
            .reshape([b, heads * dh, nq])
            .swap_dims(1, 2);
        query + self.output_proj.forward(out)
    }
}
