//! The LLM alone at a named size and weight precision: load time, weight bytes, peak
//! memory, prefill and decode speed, and decode as a fraction of this machine's
//! memory-bandwidth roofline. A benchmark: it prints figures and asserts nothing.
//!
//! The weights are random (deterministic), made tensor by tensor and converted to the
//! chosen precision by the real loader, so the peak memory is what loading a real
//! checkpoint of that size needs.
//!
//! ```text
//! cargo run --release -p omg-bench --bin llm_bench -- --preset 7b --llm-weights int8 --prompt-len 64 --new-tokens 4
//! ```

use std::time::Instant;

use clap::{Parser, ValueEnum};
use omg_bench::{copy_bandwidth, huge_pages_mib, peak_rss_mib, random_llm, time_generation_runs};
use omg_llava::backend::{DefaultBackend as B, NAME, default_device};
use omg_llm::{InternLM2Config, LlmWeights};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// hidden 64, 2 layers (a smoke test).
    Tiny,
    /// hidden 1024, 24 layers, vocab 92544: 0.52 B parameters.
    Small,
    /// InternLM2-7B (the OMG-LLaVA-7B LLM): 7.7 B parameters.
    #[value(name = "7b")]
    SevenB,
}

#[derive(Parser)]
#[command(about = "InternLM2 load, prefill and decode figures at a size and weight precision")]
struct Args {
    /// Model size.
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Precision of the linear weights: f32, bf16, f16, int8 or int4.
    #[arg(long, default_value = "f32")]
    llm_weights: LlmWeights,
    /// Prompt tokens (prefill).
    #[arg(long, default_value_t = 64)]
    prompt_len: usize,
    /// Decoded tokens: timed forwards of one new token each (as `llama-bench -n`).
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    new_tokens: usize,
    /// Run the whole generation once untimed first (as llama.cpp's `llama-bench`
    /// does); without it the first prefill is timed, cold.
    #[arg(long)]
    warmup: bool,
    /// Timed generations; the figures are the means of their tokens/s (as
    /// `llama-bench -r`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    omg_llava::reuse_freed_memory();
    let config = match args.preset {
        Preset::Tiny => InternLM2Config::scaled(64, 2, 512),
        Preset::Small => InternLM2Config::scaled(1024, 24, 92544),
        Preset::SevenB => InternLM2Config::internlm2_chat_7b(),
    };
    let device = default_device();
    let t = Instant::now();
    let model = random_llm::<B>(&config, args.llm_weights, &device)?;
    let load_s = t.elapsed().as_secs_f64();
    let bytes = model.parameter_bytes() as f64;
    println!(
        "llm_bench: preset {:?}, backend {NAME}, weights {}, {:.2} B parameters in {:.2} GB, \
         loaded in {load_s:.1} s, peak RSS after loading {:.0} MiB ({:.0} MiB in huge pages)",
        args.preset,
        args.llm_weights,
        config.num_params() as f64 / 1e9,
        bytes / 1e9,
        peak_rss_mib().unwrap_or(f64::NAN),
        huge_pages_mib().unwrap_or(f64::NAN)
    );

    let (prefill_ts, decode_ts) = time_generation_runs(
        &model,
        args.prompt_len,
        args.new_tokens,
        args.warmup,
        args.runs as usize,
    )?;
    let protocol = match (args.warmup, args.runs) {
        (false, 1) => String::new(),
        (w, r) => format!(
            " (mean of {r} run{}{})",
            if r == 1 { "" } else { "s" },
            if w { " after a warm-up" } else { "" }
        ),
    };
    let prefill_s = args.prompt_len as f64 / prefill_ts;
    let decode_s = 1.0 / decode_ts;
    println!(
        "prefill: {} tokens in {prefill_s:.2} s{protocol} = {prefill_ts:.1} tokens/s",
        args.prompt_len,
    );
    println!(
        "decode: {} tokens, {:.1} ms/token{protocol} = {decode_ts:.2} tokens/s",
        args.new_tokens,
        decode_s * 1e3,
    );
    // every weight but the embedding table is read once per token
    let read = bytes - 4.0 * (config.vocab_size * config.hidden_size) as f64;
    let (_, gbps) = copy_bandwidth::<B>(&device, 3);
    let roofline_s = read / (gbps * 1e9);
    println!(
        "roofline: {:.2} GB of weights read per token at {gbps:.1} GB/s (copy) = {:.1} ms; \
         decode reaches {:.0} % of it",
        read / 1e9,
        roofline_s * 1e3,
        100.0 * roofline_s / decode_s
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
    Ok(())
}
