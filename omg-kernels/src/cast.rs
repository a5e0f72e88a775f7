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

use burn::tensor::{DType, FloatDType, Tensor, backend::Backend};

use crate::dispatch::{Entry, Site, dispatch};

/// `tensor` in the float `dtype`, rounded to nearest (ties to even) from f32.
pub fn cast_float<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    dtype: FloatDType,
) -> Tensor<B, D> {
    if tensor.dtype() == DType::from(dtype) {
        return tensor;
    }
    dispatch(
        Cast::<D> {
            dtype,
            widen: false,
        },
        tensor,
    )
}

/// `tensor` rounded to the half-precision `dtype` and widened back to f32 (on Flex in
/// one trip to the host values and back).
pub fn round_to<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    dtype: FloatDType,
) -> Tensor<B, D> {
    dispatch(Cast::<D> { dtype, widen: true }, tensor)
}

/// [`cast_float`] (`widen: false`) or [`round_to`] (`widen: true`) as a kernel entry:
/// any shape, any float dtype.
struct Cast<const D: usize> {
    dtype: FloatDType,
    widen: bool,
}

impl<B: Backend, const D: usize> Entry<B> for Cast<D> {
    type Operands = Tensor<B, D>;
    type Output = Tensor<B, D>;

    fn name(&self) -> &'static str {
        if self.widen { "round_to" } else { "cast_float" }
    }

    fn check(&self, _: Site, _: &Tensor<B, D>) {}

    fn kernel_takes(&self, _: &Tensor<B, D>) -> bool {
        true
    }

    #[cfg(feature = "flex")]
    fn kernel(self, x: burn_flex::FlexTensor) -> burn_flex::FlexTensor {
        let dtype = DType::from(self.dtype);
        if self.widen {
            crate::flex::cast::round_to(x, dtype)
        } else {
            crate::flex::cast::cast(x, dtype)
        }
    }

    fn fallback(self, x: Tensor<B, D>) -> Tensor<B, D> {
        if self.widen {
            cast_float(cast_float(x, self.dtype), FloatDType::F32)
        } else {
            x.cast(self.dtype)
        }
    }
}
