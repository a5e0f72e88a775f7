//! [`LlmLinear`]: a linear layer of the LLM whose weight is float (f32, bf16, f16) or
//! quantized ([`QuantWeight`]: int8/int4 weights, the inputs quantized per product), the choice made at load time
//! ([`crate::LlmWeights`]).

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Distribution, FloatDType, Int, Shape, Tensor, backend::Backend};
use omg_kernels::{QuantBits, QuantLayout, half_linear, linear_with, quant_linear};

use crate::precision::LinearStorage;

/// A quantized `[out, in]` matrix (the official layout): packed int8/int4
/// values and one scale per 64 input channels, f32 (int8) or f16 (int4) (see
/// [`omg_kernels::QuantizedMatrix`]).
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

/// A lazily initialised float parameter of `shape` and `dtype`, uniform in `±bound`
/// (burn's `Linear` default), to be replaced by a loader: nothing is allocated unless
/// it is read.
fn float_param<B: Backend, const D: usize>(
    shape: [usize; D],
    bound: f64,
    dtype: FloatDType,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::uninitialized(
        ParamId::new(),
        move |d, _| {
            let weight = Tensor::<B, D>::random(shape, Distribution::Uniform(-bound, bound), d);
            omg_kernels::cast_float(weight, dtype)
        },
        device.clone(),
        false,
        Shape::new(shape),
    )
}

/// `y = x · W + b` with `W` float (`weight`, burn's `[in, out]` layout, of the dtype
/// the [`LinearStorage`] names) or quantized (`quantized`); exactly one of the two is
/// present. A bf16/f16 layer rounds its input to its dtype, multiplies in it and
/// returns the input's dtype.
#[derive(Module, Debug)]
pub struct LlmLinear<B: Backend> {
    weight: Option<Param<Tensor<B, 2>>>,
    quantized: Option<QuantWeight<B>>,
    /// The bias `[out]` (InternLM2 has none), of the weight's dtype.
    pub bias: Option<Param<Tensor<B, 1>>>,
    #[module(skip)]
    storage: LinearStorage,
}

impl<B: Backend> LlmLinear<B> {
    /// A lazily initialised layer `in → out` held as `storage` says (random weights of
    /// burn's `Linear` default, uniform in `±1/√in`, made only if never loaded).
    pub fn init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        storage: LinearStorage,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        let float_dtype = match storage {
            LinearStorage::Float(dtype) => dtype,
            LinearStorage::Quantized(_) => FloatDType::F32,
        };
        let bias = bias.then(|| float_param([out_features], bound, float_dtype, device));
        match storage {
            LinearStorage::Float(dtype) => Self {
                weight: Some(float_param(
                    [in_features, out_features],
                    bound,
                    dtype,
                    device,
                )),
                quantized: None,
                bias,
                storage,
            },
            LinearStorage::Quantized(bits) => Self {
                weight: None,
                quantized: Some(QuantWeight::init(bits, in_features, out_features, device)),
                bias,
                storage,
            },
        }
    }

    /// How the weight is stored.
    pub fn storage(&self) -> LinearStorage {
        self.storage
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

    /// The float weight `[in, out]` (of the dtype [`Self::storage`] names), when the
    /// layer is not quantized.
    pub fn float_weight(&self) -> Option<&Param<Tensor<B, 2>>> {
        self.weight.as_ref()
    }

    /// The quantized weight, when the layer is quantized.
    pub fn quantized(&self) -> Option<&QuantWeight<B>> {
        self.quantized.as_ref()
    }

    /// The format of a quantized weight (`None`: a float weight).
    pub fn bits(&self) -> Option<QuantBits> {
        self.quantized.as_ref().map(|q| q.layout.bits)
    }

    /// Applies the layer to `x` `[…, in]` → `[…, out]` (the dtype of `x`).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match (&self.weight, &self.quantized) {
            (Some(w), _) => {
                let w = w.val();
                if x.dtype() == w.dtype() {
                    linear_with(x, w, bias)
                } else {
                    half_linear(x, w, bias)
                }
            }
            (None, Some(q)) => quant_linear(x, q.values.val(), q.scales.val(), q.layout, bias),
            (None, None) => unreachable!("LlmLinear's constructor sets one weight"),
        }
    }
}
