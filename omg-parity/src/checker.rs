//! Collects the comparisons of one fixture: each computed output is compared with the
//! recorded one under its key, and every recorded `out.*` key that was not compared
//! is reported as FAIL ("not compared by this version"), never skipped.

use std::collections::BTreeSet;

use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use crate::ParityError;
use crate::compare::{Comparison, Tolerance, compare_exact, compare_f32, compare_thresholded};
use crate::fixture::Fixture;

/// A tensor read back to the host as shape + f32 values.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    (
        shape,
        t.into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap_or_default(),
    )
}

/// A boolean tensor read back as 0/1 bytes.
pub fn host_bool<B: Backend, const D: usize>(t: Tensor<B, D, Bool>) -> Vec<u8> {
    t.int()
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v as u8)
        .collect()
}

/// A fixture float tensor on the device.
pub fn load_f32<B: Backend, const D: usize>(
    fx: &Fixture,
    key: &str,
    device: &B::Device,
) -> Result<Tensor<B, D>, ParityError> {
    let (shape, values) = fx.f32(key)?;
    if shape.len() != D {
        return Err(fx.malformed(format!("`{key}` has rank {}, expected {D}", shape.len())));
    }
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

/// A fixture boolean (uint8) tensor on the device.
pub fn load_bool<B: Backend, const D: usize>(
    fx: &Fixture,
    key: &str,
    device: &B::Device,
) -> Result<Tensor<B, D, Bool>, ParityError> {
    let (shape, values) = fx.i64(key)?;
    if shape.len() != D {
        return Err(fx.malformed(format!("`{key}` has rank {}, expected {D}", shape.len())));
    }
    Ok(Tensor::<B, D, Int>::from_data(TensorData::new(values, shape), device).greater_elem(0))
}

/// The comparisons of one fixture.
pub struct Checker<'a> {
    fx: &'a Fixture,
    results: Vec<Comparison>,
    compared: BTreeSet<String>,
}

impl<'a> Checker<'a> {
    /// An empty report for `fx`.
    pub fn new(fx: &'a Fixture) -> Self {
        Self {
            fx,
            results: Vec::new(),
            compared: BTreeSet::new(),
        }
    }

    /// Compares a float tensor with `key` within `tol`.
    pub fn float<B: Backend, const D: usize>(
        &mut self,
        key: &str,
        t: Tensor<B, D>,
        tol: Tolerance,
    ) -> Result<(), ParityError> {
        let (s, v) = host(t);
        let (es, ev) = self.fx.f32(key)?;
        self.results
            .push(compare_f32(key, (&s, &v), (&es, &ev), tol));
        self.compared.insert(key.to_owned());
        Ok(())
    }

    /// Compares a boolean tensor with the uint8 tensor `key`, exactly.
    pub fn boolean<B: Backend, const D: usize>(
        &mut self,
        key: &str,
        t: Tensor<B, D, Bool>,
    ) -> Result<(), ParityError> {
        let (es, expected) = self.fx.i64(key)?;
        let dims = t.dims().to_vec();
        if dims != es {
            self.shape_mismatch(key, &dims, &es);
            return Ok(());
        }
        let expected: Vec<u8> = expected.into_iter().map(|v| v as u8).collect();
        self.results
            .push(compare_exact(key, &host_bool(t), &expected));
        self.compared.insert(key.to_owned());
        Ok(())
    }

    /// Compares a boolean tensor made by thresholding a logit at `threshold` with the
    /// uint8 tensor `key`: exactly, except where the logit recorded under
    /// `logit_key` (same shape) lies within `logit_tol` of the threshold
    /// ([`compare_thresholded`]).
    pub fn thresholded<B: Backend, const D: usize>(
        &mut self,
        key: &str,
        t: Tensor<B, D, Bool>,
        logit_key: &str,
        threshold: f32,
        logit_tol: Tolerance,
    ) -> Result<(), ParityError> {
        let (es, expected) = self.fx.i64(key)?;
        let (ls, logits) = self.fx.f32(logit_key)?;
        let dims = t.dims().to_vec();
        if dims != es || ls != es {
            self.shape_mismatch(key, &dims, &es);
            return Ok(());
        }
        let expected: Vec<u8> = expected.into_iter().map(|v| v as u8).collect();
        self.results.push(compare_thresholded(
            key,
            &host_bool(t),
            &expected,
            &logits,
            threshold,
            logit_tol,
        ));
        self.compared.insert(key.to_owned());
        Ok(())
    }

    /// Compares integers with the integer tensor `key`, exactly.
    pub fn ints(&mut self, key: &str, shape: &[usize], values: &[i64]) -> Result<(), ParityError> {
        let (es, expected) = self.fx.i64(key)?;
        if shape != es.as_slice() {
            self.shape_mismatch(key, shape, &es);
            return Ok(());
        }
        self.results.push(compare_exact(key, values, &expected));
        self.compared.insert(key.to_owned());
        Ok(())
    }

    fn shape_mismatch(&mut self, key: &str, got: &[usize], expected: &[usize]) {
        self.results.push(Comparison {
            key: key.to_owned(),
            max_abs_diff: f64::INFINITY,
            tolerance: Tolerance::Exact,
            pass: false,
            note: Some(format!("shape {got:?}, expected {expected:?}")),
        });
        self.compared.insert(key.to_owned());
    }

    /// The report: every comparison, then a FAIL line for each recorded output that
    /// was not compared.
    pub fn finish(mut self) -> Vec<Comparison> {
        for key in self.fx.tensors_names() {
            if key.starts_with("out.") && !self.compared.contains(&key) {
                self.results.push(Comparison {
                    key,
                    max_abs_diff: f64::NAN,
                    tolerance: Tolerance::Exact,
                    pass: false,
                    note: Some("not compared by this version".into()),
                });
            }
        }
        self.results
    }
}
