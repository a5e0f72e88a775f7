//! An HTTP server on the Pipeline: an OpenAI-compatible chat endpoint that also returns
//! masks, one endpoint per task, and a web page at `/`.
//!
//! ```text
//! cargo run --release --example serve -- --addr 127.0.0.1:8080 [--bundle DIR]
//! ```
//! Without `--bundle` it serves the tiny random-weight bundle of the repository
//! (gibberish answers; `"force_seg": K` in a request shows the mask path). The
//! endpoints, limits and choices are in `docs/serving.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use omg_examples::server::{Queue, ServeConfig, router, serve};
use omg_examples::{LoadProgress, tiny_bundle};
use omg_llava::Pipeline;
use omg_llava::backend::{DefaultBackend, NAME, default_device};

/// Serve OMG-LLaVA over HTTP.
#[derive(Parser)]
#[command(name = "serve", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Checkpoint bundle directory [default: the repository's tiny demo bundle].
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Precision of the LLM's linear weights (f32, bf16, f16, int8, int4).
    #[arg(long, default_value = "f32", value_name = "f32|bf16|f16|int8|int4")]
    llm_weights: omg_llava::LlmWeights,
    /// The model id of `/v1/models` [default: the bundle directory's name].
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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    omg_llava::reuse_freed_memory();
    let dir = args.bundle.clone().unwrap_or_else(tiny_bundle);
    let t0 = Instant::now();
    let bundle = omg_llava::CheckpointBundle::from_dir(&dir)?;
    eprintln!("loading {} on {NAME}", dir.display());
    let progress = LoadProgress::new();
    let device = default_device();
    let options = omg_llava::LoadOptions::default().with_llm_weights(args.llm_weights);
    let model =
        omg_llava::OmgLlava::<DefaultBackend>::load_with(&bundle, &options, &device, |s| {
            progress.step(s)
        })?;
    progress.finish();
    eprintln!("loaded in {:.2?}", t0.elapsed());
    let model_name = args.model_name.clone().unwrap_or_else(|| {
        dir.canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .map_or_else(|| "omg-llava".into(), |n| format!("omg-llava-{n}"))
    });
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
        Pipeline::new(model, device),
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
