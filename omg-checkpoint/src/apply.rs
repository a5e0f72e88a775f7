//! Puts loaded tensors into a built module by burn parameter path.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{ModuleMapper, Param};
use burn::tensor::{Tensor, backend::Backend};

use crate::CheckpointError;

/// Produces one parameter on a device, as a 2-D tensor (1-D parameters as `[1, n]`);
/// it is reshaped to the parameter's own shape when applied.
pub type Producer<'a, B> =
    Box<dyn Fn(&burn::tensor::Device<B>) -> Result<Tensor<B, 2>, CheckpointError> + 'a>;

/// A [`ModuleMapper`] that replaces every float parameter of a module with the
/// tensor its producer makes, keyed by the parameter's dotted burn path
/// (e.g. `layers.3.attention.wqkv.weight`).
pub struct WeightApplier<'a, B: Backend> {
    producers: BTreeMap<String, Producer<'a, B>>,
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
            path: Vec::new(),
            visited: BTreeSet::new(),
            missing: Vec::new(),
            errors: Vec::new(),
        }
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
        if let Some(unused) = self.producers.keys().find(|k| !self.visited.contains(*k)) {
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
        let Some(producer) = self.producers.get(&path) else {
            self.missing.push(path);
            return param;
        };
        let device = param.lazy_device();
        let dims: [usize; D] = param.lazy_shape().dims();
        match producer(&device) {
            Ok(tensor) => {
                let found = tensor.dims();
                if found[0] * found[1] != dims.iter().product::<usize>() {
                    self.errors.push(CheckpointError::Apply(format!(
                        "tensor for `{path}` has {found:?} elements' shape, the parameter is {dims:?}"
                    )));
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
