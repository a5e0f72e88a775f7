//! `add_scaled_product` (`W += s·B·A` on host buffers) against a plain f64 product.

use omg_kernels::add_scaled_product;

type B = burn::backend::Flex<f32, i32>;

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.731 + seed).sin()).collect()
}

#[test]
fn adds_the_scaled_product_in_place() {
    for [rows, rank, cols] in [
        [1, 1, 1],
        [37, 5, 129],
        [64, 512, 96],
        [3, 17, 1000],
        [130, 8, 7],
    ] {
        let (b, a) = (values(rows * rank, 0.3), values(rank * cols, 1.7));
        let mut w = values(rows * cols, -0.9);
        let want: Vec<f64> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                let dot: f64 = (0..rank)
                    .map(|k| f64::from(b[r * rank + k]) * f64::from(a[k * cols + c]))
                    .sum();
                f64::from(w[i]) - 0.625 * dot
            })
            .collect();
        add_scaled_product::<B>(
            &mut w,
            &b,
            &a,
            [rows, rank, cols],
            -0.625,
            &Default::default(),
        );
        for (i, (&got, &want)) in w.iter().zip(&want).enumerate() {
            let tolerance = 1e-5 * (1.0 + (rank as f64).sqrt());
            assert!(
                (f64::from(got) - want).abs() <= tolerance,
                "[{rows}, {rank}, {cols}] element {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn an_empty_product_changes_nothing() {
    let mut w = values(12, 0.0);
    let before = w.clone();
    add_scaled_product::<B>(&mut w, &[], &[], [3, 0, 4], 2.0, &Default::default());
    assert_eq!(w, before);
    let mut empty: Vec<f32> = Vec::new();
    add_scaled_product::<B>(
        &mut empty,
        &[],
        &values(8, 0.0),
        [0, 2, 4],
        2.0,
        &Default::default(),
    );
}

#[test]
#[should_panic(expected = "add_scaled_product")]
fn mismatched_buffers_are_refused() {
    let mut w = vec![0.0; 6];
    // `b` holds 5 values where [2, 3] needs 6
    add_scaled_product::<B>(
        &mut w,
        &[0.0; 5],
        &[0.0; 9],
        [2, 3, 3],
        1.0,
        &Default::default(),
    );
}
