//! mmdet `MSDeformAttnPixelDecoder`: input projections (1×1 conv + GroupNorm) of the
//! coarsest backbone levels, sine + level positional encodings, a stack of
//! deformable-attention encoder layers over all their tokens, then one FPN step to
//! stride 4 and the `mask_feature` 1×1 convolution.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig,
    PaddingConfig2d,
};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData, activation::relu, backend::Backend};

use omg_kernels::conv2d_same;

use crate::config::PixelDecoderConfig;
use crate::ffn::Ffn;
use crate::msdeform_attn::MultiScaleDeformableAttention;
use crate::position_encoding::sine_2d;

/// Convolution followed by GroupNorm (mmcv `ConvModule` with `norm_cfg=GN`).
#[derive(Module, Debug)]
pub struct ConvGn<B: Backend> {
    /// The convolution (`conv`).
    pub conv: Conv2d<B>,
    /// The GroupNorm (`gn`).
    pub gn: GroupNorm<B>,
}

impl<B: Backend> ConvGn<B> {
    fn init(
        c_in: usize,
        c_out: usize,
        k: usize,
        bias: bool,
        cfg: &PixelDecoderConfig,
        device: &B::Device,
    ) -> Self {
        let pad = k / 2;
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(bias)
                .init(device),
            gn: GroupNormConfig::new(cfg.num_groups, c_out)
                .with_epsilon(cfg.group_norm_eps)
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, k, _] = self.conv.weight.dims();
        let conv = if k > 1 {
            // the k×k convolution as k² matrix products where the backend has that kernel
            conv2d_same(
                x,
                self.conv.weight.val(),
                self.conv.bias.as_ref().map(|b| b.val()),
            )
        } else {
            self.conv.forward(x)
        };
        self.gn.forward(conv)
    }
}

/// mmdet `DeformableDetrTransformerEncoderLayer` (post-norm):
/// `x = LN0(x + MSDA(x, pos))`, `x = LN1(x + FFN(x))`.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// `self_attn`.
    pub self_attn: MultiScaleDeformableAttention<B>,
    /// `ffn`.
    pub ffn: Ffn<B>,
    /// `norms.0`.
    pub norm1: LayerNorm<B>,
    /// `norms.1`.
    pub norm2: LayerNorm<B>,
}

impl<B: Backend> EncoderLayer<B> {
    fn init(cfg: &PixelDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        let ln = || {
            LayerNormConfig::new(c)
                .with_epsilon(cfg.layer_norm_eps)
                .init(device)
        };
        Self {
            self_attn: MultiScaleDeformableAttention::init(
                c,
                cfg.num_heads,
                cfg.num_levels,
                cfg.num_points,
                device,
            ),
            ffn: Ffn::init(c, cfg.ffn_channels, device),
            norm1: ln(),
            norm2: ln(),
        }
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        pos: Tensor<B, 3>,
        reference_points: Tensor<B, 3>,
        shapes: &[(usize, usize)],
    ) -> Tensor<B, 3> {
        let x =
            self.norm1.forward(
                self.self_attn
                    .forward(x.clone(), pos, x, reference_points, shapes),
            );
        self.norm2.forward(self.ffn.forward(x))
    }
}

/// The pixel decoder's outputs.
#[derive(Debug, Clone)]
pub struct PixelDecoderOutput<B: Backend> {
    /// `mask_feature(...)` at stride 4, `[B, C, H/4, W/4]`.
    pub mask_features: Tensor<B, 4>,
    /// The encoder memory per level, coarse to fine (strides 32, 16, 8), `[B, C, h, w]`.
    pub multi_scale_memory: Vec<Tensor<B, 4>>,
    /// The stride-4 FPN map before `mask_feature`.
    pub fpn_stride4: Tensor<B, 4>,
}

/// `MSDeformAttnPixelDecoder`.
#[derive(Module, Debug)]
pub struct PixelDecoder<B: Backend> {
    /// `input_convs.{i}`: level i of the encoder reads backbone level `L−1−i`.
    pub input_convs: Vec<ConvGn<B>>,
    /// `encoder.layers`.
    pub layers: Vec<EncoderLayer<B>>,
    /// `level_encoding`: one learned vector per encoder level.
    pub level_encoding: Embedding<B>,
    /// `lateral_convs.0`: 1×1, no bias, on the stride-4 backbone level.
    pub lateral_conv: ConvGn<B>,
    /// `output_convs.0`: 3×3, no bias, GroupNorm, ReLU.
    pub output_conv: ConvGn<B>,
    /// `mask_feature`: 1×1 with bias.
    pub mask_feature: Conv2d<B>,
    #[module(skip)]
    config: PixelDecoderConfig,
}

impl<B: Backend> PixelDecoder<B> {
    /// A pixel decoder with the sizes of `cfg` (weights lazily initialised).
    pub fn init(cfg: &PixelDecoderConfig, device: &B::Device) -> Self {
        let c = cfg.feat_channels;
        let n_in = cfg.in_channels.len();
        Self {
            input_convs: (0..cfg.num_levels)
                .map(|i| ConvGn::init(cfg.in_channels[n_in - 1 - i], c, 1, true, cfg, device))
                .collect(),
            layers: (0..cfg.num_layers)
                .map(|_| EncoderLayer::init(cfg, device))
                .collect(),
            level_encoding: EmbeddingConfig::new(cfg.num_levels, c).init(device),
            lateral_conv: ConvGn::init(cfg.in_channels[0], c, 1, false, cfg, device),
            output_conv: ConvGn::init(c, c, 3, false, cfg, device),
            mask_feature: Conv2dConfig::new([c, c], [1, 1]).init(device),
            config: cfg.clone(),
        }
    }

    /// Runs the decoder on the backbone levels (stride 4 first).
    pub fn forward(&self, feats: &[Tensor<B, 4>]) -> PixelDecoderOutput<B> {
        let cfg = &self.config;
        let c = cfg.feat_channels;
        let n_in = feats.len();
        let device = feats[0].device();
        let b = feats[0].dims()[0];
        let level_embed = self.level_encoding.weight.val();

        let mut tokens = Vec::new();
        let mut positions = Vec::new();
        let mut refs = Vec::new();
        let mut shapes = Vec::new();
        for (i, conv) in self.input_convs.iter().enumerate() {
            let feat = conv.forward(feats[n_in - 1 - i].clone());
            let [_, _, h, w] = feat.dims();
            let pos = sine_2d::<B>(h, w, c / 2, &device)
                + level_embed
                    .clone()
                    .slice([i..i + 1, 0..c])
                    .reshape([1, c, 1, 1]);
            tokens.push(feat.flatten::<3>(2, 3).swap_dims(1, 2));
            positions.push(pos.flatten::<3>(2, 3).swap_dims(1, 2));
            for y in 0..h {
                for x in 0..w {
                    refs.push((x as f32 + 0.5) / w as f32);
                    refs.push((y as f32 + 0.5) / h as f32);
                }
            }
            shapes.push((h, w));
        }
        let n: usize = shapes.iter().map(|(h, w)| h * w).sum();
        let reference = Tensor::<B, 3>::from_data(TensorData::new(refs, [1, n, 2]), &device);
        let mut x = Tensor::cat(tokens, 1);
        let pos = Tensor::cat(positions, 1).repeat_dim(0, b);
        for layer in &self.layers {
            x = layer.forward(x, pos.clone(), reference.clone(), &shapes);
        }

        let mut memory = Vec::with_capacity(shapes.len());
        let mut start = 0;
        for &(h, w) in &shapes {
            memory.push(
                x.clone()
                    .slice([0..b, start..start + h * w, 0..c])
                    .swap_dims(1, 2)
                    .reshape([b, c, h, w]),
            );
            start += h * w;
        }
        let lateral = self.lateral_conv.forward(feats[0].clone());
        let [_, _, h4, w4] = lateral.dims();
        let up = interpolate(
            memory[memory.len() - 1].clone(),
            [h4, w4],
            InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
        );
        let fpn_stride4 = relu(self.output_conv.forward(lateral + up));
        PixelDecoderOutput {
            mask_features: self.mask_feature.forward(fpn_stride4.clone()),
            multi_scale_memory: memory,
            fpn_stride4,
        }
    }
}
