//! # omg-server
//!
//! OMG-LLaVA over HTTP: the `omg-server` crate puts a loaded
//! [`Pipeline`](omg_llava::Pipeline) behind an axum + tokio server (the model crates have
//! no web dependency). Its binary is `omg-server --addr 127.0.0.1:8080 [--bundle DIR]`;
//! this library holds the routes, so that they can be embedded or tested.
//!
//! - [`openai`]: `POST /v1/chat/completions`, OpenAI-compatible (streaming included),
//!   with `masks` and `regions` extensions;
//! - [`tasks`]: `POST /v1/segment`, `/v1/ground`, `/v1/caption`, `/v1/regions`,
//!   `/v1/interactive`, `/v1/panoptic` (JSON or multipart in, typed JSON out);
//! - `GET /health`, `GET /v1/models`, and `GET /`: a self-contained web page;
//! - [`observe`]: `GET /metrics` (Prometheus) and the access log (`tracing`);
//! - [`config`]: the settings, with the limits of [`bounds`] (what one request may
//!   carry), [`access`] (API key, allowed hosts, content types) and [`listen`]
//!   (connection timeouts and cap, graceful shutdown);
//! - [`options`]: the generation fields of a request, as the Pipeline's
//!   `GenerateOptions`;
//! - [`queue`]: the model thread's bounded queue (503 + `Retry-After` past it), which
//!   gathers waiting chat completions into batches (generated together, each with its
//!   own limits, stream and cancellation);
//! - [`worker`]: what the model thread owns: the LRU cache of encoded photos (bounded in
//!   entries and bytes), the counters, and the cancellation of requests whose client
//!   has gone;
//! - [`images`]: data URLs and file bytes to photos, within the pipeline's limits;
//! - [`error`]: every failure as a status and OpenAI's error object.

#![warn(missing_docs)]

pub mod access;
mod batching;
pub mod bounds;
pub mod config;
pub mod error;
pub mod images;
pub mod listen;
pub mod observe;
pub mod openai;
pub mod options;
pub mod queue;
pub mod tasks;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

pub use config::{AccessPolicy, ConnectionLimits, RequestLimits, ServeConfig};
pub use error::ApiError;
pub use queue::Queue;

use omg_cli::jobs::JobKind;
use tasks::run_endpoint;

/// The web page served at `/` (plain HTML, CSS and JavaScript; no build step, no CDN).
pub const PAGE: &str = include_str!("page.html");

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The model worker's queue.
    pub queue: Queue,
    /// The settings.
    pub config: Arc<ServeConfig>,
    /// Request counts and generation figures of `/metrics`.
    pub metrics: Arc<observe::Metrics>,
}

/// The server's routes on a started worker.
pub fn router(queue: Queue, config: ServeConfig) -> Router {
    let max_body = config.max_body_bytes;
    let state = AppState {
        queue,
        config: Arc::new(config),
        metrics: Arc::default(),
    };
    let task = |kind: JobKind| move |s: State<AppState>, r: Request| run_endpoint(kind, s, r);
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(observe::metrics))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/segment", post(task(JobKind::Segment)))
        .route("/v1/ground", post(task(JobKind::Ground)))
        .route("/v1/caption", post(task(JobKind::Caption)))
        .route("/v1/regions", post(task(JobKind::Region)))
        .route("/v1/panoptic", post(task(JobKind::Panoptic)))
        .route("/v1/interactive", post(task(JobKind::Interactive)))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(s): State<AppState>) -> Response {
    let stats = &s.queue.stats;
    axum::Json(json!({
        "status": "ok",
        "model": s.config.model_name,
        "backend": omg_llava::backend::NAME,
        "queue": {
            "waiting": stats.waiting.load(Ordering::SeqCst),
            "capacity": s.queue.capacity(),
            "done": stats.done.load(Ordering::SeqCst),
            "refused": stats.refused.load(Ordering::SeqCst),
            "cancelled": stats.cancelled.load(Ordering::SeqCst),
            "max_batch": s.config.max_batch,
            "batches": stats.batches.load(Ordering::SeqCst),
            "largest_batch": stats.batch_max.load(Ordering::SeqCst),
        },
        "cache": {
            "capacity": s.config.cache_size,
            "max_bytes": s.config.cache_bytes,
            "entries": stats.cache_entries.load(Ordering::SeqCst),
            "bytes": stats.cache_bytes.load(Ordering::SeqCst),
            "encoded": stats.encoded.load(Ordering::SeqCst),
        },
    }))
    .into_response()
}

async fn models(State(s): State<AppState>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": s.config.model_name, "object": "model", "created": 0, "owned_by": "omg-llava-rs"}],
    }))
    .into_response()
}

/// A request's body, within the `--max-body-mib` limit (413 `body_too_large` past it)
/// and the body timeout (408 `body_timeout` past it).
pub(crate) async fn body_bytes(
    state: &AppState,
    request: Request,
) -> Result<axum::body::Bytes, ApiError> {
    use axum::extract::FromRequest;
    let limit = state.config.max_body_bytes;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        // refused from its declared length, before any of it is read
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request's body is {n} bytes (the limit is {limit} bytes)"),
        ));
    }
    let timeout = state.config.connections.body_timeout;
    tokio::time::timeout(timeout, axum::body::Bytes::from_request(request, state))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request's body did not arrive within {} s",
                    timeout.as_secs_f32()
                ),
            )
        })?
        .map_err(|e| {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "bad_body"
            };
            let message = format!(
                "{} (the limit is {} bytes)",
                e.body_text(),
                state.config.max_body_bytes
            );
            ApiError::new(e.status(), code, message)
        })
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

pub use listen::serve;

/// Starts a server on a thread of its own (its own tokio runtime) on `listener`, with
/// the connection `limits`, for tests and for embedding; it runs until the process
/// ends.
pub fn spawn(
    listener: std::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("omg-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve(listener, router, limits, std::future::pending()).await
            })
        })?;
    Ok(())
}
