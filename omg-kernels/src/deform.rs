//! The core of mmcv's multi-scale deformable attention after its linear layers
//! (`multi_scale_deformable_attn_pytorch` and the lines before it): sampling locations
//! from reference points and offsets, softmax of the attention weights, bilinear samples
//! of every level, weighted and summed.

use burn::tensor::{
    Tensor, TensorData, activation::softmax, backend::Backend, ops::GridSampleOptions,
};
#[cfg(feature = "flex")]
use burn_flex::FlexTensor;

use crate::dispatch::{Dim, Entry, Site, dispatch, expect, fallback, is_f32, require};

/// * `value` `[B, N, heads, dh]`: the value tokens of all levels, concatenated in the
///   order of `shapes` (`N = Σ h·w`, each level row-major);
/// * `shapes`: `(h, w)` of every level;
/// * `reference_points` `[B or 1, Nq, 2]`: normalised `(x, y)`, shared by all levels;
/// * `offsets` `[B, Nq, heads, levels, points, 2]`: `sampling_offsets` output, `(x, y)`
///   in pixels of each level (location = reference + offset / (w, h));
/// * `attention_logits` `[B, Nq, heads, levels·points]`: `attention_weights` output
///   (softmax over levels·points).
///
/// Returns `[B, Nq, heads·dh]`: per head `Σ_{l,p} weight · bilinear(value_l, location)`,
/// heads concatenated — `F.grid_sample(.., mode="bilinear", padding_mode="zeros",
/// align_corners=False)` semantics (0 and 1 are the outer edges of a map; outside it
/// samples zeros).
///
/// # Panics
/// If the operands do not have these shapes (`N`, `levels` and `heads` included).
pub fn ms_deform_attn<B: Backend>(
    value: Tensor<B, 4>,
    shapes: &[(usize, usize)],
    reference_points: Tensor<B, 3>,
    offsets: Tensor<B, 6>,
    attention_logits: Tensor<B, 4>,
) -> Tensor<B, 3> {
    let operands = (value, reference_points, offsets, attention_logits);
    dispatch(Deform { shapes }, operands)
}

/// [`ms_deform_attn`] in plain burn ops, with `grid_sample_2d` level by level as mmcv's
/// pure-PyTorch path (the reference of the kernel), with the same shape check.
pub fn ms_deform_attn_fallback<B: Backend>(
    value: Tensor<B, 4>,
    shapes: &[(usize, usize)],
    reference_points: Tensor<B, 3>,
    offsets: Tensor<B, 6>,
    attention_logits: Tensor<B, 4>,
) -> Tensor<B, 3> {
    let operands = (value, reference_points, offsets, attention_logits);
    fallback(Deform { shapes }, operands)
}

/// [`ms_deform_attn`] as a kernel entry.
struct Deform<'a> {
    shapes: &'a [(usize, usize)],
}

impl<B: Backend> Entry<B> for Deform<'_> {
    /// `value`, `reference_points`, `offsets`, `attention_logits`.
    type Operands = (Tensor<B, 4>, Tensor<B, 3>, Tensor<B, 6>, Tensor<B, 4>);
    type Output = Tensor<B, 3>;

    fn name(&self) -> &'static str {
        "ms_deform_attn"
    }

    fn check(&self, at: Site, (value, reference, offsets, logits): &Self::Operands) {
        let shapes = self.shapes;
        let (vd, od) = (value.dims(), offsets.dims());
        let [b, n, heads, _] = vd;
        let tokens = shapes
            .iter()
            .try_fold(0usize, |sum, &(h, w)| h.checked_mul(w)?.checked_add(sum));
        require(at, tokens == Some(n), || {
            format!(
                "value is {vd:?}, expected [B, N, heads, dh] with N = Σ h·w of shapes {shapes:?}"
            )
        });
        let levels = shapes.len();
        let expected = [
            Dim::Is("B", b),
            Dim::Any("Nq"),
            Dim::Is("heads", heads),
            Dim::Is("levels", levels),
            Dim::Any("points"),
            Dim::Eq(2),
        ];
        expect(
            at,
            "offsets",
            &od,
            &expected,
            &[("value", &vd), ("shapes", &shapes)],
        );
        let [_, nq, _, _, points, _] = od;
        let expected = [Dim::IsOrOne("B", b), Dim::Is("Nq", nq), Dim::Eq(2)];
        expect(
            at,
            "reference_points",
            &reference.dims(),
            &expected,
            &[("offsets", &od)],
        );
        let expected = [
            Dim::Is("B", b),
            Dim::Is("Nq", nq),
            Dim::Is("heads", heads),
            Dim::Is("levels·points", levels.saturating_mul(points)),
        ];
        expect(
            at,
            "attention_logits",
            &logits.dims(),
            &expected,
            &[("offsets", &od)],
        );
    }

    fn kernel_takes(&self, (value, reference, offsets, logits): &Self::Operands) -> bool {
        let [_, _, _, levels, points, _] = offsets.dims();
        is_f32(value)
            && is_f32(reference)
            && is_f32(offsets)
            && is_f32(logits)
            && kernel_samples_fit(levels.saturating_mul(points))
    }

    #[cfg(feature = "flex")]
    fn kernel(
        self,
        (value, reference, offsets, logits): (FlexTensor, FlexTensor, FlexTensor, FlexTensor),
    ) -> FlexTensor {
        crate::flex::deform::ms_deform_attn(value, self.shapes, reference, offsets, logits)
    }

    fn fallback(
        self,
        (value, reference_points, offsets, attention_logits): Self::Operands,
    ) -> Tensor<B, 3> {
        let shapes = self.shapes;
        let [b, _, heads, dh] = value.dims();
        let [_, nq, _, levels, points, _] = offsets.dims();
        let weights = softmax(attention_logits, 3);
        // offset / (w, h) of its level
        let normalizer: Vec<f32> = shapes
            .iter()
            .flat_map(|&(h, w)| [w as f32, h as f32])
            .collect();
        let normalizer = Tensor::<B, 6>::from_data(
            TensorData::new(normalizer, [1, 1, 1, levels, 1, 2]),
            &value.device(),
        );
        let rb = reference_points.dims()[0];
        let reference = reference_points.reshape([rb, nq, 1, 1, 1, 2]);
        let grids = (reference + offsets / normalizer) * 2.0 - 1.0;
        let mut sampled = Vec::with_capacity(levels);
        let mut start = 0;
        for (l, &(h, w)) in shapes.iter().enumerate() {
            let value_l = value
                .clone()
                .slice([0..b, start..start + h * w, 0..heads, 0..dh])
                .permute([0, 2, 3, 1])
                .reshape([b * heads, dh, h, w]);
            start += h * w;
            let grid_l = grids
                .clone()
                .slice([0..b, 0..nq, 0..heads, l..l + 1, 0..points, 0..2])
                .reshape([b, nq, heads, points, 2])
                .swap_dims(1, 2)
                .reshape([b * heads, nq, points, 2]);
            sampled.push(value_l.grid_sample_2d(grid_l, GridSampleOptions::default()));
        }
        // [b·heads, dh, nq, levels·points], level-major like the official stack/flatten
        let sampled = Tensor::cat(sampled, 3);
        let weights = weights
            .swap_dims(1, 2)
            .reshape([b * heads, 1, nq, levels * points]);
        (sampled * weights)
            .sum_dim(3)
            .reshape([b, heads * dh, nq])
            .swap_dims(1, 2)
    }
}

/// Whether the Flex kernel takes `samples` (= `levels · points`) samples per head.
#[cfg(feature = "flex")]
fn kernel_samples_fit(samples: usize) -> bool {
    samples <= crate::flex::deform::MAX_SAMPLES
}

/// Without the Flex kernels there is no kernel to take anything.
#[cfg(not(feature = "flex"))]
fn kernel_samples_fit(_samples: usize) -> bool {
    false
}
