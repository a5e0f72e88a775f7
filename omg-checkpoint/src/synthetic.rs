//! [`SyntheticSource`]: a [`TensorSource`] of deterministic random weights made on
//! demand, one tensor per read, for benchmarks and memory tests of full-size shapes
//! that cannot be downloaded (nothing is stored: reading a tensor makes it).

use std::collections::BTreeMap;

use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use crate::{CheckpointError, TensorInfo, TensorSource};

/// Named f32 tensors of given shapes, with values drawn when read: matrices uniform with
/// variance `1 / fan_in` (the last dim; as the parity fixtures' `N(0,1)/√fan_in`),
/// vectors `1 ± 0.1` (norm weights). The same name and seed always give the same
/// values.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    shapes: BTreeMap<String, Vec<usize>>,
    seed: u64,
}

impl SyntheticSource {
    /// A source of the named `shapes`.
    pub fn new(shapes: impl IntoIterator<Item = (String, Vec<usize>)>, seed: u64) -> Self {
        Self {
            shapes: shapes.into_iter().collect(),
            seed,
        }
    }

    /// Bytes the tensors would take in f32.
    pub fn f32_bytes(&self) -> usize {
        self.shapes
            .values()
            .map(|s| 4 * s.iter().product::<usize>())
            .sum()
    }
}

/// splitmix64 step.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [−1, 1) from the i-th draw of a stream.
fn uniform(stream: u64, i: u64) -> f32 {
    let bits = mix(stream.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    // 24 bits, exact in an i32 and in an f32 (the i32 conversion is one instruction)
    (bits >> 40) as i32 as f32 / (1u64 << 23) as f32 - 1.0
}

/// Values drawn in parallel per chunk; each depends only on its index, so the result
/// does not depend on the thread count.
const DRAW_CHUNK: usize = 1 << 16;

/// `n` values `f(uniform(stream, i))`.
fn draw(n: usize, stream: u64, f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut values = vec![0f32; n];
    values
        .par_chunks_mut(DRAW_CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let first = (c * DRAW_CHUNK) as u64;
            for (i, v) in (first..).zip(chunk.iter_mut()) {
                *v = f(uniform(stream, i));
            }
        });
    values
}

impl TensorSource for SyntheticSource {
    fn names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.shapes.get(name).map(|shape| TensorInfo {
            shape: shape.clone(),
            dtype: DType::F32,
        })
    }

    fn read(&self, name: &str) -> Result<TensorData, CheckpointError> {
        let shape = self
            .shapes
            .get(name)
            .ok_or_else(|| CheckpointError::MissingKey {
                key: name.to_owned(),
                sources: self.describe(),
            })?;
        let stream = name
            .bytes()
            .fold(mix(self.seed), |h, b| mix(h ^ u64::from(b)));
        let n: usize = shape.iter().product();
        let values = if shape.len() == 1 {
            draw(n, stream, |u| 1.0 + 0.1 * u)
        } else {
            // uniform(−a, a) has variance a²/3
            let a = (3.0 / shape.last().copied().unwrap_or(1).max(1) as f32).sqrt();
            draw(n, stream, |u| a * u)
        };
        Ok(TensorData::new(values, shape.clone()))
    }

    fn describe(&self) -> String {
        format!("synthetic weights (seed {})", self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_per_name_and_scaled_by_fan_in() {
        let s = SyntheticSource::new(
            [("a".to_string(), vec![64, 300]), ("n".to_string(), vec![8])],
            1,
        );
        let a = s.read("a").unwrap().into_vec::<f32>().unwrap();
        assert_eq!(a, s.read("a").unwrap().into_vec::<f32>().unwrap());
        let other = SyntheticSource::new([("a".to_string(), vec![64, 300])], 2);
        assert_ne!(a, other.read("a").unwrap().into_vec::<f32>().unwrap());
        let var = a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32;
        assert!(
            (var * 300.0 - 1.0).abs() < 0.05,
            "variance·fan_in = {}",
            var * 300.0
        );
        let n = s.read("n").unwrap().into_vec::<f32>().unwrap();
        assert!(n.iter().all(|v| (0.9..=1.1).contains(v)));
        assert!(s.read("missing").is_err());
        assert_eq!(s.f32_bytes(), 4 * (64 * 300 + 8));
    }

    #[test]
    fn parallel_draws_match_the_sequential_stream() {
        // more than two chunks and a partial one
        let n = 2 * DRAW_CHUNK + 1234;
        let s = SyntheticSource::new([("w".to_string(), vec![n / 2, 2])], 7);
        let got = s.read("w").unwrap().into_vec::<f32>().unwrap();
        let stream = "w".bytes().fold(mix(7), |h, b| mix(h ^ u64::from(b)));
        let a = (3.0f32 / 2.0).sqrt();
        for (i, v) in got.iter().enumerate() {
            let bits = mix(stream.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            let want = a * ((bits >> 40) as f32 / (1u64 << 23) as f32 - 1.0);
            assert_eq!(v.to_bits(), want.to_bits(), "value {i}");
        }
    }
}
