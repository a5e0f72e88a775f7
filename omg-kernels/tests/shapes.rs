//! Every kernel entry (and its fallback) panics on operands whose shapes do not fit,
//! with a message naming the function, the operand and both shapes, on Flex, where the
//! kernels would otherwise read past a buffer or return a silently wrong answer.

use burn::backend::Flex;
use burn::tensor::{Bool, DType, Distribution, FloatDType, Int, Tensor, TensorData};
use omg_kernels::*;

type B = Flex;

fn random<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), &Default::default())
}

fn mask(shape: [usize; 3]) -> Tensor<B, 3, Bool> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(vec![false; n], shape), &Default::default())
}

// ---- matmul -------------------------------------------------------------------------

/// Unchecked, the kernel would read the right operand as `[2, 5, 3]` past its end.
#[test]
#[should_panic(expected = "matmul: b is [2, 4, 3], expected [N=2, K=5, P] (a is [2, 20, 5])")]
fn matmul_of_mismatched_depths() {
    matmul(random([2, 20, 5]), random([2, 4, 3]));
}

/// No broadcasting of the batch: a batch of one against two is refused.
#[test]
#[should_panic(
    expected = "matmul_fallback: b is [1, 5, 3], expected [N=2, K=5, P] (a is [2, 20, 5])"
)]
fn matmul_fallback_checks_the_same() {
    matmul_fallback(random([2, 20, 5]), random([1, 5, 3]));
}

// ---- linear -------------------------------------------------------------------------

/// Unchecked, this input would give a product over the first 5 of the 6 input rows of the
/// weight.
#[test]
#[should_panic(expected = "linear_with: x is [1, 5], expected [.., in=6] (weight is [6, 4])")]
fn linear_with_an_input_narrower_than_the_weight() {
    linear_with(random([1, 5]), random([6, 4]), None);
}

#[test]
#[should_panic(expected = "linear_with: x is [2, 1, 7], expected [.., in=6] (weight is [6, 4])")]
fn linear_with_an_input_wider_than_the_weight() {
    linear_with(random([2, 1, 7]), random([6, 4]), None);
}

#[test]
#[should_panic(expected = "linear_with: bias is [5], expected [out=4] (weight is [6, 4])")]
fn linear_with_a_bias_of_the_wrong_width() {
    linear_with(random([1, 6]), random([6, 4]), Some(random([5])));
}

#[test]
#[should_panic(expected = "linear_with: x is [20, 5], expected [.., in=6] (weight is [6, 4])")]
fn linear_with_many_rows_checks_too() {
    // more rows than the few-row kernel takes: burn's matmul path, the same check
    linear_with(random([20, 5]), random([6, 4]), None);
}

#[test]
#[should_panic(expected = "linear: x is [1, 3], expected [.., in=6] (weight is [6, 4])")]
fn linear_of_a_layer_names_itself() {
    let layer = burn::nn::LinearConfig::new(6, 4).init::<B>(&Default::default());
    linear(&layer, random([1, 3]));
}

#[test]
#[should_panic(expected = "linear_fallback: x is [1, 5], expected [.., in=6] (weight is [6, 4])")]
fn linear_fallback_checks_the_same() {
    linear_fallback(random([1, 5]), random([6, 4]), None);
}

// ---- half_linear --------------------------------------------------------------------

fn half_weight(dtype: FloatDType, shape: [usize; 2]) -> Tensor<B, 2> {
    let w = cast_float(random(shape), dtype);
    assert_eq!(w.dtype(), DType::from(dtype));
    w
}

/// Unchecked, this input would make the AVX2 kernel read one row past the weight's buffer
/// (release builds).
#[test]
#[should_panic(
    expected = "half_linear: x is [2, 1, 17], expected [.., in=16] (weight is [16, 40])"
)]
fn half_linear_bf16_with_one_input_more_than_the_weight() {
    half_linear(
        random([2, 1, 17]),
        half_weight(FloatDType::BF16, [16, 40]),
        None,
    );
}

#[test]
#[should_panic(expected = "half_linear: x is [8, 65], expected [.., in=64] (weight is [64, 24])")]
fn half_linear_f16_with_one_input_more_than_the_weight() {
    half_linear(
        random([8, 65]),
        half_weight(FloatDType::F16, [64, 24]),
        None,
    );
}

#[test]
#[should_panic(expected = "half_linear: x is [1, 15], expected [.., in=16] (weight is [16, 40])")]
fn half_linear_with_an_input_narrower_than_the_weight() {
    half_linear(
        random([1, 15]),
        half_weight(FloatDType::BF16, [16, 40]),
        None,
    );
}

#[test]
#[should_panic(expected = "half_linear: x is [12, 17], expected [.., in=16] (weight is [16, 40])")]
fn half_linear_many_rows_checks_too() {
    half_linear(
        random([12, 17]),
        half_weight(FloatDType::BF16, [16, 40]),
        None,
    );
}

#[test]
#[should_panic(expected = "half_linear: x is [1, 7], expected [.., in=6] (weight is [6, 4])")]
fn half_linear_with_an_f32_weight_names_itself() {
    half_linear(random([1, 7]), random([6, 4]), None);
}

#[test]
#[should_panic(
    expected = "half_linear_fallback: bias is [41], expected [out=40] (weight is [16, 40])"
)]
fn half_linear_fallback_checks_the_bias() {
    let w = half_weight(FloatDType::BF16, [16, 40]);
    half_linear_fallback(random([1, 16]), w, Some(random([41])));
}

// ---- quant_linear -------------------------------------------------------------------

fn quantized(
    bits: QuantBits,
    out: usize,
    inp: usize,
) -> (Tensor<B, 2, Int>, Tensor<B, 2>, QuantLayout) {
    let w: Vec<f32> = (0..out * inp).map(|i| (i % 13) as f32 - 6.0).collect();
    let q = QuantizedMatrix::quantize(&w, bits, out, inp);
    let layout = q.layout;
    let (values, scales) = q.into_tensors::<B>(&Default::default());
    (values, scales, layout)
}

#[test]
#[should_panic(
    expected = "quant_linear: x is [1, 65], expected [.., in=64] (layout is QuantLayout \
                           { bits: Int8, out_features: 3, in_features: 64 })"
)]
fn quant_linear_with_an_input_wider_than_the_layout() {
    let (values, scales, layout) = quantized(QuantBits::Int8, 3, 64);
    quant_linear(random([1, 65]), values, scales, layout, None);
}

#[test]
#[should_panic(expected = "quant_linear: x is [2, 63], expected [.., in=64]")]
fn quant_linear_with_an_input_narrower_than_the_layout() {
    let (values, scales, layout) = quantized(QuantBits::Int4, 3, 64);
    quant_linear(random([2, 63]), values, scales, layout, None);
}

#[test]
#[should_panic(expected = "quant_linear: values is [3, 64], expected [out=3, row_bytes=32]")]
fn quant_linear_with_values_of_another_layout() {
    let (values, scales, layout) = quantized(QuantBits::Int8, 3, 64);
    let int4 = QuantLayout {
        bits: QuantBits::Int4,
        ..layout
    };
    quant_linear(random([1, 64]), values, scales, int4, None);
}

#[test]
#[should_panic(expected = "quant_linear: scales is [3, 2], expected [out=3, groups=1]")]
fn quant_linear_with_scales_of_another_layout() {
    let (values, _, layout) = quantized(QuantBits::Int8, 3, 64);
    let (_, scales, _) = quantized(QuantBits::Int8, 3, 100);
    quant_linear(random([1, 64]), values, scales, layout, None);
}

#[test]
#[should_panic(expected = "quant_linear_fallback: bias is [4], expected [out=3]")]
fn quant_linear_fallback_checks_the_bias() {
    let (values, scales, layout) = quantized(QuantBits::Int8, 3, 64);
    quant_linear_fallback(random([1, 64]), values, scales, layout, Some(random([4])));
}

#[test]
#[should_panic(expected = "dequantize: scales is [3, 2], expected [out=3, groups=1]")]
fn dequantize_checks_the_scales() {
    let (values, _, layout) = quantized(QuantBits::Int8, 3, 64);
    let (_, scales, _) = quantized(QuantBits::Int8, 3, 100);
    dequantize(values, scales, layout);
}

// ---- causal_attention ---------------------------------------------------------------

#[test]
#[should_panic(
    expected = "causal_attention: k is [1, 2, 16, 4], expected [B=1, KV, S, D=8] (q is [1, 4, 3, 8])"
)]
fn causal_attention_with_keys_of_another_head_dim() {
    let k = random([1, 2, 16, 4]);
    causal_attention(random([1, 4, 3, 8]), k.clone(), k, 3, &[]);
}

#[test]
#[should_panic(expected = "causal_attention: v is [1, 2, 15, 8], expected [B=1, KV=2, S=16, D=8]")]
fn causal_attention_with_fewer_values_than_keys() {
    causal_attention(
        random([1, 4, 3, 8]),
        random([1, 2, 16, 8]),
        random([1, 2, 15, 8]),
        3,
        &[],
    );
}

#[test]
#[should_panic(
    expected = "causal_attention: KV = 3 key/value heads do not divide H = 4 query heads"
)]
fn causal_attention_with_kv_heads_not_dividing_the_heads() {
    let k = random([1, 3, 16, 8]);
    causal_attention(random([1, 4, 3, 8]), k.clone(), k, 3, &[]);
}

#[test]
#[should_panic(expected = "causal_attention: keys = 17 is not within T = 3 … S = 16")]
fn causal_attention_with_more_keys_than_the_cache_holds() {
    let k = random([1, 2, 16, 8]);
    causal_attention(random([1, 4, 3, 8]), k.clone(), k, 17, &[]);
}

#[test]
#[should_panic(expected = "causal_attention_fallback: keys = 2 is not within T = 3 … S = 16")]
fn causal_attention_fallback_with_fewer_keys_than_queries() {
    let k = random([1, 2, 16, 8]);
    causal_attention_fallback(random([1, 4, 3, 8]), k.clone(), k, 2, &[]);
}

#[test]
#[should_panic(expected = "causal_attention: 1 left-padding counts for a batch of B = 2")]
fn causal_attention_with_padding_for_another_batch() {
    let k = random([2, 2, 16, 8]);
    causal_attention(random([2, 4, 3, 8]), k.clone(), k, 3, &[1]);
}

// ---- write_positions ----------------------------------------------------------------

#[test]
#[should_panic(
    expected = "write_positions: value is [1, 2, 3, 4], expected [B=1, H=2, T, D=8] (cache is [1, 2, 16, 8])"
)]
fn write_positions_with_another_head_dim() {
    write_positions(random([1, 2, 16, 8]), 0, random([1, 2, 3, 4]));
}

#[test]
#[should_panic(
    expected = "write_positions_fallback: positions 14 … 14 + 3 do not fit a cache of S = 16"
)]
fn write_positions_past_the_end_of_the_cache() {
    write_positions_fallback(random([1, 2, 16, 8]), 14, random([1, 2, 3, 8]));
}

// ---- grouped_heads ------------------------------------------------------------------

#[test]
#[should_panic(
    expected = "grouped_heads: slots 4 … 4 + 3 are not within the P = 6 slots of qkv [1, 3, 2, 6, 8]"
)]
fn grouped_heads_past_the_last_slot() {
    grouped_heads(random([1, 3, 2, 6, 8]), 4, 3, None);
}

#[test]
#[should_panic(expected = "grouped_heads_fallback: cos is [1, 1, 2, 8], expected [1, 1, T=3, D=8]")]
fn grouped_heads_with_tables_of_another_length() {
    let tables = (random([1, 1, 2, 8]), random([1, 1, 3, 8]));
    grouped_heads_fallback(random([1, 3, 2, 6, 8]), 0, 4, Some(tables));
}

// ---- masked_attention ---------------------------------------------------------------

/// Unchecked, this input would run gemm over k with q's row stride: past the end of k.
#[test]
#[should_panic(
    expected = "masked_attention: k is [2, 5, 16], expected [B=2, Nk, C=32] (q is [2, 3, 32])"
)]
fn masked_attention_with_k_narrower_than_q() {
    masked_attention(
        random([2, 3, 32]),
        random([2, 5, 16]),
        random([2, 5, 16]),
        4,
        None,
    );
}

#[test]
#[should_panic(
    expected = "masked_attention: v is [2, 5, 16], expected [B=2, Nk=5, C=32] (q is [2, 3, 32], \
                           k is [2, 5, 32])"
)]
fn masked_attention_with_v_narrower_than_q() {
    masked_attention(
        random([2, 3, 32]),
        random([2, 5, 32]),
        random([2, 5, 16]),
        4,
        None,
    );
}

#[test]
#[should_panic(expected = "masked_attention: v is [2, 4, 32], expected [B=2, Nk=5, C=32]")]
fn masked_attention_with_fewer_values_than_keys() {
    masked_attention(
        random([2, 3, 32]),
        random([2, 5, 32]),
        random([2, 4, 32]),
        4,
        None,
    );
}

#[test]
#[should_panic(expected = "masked_attention: k is [1, 5, 32], expected [B=2, Nk, C=32]")]
fn masked_attention_with_another_batch() {
    masked_attention(
        random([2, 3, 32]),
        random([1, 5, 32]),
        random([1, 5, 32]),
        4,
        None,
    );
}

#[test]
#[should_panic(expected = "masked_attention: heads = 3 does not divide C = 32 (q is [2, 3, 32])")]
fn masked_attention_with_heads_not_dividing_the_channels() {
    let k = random([2, 5, 32]);
    masked_attention(random([2, 3, 32]), k.clone(), k, 3, None);
}

#[test]
#[should_panic(expected = "masked_attention: heads = 0 does not divide C = 32")]
fn masked_attention_with_no_heads() {
    let k = random([2, 5, 32]);
    masked_attention(random([2, 3, 32]), k.clone(), k, 0, None);
}

#[test]
#[should_panic(
    expected = "masked_attention: mask is [2, 3, 4], expected [B=2, Nq=3, Nk=5] (q is [2, 3, 32], \
                           k is [2, 5, 32])"
)]
fn masked_attention_with_a_mask_of_the_wrong_shape() {
    let k = random([2, 5, 32]);
    masked_attention(random([2, 3, 32]), k.clone(), k, 4, Some(mask([2, 3, 4])));
}

#[test]
#[should_panic(expected = "masked_attention: mask is [1, 3, 5], expected [B=2, Nq=3, Nk=5]")]
fn masked_attention_does_not_broadcast_the_mask() {
    let k = random([2, 5, 32]);
    masked_attention(random([2, 3, 32]), k.clone(), k, 4, Some(mask([1, 3, 5])));
}

#[test]
#[should_panic(expected = "masked_attention_fallback: k is [2, 5, 16], expected [B=2, Nk, C=32]")]
fn masked_attention_fallback_checks_the_same() {
    masked_attention_fallback(
        random([2, 3, 32]),
        random([2, 5, 16]),
        random([2, 5, 16]),
        4,
        None,
    );
}

// ---- ms_deform_attn -----------------------------------------------------------------

/// Operands of `ms_deform_attn` for `shapes`, 2 heads of 4 channels, 3 queries, 2 points.
#[allow(clippy::type_complexity)]
fn deform_operands(
    b: usize,
    n: usize,
    levels: usize,
) -> (Tensor<B, 4>, Tensor<B, 3>, Tensor<B, 6>, Tensor<B, 4>) {
    (
        random([b, n, 2, 4]),
        random([b, 3, 2]),
        random([b, 3, 2, levels, 2, 2]),
        random([b, 3, 2, levels * 2]),
    )
}

#[test]
#[should_panic(
    expected = "ms_deform_attn: value is [2, 15, 2, 4], expected [B, N, heads, dh] with N = Σ h·w \
                           of shapes [(2, 3), (2, 4)]"
)]
fn ms_deform_attn_with_more_tokens_than_the_levels_hold() {
    let (value, reference, offsets, logits) = deform_operands(2, 15, 2);
    ms_deform_attn(value, &[(2, 3), (2, 4)], reference, offsets, logits);
}

#[test]
#[should_panic(
    expected = "ms_deform_attn: offsets is [2, 3, 2, 3, 2, 2], expected [B=2, Nq, heads=2, levels=2, \
                           points, 2]"
)]
fn ms_deform_attn_with_offsets_for_another_number_of_levels() {
    let (value, reference, offsets, logits) = deform_operands(2, 14, 3);
    ms_deform_attn(value, &[(2, 3), (2, 4)], reference, offsets, logits);
}

#[test]
#[should_panic(
    expected = "ms_deform_attn: reference_points is [3, 3, 2], expected [B=2 or 1, Nq=3, 2]"
)]
fn ms_deform_attn_with_reference_points_of_another_batch() {
    let (value, _, offsets, logits) = deform_operands(2, 14, 2);
    ms_deform_attn(value, &[(2, 3), (2, 4)], random([3, 3, 2]), offsets, logits);
}

#[test]
#[should_panic(
    expected = "ms_deform_attn: attention_logits is [2, 3, 2, 5], expected [B=2, Nq=3, heads=2, \
                           levels·points=4]"
)]
fn ms_deform_attn_with_logits_of_another_number_of_samples() {
    let (value, reference, offsets, _) = deform_operands(2, 14, 2);
    ms_deform_attn(
        value,
        &[(2, 3), (2, 4)],
        reference,
        offsets,
        random([2, 3, 2, 5]),
    );
}

#[test]
#[should_panic(
    expected = "ms_deform_attn_fallback: value is [1, 15, 2, 4], expected [B, N, heads, dh]"
)]
fn ms_deform_attn_fallback_checks_the_same() {
    let (value, reference, offsets, logits) = deform_operands(1, 15, 2);
    ms_deform_attn_fallback(value, &[(2, 3), (2, 4)], reference, offsets, logits);
}

// ---- convolutions -------------------------------------------------------------------

#[test]
#[should_panic(
    expected = "conv2d_same: weight is [4, 2, 3, 3], expected [Cout, Cin=3, k, k] (x is [1, 3, 5, 5])"
)]
fn conv2d_same_with_a_weight_of_other_input_channels() {
    conv2d_same(random([1, 3, 5, 5]), random([4, 2, 3, 3]), None);
}

#[test]
#[should_panic(expected = "conv2d_same: weight is [4, 3, 2, 2], expected a k×k filter with k odd")]
fn conv2d_same_with_an_even_filter() {
    conv2d_same(random([1, 3, 5, 5]), random([4, 3, 2, 2]), None);
}

#[test]
#[should_panic(expected = "conv2d_same: weight is [4, 3, 3, 5], expected a k×k filter with k odd")]
fn conv2d_same_with_a_filter_that_is_not_square() {
    conv2d_same(random([1, 3, 5, 5]), random([4, 3, 3, 5]), None);
}

#[test]
#[should_panic(expected = "conv2d_same: bias is [3], expected [Cout=4] (weight is [4, 3, 3, 3])")]
fn conv2d_same_with_a_bias_of_another_width() {
    conv2d_same(
        random([1, 3, 5, 5]),
        random([4, 3, 3, 3]),
        Some(random([3])),
    );
}

#[test]
#[should_panic(
    expected = "conv2d_same_fallback: weight is [4, 3, 2, 2], expected a k×k filter with k odd"
)]
fn conv2d_same_fallback_checks_the_same() {
    conv2d_same_fallback(random([1, 3, 5, 5]), random([4, 3, 2, 2]), None);
}

#[test]
#[should_panic(
    expected = "depthwise_conv2d_nhwc: weight is [6, 1, 7, 7], expected [C=8, 1, k, k] (x is [1, 4, 4, 8])"
)]
fn depthwise_conv_with_a_weight_of_other_channels() {
    depthwise_conv2d_nhwc(random([1, 4, 4, 8]), random([6, 1, 7, 7]), None);
}

#[test]
#[should_panic(expected = "depthwise_conv2d_nhwc: weight is [8, 2, 3, 3], expected [C=8, 1, k, k]")]
fn depthwise_conv_with_a_grouped_weight() {
    depthwise_conv2d_nhwc(random([1, 4, 4, 8]), random([8, 2, 3, 3]), None);
}

#[test]
#[should_panic(
    expected = "depthwise_conv2d_nhwc: weight is [8, 1, 3, 5], expected a k×k filter with k odd"
)]
fn depthwise_conv_with_a_filter_that_is_not_square() {
    depthwise_conv2d_nhwc(random([1, 4, 4, 8]), random([8, 1, 3, 5]), None);
}

#[test]
#[should_panic(expected = "depthwise_conv2d_nhwc: bias is [7], expected [C=8] (x is [1, 4, 4, 8])")]
fn depthwise_conv_with_a_bias_of_another_width() {
    depthwise_conv2d_nhwc(
        random([1, 4, 4, 8]),
        random([8, 1, 3, 3]),
        Some(random([7])),
    );
}

#[test]
#[should_panic(
    expected = "depthwise_conv2d_nhwc_fallback: weight is [6, 1, 7, 7], expected [C=8, 1, k, k]"
)]
fn depthwise_conv_fallback_checks_the_same() {
    depthwise_conv2d_nhwc_fallback(random([1, 4, 4, 8]), random([6, 1, 7, 7]), None);
}

// ---- element-wise -------------------------------------------------------------------

/// Unchecked, the fallback would broadcast `up` over `gate`'s rows.
#[test]
#[should_panic(expected = "silu_mul: up is [1, 70], expected [3, 70] (gate is [3, 70])")]
fn silu_mul_does_not_broadcast() {
    silu_mul(random([3, 70]), random([1, 70]));
}

#[test]
#[should_panic(expected = "silu_mul: up is [3, 69], expected [3, 70] (gate is [3, 70])")]
fn silu_mul_with_operands_of_other_widths() {
    silu_mul(random([3, 70]), random([3, 69]));
}

#[test]
#[should_panic(expected = "silu_mul_fallback: up is [1, 70], expected [3, 70] (gate is [3, 70])")]
fn silu_mul_fallback_does_not_broadcast_either() {
    silu_mul_fallback(random([3, 70]), random([1, 70]));
}

#[test]
#[should_panic(expected = "rotate_half_rope: x is [1, 2, 5, 7], expected [B, H, T, D] with D even")]
fn rope_of_an_odd_head_dim() {
    rotate_half_rope(
        random([1, 2, 5, 7]),
        random([1, 1, 5, 7]),
        random([1, 1, 5, 7]),
    );
}

#[test]
#[should_panic(
    expected = "rotate_half_rope: cos is [1, 1, 6, 8], expected [1, 1, T=5, D=8] (x is [1, 2, 5, 8])"
)]
fn rope_with_tables_for_other_positions() {
    rotate_half_rope(
        random([1, 2, 5, 8]),
        random([1, 1, 6, 8]),
        random([1, 1, 5, 8]),
    );
}

/// Unchecked, the fallback would broadcast per-batch tables the kernel does not take.
#[test]
#[should_panic(expected = "rotate_half_rope: sin is [2, 1, 5, 8], expected [1, 1, T=5, D=8]")]
fn rope_with_per_batch_tables() {
    rotate_half_rope(
        random([2, 2, 5, 8]),
        random([1, 1, 5, 8]),
        random([2, 1, 5, 8]),
    );
}

#[test]
#[should_panic(
    expected = "rotate_half_rope_fallback: cos is [1, 1, 6, 8], expected [1, 1, T=5, D=8]"
)]
fn rope_fallback_checks_the_same() {
    rotate_half_rope_fallback(
        random([1, 2, 5, 8]),
        random([1, 1, 6, 8]),
        random([1, 1, 5, 8]),
    );
}

/// `gelu`, `cast_float` and `round_to` take one operand of any shape: nothing can
/// mismatch. They still run through the boundary: empty and strided inputs are fine.
#[test]
fn single_operand_entries_take_any_shape() {
    let empty = random([0, 3]);
    assert_eq!(gelu(empty.clone()).dims(), [0, 3]);
    assert_eq!(round_to(empty, FloatDType::BF16).dims(), [0, 3]);
    let strided = random([4, 6]).swap_dims(0, 1);
    let cast = cast_float(strided.clone(), FloatDType::F16);
    assert_eq!((cast.dims(), cast.dtype()), ([6, 4], DType::F16));
    let back = cast_float(cast, FloatDType::F32)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let rounded = round_to(strided, FloatDType::F16)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(back, rounded);
}
