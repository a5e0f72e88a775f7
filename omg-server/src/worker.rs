//! The model worker: one thread owns the loaded Pipeline and runs the requests one at a
//! time, from a bounded queue. A request that finds the queue full is refused at once
//! (503 with `Retry-After`), so the backlog, and the memory it holds, stay bounded.
//! The worker keeps an LRU cache of encoded photos keyed by their bytes' SHA-256:
//! follow-up questions about the same photo skip decoding and encoding.

use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use omg_llava::{ImageHandle, Pipeline};

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
    cache: PhotoCache,
    stats: Arc<QueueStats>,
}

impl Worker {
    /// The encoded `photo`, from the cache or decoded and encoded now (then cached).
    pub fn image(&mut self, photo: &PhotoBytes) -> Result<Rc<ImageHandle<B>>, ApiError> {
        if let Some(handle) = self.cache.get(&photo.hash) {
            return Ok(handle);
        }
        let decoded = photo.decode(self.pipeline.image_limits())?;
        let handle = Rc::new(self.pipeline.encode(&decoded)?);
        self.stats.encoded.fetch_add(1, Ordering::SeqCst);
        self.cache.put(photo.hash, handle.clone());
        Ok(handle)
    }
}

/// Least-recently-used encoded photos.
struct PhotoCache {
    capacity: usize,
    /// Most recently used last.
    entries: Vec<([u8; 32], Rc<ImageHandle<B>>)>,
}

impl PhotoCache {
    fn get(&mut self, key: &[u8; 32]) -> Option<Rc<ImageHandle<B>>> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(at);
        let handle = entry.1.clone();
        self.entries.push(entry);
        Some(handle)
    }

    fn put(&mut self, key: [u8; 32], handle: Rc<ImageHandle<B>>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.remove(0);
        }
        self.entries.push((key, handle));
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
}

/// The handlers' side of the worker: submit requests to its bounded queue.
#[derive(Clone)]
pub struct Queue {
    sender: SyncSender<Work>,
    capacity: usize,
    retry_after: u64,
    /// Shared counters.
    pub stats: Arc<QueueStats>,
}

impl Queue {
    /// Starts the worker thread on `pipeline`, with `capacity` requests allowed to wait
    /// (besides the one running) and `cache_size` encoded photos kept.
    pub fn start(
        pipeline: Pipeline<B>,
        capacity: usize,
        cache_size: usize,
        retry_after: u64,
    ) -> Self {
        let (sender, receiver) = sync_channel::<Work>(capacity);
        let stats = Arc::new(QueueStats::default());
        let worker_stats = stats.clone();
        std::thread::Builder::new()
            .name("omg-model".into())
            .spawn(move || {
                let mut worker = Worker {
                    pipeline,
                    cache: PhotoCache {
                        capacity: cache_size,
                        entries: Vec::new(),
                    },
                    stats: worker_stats.clone(),
                };
                while let Ok(work) = receiver.recv() {
                    worker_stats.waiting.fetch_sub(1, Ordering::SeqCst);
                    // a panic in one request must not take the model down with it: the
                    // request's reply channel is dropped, and the handler answers 500
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut worker)));
                    worker_stats.done.fetch_add(1, Ordering::SeqCst);
                }
            })
            .expect("the model thread starts");
        Self {
            sender,
            capacity,
            retry_after,
            stats,
        }
    }

    /// Requests allowed to wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `work`, or refuses it with a 503 when `capacity` requests are waiting.
    pub fn submit(&self, work: Work) -> Result<(), ApiError> {
        self.stats.waiting.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(work) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => {
                        self.stats.refused.fetch_add(1, Ordering::SeqCst);
                        Err(ApiError::queue_full(self.capacity, self.retry_after))
                    }
                    TrySendError::Disconnected(_) => {
                        Err(ApiError::internal("the model worker has stopped"))
                    }
                }
            }
        }
    }

    /// Runs `f` on the worker and waits (asynchronously) for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move |w| {
            let _ = tx.send(f(w));
        }))?;
        rx.await
            .map_err(|_| ApiError::internal("the request failed inside the model (a panic)"))?
    }
}
