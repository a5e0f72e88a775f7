//! mmcv `MultiScaleDeformableAttention` (the pure-PyTorch path
//! `multi_scale_deformable_attn_pytorch`): every query samples `num_points` values per
//! head and level around its reference point, with learned offsets and softmax weights.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use omg_kernels::{linear, ms_deform_attn};

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
        let q = query.clone() + query_pos;
        let value = linear(&self.value_proj, value);
        let n = value.dims()[1];

        let offsets =
            linear(&self.sampling_offsets, q.clone()).reshape([b, nq, heads, levels, points, 2]);
        let logits = linear(&self.attention_weights, q).reshape([b, nq, heads, levels * points]);
        let out = ms_deform_attn(
            value.reshape([b, n, heads, dh]),
            shapes,
            reference_points,
            offsets,
            logits,
        );
        query + linear(&self.output_proj, out)
    }
}
