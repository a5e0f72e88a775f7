//! Chat completions generated together: the worker takes a chat completion and the
//! compatible ones waiting behind it (greedy, the same `force_seg` and `ignore_eos`; up to
//! `--max-batch`), prepares each (its photo from the cache, its options, its task),
//! and runs them as one [`BatchStream`](omg_llava::BatchStream): one forward pass per
//! step for every row, each row with its own `max_tokens`, its own stream or answer,
//! its own cancellation. A sampled request runs alone (the rows of a batch would share
//! one random generator). Greedy answers equal the one-at-a-time answers.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use omg_cli::records::{OutputMask, RegionSpec};
use omg_llava::{
    Answer, BatchEvent, BatchRow, BatchStream, CancelToken, Conversation, FinishReason,
    GenerateOptions, ImageHandle, OmgLlavaError, StreamEvent, Task,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::config::ServeConfig;
use super::error::ApiError;
use super::images::PhotoBytes;
use super::observe::Metrics;
use super::options::{SamplingFields, generate_options};
use super::worker::{B, QueueStats, Worker};

/// Where a row's answer goes.
pub enum Reply {
    /// The whole answer, at its end.
    Blocking(oneshot::Sender<Result<Answer, ApiError>>),
    /// Whether it could start, then its chunks as they come.
    Streaming {
        /// Answered once the prefill is done (or with the error that stopped it).
        started: Option<oneshot::Sender<Result<(), ApiError>>>,
        /// Text, masks, the end.
        chunks: mpsc::UnboundedSender<Chunk>,
    },
}

impl Reply {
    /// Answers `e`, where the client still waits.
    fn fail(&mut self, e: ApiError) {
        match self {
            Reply::Blocking(_) => {
                if let Reply::Blocking(tx) = std::mem::replace(self, closed()) {
                    let _ = tx.send(Err(e));
                }
            }
            Reply::Streaming { started, chunks } => match started.take() {
                Some(tx) => {
                    let _ = tx.send(Err(e));
                }
                None => {
                    let _ = chunks.send(Chunk::Failed(e));
                }
            },
        }
    }
}

/// A reply already given.
fn closed() -> Reply {
    Reply::Blocking(oneshot::channel().0)
}

/// A chat completion waiting for the model.
pub struct ChatRow {
    /// The conversation.
    pub(crate) dialogue: Dialogue,
    /// Its regions (decoded on the model thread).
    pub(crate) regions: Vec<RegionSpec>,
    /// Its generation fields.
    pub(crate) sampling: SamplingFields,
    /// The server's settings.
    pub(crate) config: Arc<ServeConfig>,
    /// Cancelled when its client goes away.
    pub(crate) cancel: CancelToken,
    /// Where its time to first token and tokens are counted.
    pub(crate) metrics: Arc<Metrics>,
    /// Where its answer goes.
    pub(crate) reply: Reply,
}

/// What rows must share to be generated together: greedy decoding, `force_seg` and
/// `ignore_eos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchKey {
    force_seg: Option<usize>,
    ignore_eos: bool,
}

impl ChatRow {
    /// Its batch key; `None` for a sampled request, which runs alone.
    pub fn batch_key(&self) -> Option<BatchKey> {
        let greedy = self.sampling.temperature.is_none_or(|t| t == 0.0);
        greedy.then_some(BatchKey {
            force_seg: self.sampling.force_seg,
            ignore_eos: self.sampling.ignore_eos,
        })
    }
}

/// Runs `rows` together (see the module's documentation); each row's reply gets its
/// answer or its error.
pub fn run_chat_batch(w: &mut Worker, rows: Vec<ChatRow>) {
    let t0 = Instant::now();
    let mut ready = Vec::with_capacity(rows.len());
    for mut row in rows {
        if row.cancel.is_cancelled() {
            w.stats.cancelled.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let prepared = prepare(w, &row.dialogue.photo, &row.sampling, &row.config).and_then(
            |(options, img)| {
                Ok((
                    options.with_cancel(row.cancel.clone()),
                    img,
                    chat_task(&row.dialogue, &row.regions)?,
                ))
            },
        );
        match prepared {
            Ok((options, img, task)) => ready.push((row, options, img, task)),
            Err(e) => row.reply.fail(e),
        }
    }
    if ready.is_empty() {
        return;
    }
    let stats = w.stats.clone();
    stats.batches.fetch_add(1, Ordering::SeqCst);
    stats.batched_rows.fetch_add(ready.len(), Ordering::SeqCst);
    stats.batch_max.fetch_max(ready.len(), Ordering::SeqCst);
    let mut running: Vec<ChatRow> = Vec::with_capacity(ready.len());
    let mut inputs = Vec::with_capacity(ready.len());
    for (row, options, img, task) in ready {
        running.push(row);
        inputs.push((options, img, task));
    }
    let batch: Vec<BatchRow<'_, B>> = inputs
        .iter()
        .map(|(options, img, task)| BatchRow {
            image: img,
            task,
            options,
        })
        .collect();
    match w.pipeline.stream_batch(&batch) {
        Ok(stream) => drive(stream, &mut running, t0, &stats),
        // a row that cannot start (its prompt too long, say) fails alone: each row on
        // its own
        Err(_) if batch.len() > 1 => {
            for (k, one) in batch.iter().enumerate() {
                let row = std::slice::from_mut(&mut running[k]);
                match w.pipeline.stream_batch(std::slice::from_ref(one)) {
                    Ok(stream) => drive(stream, row, t0, &stats),
                    Err(e) => fail_unless_cancelled(&mut row[0], e, &stats),
                }
            }
        }
        Err(e) => fail_unless_cancelled(&mut running[0], e, &stats),
    }
}

fn fail_unless_cancelled(r: &mut ChatRow, e: OmgLlavaError, stats: &QueueStats) {
    if matches!(e, OmgLlavaError::Cancelled) {
        stats.cancelled.fetch_add(1, Ordering::SeqCst);
    } else {
        r.reply.fail(e.into());
    }
}

/// Sends each row's events and answer where its reply goes.
fn drive(stream: BatchStream<'_, B>, rows: &mut [ChatRow], t0: Instant, stats: &QueueStats) {
    // the prefill is done and has chosen each row's first token
    for r in rows.iter_mut() {
        r.metrics.record_first_token(t0.elapsed());
        if let Reply::Streaming { started, .. } = &mut r.reply
            && let Some(tx) = started.take()
        {
            let _ = tx.send(Ok(()));
        }
    }
    let mut ended = vec![false; rows.len()];
    for event in stream {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                let e = ApiError::from(e);
                for (r, _) in rows.iter_mut().zip(&ended).filter(|(_, done)| !**done) {
                    r.reply.fail(e.clone());
                }
                return;
            }
        };
        match event {
            BatchEvent::Event { row, event } => {
                let r = &mut rows[row];
                if let Reply::Streaming { chunks, .. } = &r.reply {
                    let chunk = match event {
                        StreamEvent::Text(piece) => Chunk::Text(piece),
                        StreamEvent::Mask {
                            index,
                            phrase,
                            mask,
                        } => Chunk::Mask(index, OutputMask::with_phrase(&mask, phrase)),
                        _ => continue,
                    };
                    if chunks.send(chunk).is_err() {
                        // the client went away: the row stops at the next step
                        r.cancel.cancel();
                    }
                }
            }
            BatchEvent::Finished { row, answer } => {
                ended[row] = true;
                let r = &mut rows[row];
                if let Ok(a) = &answer {
                    r.metrics.record_generation(a.token_ids.len(), t0.elapsed());
                }
                match (answer, std::mem::replace(&mut r.reply, closed())) {
                    (Err(OmgLlavaError::Cancelled), _) => {
                        stats.cancelled.fetch_add(1, Ordering::SeqCst);
                    }
                    (answer, Reply::Blocking(tx)) => {
                        let _ = tx.send(answer.map_err(ApiError::from));
                    }
                    (Ok(a), Reply::Streaming { chunks, .. }) => {
                        let _ = chunks.send(Chunk::Done {
                            finish_reason: a.finish_reason,
                            usage: usage(a.prompt_tokens, a.token_ids.len()),
                        });
                    }
                    (Err(e), Reply::Streaming { chunks, .. }) => {
                        let _ = chunks.send(Chunk::Failed(e.into()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The conversation of a request: its photo, the earlier (question, answer) turns and
/// the question to answer.
pub(crate) struct Dialogue {
    pub(crate) photo: PhotoBytes,
    pub(crate) history: Vec<(String, String)>,
    pub(crate) question: String,
}

impl Dialogue {
    /// Characters of its text.
    pub(crate) fn chars(&self) -> usize {
        let turns: usize = self
            .history
            .iter()
            .map(|(q, a)| q.chars().count() + a.chars().count())
            .sum();
        turns + self.question.chars().count()
    }
}

/// The Pipeline's task for the last question: a question about `regions` (a single
/// turn, checked by the handler; their masks are decoded here, on the model thread),
/// or a chat turn after the history (each earlier answer recorded as the client gives
/// it, its `[SEG]` and `<p>` tags kept as the model's tokens).
pub(crate) fn chat_task(d: &Dialogue, regions: &[RegionSpec]) -> Result<Task, ApiError> {
    if !regions.is_empty() {
        let regions = regions
            .iter()
            .map(RegionSpec::to_region)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request("bad_regions", e.to_string()))?;
        return Ok(Task::ask_regions(regions, d.question.clone()));
    }
    let mut conversation = Conversation::new();
    for (q, a) in &d.history {
        conversation.push_turn(q, a);
    }
    Ok(Task::chat_after(&conversation, d.question.clone()))
}

/// What the worker sends a streaming handler.
pub(crate) enum Chunk {
    /// A piece of text.
    Text(String),
    /// The mask of the `index`-th `[SEG]`.
    Mask(usize, OutputMask),
    /// The end.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// The `usage` object.
        usage: Value,
    },
    /// The error that ended it.
    Failed(ApiError),
}

/// What answering a request needs from the worker: the generation options and the
/// encoded photo (from the cache).
fn prepare(
    w: &mut Worker,
    photo: &PhotoBytes,
    sampling: &SamplingFields,
    config: &ServeConfig,
) -> Result<(GenerateOptions, Rc<ImageHandle<B>>), ApiError> {
    let options = generate_options(sampling, config)?;
    let img = w.image(photo)?;
    Ok((options, img))
}

/// The `usage` object of an answer.
pub(crate) fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}
