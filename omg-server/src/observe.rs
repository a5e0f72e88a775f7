//! What operators watch: every request counted by endpoint and status and logged
//! through `tracing` (method, route, status, time; never the request's text or
//! photo), and `GET /metrics` in Prometheus' text format with those counts, the queue,
//! the photo cache, the chat batches, the tokens generated and the time to the first
//! token.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Upper bounds (seconds) of the time-to-first-token histogram's buckets.
const TTFT_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Counters shared by the handlers, the worker and `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered, by (route, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Tokens generated.
    tokens: AtomicU64,
    /// Time spent generating them, in microseconds (prefill included).
    generation_us: AtomicU64,
    /// Time-to-first-token observations per bucket (the last: past every bound).
    ttft_buckets: [AtomicU64; TTFT_BUCKETS.len() + 1],
    /// Sum of the observed times to the first token, in microseconds.
    ttft_sum_us: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn count_request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// Records a generation of `tokens` tokens that took `elapsed`.
    pub fn record_generation(&self, tokens: usize, elapsed: Duration) {
        self.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        self.generation_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records the time from a request's start on the model to its first token (the
    /// end of its prefill, which chooses that token).
    pub fn record_first_token(&self, elapsed: Duration) {
        let s = elapsed.as_secs_f64();
        let bucket = TTFT_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(TTFT_BUCKETS.len());
        self.ttft_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.ttft_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

/// The middleware: runs the request, then counts and logs it by its route (the
/// matched pattern, so unknown paths are one `other` route).
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let t0 = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.metrics.count_request(&route, status);
    tracing::info!(
        target: "omg_server::access",
        %method,
        route,
        status,
        ms = t0.elapsed().as_secs_f64() * 1e3,
    );
    response
}

/// `GET /metrics`: Prometheus' text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let stats = &state.queue.stats;
    let m = &state.metrics;
    let mut out = String::new();
    let n = family(
        &mut out,
        "omg_requests_total",
        "counter",
        "Requests answered, by route and status.",
    );
    for ((route, status), count) in m.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(out, "{n}{{route=\"{route}\",status=\"{status}\"}} {count}");
    }
    let gauges: [(&str, &str, &str, u64); 12] = [
        (
            "omg_queue_waiting",
            "gauge",
            "Requests waiting for the model.",
            load(&stats.waiting),
        ),
        (
            "omg_queue_capacity",
            "gauge",
            "Requests allowed to wait.",
            state.queue.capacity() as u64,
        ),
        (
            "omg_requests_refused_total",
            "counter",
            "Requests refused because the queue was full.",
            load(&stats.refused),
        ),
        (
            "omg_requests_cancelled_total",
            "counter",
            "Requests skipped or stopped because their client had gone.",
            load(&stats.cancelled),
        ),
        (
            "omg_model_requests_total",
            "counter",
            "Requests the model thread has run.",
            load(&stats.done),
        ),
        (
            "omg_photos_encoded_total",
            "counter",
            "Photos encoded (cache misses).",
            load(&stats.encoded),
        ),
        (
            "omg_cache_entries",
            "gauge",
            "Encoded photos in the cache.",
            load(&stats.cache_entries),
        ),
        (
            "omg_cache_bytes",
            "gauge",
            "Bytes the cached photos hold.",
            load(&stats.cache_bytes),
        ),
        (
            "omg_generated_tokens_total",
            "counter",
            "Tokens generated.",
            m.tokens.load(Ordering::Relaxed),
        ),
        (
            "omg_chat_batches_total",
            "counter",
            "Chat batches run (a request alone is a batch of one).",
            load(&stats.batches),
        ),
        (
            "omg_chat_batched_requests_total",
            "counter",
            "Chat requests run in those batches (the mean batch size is their ratio).",
            load(&stats.batched_rows),
        ),
        (
            "omg_chat_batch_size_max",
            "gauge",
            "Requests of the largest chat batch so far.",
            load(&stats.batch_max),
        ),
    ];
    for (name, kind, help, value) in gauges {
        let n = family(&mut out, name, kind, help);
        let _ = writeln!(out, "{n} {value}");
    }
    let n = family(
        &mut out,
        "omg_generation_seconds_total",
        "counter",
        "Time spent generating (prefill included); tokens per second is the rate of omg_generated_tokens_total over this.",
    );
    let _ = writeln!(
        out,
        "{n} {}",
        m.generation_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let n = family(
        &mut out,
        "omg_time_to_first_token_seconds",
        "histogram",
        "Time from a chat request's start on the model to its first token (the end of its prefill).",
    );
    let mut cumulative = 0;
    for (k, bound) in TTFT_BUCKETS.iter().enumerate() {
        cumulative += m.ttft_buckets[k].load(Ordering::Relaxed);
        let _ = writeln!(out, "{n}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += m.ttft_buckets[TTFT_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(out, "{n}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "{n}_sum {}",
        m.ttft_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "{n}_count {cumulative}");
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Writes a metric family's `HELP` and `TYPE` lines; returns its name.
fn family<'a>(out: &mut String, name: &'a str, kind: &str, help: &str) -> &'a str {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name
}

fn load(v: &std::sync::atomic::AtomicUsize) -> u64 {
    v.load(Ordering::SeqCst) as u64
}
