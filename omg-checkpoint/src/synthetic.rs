//! [`SyntheticSource`]: a [`TensorSource`] of deterministic random weights made on
//! demand, one tensor per read, for benchmarks and memory tests of full-size shapes
//! that cannot be downloaded (nothing is stored: reading a tensor makes it).

use std::collections::BTreeMap;

use burn::tensor::{DType, TensorData};

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
    (bits >> 40) as f32 / (1u64 << 23) as f32 - 1.0
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
        let values: Vec<f32> = if shape.len() == 1 {
            (0..n as u64)
                .map(|i| 1.0 + 0.1 * uniform(stream, i))
                .collect()
        } else {
            // uniform(−a, a) has variance a²/3
            let a = (3.0 / shape.last().copied().unwrap_or(1).max(1) as f32).sqrt();
            (0..n as u64).map(|i| a * uniform(stream, i)).collect()
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
}
