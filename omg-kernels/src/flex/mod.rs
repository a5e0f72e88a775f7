//! The Flex kernels and the bridge between generic burn tensors and Flex's primitive.

pub(crate) mod attention;
pub(crate) mod conv;
pub(crate) mod deform;
pub(crate) mod depthwise;
pub(crate) mod gelu;
pub(crate) mod gemv;
pub(crate) mod quant;
pub(crate) mod rope;
pub(crate) mod silu;

pub(crate) use crate::linear;

use std::any::{Any, TypeId};

use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive, backend::Backend};
use burn_flex::{Flex, FlexTensor};

/// Whether `B` is burn's Flex backend.
pub(crate) fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Flex>()
}

/// Whether `x` runs on a Flex kernel: `B` is Flex and `x` holds f32.
pub(crate) fn takes<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    is_flex::<B>() && x.dtype() == DType::F32
}

/// `x` (of `B` = Flex, f32, see [`takes`]) as a contiguous Flex tensor at offset 0.
pub(crate) fn into_flex<B: Backend, const D: usize>(x: Tensor<B, D>) -> FlexTensor {
    let boxed: Box<dyn Any> = Box::new(x.into_primitive().tensor());
    let tensor = *boxed
        .downcast::<FlexTensor>()
        .expect("into_flex is only called when B is Flex");
    if tensor.as_slice::<f32>().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// A float tensor of `B` (Flex) of any float dtype as a contiguous tensor at offset 0.
pub(crate) fn into_flex_float<B: Backend, const D: usize>(x: Tensor<B, D>) -> FlexTensor {
    contiguous(Box::new(x.into_primitive().tensor()))
}

/// A bool tensor of `B` (Flex) as a contiguous byte tensor (one byte per element).
pub(crate) fn into_flex_bool<B: Backend, const D: usize>(
    x: Tensor<B, D, burn::tensor::Bool>,
) -> FlexTensor {
    contiguous(Box::new(x.into_primitive()))
}

/// An int tensor of `B` (Flex) as a contiguous tensor at offset 0, in its own dtype.
pub(crate) fn into_flex_int<B: Backend, const D: usize>(
    x: Tensor<B, D, burn::tensor::Int>,
) -> FlexTensor {
    contiguous(Box::new(x.into_primitive()))
}

/// A bool or int primitive of Flex as a contiguous tensor at offset 0.
fn contiguous(primitive: Box<dyn Any>) -> FlexTensor {
    primitive
        .downcast::<FlexTensor>()
        .expect("only called when B is Flex")
        .to_contiguous()
}

/// The bytes of a bool tensor made by [`into_flex_bool`].
pub(crate) fn bytes(x: &FlexTensor) -> &[u8] {
    let n = x.layout().num_elements();
    &x.bytes()[..n]
}

/// The f32 elements of a tensor made by [`into_flex`], row-major.
pub(crate) fn f32s(x: &FlexTensor) -> &[f32] {
    x.as_slice::<f32>()
        .expect("contiguous f32, made by into_flex")
}

/// A new contiguous f32 Flex tensor.
pub(crate) fn new_f32(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.to_vec()))
}

/// A tensor of `B` (which is Flex) from a kernel's output.
pub(crate) fn from_flex<B: Backend, const D: usize>(out: FlexTensor) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(out);
    let primitive = *boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("from_flex is only called when B is Flex");
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// `a · b + c`, fused when the caller was compiled with FMA.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` in f32 (Cephes' expf: `x = n·ln2 + r`, a degree-6 polynomial for `e^r`, then
/// `2^n` by the exponent bits; within 2 ulp); `−∞ → 0`.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.5, 88.5);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = madd::<FMA>(n, -0.693_359_4, x);
    let r = madd::<FMA>(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4f32;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let p = madd::<FMA>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// Runs `$body::<true>` in an AVX2+FMA-compiled copy when the CPU has them, else the
/// baseline `$body::<false>`.
macro_rules! multiversion {
    ($avx2:ident, $body:ident, ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2($($arg: $ty),*) $(-> $ret)? {
            $body::<true>($($arg),*)
        }

        /// Dispatches to the fastest compiled copy for this CPU.
        fn run($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the features `$avx2` was compiled with.
                return unsafe { $avx2($($arg),*) };
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use multiversion;
