//! [`LlmLinear`]: a linear layer of the LLM whose weight is f32 or weight-only
//! quantized ([`QuantWeight`]), the choice made at load time ([`crate::LlmWeights`]).

use burn::module::{Module, Param, ParamId};
use burn::nn::LinearConfig;
use burn::tensor::{Int, Shape, Tensor, backend::Backend};
use omg_kernels::{QuantBits, QuantLayout, linear_with, quant_linear};

/// A weight-only quantized `[out, in]` matrix (the official layout): packed int8/int4
/// values and one f32 scale per 64 input channels (see [`omg_kernels::QuantizedMatrix`]).
#[derive(Module, Debug)]
pub struct QuantWeight<B: Backend> {
    /// Packed values `[out, row_bytes]`.
    pub values: Param<Tensor<B, 2, Int>>,
    /// Scales `[out, groups]`.
    pub scales: Param<Tensor<B, 2>>,
    #[module(skip)]
    layout: QuantLayout,
}

impl<B: Backend> QuantWeight<B> {
    /// Lazily initialised (zero) storage of a `[out, in]` matrix with `bits`, to be
    /// replaced by a loader.
    pub fn init(
        bits: QuantBits,
        in_features: usize,
        out_features: usize,
        device: &B::Device,
    ) -> Self {
        let layout = QuantLayout {
            bits,
            out_features,
            in_features,
        };
        let values_shape = [out_features, layout.row_bytes()];
        let scales_shape = [out_features, layout.groups()];
        Self {
            values: Param::uninitialized(
                ParamId::new(),
                move |d, _| Tensor::zeros(values_shape, d),
                device.clone(),
                false,
                Shape::new(values_shape),
            ),
            scales: Param::uninitialized(
                ParamId::new(),
                move |d, _| Tensor::zeros(scales_shape, d),
                device.clone(),
                false,
                Shape::new(scales_shape),
            ),
            layout,
        }
    }

    /// Shape and format.
    pub fn layout(&self) -> QuantLayout {
        self.layout
    }
}

/// `y = x · W + b` with `W` in f32 (`weight`, burn's `[in, out]` layout) or quantized
/// (`quantized`); exactly one of the two is present.
#[derive(Module, Debug)]
pub struct LlmLinear<B: Backend> {
    weight: Option<Param<Tensor<B, 2>>>,
    quantized: Option<QuantWeight<B>>,
    /// The bias `[out]` (InternLM2 has none).
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> LlmLinear<B> {
    /// A lazily initialised layer `in → out`, quantized with `bits` when given.
    pub fn init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        bits: Option<QuantBits>,
        device: &B::Device,
    ) -> Self {
        let float = LinearConfig::new(in_features, out_features)
            .with_bias(bias)
            .init::<B>(device);
        match bits {
            None => Self {
                weight: Some(float.weight),
                quantized: None,
                bias: float.bias,
            },
            Some(bits) => Self {
                weight: None,
                quantized: Some(QuantWeight::init(bits, in_features, out_features, device)),
                bias: float.bias,
            },
        }
    }

    /// `[in, out]` of the layer.
    pub fn dims(&self) -> [usize; 2] {
        match (&self.weight, &self.quantized) {
            (Some(w), _) => w.lazy_shape().dims(),
            (None, Some(q)) => [q.layout.in_features, q.layout.out_features],
            (None, None) => [0, 0],
        }
    }

    /// The device of the weight.
    pub fn device(&self) -> B::Device {
        match (&self.weight, &self.quantized) {
            (Some(w), _) => w.lazy_device(),
            (None, Some(q)) => q.scales.lazy_device(),
            (None, None) => Default::default(),
        }
    }

    /// The f32 weight `[in, out]`, when the layer is not quantized.
    pub fn float_weight(&self) -> Option<&Param<Tensor<B, 2>>> {
        self.weight.as_ref()
    }

    /// The quantized weight, when the layer is quantized.
    pub fn quantized(&self) -> Option<&QuantWeight<B>> {
        self.quantized.as_ref()
    }

    /// The format of the weight (`None`: f32).
    pub fn bits(&self) -> Option<QuantBits> {
        self.quantized.as_ref().map(|q| q.layout.bits)
    }

    /// Applies the layer to `x` `[…, in]` → `[…, out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match (&self.weight, &self.quantized) {
            (Some(w), _) => linear_with(x, w.val(), bias),
            (None, Some(q)) => quant_linear(x, q.values.val(), q.scales.val(), q.layout, bias),
            (None, None) => unreachable!("LlmLinear's constructor sets one weight"),
        }
    }
}
