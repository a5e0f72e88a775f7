//! A float dtype conversion rounded to nearest, ties to even, as PyTorch's `.to(dtype)`.
//!
//! burn-flex 0.21's `cast` to bf16 goes through `f64` and `half` 2.7's f64 → bf16, which
//! drops the low 32 bits of the `f64` before it rounds. The three lowest mantissa bits
//! of an `f32` are among them, so a value just above a tie is taken for a tie and
//! rounded to even: `1 + 2⁻⁸ + 2⁻²³` becomes `1.0`, where PyTorch (and `half`'s own
//! f32 → bf16) give `1.0078125`. About one value in 30 000 of uniform inputs is off by
//! one bf16 step, enough to move a half-precision linear's output by two. On Flex this
//! module converts on the host with `half`'s f32 conversions instead (what burn's
//! `TensorData::convert_dtype` uses); other backends cast on the device.

use burn::tensor::{FloatDType, Tensor, backend::Backend};

/// `tensor` in the float `dtype`, rounded to nearest (ties to even) from f32.
pub fn cast_float<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    dtype: FloatDType,
) -> Tensor<B, D> {
    let target = burn::tensor::DType::from(dtype);
    if tensor.dtype() == target {
        return tensor;
    }
    #[cfg(feature = "flex")]
    if crate::flex::is_flex::<B>() {
        use burn::tensor::TensorCreationOptions;
        let device = tensor.device();
        let data = tensor.into_data().convert_dtype(target);
        let options = TensorCreationOptions::new(device).with_dtype(target);
        return Tensor::from_data(data, options);
    }
    tensor.cast(dtype)
}

/// `tensor` rounded to the half-precision `dtype` and widened back to f32 (on Flex in
/// one trip to the host values and back).
pub fn round_to<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    dtype: FloatDType,
) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    if crate::flex::is_flex::<B>() {
        use burn::tensor::DType;
        let device = tensor.device();
        let data = tensor
            .into_data()
            .convert_dtype(DType::from(dtype))
            .convert_dtype(DType::F32);
        return Tensor::from_data(data, &device);
    }
    cast_float(cast_float(tensor, dtype), FloatDType::F32)
}
