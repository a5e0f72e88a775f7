//! Every Flex kernel against its fallback in plain burn ops, on Flex, on random inputs
//! (edges included: samples outside the map, taps over the border, strided inputs).

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor, TensorData};
use omg_kernels::*;

type B = Flex;

fn max_abs_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar()
}

fn random<const D: usize>(shape: [usize; D], lo: f64, hi: f64) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Uniform(lo, hi), &Default::default())
}

#[test]
fn the_flex_kernels_run_on_flex() {
    assert!(has_fast_kernels::<B>());
}

#[test]
fn gelu_matches_burns_erf_gelu() {
    let x = random([3, 1000], -9.0, 9.0);
    // in place (unique storage) and copying (shared storage) paths
    let diff_shared = max_abs_diff(gelu(x.clone()), gelu_fallback(x.clone()));
    let expected = gelu_fallback(x.clone());
    let diff_unique = max_abs_diff(gelu(x), expected);
    assert!(diff_shared < 2e-6, "shared {diff_shared}");
    assert!(diff_unique < 2e-6, "unique {diff_unique}");
    // a strided view
    let y = random([40, 30], -5.0, 5.0);
    let d = max_abs_diff(
        gelu(y.clone().swap_dims(0, 1)),
        gelu_fallback(y.swap_dims(0, 1)),
    );
    assert!(d < 2e-6, "strided {d}");
}

#[test]
fn gelu_keeps_the_extremes() {
    let device = Default::default();
    let x = Tensor::<B, 1>::from_data(
        TensorData::from([-100.0f32, -4.0, 0.0, 1e-8, 4.0, 100.0]),
        &device,
    );
    let y = gelu(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(y[0], 0.0);
    assert_eq!(y[2], 0.0);
    assert_eq!(y[5], 100.0);
    assert!((y[4] - 3.999_873).abs() < 1e-5, "{}", y[4]);
}

#[test]
fn depthwise_conv_matches_conv2d() {
    for (b, h, w, c, k, with_bias) in [
        (1, 9, 7, 5, 7, true),
        (2, 4, 3, 16, 7, false),
        (1, 6, 6, 3, 3, true),
    ] {
        let x = random([b, h, w, c], -1.0, 1.0);
        let weight = random([c, 1, k, k], -1.0, 1.0);
        let bias = with_bias.then(|| random([c], -1.0, 1.0));
        let d = max_abs_diff(
            depthwise_conv2d_nhwc(x.clone(), weight.clone(), bias.clone()),
            depthwise_conv2d_nhwc_fallback(x, weight, bias),
        );
        assert!(d < 1e-5, "{b}x{h}x{w}x{c} k{k}: {d}");
    }
    // a strided input (an NCHW map viewed as NHWC)
    let x = random([1, 8, 5, 6], -1.0, 1.0).permute([0, 2, 3, 1]);
    let weight = random([8, 1, 7, 7], -1.0, 1.0);
    let d = max_abs_diff(
        depthwise_conv2d_nhwc(x.clone(), weight.clone(), None),
        depthwise_conv2d_nhwc_fallback(x, weight, None),
    );
    assert!(d < 1e-5, "strided: {d}");
}

#[test]
fn deformable_attention_matches_grid_sample() {
    let (heads, dh, points) = (3, 4, 2);
    let shapes = [(5, 7), (3, 4), (2, 2)];
    let n: usize = shapes.iter().map(|(h, w)| h * w).sum();
    let nq = 11;
    for (b, rb) in [(2, 1), (2, 2), (1, 1)] {
        let value = random([b, n, heads, dh], -1.0, 1.0);
        let reference = random([rb, nq, 2], 0.0, 1.0);
        // offsets of a few pixels: some samples fall (partly) outside the maps
        let offsets = random([b, nq, heads, shapes.len(), points, 2], -4.0, 4.0);
        let logits = random([b, nq, heads, shapes.len() * points], -3.0, 3.0);
        let ours = ms_deform_attn(
            value.clone(),
            &shapes,
            reference.clone(),
            offsets.clone(),
            logits.clone(),
        );
        let expected = ms_deform_attn_fallback(value, &shapes, reference, offsets, logits);
        assert_eq!(ours.dims(), [b, nq, heads * dh]);
        let d = max_abs_diff(ours, expected);
        assert!(d < 1e-5, "b {b} rb {rb}: {d}");
    }
}

#[test]
fn masked_attention_matches_the_score_tensor_path() {
    let device = Default::default();
    for (b, nq, nk, heads, dh) in [(1, 70, 300, 4, 8), (2, 5, 33, 2, 16)] {
        let c = heads * dh;
        let q = random([b, nq, c], -1.0, 1.0);
        let k = random([b, nk, c], -1.0, 1.0);
        let v = random([b, nk, c], -1.0, 1.0);
        // about half the keys blocked, never all of a row
        let mut blocked: Vec<bool> = (0..b * nq * nk).map(|i| (i * 7919) % 11 < 5).collect();
        for row in blocked.chunks_mut(nk) {
            row[0] = false;
        }
        let mask = Tensor::<B, 3, burn::tensor::Bool>::from_data(
            TensorData::new(blocked, [b, nq, nk]),
            &device,
        );
        for m in [None, Some(mask)] {
            let ours = masked_attention(q.clone(), k.clone(), v.clone(), heads, m.clone());
            let reference = masked_attention_fallback(q.clone(), k.clone(), v.clone(), heads, m);
            let d = max_abs_diff(ours, reference);
            assert!(d < 1e-5, "{b}x{nq}x{nk} h{heads}: {d}");
        }
    }
}

/// Batch, heads, kv heads, new positions, filled keys, cache capacity, head dim.
type Sizes = (usize, usize, usize, usize, usize, usize, usize);

#[test]
fn causal_attention_matches_the_masked_score_tensor_path() {
    // (batch, heads, kv heads, new positions T, filled keys, cache capacity S, head dim,
    // left padding): prefill of blocks of 64 queries with a shorter last one, a cache
    // larger than its filled part, decoding one position, GQA groups of 1 to 4, padded
    // rows with padding queries among the new positions, a last block of one position,
    // decoding with a group of 6 query heads and a head dim of 40; and decoding with head
    // dims that are multiples of 16 (the AVX-512 one-position kernel): groups of 4 over
    // key counts that are not multiples of 4 with padding, of 6 over fewer than 4 keys,
    // of 3 with a padding query, of 1, and the 7.7 B model's shape
    let cases: [(Sizes, &[usize]); 14] = [
        ((1, 8, 2, 150, 150, 150, 16), &[]),
        ((1, 8, 2, 65, 65, 70, 16), &[]),
        ((2, 12, 2, 1, 300, 301, 40), &[0, 7]),
        ((1, 4, 4, 1, 37, 64, 8), &[]),
        ((2, 4, 1, 5, 20, 33, 12), &[]),
        ((2, 6, 2, 70, 70, 80, 8), &[0, 9]),
        ((3, 2, 1, 1, 11, 16, 4), &[3, 0, 10]),
        ((2, 4, 2, 9, 9, 9, 8), &[0, 4]),
        ((1, 2, 2, 66, 130, 140, 8), &[]),
        ((2, 16, 4, 1, 130, 140, 128), &[0, 5]),
        ((1, 6, 1, 1, 3, 8, 48), &[]),
        ((3, 3, 1, 1, 21, 24, 80), &[0, 2, 30]),
        ((2, 8, 8, 1, 17, 17, 16), &[]),
        ((1, 32, 8, 1, 513, 600, 128), &[]),
    ];
    for ((b, h, kv, t, keys, s, d), pads) in cases {
        let q = random([b, h, t, d], -1.0, 1.0);
        let k = random([b, kv, s, d], -1.0, 1.0);
        let v = random([b, kv, s, d], -1.0, 1.0);
        let ours = causal_attention(q.clone(), k.clone(), v.clone(), keys, pads);
        let reference = causal_attention_fallback(q, k, v, keys, pads);
        assert_eq!(ours.dims(), [b, t, h * d]);
        let diff = max_abs_diff(ours, reference);
        assert!(
            diff < 1e-5,
            "b{b} h{h}/{kv} t{t} keys {keys} of {s} d{d} {pads:?}: {diff}"
        );
    }
}

#[test]
fn causal_attention_reads_only_the_filled_visible_keys() {
    // one head, queries at positions 2 and 3 of 4 filled keys in a cache of 6: the
    // unfilled positions hold huge values that must not matter; query 2 sees keys 0..=2
    let device = Default::default();
    let d = 2;
    let q = Tensor::<B, 4>::from_data(TensorData::new(vec![0.0f32; 2 * d], [1, 1, 2, d]), &device);
    let mut keys = vec![0.0f32; 6 * d];
    keys[4 * d..].fill(1e30);
    let k = Tensor::<B, 4>::from_data(TensorData::new(keys.clone(), [1, 1, 6, d]), &device);
    let mut values: Vec<f32> = (0..6).flat_map(|p| [p as f32, 10.0 * p as f32]).collect();
    values[4 * d..].fill(f32::NAN);
    let v = Tensor::<B, 4>::from_data(TensorData::new(values, [1, 1, 6, d]), &device);
    for out in [
        causal_attention(q.clone(), k.clone(), v.clone(), 4, &[]),
        causal_attention_fallback(q.clone(), k.clone(), v.clone(), 4, &[]),
    ] {
        // equal scores: the mean of the visible values
        let out = out.into_data().to_vec::<f32>().unwrap();
        assert!(
            (out[0] - 1.0).abs() < 1e-6 && (out[1] - 10.0).abs() < 1e-5,
            "{out:?}"
        );
        assert!(
            (out[2] - 1.5).abs() < 1e-6 && (out[3] - 15.0).abs() < 1e-5,
            "{out:?}"
        );
    }
    // a row padded by 3: query 2 is padding and sees itself only, query 3 keys 3..=3
    let out = causal_attention(q, k, v, 4, &[3])
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(out, [2.0, 20.0, 3.0, 30.0]);
}

#[test]
fn write_positions_matches_slice_assign_and_leaves_shared_copies_alone() {
    for (b, h, s, d, start, t) in [(1, 2, 10, 4, 0, 3), (2, 3, 9, 5, 7, 2), (1, 1, 4, 8, 0, 4)] {
        let cache = random([b, h, s, d], -1.0, 1.0);
        let value = random([b, h, t, d], -1.0, 1.0);
        let expected = write_positions_fallback(cache.clone(), start, value.clone());
        // `cache` is shared here (a copy stays below): it must not change
        let before = cache.to_data();
        let written = write_positions(cache.clone(), start, value.clone());
        assert_eq!(max_abs_diff(written, expected.clone()), 0.0);
        cache.to_data().assert_eq(&before, true);
        // unshared: written in place, the same values
        let written = write_positions(cache, start, value);
        assert_eq!(max_abs_diff(written, expected), 0.0);
    }
}

#[test]
fn grouped_heads_match_slicing_and_rope_in_burns_ops() {
    // (B, T, KV, P, D, first slot, slots): query slots, the key slot, the value slot
    for (b, t, kv, p, d, first, count) in [
        (1, 7, 2, 6, 8, 0, 4),
        (2, 3, 3, 4, 4, 2, 1),
        (1, 70, 1, 3, 16, 2, 1),
        (2, 1, 2, 6, 8, 4, 2),
    ] {
        let qkv = random([b, t, kv, p, d], -2.0, 2.0);
        let cos = random([1, 1, t, d], -1.0, 1.0);
        let sin = random([1, 1, t, d], -1.0, 1.0);
        for rope in [None, Some((cos, sin))] {
            let ours = grouped_heads(qkv.clone(), first, count, rope.clone());
            let reference = grouped_heads_fallback(qkv.clone(), first, count, rope.clone());
            assert_eq!(ours.dims(), [b, kv * count, t, d]);
            // the same products and sums in the same order: equal bits
            ours.into_data().assert_eq(&reference.into_data(), true);
        }
    }
}

#[test]
fn a_fully_blocked_query_gets_nan_like_pytorch() {
    let device = Default::default();
    let q = random([1, 2, 4], -1.0, 1.0);
    let k = random([1, 3, 4], -1.0, 1.0);
    let mask = Tensor::<B, 3, burn::tensor::Bool>::from_data(
        TensorData::new(vec![true, true, true, false, true, false], [1, 2, 3]),
        &device,
    );
    let out = masked_attention(q, k.clone(), k, 2, Some(mask))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(out[..4].iter().all(|x| x.is_nan()));
    assert!(out[4..].iter().all(|x| x.is_finite()));
}

#[test]
fn few_row_linear_matches_burns_linear() {
    for (lead, k, n, with_bias) in [
        (vec![1usize, 1], 64, 300, true),
        (vec![2, 3], 33, 517, false),
        (vec![1, 8], 7, 256, true),
        // tiles of 2048 columns (several rows): two full ones and a part
        (vec![1, 3], 9, 4100, true),
        // tiles of 4096 columns (one row): two full ones and a part, one and a column
        (vec![1, 1], 13, 8200, true),
        (vec![1, 1], 5, 4097, false),
        // the input dim split over tasks, each range in quarters and a remainder
        (vec![1, 1], 301, 1000, true),
        (vec![1, 2], 259, 2051, false),
    ] {
        let x = random([lead[0], lead[1], k], -1.0, 1.0);
        let w = random([k, n], -1.0, 1.0);
        let b = with_bias.then(|| random([n], -1.0, 1.0));
        let ours = linear_with(x.clone(), w.clone(), b.clone());
        let expected = linear_fallback(x, w, b);
        assert_eq!(ours.dims(), [lead[0], lead[1], n]);
        let d = max_abs_diff(ours, expected);
        assert!(d < 1e-4, "{lead:?} {k}x{n}: {d}");
    }
}

#[test]
fn many_row_linear_matches_burns_linear() {
    // the tiled kernel where the CPU has AVX2 and FMA (else the fallback twice): tiles of
    // 1–4 rows (AVX2) or 1–12 (AVX-512), tasks of 256 or 512 rows and 120 or 128 columns with
    // narrower last ones, panels of 24 or 32 columns with a narrower last one (a vector
    // cut short, or missing), the weight rows in equal chunks of at most 256 or 512
    for (rows, k, n, with_bias) in [
        (9, 16, 40, true),
        (13, 1, 33, false),
        (24, 64, 128, true),
        (37, 600, 161, false),
        (100, 1100, 300, true),
        (4100, 7, 45, true),
        (2049, 515, 17, false),
    ] {
        let x = random([1, rows, k], -1.0, 1.0);
        let w = random([k, n], -1.0, 1.0);
        let b = with_bias.then(|| random([n], -1.0, 1.0));
        let ours = linear_with(x.clone(), w.clone(), b.clone());
        let expected = linear_fallback(x, w, b);
        assert_eq!(ours.dims(), [1, rows, n]);
        let d = max_abs_diff(ours, expected);
        assert!(d < 1e-5 * (k as f32).sqrt(), "{rows} rows {k}x{n}: {d}");
    }
}

#[test]
fn many_row_linear_sums_in_input_order_with_one_rounding_per_step() {
    // the tiled kernel promises each output as the fused multiply-adds in input order,
    // then the bias: the same bits on every instruction set it runs on
    if !kernel_isa().contains("avx2") {
        return;
    }
    // 301 rows: more than one task of rows (256 with AVX2), the last tile one row;
    // 1000 columns: column blocks of unequal widths (42 panels of 24 in 10 blocks on two
    // threads), the last panel narrower
    for (rows, k, n) in [
        (9, 3, 5),
        (14, 700, 37),
        (20, 1030, 150),
        (301, 70, 130),
        (64, 40, 1000),
    ] {
        let x = random([1, rows, k], -1.0, 1.0);
        let w = random([k, n], -1.0, 1.0);
        let b = random([n], -1.0, 1.0);
        let ours = linear_with(x.clone(), w.clone(), Some(b.clone()));
        let ours = ours.into_data().to_vec::<f32>().unwrap();
        let (xs, ws, bs) = (
            x.into_data().to_vec::<f32>().unwrap(),
            w.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
        );
        for r in 0..rows {
            for c in 0..n {
                let sum = (0..k).fold(0.0f32, |acc, i| xs[r * k + i].mul_add(ws[i * n + c], acc));
                let expected = sum + bs[c];
                assert_eq!(
                    ours[r * n + c].to_bits(),
                    expected.to_bits(),
                    "{rows} rows {k}x{n}: output [{r}, {c}]"
                );
            }
        }
    }
}

#[test]
fn silu_mul_matches_burns_silu() {
    let g = random([3, 700], -30.0, 30.0);
    let u = random([3, 700], -2.0, 2.0);
    let shared = max_abs_diff(
        silu_mul(g.clone(), u.clone()),
        silu_mul_fallback(g.clone(), u.clone()),
    );
    let expected = silu_mul_fallback(g.clone(), u.clone());
    let unique = max_abs_diff(silu_mul(g, u), expected);
    assert!(shared < 1e-5 && unique < 1e-5, "{shared} {unique}");
}

#[test]
fn rope_of_a_strided_view_is_bit_identical_to_the_plain_ops() {
    let (b, t, h, d) = (2, 5, 3, 8);
    // a head view of a [b, t, h, d] projection, as attention takes it
    let x = random([b, t, h, d], -3.0, 3.0).swap_dims(1, 2);
    let cos = random([1, 1, t, d], -1.0, 1.0);
    let sin = random([1, 1, t, d], -1.0, 1.0);
    let ours = rotate_half_rope(x.clone(), cos.clone(), sin.clone());
    let expected = rotate_half_rope_fallback(x, cos, sin);
    assert_eq!(ours.dims(), [b, h, t, d]);
    assert_eq!(max_abs_diff(ours, expected), 0.0);
}

#[test]
fn batched_matmul_matches_burns_matmul() {
    // the tiled kernel where the CPU has AVX2 and FMA (else the fallback twice): few rows
    // (burn's matmul), tiles of 1–4 or 1–12 rows, tasks of 256 or 512 rows and of 120 or 128
    // columns with narrower last ones, depths in equal chunks of at most 256 or 512
    for (n, m, k, p) in [
        (1, 3, 5, 7),
        (2, 9, 16, 40),
        (3, 37, 600, 161),
        (1, 2050, 11, 129),
        (2, 300, 1030, 33),
    ] {
        let a = random([n, m, k], -1.0, 1.0);
        let b = random([n, k, p], -1.0, 1.0);
        let ours = matmul(a.clone(), b.clone());
        let expected = matmul_fallback(a.clone(), b.clone());
        assert_eq!(ours.dims(), [n, m, p]);
        let d = max_abs_diff(ours, expected);
        assert!(
            d < 1e-5 * (k as f32).sqrt(),
            "[{n}, {m}, {k}] x [{k}, {p}]: {d}"
        );
        // a transposed view as the right operand (made contiguous first)
        let bt = b.clone().swap_dims(1, 2).into_data();
        let bt = Tensor::<B, 3>::from_data(bt, &Default::default()).swap_dims(1, 2);
        let d = max_abs_diff(matmul(a.clone(), bt), matmul_fallback(a, b));
        assert!(d < 1e-5 * (k as f32).sqrt(), "transposed [{k}, {p}]: {d}");
    }
}

#[test]
fn same_convolution_matches_conv2d() {
    for (b, cin, cout, h, w, k, with_bias) in [
        (1, 5, 7, 6, 9, 3, true),
        (2, 3, 4, 5, 4, 3, false),
        (1, 4, 2, 7, 7, 5, true),
        (1, 2, 3, 3, 3, 1, true),
        // more than one task of rows and of columns in the tiled products
        (1, 6, 130, 48, 50, 3, true),
    ] {
        let x = random([b, cin, h, w], -1.0, 1.0);
        let weight = random([cout, cin, k, k], -1.0, 1.0);
        let bias = with_bias.then(|| random([cout], -1.0, 1.0));
        let ours = conv2d_same(x.clone(), weight.clone(), bias.clone());
        let expected = conv2d_same_fallback(x, weight, bias);
        assert_eq!(ours.dims(), [b, cout, h, w]);
        let d = max_abs_diff(ours, expected);
        assert!(d < 1e-5, "{b}x{cin}->{cout} {h}x{w} k{k}: {d}");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_allocator_setting_is_accepted_by_glibc() {
    assert!(reuse_freed_memory());
    // large blocks still allocate, free and allocate again
    let a = vec![1u8; 64 << 20];
    drop(a);
    let b = vec![2u8; 64 << 20];
    assert_eq!(b[b.len() - 1], 2);
}

fn random_matrix(out: usize, inp: usize, seed: u64) -> Vec<f32> {
    // splitmix64 → uniform [−1, 1), with a few large outliers
    let mut s = seed;
    (0..out * inp)
        .map(|i| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 0 { u * 8.0 } else { u }
        })
        .collect()
}

#[test]
fn quantization_round_trips_within_half_a_step() {
    for bits in [QuantBits::Int8, QuantBits::Int4] {
        for (out, inp) in [(3, 64), (5, 176), (2, 1), (4, 63), (1, 130)] {
            let w = random_matrix(out, inp, 7);
            let q = QuantizedMatrix::quantize(&w, bits, out, inp);
            assert_eq!(q.values.len(), out * q.layout.row_bytes());
            assert_eq!(q.scales.len(), out * q.layout.groups());
            let back = q.dequantize();
            for n in 0..out {
                for kk in 0..inp {
                    let scale = q.scales[n * q.layout.groups() + kk / QUANT_GROUP];
                    let err = (back[n * inp + kk] - w[n * inp + kk]).abs();
                    assert!(
                        err <= 0.5 * scale * (1.0 + 1e-5),
                        "{bits:?} [{out},{inp}] ({n},{kk}): error {err} > half step {}",
                        scale / 2.0
                    );
                }
            }
        }
    }
}

#[test]
fn int4_packs_two_weights_per_byte() {
    let l = QuantLayout {
        bits: QuantBits::Int4,
        out_features: 1,
        in_features: 4096,
    };
    assert_eq!(l.row_bytes(), 2048);
    assert_eq!(
        QuantLayout {
            in_features: 176,
            ..l
        }
        .row_bytes(),
        64 + 24
    );
    assert_eq!(
        QuantLayout {
            bits: QuantBits::Int8,
            ..l
        }
        .row_bytes(),
        4096
    );
}

#[test]
fn the_burn_dequantize_matches_the_host_one() {
    let device = Default::default();
    for bits in [QuantBits::Int8, QuantBits::Int4] {
        for (out, inp) in [(3, 64), (5, 176), (4, 63), (2, 1)] {
            let w = random_matrix(out, inp, 11);
            let q = QuantizedMatrix::quantize(&w, bits, out, inp);
            let (values, scales) = q.clone().into_tensors::<B>(&device);
            let ours = dequantize(values, scales, q.layout)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            assert_eq!(ours, q.dequantize(), "{bits:?} [{out},{inp}]");
        }
    }
}

#[test]
fn quantized_linear_matches_dequantize_then_linear() {
    let device = Default::default();
    for bits in [QuantBits::Int8, QuantBits::Int4] {
        // few rows (decode) and many rows (prefill: tiles of 1–3 vectors of 16 rows and
        // 1–4 channels, blocks of 64 channels), inputs with and without a short group
        for (rows, out, inp, with_bias) in [
            (1, 70, 176, false),
            (3, 33, 64, true),
            (8, 5, 63, false),
            // every few-row count's kernel: odd and even numbers of whole groups, with
            // and without a short last one
            (2, 9, 130, true),
            (4, 65, 320, false),
            (5, 40, 257, false),
            (6, 11, 448, true),
            (7, 3, 1, true),
            (9, 600, 130, true),
            (17, 67, 65, false),
            (33, 130, 1, true),
            (40, 1100, 64, false),
            (49, 6, 191, false),
            (50, 129, 256, true),
            (100, 7, 2049, false),
        ] {
            let q = QuantizedMatrix::quantize(&random_matrix(out, inp, 3), bits, out, inp);
            let (values, scales) = q.clone().into_tensors::<B>(&device);
            // the packed dtype the Flex kernel takes (else the fallback would run twice)
            let packed = match bits {
                QuantBits::Int8 => burn::tensor::DType::I8,
                QuantBits::Int4 => burn::tensor::DType::U8,
            };
            assert_eq!(values.dtype(), packed);
            let x = random([rows, 1, inp], -1.0, 1.0);
            let bias = with_bias.then(|| random([out], -1.0, 1.0));
            let ours = quant_linear(
                x.clone(),
                values.clone(),
                scales.clone(),
                q.layout,
                bias.clone(),
            );
            let expected = quant_linear_fallback(x, values, scales, q.layout, bias);
            let scale = expected.clone().abs().max().into_scalar().max(1.0);
            let d = max_abs_diff(ours, expected);
            assert!(
                d < 2e-6 * scale * (inp as f32).sqrt(),
                "{bits:?} rows {rows} [{out},{inp}]: {d}"
            );
        }
    }
}

#[test]
fn int4_scales_are_f16_on_flex_and_f32_ones_give_the_same_sums() {
    let device = Default::default();
    // the GEMV (1 and 8 rows) and the GEMM, with and without a short last group
    for (rows, out, inp) in [(1, 40, 320), (8, 17, 130), (1, 33, 1000), (40, 70, 257)] {
        let q = QuantizedMatrix::quantize(&random_matrix(out, inp, 5), QuantBits::Int4, out, inp);
        assert!(
            q.scales
                .iter()
                .all(|&s| burn::tensor::f16::from_f32(s).to_f32() == s),
            "int4 scales are f16 values"
        );
        let (values, scales) = q.clone().into_tensors::<B>(&device);
        assert_eq!(scales.dtype(), q.layout.scale_dtype());
        assert_eq!(scales.dtype(), burn::tensor::DType::F16);
        let f32_scales = Tensor::<B, 2>::from_data(
            TensorData::new(q.scales.clone(), [out, q.layout.groups()]),
            &device,
        );
        assert_eq!(f32_scales.dtype(), burn::tensor::DType::F32);
        let x = random([rows, inp], -1.0, 1.0);
        let a = quant_linear(x.clone(), values.clone(), scales, q.layout, None);
        let b = quant_linear(x, values, f32_scales, q.layout, None);
        assert_eq!(
            a.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
            "rows {rows} [{out}, {inp}]"
        );
    }
}

#[test]
fn quantized_products_of_the_largest_values_are_exact() {
    // every weight and input at its largest quantized size (|q_w| = 127 or 7 → q + 8 =
    // 15 or 1, |q_x| = 32767 or 127), so the kernels' integer sums reach their bounds:
    // the AVX2 int4 GEMM adds eight steps of pair sums in i16 (8 · 2 · 15 · 127 = 30480)
    let device = Default::default();
    for bits in [QuantBits::Int8, QuantBits::Int4] {
        for (rows, out, inp) in [(1, 8, 256), (16, 8, 256), (40, 70, 1000)] {
            for (w_sign, x_sign) in [(1.0f32, 1.0f32), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)] {
                let w = vec![w_sign; out * inp];
                let q = QuantizedMatrix::quantize(&w, bits, out, inp);
                let (values, scales) = q.clone().into_tensors::<B>(&device);
                let x = Tensor::<B, 2>::full([rows, inp], x_sign, &device);
                let ours = quant_linear(x.clone(), values.clone(), scales.clone(), q.layout, None);
                let expected = quant_linear_fallback(x, values, scales, q.layout, None);
                // the weight as held: ±1 exactly for int8, ±7 · f16(1/7) for int4
                let held = q.dequantize()[0];
                assert!((held - w_sign).abs() <= 1e-3, "{bits:?}: ±1 held as {held}");
                let exact = held * x_sign * inp as f32;
                let d = max_abs_diff(ours.clone(), expected);
                let e = max_abs_diff(ours, Tensor::full([rows, out], exact, &device));
                assert!(
                    d <= 1e-6 * inp as f32 && e <= 1e-5 * inp as f32,
                    "{bits:?} rows {rows} [{out},{inp}] signs {w_sign} {x_sign}: {d} from the \
                     fallback, {e} from {exact}"
                );
            }
        }
    }
}

/// `x · W + b` in f64 from the half-rounded `x`, `W`, `b` (host), rounded like the
/// layer, with `|x · W| + |b|` (a backend may round the product before adding `b`).
fn half_reference(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (rows, inp, out): (usize, usize, usize),
    round: fn(f32) -> f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0.0f32; rows * out];
    let mut magnitude = vec![0.0f32; rows * out];
    for r in 0..rows {
        for o in 0..out {
            let bias = b.map_or(0.0, |b| round(b[o]) as f64);
            let mut acc = 0.0f64;
            for i in 0..inp {
                acc += round(x[r * inp + i]) as f64 * round(w[i * out + o]) as f64;
            }
            y[r * out + o] = round((acc + bias) as f32);
            magnitude[r * out + o] = (acc.abs() + bias.abs()) as f32;
        }
    }
    (y, magnitude)
}

#[test]
fn half_weight_linear_matches_the_rounded_product() {
    use burn::tensor::{DType, FloatDType};
    type Rounding = fn(f32) -> f32;
    let rounders: [(FloatDType, Rounding, f32); 2] = [
        (
            FloatDType::BF16,
            |v| half::bf16::from_f32(v).to_f32(),
            1.0 / 128.0,
        ),
        (
            FloatDType::F16,
            |v| half::f16::from_f32(v).to_f32(),
            1.0 / 1024.0,
        ),
    ];
    for (dtype, round, ulp) in rounders {
        // few rows (the Flex kernel: widths and depths that are not multiples of the
        // vector and pass sizes) and many rows (burn's half matmul)
        for (rows, out, inp, with_bias) in [
            (1, 70, 176, false),
            (3, 33, 65, true),
            (8, 4100, 7, false),
            (1, 16, 4, false),
            (9, 300, 130, true),
        ] {
            let x = random([rows, 1, inp], -1.0, 1.0);
            let w = random([inp, out], -1.0, 1.0);
            let b = with_bias.then(|| random([out], -1.0, 1.0));
            let host = |t: Tensor<B, 1>| t.into_data().into_vec::<f32>().unwrap();
            let (expected, magnitude) = half_reference(
                &host(x.clone().reshape([rows * inp])),
                &host(w.clone().reshape([inp * out])),
                b.clone().map(host).as_deref(),
                (rows, inp, out),
                round,
            );
            let w = cast_float(w, dtype);
            assert_eq!(w.dtype(), DType::from(dtype));
            let mut paths = vec![("flex", half_linear(x.clone(), w.clone(), b.clone()))];
            // burn-flex's f16 matmul sums in f16 (measured up to 12 ulps off on these
            // sizes): burn's plain ops are the reference for bf16 only here; the GPU
            // backends sum half products in f32
            if dtype == FloatDType::BF16 {
                paths.push((
                    "fallback",
                    half_linear_fallback(x.clone(), w.clone(), b.clone()),
                ));
            }
            for (name, y) in paths {
                assert_eq!(y.dtype(), DType::F32, "{name} returns the input's dtype");
                let y = host(y.reshape([rows * out]));
                for (i, ((&a, &e), &m)) in y.iter().zip(&expected).zip(&magnitude).enumerate() {
                    // a rounding of the result apart (f32 sums in another order)
                    assert!(
                        (a - e).abs() <= ulp * m + 1e-5,
                        "{dtype:?} {name} rows {rows} [{inp},{out}] at {i}: {a} vs {e}"
                    );
                }
            }
        }
    }
}

/// Values whose f32 → half rounding burn-flex 0.21's own cast gets wrong (it rounds from
/// an `f64` cut to its high 32 bits), with the nearest-even result PyTorch gives.
#[test]
fn cast_float_rounds_to_nearest_even() {
    use burn::tensor::FloatDType;
    let bits = |extra: u32| f32::from_bits(1.0f32.to_bits() | extra);
    // bf16 keeps 7 mantissa bits: bit 15 is the rounding bit, bits 0..15 the rest
    let cases: [(FloatDType, f32, f32); 6] = [
        // just above a tie: only the lowest mantissa bit says so
        (FloatDType::BF16, bits((1 << 15) | 1), 1.0078125),
        (FloatDType::BF16, -bits((1 << 15) | 1), -1.0078125),
        // an exact tie rounds to even, one above it up
        (FloatDType::BF16, bits(1 << 15), 1.0),
        (FloatDType::BF16, bits((1 << 16) | (1 << 15)), 1.015625),
        (FloatDType::BF16, bits((1 << 15) | (1 << 2)), 1.0078125),
        // f16 keeps 10 bits: bit 12 is the rounding bit
        (FloatDType::F16, bits((1 << 12) | 1), 1.0009766),
    ];
    let input: Vec<f32> = cases.iter().map(|c| c.1).collect();
    for (dtype, value, expected) in cases {
        assert_eq!(
            (dtype, expected),
            (
                dtype,
                if dtype == FloatDType::BF16 {
                    half::bf16::from_f32(value).to_f32()
                } else {
                    half::f16::from_f32(value).to_f32()
                }
            ),
            "the expected value is the correctly rounded one"
        );
        let t = Tensor::<B, 1>::from_floats(input.as_slice(), &Default::default());
        let at = input.iter().position(|&v| v == value).unwrap();
        let cast = cast_float(t.clone(), dtype);
        assert_eq!(cast.dtype(), burn::tensor::DType::from(dtype));
        let back = cast_float(cast, FloatDType::F32)
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        assert_eq!(back[at], expected, "{dtype:?} of {value:e}");
        let rounded = round_to(t, dtype).into_data().into_vec::<f32>().unwrap();
        assert_eq!(rounded[at], expected, "round_to {dtype:?} of {value:e}");
    }
}
