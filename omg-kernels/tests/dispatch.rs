//! The dispatch around the kernels: which backends take them, the fallback of a backend
//! that wraps Flex, the instruction sets in effect, and operands that are views.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor, TensorData};
use omg_kernels::*;

type Wrapped = Autodiff<Flex>;

fn random<const D: usize>(shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::random(shape, Distribution::Uniform(-3.0, 3.0), &Default::default())
}

/// The same values on the wrapped backend.
fn wrapped<const D: usize>(x: &Tensor<Flex, D>) -> Tensor<Wrapped, D> {
    Tensor::from_data(x.to_data(), &Default::default())
}

#[test]
fn autodiff_of_flex_is_recognised_as_wrapping_flex() {
    assert!(wraps_flex::<Wrapped>());
    assert!(!has_fast_kernels::<Wrapped>());
    // Flex itself has the kernels and is not "wrapped"
    assert!(!wraps_flex::<Flex>());
    assert!(has_fast_kernels::<Flex>());
}

#[test]
fn a_wrapped_flex_takes_the_fallback_and_gets_its_answer() {
    let x = random([5, 40]);
    let ours = gelu(wrapped(&x)).into_data().to_vec::<f32>().unwrap();
    let fallback = gelu_fallback(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(ours, fallback);
}

#[test]
#[should_panic(
    expected = "masked_attention: k is [2, 5, 16], expected [B=2, Nk, C=32] (q is [2, 3, 32])"
)]
fn a_wrapped_flex_gets_the_same_shape_check() {
    let (q, k) = (random([2, 3, 32]), random([2, 5, 16]));
    masked_attention(wrapped(&q), wrapped(&k), wrapped(&k), 4, None);
}

#[test]
fn the_instruction_sets_follow_omg_kernels_isa() {
    let isa = kernel_isa();
    match std::env::var("OMG_KERNELS_ISA").as_deref() {
        Ok("portable") => assert_eq!(isa, "portable"),
        Ok("no-f16c") => assert!(isa == "avx2+fma" || isa == "portable", "{isa}"),
        Ok("avx2") => assert!(
            ["avx2+fma+f16c", "avx2+fma", "portable"].contains(&isa),
            "{isa}"
        ),
        _ => assert!(
            [
                "avx512-vnni+avx2+fma+f16c",
                "avx2+fma+f16c",
                "avx2+fma",
                "portable"
            ]
            .contains(&isa),
            "{isa}"
        ),
    }
}

/// A row slice whose storage nothing else holds: a contiguous view at an offset into a
/// larger buffer. The in-place kernels must write the view's elements, not the buffer's
/// first ones.
#[test]
fn silu_mul_of_a_view_into_a_larger_buffer() {
    let (big, up) = (random([4, 300]), random([2, 300]));
    let values = big.clone().slice([1..3, 0..300]).into_data();
    let gate = big.slice([1..3, 0..300]); // the only holder of the buffer now
    let expected = silu_mul_fallback(Tensor::from_data(values, &Default::default()), up.clone());
    let d = (silu_mul(gate, up) - expected).abs().max().into_scalar();
    assert!(d < 1e-5, "{d}");
}

#[test]
fn gelu_of_a_view_into_a_larger_buffer() {
    let big = random([4, 300]);
    let values = big.clone().slice([2..4, 0..300]).into_data();
    let x = big.slice([2..4, 0..300]);
    let expected = gelu_fallback(Tensor::<Flex, 2>::from_data(values, &Default::default()));
    let d = (gelu(x) - expected).abs().max().into_scalar();
    assert!(d < 2e-6, "{d}");
}

#[test]
fn a_masked_attention_mask_that_is_a_view() {
    let device = Default::default();
    let (q, k, v) = (random([1, 4, 8]), random([1, 6, 8]), random([1, 6, 8]));
    // a [1, 4, 6] mask cut from a larger one, first key never blocked
    let blocked: Vec<bool> = (0..2 * 4 * 7).map(|i| i % 7 != 0 && i % 3 == 0).collect();
    let big = Tensor::<Flex, 3, burn::tensor::Bool>::from_data(
        TensorData::new(blocked, [2, 4, 7]),
        &device,
    );
    let mask = big.slice([1..2, 0..4, 0..6]);
    let ours = masked_attention(q.clone(), k.clone(), v.clone(), 2, Some(mask.clone()));
    let expected = masked_attention_fallback(q, k, v, 2, Some(mask));
    let d = (ours - expected).abs().max().into_scalar();
    assert!(d < 1e-5, "{d}");
}
