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
use omg_server::{Queue, ServeConfig, router, serve};

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
    /// Encoded photos kept for follow-up questions (LRU).
    #[arg(long, default_value_t = 16)]
    cache: usize,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 32)]
    max_body_mib: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 2048)]
    max_tokens_limit: usize,
    /// `max_tokens` of requests that give none.
    #[arg(long, default_value_t = 100)]
    max_tokens_default: usize,
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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    omg_llava::reuse_freed_memory();
    let loaded = args.model.load()?;
    let model_name = args
        .model_name
        .clone()
        .unwrap_or_else(|| default_model_name(&loaded));
    let config = ServeConfig {
        model_name,
        queue_capacity: args.queue,
        cache_size: args.cache,
        max_body_bytes: args.max_body_mib << 20,
        max_tokens_limit: args.max_tokens_limit,
        default_max_tokens: args.max_tokens_default,
        ..ServeConfig::default()
    };
    let queue = Queue::start(
        loaded.pipeline,
        config.queue_capacity,
        config.cache_size,
        config.retry_after_s,
    );
    let app = router(queue, config);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
        eprintln!(
            "serving on http://{} (Ctrl-C stops)",
            listener.local_addr()?
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping");
        };
        serve(listener, app, shutdown).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
