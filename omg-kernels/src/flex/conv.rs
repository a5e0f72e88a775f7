//! Stride-1 "same" convolution as `k²` large matrix products. The input is copied once
//! into a zero-padded channels-last buffer `P` of row width `Wp = W + k − 1`; for each
//! tap `(i, j)` the rows `r + i·Wp + j` of `P` form a plain strided matrix, so
//! `Out[r, :] = Σ_taps P[r + i·Wp + j, :] · W_ij` over `r < H·Wp` is `k²` gemm calls that
//! accumulate into one buffer (the many-row linears' tiled kernel where the CPU has
//! AVX2 and FMA, else the `gemm` crate). Outputs at the `k − 1` padding columns of each row are
//! computed and dropped (a `(k−1)/Wp` overhead).

use burn_flex::FlexTensor;
use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::{f32s, new_f32};

/// `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, k, k]`, `bias` `[Cout]` → `[B, Cout, H, W]`.
pub(crate) fn conv2d_same(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
) -> FlexTensor {
    let [b, cin, h, w] = x.layout().shape().dims::<4>();
    let [cout, _, k, _] = weight.layout().shape().dims::<4>();
    // the shapes `crate::conv` checked (the taps and the bias are read by them)
    assert!(
        weight.layout().shape().dims::<4>() == [cout, cin, k, k]
            && k % 2 == 1
            && bias
                .as_ref()
                .is_none_or(|b| b.layout().num_elements() == cout),
        "conv2d_same kernel: weight {:?} for x [{b}, {cin}, {h}, {w}]",
        weight.layout().shape()
    );
    let pad = k / 2;
    let wp = w + k - 1;
    let rows = h * wp;
    let (xs, ws) = (f32s(&x), f32s(&weight));
    let bias = bias.as_ref().map(f32s);
    // W_ij [Cin, Cout] for every tap
    let taps: Vec<Vec<f32>> = (0..k * k)
        .map(|t| {
            let mut m = vec![0.0f32; cin * cout];
            for co in 0..cout {
                for ci in 0..cin {
                    m[ci * cout + co] = ws[(co * cin + ci) * k * k + t];
                }
            }
            m
        })
        .collect();
    let mut out = vec![0.0f32; b * cout * h * w];
    let threads = rayon::current_num_threads();
    for (image, dst) in out.chunks_exact_mut(cout * h * w).enumerate() {
        let src = &xs[image * cin * h * w..(image + 1) * cin * h * w];
        // zero-padded NHWC copy, (H + k) rows of Wp pixels (room for the last taps)
        let mut padded = vec![0.0f32; (h + k) * wp * cin];
        padded
            .par_chunks_mut(wp * cin)
            .enumerate()
            .for_each(|(py, row)| {
                let Some(y) = py.checked_sub(pad).filter(|&y| y < h) else {
                    return;
                };
                for c in 0..cin {
                    let line = &src[(c * h + y) * w..(c * h + y + 1) * w];
                    for (x, &v) in line.iter().enumerate() {
                        row[(x + pad) * cin + c] = v;
                    }
                }
            });
        let mut acc = vec![0.0f32; rows * cout];
        for (t, tap) in taps.iter().enumerate() {
            let (i, j) = (t / k, t % k);
            let lhs = &padded[(i * wp + j) * cin..];
            // always checked: the unsafe block below reads rows·cin values of lhs (true by
            // construction, the buffer has k spare rows, but not left to the arithmetic)
            assert!(
                lhs.len() >= rows * cin,
                "conv2d_same kernel: padded buffer too short"
            );
            #[cfg(target_arch = "x86_64")]
            if super::sgemm::available() {
                let lhs = &lhs[..rows * cin];
                if t == 0 {
                    acc = super::sgemm::product(lhs, tap, None, rows, cin, cout);
                } else {
                    super::sgemm::add_product(lhs, tap, None, (rows, cin, cout), &mut acc);
                }
                continue;
            }
            // SAFETY: lhs holds rows·cin elements from its start (asserted just above);
            // tap is [cin, cout] (made above); acc is [rows, cout].
            unsafe {
                gemm(
                    rows,
                    cout,
                    cin,
                    acc.as_mut_ptr(),
                    1,
                    cout as isize,
                    t > 0,
                    lhs.as_ptr(),
                    1,
                    cin as isize,
                    tap.as_ptr(),
                    1,
                    cout as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::Rayon(threads),
                );
            }
        }
        // [rows = H·Wp, Cout] → [Cout, H, W] (+ bias), dropping the padding columns
        dst.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(co, plane)| {
                let b0 = bias.map_or(0.0, |b| b[co]);
                for y in 0..h {
                    for x in 0..w {
                        plane[y * w + x] = acc[(y * wp + x) * cout + co] + b0;
                    }
                }
            });
    }
    new_f32(out, &[b, cout, h, w])
}
