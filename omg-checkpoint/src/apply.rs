//! Puts loaded tensors into a built module by burn parameter path.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{ModuleMapper, Param};
use burn::tensor::{Int, Tensor, backend::Backend};

use crate::CheckpointError;

/// Produces one parameter on a device, as a 2-D tensor (1-D parameters as `[1, n]`);
/// it is reshaped to the parameter's own shape when applied.
pub type Producer<'a, B> =
    Box<dyn Fn(&burn::tensor::Device<B>) -> Result<Tensor<B, 2>, CheckpointError> + 'a>;

/// Produces a quantized weight on a device: its packed values (an int parameter at
/// `<prefix>.values`) and its scales (a float parameter at `<prefix>.scales`), made
/// together from one checkpoint tensor.
pub type QuantProducer<'a, B> =
    Box<dyn Fn(&burn::tensor::Device<B>) -> Result<QuantPair<B>, CheckpointError> + 'a>;

/// The packed values and the scales of a quantized weight.
pub type QuantPair<B> = (Tensor<B, 2, Int>, Tensor<B, 2>);

/// A [`ModuleMapper`] that replaces every float parameter of a module with the
/// tensor its producer makes, keyed by the parameter's dotted burn path
/// (e.g. `layers.3.attention.wqkv.weight`).
pub struct WeightApplier<'a, B: Backend> {
    producers: BTreeMap<String, Producer<'a, B>>,
    quantized: BTreeMap<String, QuantProducer<'a, B>>,
    /// The half of a quantized pair made before its parameter was visited.
    pending_values: BTreeMap<String, Tensor<B, 2, Int>>,
    pending_scales: BTreeMap<String, Tensor<B, 2>>,
    path: Vec<String>,
    visited: BTreeSet<String>,
    missing: Vec<String>,
    errors: Vec<CheckpointError>,
}

impl<'a, B: Backend> WeightApplier<'a, B> {
    /// An applier for the given producers.
    pub fn new(producers: BTreeMap<String, Producer<'a, B>>) -> Self {
        Self {
            producers,
            quantized: BTreeMap::new(),
            pending_values: BTreeMap::new(),
            pending_scales: BTreeMap::new(),
            path: Vec::new(),
            visited: BTreeSet::new(),
            missing: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds producers of quantized weights, keyed by the module path that holds the
    /// `values` (int) and `scales` (float) parameters, e.g.
    /// `layers.3.attention.wqkv.quantized`. Each producer runs once, for both.
    pub fn with_quantized(mut self, quantized: BTreeMap<String, QuantProducer<'a, B>>) -> Self {
        self.quantized = quantized;
        self
    }

    /// Whether `prefix` names a quantized weight. Its producer runs once, for both
    /// halves, which wait in the pending maps until their parameters are visited; a
    /// failure is recorded (and nothing is pending).
    fn stage_quantized(&mut self, prefix: &str, device: &burn::tensor::Device<B>) -> bool {
        if self.pending_values.contains_key(prefix) || self.pending_scales.contains_key(prefix) {
            return true;
        }
        let Some(producer) = self.quantized.get(prefix) else {
            return false;
        };
        let made = producer(device);
        self.visited.insert(prefix.to_owned());
        match made {
            Ok((values, scales)) => {
                self.pending_values.insert(prefix.to_owned(), values);
                self.pending_scales.insert(prefix.to_owned(), scales);
            }
            Err(e) => self.errors.push(e),
        }
        true
    }

    /// Whether a `found` tensor has as many elements as a parameter of `dims`; records
    /// the mismatch if not.
    fn fits(&mut self, path: &str, found: [usize; 2], dims: &[usize]) -> bool {
        let fits = found[0] * found[1] == dims.iter().product::<usize>();
        if !fits {
            self.errors.push(CheckpointError::Apply(format!(
                "tensor for `{path}` has {found:?} elements' shape, the parameter is {dims:?}"
            )));
        }
        fits
    }

    /// After `module.map(&mut applier)`: an error if any parameter had no producer,
    /// any producer was not used, or any producer failed.
    pub fn finish(mut self) -> Result<(), CheckpointError> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        if let Some(path) = self.missing.first() {
            return Err(CheckpointError::Apply(format!(
                "model parameter `{path}` received no tensor"
            )));
        }
        if let Some(prefix) = self
            .pending_values
            .keys()
            .chain(self.pending_scales.keys())
            .next()
        {
            return Err(CheckpointError::Apply(format!(
                "quantized weight `{prefix}` has values or scales but no parameter for the other"
            )));
        }
        if let Some(unused) = self
            .producers
            .keys()
            .chain(self.quantized.keys())
            .find(|k| !self.visited.contains(*k))
        {
            return Err(CheckpointError::Apply(format!(
                "loaded tensor for `{unused}` matches no model parameter"
            )));
        }
        Ok(())
    }
}

impl<B: Backend> ModuleMapper<B> for WeightApplier<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.path.join(".");
        self.visited.insert(path.clone());
        let device = param.lazy_device();
        let dims: [usize; D] = param.lazy_shape().dims();
        if let Some(prefix) = path.strip_suffix(".scales")
            && self.stage_quantized(prefix, &device)
        {
            return match self.pending_scales.remove(prefix) {
                Some(scales) => self.place(param, Ok(scales), &path, dims),
                None => param, // its producer failed (recorded)
            };
        }
        let Some(producer) = self.producers.get(&path) else {
            self.missing.push(path);
            return param;
        };
        let made = producer(&device);
        self.place(param, made, &path, dims)
    }

    fn map_int<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Int>>,
    ) -> Param<Tensor<B, D, Int>> {
        let path = self.path.join(".");
        self.visited.insert(path.clone());
        let device = param.lazy_device();
        let dims: [usize; D] = param.lazy_shape().dims();
        let Some(prefix) = path
            .strip_suffix(".values")
            .filter(|prefix| self.stage_quantized(prefix, &device))
        else {
            self.missing.push(path);
            return param;
        };
        let Some(values) = self.pending_values.remove(prefix) else {
            return param; // its producer failed (recorded)
        };
        if !self.fits(&path, values.dims(), &dims) {
            return param;
        }
        let id = param.id;
        param.transform_for_load(values.reshape(dims), id)
    }
}

impl<B: Backend> WeightApplier<'_, B> {
    /// Puts a produced float tensor into `param`, or records why not.
    fn place<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D>>,
        made: Result<Tensor<B, 2>, CheckpointError>,
        path: &str,
        dims: [usize; D],
    ) -> Param<Tensor<B, D>> {
        match made {
            Ok(tensor) => {
                if !self.fits(path, tensor.dims(), &dims) {
                    return param;
                }
                let id = param.id;
                param.transform_for_load(tensor.reshape(dims), id)
            }
            Err(e) => {
                self.errors.push(e);
                param
            }
        }
    }
}
