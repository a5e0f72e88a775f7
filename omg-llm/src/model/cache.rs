//! Key/value cache for incremental decoding.

use burn::tensor::{Tensor, backend::Backend};

use omg_kernels::write_positions;

use crate::LlmError;

/// Keys and values of one attention layer, preallocated to a fixed capacity:
/// `[batch, kv_heads, capacity, head_dim]`, of which the first `len` positions are
/// filled.
#[derive(Debug, Clone)]
pub struct LayerKvCache<B: Backend> {
    // `Option` only so that `append` can take the tensors by value: a cache tensor
    // that shares its memory with no other tensor is written in place.
    k: Option<Tensor<B, 4>>,
    v: Option<Tensor<B, 4>>,
}

/// The KV cache of a whole model: one [`LayerKvCache`] per layer and the number of
/// positions already processed (keys are stored after RoPE, as in the official code).
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerKvCache<B>>,
    len: usize,
    capacity: usize,
    batch: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `layers` layers that can hold `capacity` positions of
    /// `batch` sequences.
    pub fn new(
        layers: usize,
        batch: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        device: &B::Device,
    ) -> Self {
        let layer = || LayerKvCache {
            k: Some(Tensor::zeros([batch, kv_heads, capacity, head_dim], device)),
            v: Some(Tensor::zeros([batch, kv_heads, capacity, head_dim], device)),
        };
        Self {
            layers: (0..layers).map(|_| layer()).collect(),
            len: 0,
            capacity,
            batch,
        }
    }

    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Batch size the cache was made for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Checks that `new` more positions of a batch of `batch` fit.
    pub(crate) fn check_room(&self, batch: usize, new: usize) -> Result<(), LlmError> {
        if batch != self.batch {
            return Err(LlmError::Input(format!(
                "batch size {batch} does not match the KV cache's batch size {}",
                self.batch
            )));
        }
        if self.len + new > self.capacity {
            return Err(LlmError::ContextOverflow {
                needed: self.len + new,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Writes `k`, `v` `[batch, kv_heads, T, head_dim]` of layer `layer` at the
    /// current position and returns the layer's whole cache tensors
    /// `[batch, kv_heads, capacity, head_dim]`, of which the first `len() + T` positions
    /// are filled (shared with the cache, not copied).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let start = self.len;
        let cache = &mut self.layers[layer];
        let ck = cache.k.take().expect("cache tensors are always present");
        let cv = cache.v.take().expect("cache tensors are always present");
        let ck = write_positions(ck, start, k);
        let cv = write_positions(cv, start, v);
        let out = (ck.clone(), cv.clone());
        cache.k = Some(ck);
        cache.v = Some(cv);
        out
    }

    /// Marks `t` more positions as filled (after every layer has appended them).
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Forgets every cached position (the memory is kept for reuse).
    pub fn reset(&mut self) {
        self.len = 0;
    }
}
