//! The queue of the model thread: handlers submit jobs to a bounded channel (a job that
//! finds it full is refused at once with 503 and `Retry-After`, so the backlog, and the
//! memory it holds, stay bounded); the model thread runs each job, and gathers the chat
//! completions waiting behind a chat completion into one batch (see `batching`).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use omg_llava::{CancelToken, ImageLimits, Pipeline};

use super::batching::{ChatRow, run_chat_batch};
use super::config::ServeConfig;
use super::error::ApiError;
use super::worker::{B, CancelOnDrop, QueueStats, Work, Worker};

/// What waits in the queue: any work, or a chat completion, which the worker batches
/// with the compatible chat completions waiting behind it.
pub(crate) enum Job {
    /// Work run alone.
    Work(Work),
    /// A chat completion.
    Chat(Box<ChatRow>),
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
                let mut worker =
                    Worker::new(pipeline, (cache_size, cache_bytes), worker_stats.clone());
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
