//! Float dtype conversions of Flex tensors on the host, rounded to nearest (ties to
//! even) by `half`'s f32 conversions, as burn's `TensorData::convert_dtype` does (see
//! `crate::cast` for why not Flex's own cast).

use burn::tensor::DType;
use burn_flex::FlexTensor;

/// `x` in the float `dtype`.
pub(crate) fn cast(x: FlexTensor, dtype: DType) -> FlexTensor {
    FlexTensor::from_data(x.into_data().convert_dtype(dtype))
}

/// `x` rounded to the float `dtype` and widened back to f32.
pub(crate) fn round_to(x: FlexTensor, dtype: DType) -> FlexTensor {
    FlexTensor::from_data(x.into_data().convert_dtype(dtype).convert_dtype(DType::F32))
}
