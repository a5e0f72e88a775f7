//! What the model thread owns and what its jobs share: the loaded Pipeline, an LRU
//! cache of encoded photos, the counters, and the cancellation of requests whose client
//! has gone (the queue that feeds the thread is in `queue`). The worker keeps an LRU cache of encoded photos keyed by their bytes' SHA-256,
//! bounded in entries and in bytes: follow-up questions about the same photo skip
//! decoding and encoding. A request whose client has gone (its [`CancelToken`]
//! cancelled) is skipped if it has not started, and stopped at its next token if it
//! has.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use omg_llava::{CancelToken, ImageHandle, Pipeline};

use super::error::ApiError;
use super::images::PhotoBytes;

/// The backend the server runs on (the build's default: Flex, or the one a
/// `--features` flag picks), as the `omg` tools.
pub use omg_cli::B;

/// A request's work, run on the worker thread.
pub type Work = Box<dyn FnOnce(&mut Worker) + Send>;

/// What the worker thread owns: the model and the photo cache.
pub struct Worker {
    /// The loaded model.
    pub pipeline: Pipeline<B>,
    cache: PhotoCache<ImageHandle<B>>,
    pub(crate) stats: Arc<QueueStats>,
}

impl Worker {
    /// The worker of `pipeline`, with a cache of at most `cache_size` encoded photos of
    /// `cache_bytes` bytes together.
    pub(crate) fn new(
        pipeline: Pipeline<B>,
        (cache_size, cache_bytes): (usize, usize),
        stats: Arc<QueueStats>,
    ) -> Self {
        Self {
            pipeline,
            cache: PhotoCache::new(cache_size, cache_bytes),
            stats,
        }
    }

    /// The encoded `photo`, from the cache or decoded and encoded now (then cached).
    pub fn image(&mut self, photo: &PhotoBytes) -> Result<Rc<ImageHandle<B>>, ApiError> {
        if let Some(handle) = self.cache.get(&photo.hash) {
            return Ok(handle);
        }
        let handle = {
            // the decoded pixels live only while the photo is encoded
            let decoded = photo.decode(self.pipeline.image_limits())?;
            Rc::new(self.pipeline.encode(&decoded)?)
        };
        self.stats.encoded.fetch_add(1, Ordering::SeqCst);
        let bytes = handle.memory_bytes();
        self.cache.put(photo.hash, handle.clone(), bytes);
        self.stats
            .cache_bytes
            .store(self.cache.bytes(), Ordering::SeqCst);
        self.stats
            .cache_entries
            .store(self.cache.entries.len(), Ordering::SeqCst);
        Ok(handle)
    }
}

/// Least-recently-used encoded photos, at most `capacity` of them and `max_bytes`
/// together.
pub struct PhotoCache<T> {
    capacity: usize,
    max_bytes: usize,
    /// Most recently used last, with their sizes.
    entries: Vec<([u8; 32], Rc<T>, usize)>,
}

impl<T> PhotoCache<T> {
    /// An empty cache of at most `capacity` entries and `max_bytes` bytes.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            entries: Vec::new(),
        }
    }

    /// The entry of `key`, now the most recently used.
    pub fn get(&mut self, key: &[u8; 32]) -> Option<Rc<T>> {
        let at = self.entries.iter().position(|(k, _, _)| k == key)?;
        let entry = self.entries.remove(at);
        let value = entry.1.clone();
        self.entries.push(entry);
        Some(value)
    }

    /// Keeps `value` of `bytes` bytes, dropping the least recently used entries until
    /// both bounds hold; a value larger than `max_bytes` is not kept.
    pub fn put(&mut self, key: [u8; 32], value: Rc<T>, bytes: usize) {
        self.entries.retain(|(k, _, _)| *k != key);
        if self.capacity == 0 || bytes > self.max_bytes {
            return;
        }
        while self.entries.len() >= self.capacity
            || self.bytes().saturating_add(bytes) > self.max_bytes
        {
            self.entries.remove(0);
        }
        self.entries.push((key, value, bytes));
    }

    /// Bytes the entries hold together.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, _, b)| b).sum()
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Counters shared between the handlers and the worker.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Requests waiting for the worker.
    pub waiting: AtomicUsize,
    /// Requests the worker has run.
    pub done: AtomicUsize,
    /// Photos encoded (cache misses).
    pub encoded: AtomicUsize,
    /// Requests refused with 503.
    pub refused: AtomicUsize,
    /// Requests skipped or stopped because their client had gone.
    pub cancelled: AtomicUsize,
    /// Encoded photos in the cache.
    pub cache_entries: AtomicUsize,
    /// Bytes the cached photos hold.
    pub cache_bytes: AtomicUsize,
    /// Chat batches run (a request run alone is a batch of one).
    pub batches: AtomicUsize,
    /// Chat requests run in those batches.
    pub batched_rows: AtomicUsize,
    /// Rows of the largest batch.
    pub batch_max: AtomicUsize,
}

/// Cancels its token when dropped, unless disarmed: held by a handler while the worker
/// runs its request, so that a handler dropped with its closed connection stops the
/// work.
pub struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    /// A guard of `token`.
    pub fn new(token: CancelToken) -> Self {
        Self(Some(token))
    }

    /// Drops the guard without cancelling.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = &self.0 {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: u8) -> [u8; 32] {
        [k; 32]
    }

    #[test]
    fn the_cache_keeps_within_its_entries_and_bytes_least_recently_used_first() {
        let mut cache = PhotoCache::new(3, 100);
        cache.put(key(1), Rc::new(1), 40);
        cache.put(key(2), Rc::new(2), 40);
        assert_eq!((cache.len(), cache.bytes()), (2, 80));
        // 1 is used again, so 2 is the least recently used
        assert_eq!(cache.get(&key(1)).as_deref(), Some(&1));
        cache.put(key(3), Rc::new(3), 40);
        assert!(cache.get(&key(2)).is_none(), "past the bytes, 2 goes first");
        assert_eq!((cache.len(), cache.bytes()), (2, 80));
        // past the entries
        cache.put(key(4), Rc::new(4), 1);
        cache.put(key(5), Rc::new(5), 1);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key(1)).is_none());
        // a value larger than the whole cache is not kept, and evicts nothing
        cache.put(key(6), Rc::new(6), 101);
        assert!(cache.get(&key(6)).is_none());
        assert_eq!(cache.len(), 3);
        // the same key twice is one entry
        cache.put(key(5), Rc::new(50), 2);
        assert_eq!(cache.get(&key(5)).as_deref(), Some(&50));
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= 100);
        let mut off = PhotoCache::new(0, 100);
        off.put(key(1), Rc::new(1), 1);
        assert!(off.is_empty());
    }
}
