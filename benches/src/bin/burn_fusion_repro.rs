//! Minimal reproducer of the burn 0.21 fused-matmul bug that made the GPU backends compute
//! wrong `[SEG]` and region-prompt masks (docs/burn-fusion-matmul.md).
//!
//! Each case computes `linear(x, w, b)` (`x @ w + b`, burn's default `ModuleOps::linear`:
//! a raw `float_matmul` followed by a broadcast `float_add`) where `x` or `w` is a strided
//! view, and compares three results: plain Rust loops on the host, burn's `CubeBackend` on
//! wgpu without fusion, and `burn::backend::Wgpu`, which is the fused backend when this
//! program is built with `--features fusion`:
//!
//! ```text
//! cargo run --release -p omg-bench --no-default-features --features wgpu,fusion --bin burn_fusion_repro
//! cargo run --release -p omg-bench --no-default-features --features wgpu --bin burn_fusion_repro
//! ```
//!
//! Exits with status 1 if any backend differs from the host by more than 1e-4.

use std::process::ExitCode;

use burn::backend::Wgpu;
use burn::backend::wgpu::{CubeBackend, WgpuRuntime};
use burn::tensor::module::linear;
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// burn's wgpu backend without the fusion layer.
type Plain = CubeBackend<WgpuRuntime, f32, i32, u32>;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One case: `x` `[rows, x_cols]` of which columns `0..k` are used, `w` `[k, w_cols]` of
/// which columns `0..n` are used, `b` `[w_cols]` of which `0..n` are used.
struct Case {
    name: &'static str,
    rows: usize,
    x_cols: usize,
    w_cols: usize,
    k: usize,
    n: usize,
    /// `x` as `[rows, 1, k]` (a reshape of the slice) instead of `[rows, k]`.
    rank3: bool,
    bias: bool,
}

fn run<B: Backend>(c: &Case, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_data(TensorData::new(x.to_vec(), [c.rows, c.x_cols]), &device)
        .slice([0..c.rows, 0..c.k]);
    let w = Tensor::<B, 2>::from_data(TensorData::new(w.to_vec(), [c.k, c.w_cols]), &device)
        .slice([0..c.k, 0..c.n]);
    let b =
        Tensor::<B, 1>::from_data(TensorData::new(b.to_vec(), [c.w_cols]), &device).slice(0..c.n);
    let b = c.bias.then_some(b);
    let out = if c.rank3 {
        linear(x.reshape([c.rows, 1, c.k]), w, b).reshape([c.rows, c.n])
    } else {
        linear(x, w, b)
    };
    out.into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap_or_default()
}

fn host(c: &Case, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; c.rows * c.n];
    for r in 0..c.rows {
        for j in 0..c.n {
            let mut acc = if c.bias { b[j] } else { 0.0 };
            for i in 0..c.k {
                acc += x[r * c.x_cols + i] * w[i * c.w_cols + j];
            }
            out[r * c.n + j] = acc;
        }
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn main() -> ExitCode {
    // (name, rows, x columns, w columns, x as [rows, 1, k], bias); k = n = 64.
    let cases = [
        (
            "x[2,128][:, :64] -> [2,1,64], + bias",
            2,
            128,
            64,
            true,
            true,
        ),
        (
            "x[2,128][:, :64] -> [2,1,64], no bias",
            2,
            128,
            64,
            true,
            false,
        ),
        (
            "x[2,64] -> [2,1,64] (contiguous), + bias",
            2,
            64,
            64,
            true,
            true,
        ),
        (
            "x[1,128][:, :64], w[64,192][:, :64], + bias",
            1,
            128,
            192,
            false,
            true,
        ),
        (
            "x[1,64], w[64,192][:, :64], + bias",
            1,
            64,
            192,
            false,
            true,
        ),
        (
            "x[4,64], w[64,192][:, :64], + bias",
            4,
            64,
            192,
            false,
            true,
        ),
        (
            "x[1,64], w[64,64] (contiguous), + bias",
            1,
            64,
            64,
            false,
            true,
        ),
    ]
    .map(|(name, rows, x_cols, w_cols, rank3, bias)| Case {
        name,
        rows,
        x_cols,
        w_cols,
        k: 64,
        n: 64,
        rank3,
        bias,
    });
    println!(
        "backend under test: burn::backend::Wgpu ({})",
        if cfg!(feature = "fusion") {
            "with fusion"
        } else {
            "without fusion"
        }
    );
    println!("{:48} {:>12} {:>12}", "case", "Wgpu", "CubeBackend");
    let mut wrong = 0;
    for (i, c) in cases.iter().enumerate() {
        let x = values(c.rows * c.x_cols, 3 * i as u64 + 1);
        let w = values(c.k * c.w_cols, 3 * i as u64 + 2);
        let b = values(c.w_cols, 3 * i as u64 + 3);
        let want = host(c, &x, &w, &b);
        let fused = max_diff(&want, &run::<Wgpu>(c, &x, &w, &b));
        let plain = max_diff(&want, &run::<Plain>(c, &x, &w, &b));
        let mark = |d: f32| if d <= 1e-4 { "" } else { " WRONG" };
        println!(
            "{:48} {:>12.3e}{} {:>12.3e}{}",
            c.name,
            fused,
            mark(fused),
            plain,
            mark(plain)
        );
        wrong += usize::from(fused > 1e-4) + usize::from(plain > 1e-4);
    }
    if wrong > 0 {
        println!("{wrong} result(s) differ from the host by more than 1e-4");
        ExitCode::FAILURE
    } else {
        println!("every result matches the host within 1e-4");
        ExitCode::SUCCESS
    }
}
