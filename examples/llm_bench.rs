//! Prefill and decode throughput of an InternLM2-shaped model with random weights on
//! the backend chosen by cargo feature (a benchmark: it prints figures, asserts
//! nothing).
//!
//! ```text
//! cargo run --release --example llm_bench -- --preset 0.5b
//! cargo run --release --example llm_bench --features cuda -- --preset 7b --prompt-len 600
//! ```

use std::time::Instant;

use clap::{Parser, ValueEnum};
use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llm::generation::{GenerationConfig, Generator};
use omg_llm::{InternLM2, InternLM2Config};

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// hidden 1024, 24 layers, 8/2 heads, FFN 3584, vocab 92544 (≈0.52 B parameters).
    #[value(name = "0.5b")]
    HalfB,
    /// hidden 2048, 24 layers, 16/4 heads, FFN 7168, vocab 92544 (≈1.6 B).
    #[value(name = "1.6b")]
    OnePointSixB,
    /// internlm2-chat-7b.
    #[value(name = "7b")]
    SevenB,
    /// hidden 256, 4 layers (a smoke test).
    Tiny,
}

#[derive(Parser)]
#[command(about = "InternLM2 prefill/decode throughput")]
struct Args {
    /// Model size.
    #[arg(long, value_enum, default_value = "0.5b")]
    preset: Preset,
    /// Override the number of layers.
    #[arg(long)]
    layers: Option<usize>,
    /// Override the width (heads = width / 128, KV heads = heads / 4, FFN = 3.5 × width).
    #[arg(long)]
    hidden: Option<usize>,
    /// Override the vocabulary size.
    #[arg(long)]
    vocab: Option<usize>,
    /// Prompt length (prefill tokens).
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Decoded tokens.
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 2)]
    runs: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = match args.preset {
        Preset::HalfB => InternLM2Config::scaled(1024, 24, 92544),
        Preset::OnePointSixB => InternLM2Config::scaled(2048, 24, 92544),
        Preset::SevenB => InternLM2Config::internlm2_chat_7b(),
        Preset::Tiny => InternLM2Config::scaled(256, 4, 4096),
    };
    if let Some(h) = args.hidden {
        config = InternLM2Config::scaled(h, config.num_hidden_layers, config.vocab_size);
    }
    if let Some(l) = args.layers {
        config.num_hidden_layers = l;
    }
    if let Some(v) = args.vocab {
        config.vocab_size = v;
    }
    config.validate()?;
    let device = default_device();
    let t0 = Instant::now();
    let model = InternLM2::<DefaultBackend>::init(&config, &device)?;
    println!(
        "backend {NAME}; {:.3} B parameters (hidden {}, {} layers, {}/{} heads, FFN {}, vocab {})",
        config.num_params() as f64 / 1e9,
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.kv_heads(),
        config.intermediate_size,
        config.vocab_size
    );
    let prompt: Vec<u32> = (0..args.prompt_len)
        .map(|i| (i * 7919 % config.vocab_size) as u32)
        .collect();
    let mut gen_config = GenerationConfig::greedy(args.new_tokens + 1);
    gen_config.eos_token_id = None;

    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for run in 0..args.warmup + args.runs {
        let t = Instant::now();
        let mut generator = Generator::from_ids(&model, &prompt, 1, gen_config.clone())?;
        let t_prefill = t.elapsed();
        // The first step only reads the prefill's logits; the next ones each run one
        // decode forward pass.
        generator.next_step()?;
        let t = Instant::now();
        let mut n = 0;
        while let Some(_step) = generator.next_step()? {
            n += 1;
        }
        let t_decode = t.elapsed();
        if run == 0 {
            println!(
                "first run (includes lazy weight init / kernel compilation): {:.2?}",
                t0.elapsed()
            );
        }
        if run >= args.warmup {
            prefill.push(args.prompt_len as f64 / t_prefill.as_secs_f64());
            decode.push(n as f64 / t_decode.as_secs_f64());
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "prefill {} tokens: {:.1} tokens/s   decode {} tokens: {:.2} tokens/s   (mean of {} runs: prefill {:?}, decode {:?})",
        args.prompt_len,
        mean(&prefill),
        args.new_tokens,
        mean(&decode),
        args.runs,
        prefill
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>(),
        decode.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>(),
    );
    Ok(())
}
