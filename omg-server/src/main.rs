//! `omg-server`: OMG-LLaVA over HTTP, an OpenAI-compatible chat endpoint that also
//! returns masks, one endpoint per task, and a web page at `/`.
//!
//! ```text
//! omg-server --addr 127.0.0.1:8080 [--bundle DIR] [--llm-weights int8]
//! ```
//! Without `--bundle` it serves the built-in tiny demo bundle (random weights:
//! meaningless answers; `"force_seg": K` in a request shows the mask path). The
//! endpoints, limits and choices are in `docs/serving.md`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use omg_cli::model::{Loaded, ModelArgs};
use std::time::Duration;

use omg_server::config::LOOPBACK_HOSTS;
use omg_server::{
    AccessPolicy, ConnectionLimits, Queue, RequestLimits, ServeConfig, router, serve,
};

/// The environment variable an API key may come from.
const API_KEY_VAR: &str = "OMG_SERVER_API_KEY";

/// Serve OMG-LLaVA over HTTP: an OpenAI-compatible chat endpoint with masks, one
/// endpoint per task, and a web page.
#[derive(Parser)]
#[command(name = "omg-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The model id of `/v1/models` [default: `omg-llava-<bundle directory name>`, or
    /// `omg-llava-demo` for the built-in demo bundle].
    #[arg(long)]
    model_name: Option<String>,
    /// Requests that may wait for the model besides the running one; more get 503.
    #[arg(long, default_value_t = 8)]
    queue: usize,
    /// Chat completions generated together at most (waiting greedy requests join the
    /// next batch; 1: one at a time).
    #[arg(long, default_value_t = ServeConfig::default().max_batch)]
    max_batch: usize,
    /// Milliseconds the model thread waits for more chat completions to join a batch.
    #[arg(long, default_value_t = 20)]
    batch_wait_ms: u64,
    /// Encoded photos kept for follow-up questions (LRU), at most.
    #[arg(long, default_value_t = 16)]
    cache: usize,
    /// MiB the kept encoded photos may hold together (an encoded photo of the 7.7 B
    /// model holds about 100 MiB).
    #[arg(long, default_value_t = 1024)]
    cache_mib: usize,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 32)]
    max_body_mib: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 2048)]
    max_tokens_limit: usize,
    /// `max_tokens` of requests that give none.
    #[arg(long, default_value_t = 100)]
    max_tokens_default: usize,
    /// Characters of text one request may carry (all chat messages together, or a
    /// task's prompt).
    #[arg(long, default_value_t = RequestLimits::default().max_text_chars)]
    max_text_chars: usize,
    /// Messages of one chat request (and content parts of one message).
    #[arg(long, default_value_t = RequestLimits::default().max_messages)]
    max_messages: usize,
    /// Regions (points, boxes, masks) of one request.
    #[arg(long, default_value_t = RequestLimits::default().max_regions)]
    max_regions: usize,
    /// Require `Authorization: Bearer <KEY>` on every route but `GET /health` and the
    /// page (prefer --api-key-file or the OMG_SERVER_API_KEY variable: a flag shows in
    /// the process list).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Read the API key from the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key")]
    api_key_file: Option<std::path::PathBuf>,
    /// A host name requests may be addressed to (`Host`) and come from (`Origin`),
    /// besides the loopback names and the address listened on; `*` for any (behind a
    /// proxy that checks it). Repeatable.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Open connections at most; more are answered 503.
    #[arg(long, default_value_t = ConnectionLimits::default().max_connections)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (also the idle time of a
    /// kept-alive connection).
    #[arg(long, default_value_t = ConnectionLimits::default().header_timeout.as_secs())]
    header_timeout_s: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value_t = ConnectionLimits::default().body_timeout.as_secs())]
    body_timeout_s: u64,
    /// Do not log each request (method, route, status, milliseconds) to stderr.
    #[arg(long)]
    no_access_log: bool,
    /// Seconds running requests get to finish on SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = ConnectionLimits::default().shutdown_grace.as_secs())]
    shutdown_grace_s: u64,
    /// The model.
    #[command(flatten)]
    model: ModelArgs,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The model id of a loaded bundle: `omg-llava-<its directory's name>`, or
/// `omg-llava-demo` for the built-in demo bundle.
fn default_model_name(loaded: &Loaded) -> String {
    if loaded.demo {
        return "omg-llava-demo".into();
    }
    let source = Path::new(&loaded.source);
    let name = source
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| loaded.source.clone());
    format!("omg-llava-{name}")
}

/// The API key of the flags, the key file or the environment, if any.
fn api_key(args: &Args) -> Result<Option<String>, String> {
    let key = if let Some(path) = &args.api_key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
        Some(text.lines().next().unwrap_or("").trim().to_owned())
    } else {
        args.api_key
            .clone()
            .or_else(|| std::env::var(API_KEY_VAR).ok())
    };
    match key {
        Some(k) if k.is_empty() => Err("the API key is empty".into()),
        other => Ok(other),
    }
}

/// The hosts requests may name: loopback, the address listened on (unless it is
/// `0.0.0.0` or `::`), and the `--allow-host` names.
fn allowed_hosts(args: &Args) -> Vec<String> {
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    if !args.addr.ip().is_unspecified() {
        hosts.push(args.addr.ip().to_string());
    }
    hosts.extend(args.allow_hosts.iter().map(|h| h.to_ascii_lowercase()));
    hosts
}

/// Raises the soft limit of open files to what `connections` connections need (plus
/// the model's files and some room), within the hard limit; says so when the hard limit
/// is lower.
fn raise_open_files(connections: usize) {
    let wanted = connections as u64 + 256;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => eprintln!(
            "warning: open files are limited to {got}, fewer than --max-connections {connections} needs"
        ),
        _ => {}
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    omg_llava::reuse_freed_memory();
    let key = api_key(&args)?;
    if !args.no_access_log {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    let loaded = args.model.load()?;
    let model_name = args
        .model_name
        .clone()
        .unwrap_or_else(|| default_model_name(&loaded));
    let config = ServeConfig {
        model_name,
        queue_capacity: args.queue,
        cache_size: args.cache,
        max_batch: args.max_batch,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        cache_bytes: args.cache_mib << 20,
        max_body_bytes: args.max_body_mib << 20,
        max_tokens_limit: args.max_tokens_limit,
        default_max_tokens: args.max_tokens_default,
        limits: RequestLimits {
            max_text_chars: args.max_text_chars,
            max_messages: args.max_messages,
            max_regions: args.max_regions,
        },
        access: AccessPolicy {
            api_key: key,
            allowed_hosts: allowed_hosts(&args),
        },
        connections: ConnectionLimits {
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout_s),
            body_timeout: Duration::from_secs(args.body_timeout_s),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_s),
        },
        ..ServeConfig::default()
    };
    let queue = Queue::start(loaded.pipeline, &config);
    let connections = config.connections.clone();
    raise_open_files(connections.max_connections);
    let keyed = config.access.api_key.is_some();
    let app = router(queue, config);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
        eprintln!(
            "serving on http://{}{} (Ctrl-C stops)",
            listener.local_addr()?,
            if keyed { " with an API key" } else { "" }
        );
        let shutdown = async {
            stop_signal().await;
            eprintln!("stopping: finishing the running requests");
        };
        serve(listener, app, connections, shutdown).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
