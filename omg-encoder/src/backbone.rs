//! The ConvNeXt trunk of the open_clip `convnext_large_d_320` model (timm layout), as
//! `OpenCLIPBackbone_omgseg` runs it: stem, four stages, one feature map per stage
//! (strides 4, 8, 16, 32), no final norm.
//!
//! Activations stay channels-last (NHWC) through the trunk, as the blocks' LayerNorm and
//! MLP want them; only the strided convolutions (stem, downsampling) see NCHW views. The
//! stage outputs are NCHW views of the NHWC maps.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Tensor, backend::Backend};
use omg_kernels::{depthwise_conv2d_nhwc, gelu, linear};

use crate::config::BackboneConfig;

/// `conv` (NCHW) applied to an NHWC map, returning NHWC.
fn conv_nhwc<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv.forward(x.permute([0, 3, 1, 2])).permute([0, 2, 3, 1])
}

/// A ConvNeXt block: depthwise 7×7 conv → LayerNorm → Linear(C→4C) → GELU →
/// Linear(4C→C) → per-channel scale `gamma` → residual.
#[derive(Module, Debug)]
pub struct ConvNextBlock<B: Backend> {
    /// Depthwise 7×7 convolution (`conv_dw`).
    pub conv_dw: Conv2d<B>,
    /// LayerNorm over channels (`norm`).
    pub norm: LayerNorm<B>,
    /// `mlp.fc1`, C → 4C.
    pub fc1: Linear<B>,
    /// `mlp.fc2`, 4C → C.
    pub fc2: Linear<B>,
    /// Layer scale (`gamma`), one value per channel.
    pub gamma: Param<Tensor<B, 1>>,
}

impl<B: Backend> ConvNextBlock<B> {
    fn init(dim: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            conv_dw: Conv2dConfig::new([dim, dim], [7, 7])
                .with_groups(dim)
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .init(device),
            norm: LayerNormConfig::new(dim).with_epsilon(eps).init(device),
            fc1: LinearConfig::new(dim, 4 * dim).init(device),
            fc2: LinearConfig::new(4 * dim, dim).init(device),
            gamma: Param::from_tensor(Tensor::ones([dim], device)),
        }
    }

    /// Applies the block to a channels-last map `x` `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = depthwise_conv2d_nhwc(
            x.clone(),
            self.conv_dw.weight.val(),
            self.conv_dw.bias.as_ref().map(|b| b.val()),
        );
        // one [B·H·W, C] matrix: a single large matmul per linear, not one per image row
        let [b, h, w, c] = y.dims();
        let y = self.norm.forward(y.reshape([b * h * w, c]));
        let y = linear(&self.fc2, gelu(linear(&self.fc1, y)));
        x + (y * self.gamma.val().unsqueeze_dim(0)).reshape([b, h, w, c])
    }
}

/// LayerNorm2d + 2×2 stride-2 convolution between stages.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// `downsample.0`: LayerNorm over the input channels.
    pub norm: LayerNorm<B>,
    /// `downsample.1`: the strided convolution.
    pub conv: Conv2d<B>,
}

/// One stage: an optional downsample, then the blocks.
#[derive(Module, Debug)]
pub struct Stage<B: Backend> {
    /// Absent for the first stage.
    pub downsample: Option<Downsample<B>>,
    /// The ConvNeXt blocks.
    pub blocks: Vec<ConvNextBlock<B>>,
}

/// The ConvNeXt trunk.
#[derive(Module, Debug)]
pub struct ConvNext<B: Backend> {
    /// `stem.0`: 4×4 stride-4 patchify convolution.
    pub stem_conv: Conv2d<B>,
    /// `stem.1`: LayerNorm2d.
    pub stem_norm: LayerNorm<B>,
    /// `layer1` … `layer4`.
    pub stages: Vec<Stage<B>>,
}

impl<B: Backend> ConvNext<B> {
    /// A trunk with the sizes of `config` (weights lazily initialised, to be loaded).
    pub fn init(config: &BackboneConfig, device: &B::Device) -> Self {
        let eps = config.layer_norm_eps;
        let dims = &config.dims;
        let stages = config
            .depths
            .iter()
            .enumerate()
            .map(|(i, &depth)| Stage {
                downsample: (i > 0).then(|| Downsample {
                    norm: LayerNormConfig::new(dims[i - 1])
                        .with_epsilon(eps)
                        .init(device),
                    conv: Conv2dConfig::new([dims[i - 1], dims[i]], [2, 2])
                        .with_stride([2, 2])
                        .init(device),
                }),
                blocks: (0..depth)
                    .map(|_| ConvNextBlock::init(dims[i], eps, device))
                    .collect(),
            })
            .collect();
        Self {
            stem_conv: Conv2dConfig::new([config.in_channels, dims[0]], [4, 4])
                .with_stride([4, 4])
                .init(device),
            stem_norm: LayerNormConfig::new(dims[0]).with_epsilon(eps).init(device),
            stages,
        }
    }

    /// The feature map of every stage for images `[B, 3, H, W]` (H, W multiples of the
    /// output stride): `[B, C_i, H/2^(i+2), W/2^(i+2)]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        // NHWC from here on
        let mut x = self
            .stem_norm
            .forward(self.stem_conv.forward(images).permute([0, 2, 3, 1]));
        let mut outs = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            if let Some(down) = &stage.downsample {
                x = conv_nhwc(&down.conv, down.norm.forward(x));
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
            outs.push(x.clone().permute([0, 3, 1, 2]));
        }
        outs
    }
}
