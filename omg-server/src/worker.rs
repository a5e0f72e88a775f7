//! The model worker: one thread owns the loaded Pipeline and runs the requests one at a
//! time, from a bounded queue. A request that finds the queue full is refused at once
//! (503 with `Retry-After`), so the backlog, and the memory it holds, stay bounded.
//! The worker keeps an LRU cache of encoded photos keyed by their bytes' SHA-256,
//! bounded in entries and in bytes: follow-up questions about the same photo skip
//! decoding and encoding. A request whose client has gone (its [`CancelToken`]
//! cancelled) is skipped if it has not started, and stopped at its next token if it
//! has.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use omg_llava::{CancelToken, ImageHandle, ImageLimits, Pipeline};

use super::batching::{ChatRow, run_chat_batch};
use super::config::ServeConfig;
use super::error::ApiError;
use super::images::PhotoBytes;

/// The backend the server runs on (the build's default: Flex, or the one a
/// `--features` flag picks), as the `omg` tools.
pub use omg_cli::B;

/// A request's work, run on the worker thread.
pub type Work = Box<dyn FnOnce(&mut Worker) + Send>;

/// What waits in the queue: any work, or a chat completion, which the worker batches
/// with the compatible chat completions waiting behind it.
pub(crate) enum Job {
    /// Work run alone.
    Work(Work),
    /// A chat completion.
    Chat(Box<ChatRow>),
}

/// What the worker thread owns: the model and the photo cache.
pub struct Worker {
    /// The loaded model.
    pub pipeline: Pipeline<B>,
    cache: PhotoCache<ImageHandle<B>>,
    pub(crate) stats: Arc<QueueStats>,
}

impl Worker {
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

/// The handlers' side of the worker: submit requests to its bounded queue.
#[derive(Clone)]
pub struct Queue {
    sender: SyncSender<Job>,
    capacity: usize,
    retry_after: u64,
    image_limits: ImageLimits,
    /// Shared counters.
    pub stats: Arc<QueueStats>,
}

impl Queue {
    /// Starts the worker thread on `pipeline` with `config`'s queue (`queue_capacity`
    /// requests may wait besides the running ones), photo cache (`cache_size` photos of
    /// `cache_bytes` bytes at most) and batches (up to `max_batch` chat completions
    /// generated together).
    pub fn start(pipeline: Pipeline<B>, config: &ServeConfig) -> Self {
        let capacity = config.queue_capacity;
        let (cache_size, cache_bytes) = (config.cache_size, config.cache_bytes);
        let (retry_after, max_batch) = (config.retry_after_s, config.max_batch.max(1));
        let batch_wait = config.batch_wait;
        let (sender, receiver) = sync_channel::<Job>(capacity);
        let stats = Arc::new(QueueStats::default());
        let worker_stats = stats.clone();
        let image_limits = pipeline.image_limits();
        std::thread::Builder::new()
            .name("omg-model".into())
            .spawn(move || {
                let mut worker = Worker {
                    pipeline,
                    cache: PhotoCache::new(cache_size, cache_bytes),
                    stats: worker_stats.clone(),
                };
                // jobs taken off the channel while gathering a batch, to run next
                let mut deferred = VecDeque::new();
                while let Some(job) = deferred.pop_front().or_else(|| receiver.recv().ok()) {
                    let jobs = match job {
                        Job::Chat(first) => {
                            let rows =
                                gather(*first, &receiver, &mut deferred, max_batch, batch_wait);
                            let n = rows.len();
                            worker_stats.waiting.fetch_sub(n, Ordering::SeqCst);
                            // a panic in one request must not take the model down with
                            // it: the requests' reply channels are dropped, and their
                            // handlers answer 500
                            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                run_chat_batch(&mut worker, rows)
                            }));
                            n
                        }
                        Job::Work(work) => {
                            worker_stats.waiting.fetch_sub(1, Ordering::SeqCst);
                            let _ =
                                std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut worker)));
                            1
                        }
                    };
                    worker_stats.done.fetch_add(jobs, Ordering::SeqCst);
                }
            })
            .expect("the model thread starts");
        Self {
            sender,
            capacity,
            retry_after,
            image_limits,
            stats,
        }
    }

    /// The model's photo limits (to check a photo's header before queueing it).
    pub fn image_limits(&self) -> ImageLimits {
        self.image_limits
    }

    /// Requests allowed to wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `work`, or refuses it with a 503 when `capacity` requests are waiting.
    pub fn submit(&self, work: Work) -> Result<(), ApiError> {
        self.submit_job(Job::Work(work))
    }

    /// Queues a job, or refuses it with a 503 when `capacity` requests are waiting.
    pub(crate) fn submit_job(&self, job: Job) -> Result<(), ApiError> {
        self.stats.waiting.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(job) {
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

    /// Runs `f` on the worker and waits (asynchronously) for its result. If this
    /// future is dropped (the client has gone), `cancel` is cancelled: the work is
    /// skipped if it has not started, and a generation that gives `cancel` to its
    /// options stops at its next token.
    pub async fn run<T: Send + 'static>(
        &self,
        cancel: CancelToken,
        f: impl FnOnce(&mut Worker) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let guard = CancelOnDrop::new(cancel.clone());
        self.submit(Box::new(move |w| {
            if cancel.is_cancelled() {
                w.stats.cancelled.fetch_add(1, Ordering::SeqCst);
                return;
            }
            let out = f(w);
            if cancel.is_cancelled() {
                w.stats.cancelled.fetch_add(1, Ordering::SeqCst);
            }
            let _ = tx.send(out);
        }))?;
        let out = rx
            .await
            .map_err(|_| ApiError::internal("the request failed inside the model (a panic)"))?;
        guard.disarm();
        out
    }
}

/// `first` and the chat completions that can be generated with it, up to `max_batch`
/// rows: taken from `deferred` first, then from the channel, waiting up to `wait` for
/// more to arrive; other jobs taken off the channel meanwhile go to `deferred` (at most
/// `max_batch` of them), to run next in their order.
fn gather(
    first: ChatRow,
    receiver: &Receiver<Job>,
    deferred: &mut VecDeque<Job>,
    max_batch: usize,
    wait: Duration,
) -> Vec<ChatRow> {
    let deadline = Instant::now() + wait;
    let key = first.batch_key();
    let mut rows = vec![first];
    if key.is_none() {
        return rows;
    }
    let mut kept = VecDeque::new();
    while let Some(job) = deferred.pop_front() {
        match job {
            Job::Chat(row) if rows.len() < max_batch && row.batch_key() == key => rows.push(*row),
            other => kept.push_back(other),
        }
    }
    *deferred = kept;
    while rows.len() < max_batch && deferred.len() < max_batch {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(Job::Chat(row)) if row.batch_key() == key => rows.push(*row),
            Ok(other) => deferred.push_back(other),
            Err(_) => break,
        }
    }
    rows
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
