//! Times `Pipeline::from_dir` on a bundle directory against reading the same files.
//!
//! ```text
//! cargo run --release -p omg-bench --bin load_bench -- --dir BUNDLE --llm-weights int8
//! ```
//!
//! First every file of the bundle is read twice in 64 MiB chunks, one file at a time:
//! the first read brings it into the page cache (or finds it there), the second is the
//! time to read it from the page cache (printed for each file over 1 MiB). Then the pipeline is loaded, with the time of
//! each load step, the peak RSS of the process and the bytes the loaded model holds
//! (computed from the files' shapes and the chosen precision). A full-size bundle is
//! written by `benches/write_full_bundle.py`. With `--query`, a `segment` query on the
//! sample photo is then timed twice. A benchmark: it asserts nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use omg_bench::peak_rss_mib;
use omg_checkpoint::TensorSource;
use omg_checkpoint::pth::PthFile;
use omg_llava::backend::{DefaultBackend as B, NAME, default_device};
use omg_llava::{CheckpointBundle, LlmWeights, LoadOptions, Pipeline};
use omg_llm::InternLM2Config;

#[derive(Parser)]
#[command(about = "Times Pipeline::from_dir against reading the bundle's files")]
struct Args {
    /// The bundle directory.
    #[arg(long)]
    dir: PathBuf,
    /// Precision of the LLM's linears: f32, bf16, f16, int8, int4.
    #[arg(long, default_value = "int8")]
    llm_weights: LlmWeights,
    /// Skip timing the plain reads.
    #[arg(long)]
    no_read: bool,
    /// After loading, time a `segment` query on the sample photo twice (the first one
    /// also pays for touching weights not yet in memory, e.g. a prepared file's pages).
    #[arg(long)]
    query: bool,
}

/// Every regular file under `dir`, sorted.
fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Seconds to read `path` once into `buffer`-sized chunks.
fn read_once(path: &Path, buffer: &mut [u8]) -> std::io::Result<f64> {
    let t = Instant::now();
    let mut file = std::fs::File::open(path)?;
    while file.read(buffer)? > 0 {}
    Ok(t.elapsed().as_secs_f64())
}

/// Number of elements of the tensors of `source` whose names start with `prefix`.
fn elements(source: &dyn TensorSource, prefix: &str) -> usize {
    source
        .names()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .filter_map(|n| source.info(n))
        .map(|i| i.shape.iter().product::<usize>())
        .sum()
}

/// Bytes the loaded pipeline holds: the LLM as `weights` says (its embedding table and
/// norms in f32), everything else in f32.
fn held_bytes(
    bundle: &CheckpointBundle,
    weights: LlmWeights,
) -> Result<usize, Box<dyn std::error::Error>> {
    let config = InternLM2Config::from_json_file(bundle.llm_dir.join("config.json"))?;
    let release = PthFile::open(&bundle.omg_llava)?;
    let vocab = release
        .names()
        .iter()
        .find(|n| n.ends_with("tok_embeddings.weight"))
        .and_then(|n| release.info(n))
        .map_or(config.vocab_size, |i| i.shape[0]);
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let layer = weights.layer_storage();
    let per_layer = layer.bytes(config.qkv_dim(), h)
        + layer.bytes(h, config.num_attention_heads * config.head_dim())
        + 2 * layer.bytes(i, h)
        + layer.bytes(h, i)
        + 2 * 4 * h;
    let llm = 4 * vocab * h
        + config.num_hidden_layers * per_layer
        + 4 * h
        + weights.head_storage().bytes(vocab, h);
    let seg = PthFile::open(&bundle.omg_seg)?;
    let classes = PthFile::open(&bundle.class_embedding)?;
    let vision = elements(&seg, "") + elements(&release, "projector") + elements(&classes, "");
    Ok(llm + 4 * vision)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // as the `omg` command and the server do
    omg_llava::reuse_freed_memory();
    let bundle = CheckpointBundle::from_dir(&args.dir)?;
    let files = files(&args.dir)?;
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    println!(
        "load_bench: {} ({} files, {:.2} GB), backend {NAME}, LLM weights {}",
        args.dir.display(),
        files.len(),
        total as f64 / 1e9,
        args.llm_weights
    );
    if !args.no_read {
        let mut buffer = vec![0u8; 64 << 20];
        let (mut first, mut cached) = (0.0, 0.0);
        for file in &files {
            first += read_once(file, &mut buffer)?;
            let again = read_once(file, &mut buffer)?;
            cached += again;
            let bytes = std::fs::metadata(file).map_or(0, |m| m.len());
            if bytes > 1 << 20 {
                println!(
                    "  {}: {:.2} GB, {again:.2} s from the page cache",
                    file.strip_prefix(&args.dir).unwrap_or(file).display(),
                    bytes as f64 / 1e9
                );
            }
        }
        println!(
            "read every file once: {first:.2} s as found ({:.2} GB/s); from the page cache: \
             {cached:.2} s ({:.2} GB/s)",
            total as f64 / 1e9 / first,
            total as f64 / 1e9 / cached
        );
    }

    let device = default_device();
    let options = LoadOptions::default().with_llm_weights(args.llm_weights);
    let start = Instant::now();
    let mut last = (start, "");
    let mut steps = Vec::new();
    let pipeline = Pipeline::<B>::from_dir(&args.dir, &options, device, |step| {
        let now = Instant::now();
        if !last.1.is_empty() {
            steps.push((last.1, (now - last.0).as_secs_f64()));
        }
        last = (now, step.what);
    })?;
    let load_s = start.elapsed().as_secs_f64();
    steps.push((last.1, (Instant::now() - last.0).as_secs_f64()));
    for (what, s) in &steps {
        println!("  {what}: {s:.2} s");
    }
    let held = held_bytes(&bundle, args.llm_weights)?;
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "loaded in {load_s:.2} s; the model holds {:.2} GB ({:.0} MiB); peak RSS {peak:.0} MiB \
         ({:+.2} GB against the held bytes; weights mapped from a prepared file count once \
         touched)",
        held as f64 / 1e9,
        held as f64 / (1 << 20) as f64,
        (peak * (1 << 20) as f64 - held as f64) / 1e9
    );
    if args.query {
        let photo = image::load_from_memory(omg_demo::SAMPLE_PHOTO_PNG)?;
        let options = omg_llava::GenerateOptions::default()
            .with_max_new_tokens(4)
            .with_forced_seg(1);
        for run in ["first", "second"] {
            let t = Instant::now();
            let handle = pipeline.encode(&photo)?;
            let answer = pipeline.run(&handle, &omg_llava::Task::segment("the cat"), &options)?;
            println!(
                "{run} segment query: {:.2} s ({} prompt tokens, {} masks); peak RSS {:.0} MiB",
                t.elapsed().as_secs_f64(),
                answer.prompt_tokens,
                answer.masks.len(),
                peak_rss_mib().unwrap_or(f64::NAN)
            );
        }
    }
    drop(pipeline);
    Ok(())
}
