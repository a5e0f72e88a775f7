//! Loads an InternLM2 base model plus a released OMG-LLaVA `.pth` (LoRA merged) through
//! the real loader and generates a reply to a chat prompt, streaming the text.
//!
//! ```text
//! cargo run --release --example llm_generate -- --prompt "Describe the picture."
//! ```
//! Without arguments it uses the tiny random-weight bundle in `examples/assets/tiny`
//! (so the text is gibberish: the point is the loading and decoding path).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use omg_examples::{chat_prompt, load_llm, tiny_bundle};
use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llm::generation::{GenerationConfig, Generator};

#[derive(Parser)]
#[command(about = "Generate text with the OMG-LLaVA language model")]
struct Args {
    /// HF InternLM2 directory (config.json, safetensors, tokenizer).
    #[arg(long)]
    llm_dir: Option<PathBuf>,
    /// Released OMG-LLaVA checkpoint (.pth).
    #[arg(long)]
    pth: Option<PathBuf>,
    /// The user's message.
    #[arg(long, default_value = "Please describe the image in detail.")]
    prompt: String,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 24)]
    max_new_tokens: usize,
    /// Sample like the official demo (T=0.1, top-p 0.75, top-k 40) instead of greedy.
    #[arg(long)]
    sample: bool,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let args = Args::parse();
    let llm_dir = args
        .llm_dir
        .unwrap_or_else(|| tiny_bundle().join("internlm2"));
    let pth = args
        .pth
        .unwrap_or_else(|| tiny_bundle().join("omg_llava_tiny.pth"));
    let device = default_device();

    let t0 = Instant::now();
    let llm = load_llm::<DefaultBackend>(&llm_dir, &pth, &device)?;
    let c = llm.model.config();
    println!(
        "loaded {} ({} layers, hidden {}, vocab {}) + {} on {NAME} in {:.2?}: {} LoRA weights merged",
        llm_dir.display(),
        c.num_hidden_layers,
        c.hidden_size,
        c.vocab_size,
        pth.display(),
        t0.elapsed(),
        llm.report.lora_merged.len()
    );

    let prompt = chat_prompt(&args.prompt);
    let ids = llm.tokenizer.encode(&prompt, true)?;
    println!("prompt: {prompt:?}");
    println!("prompt ids ({}): {ids:?}", ids.len());

    let mut config = if args.sample {
        GenerationConfig::demo_sampling(args.max_new_tokens, args.seed)
    } else {
        GenerationConfig::greedy(args.max_new_tokens)
    };
    config.eos_token_id = Some(llm.special.eos);
    config.stop_token_ids = vec![llm.special.im_end];

    print!("reply: ");
    let t1 = Instant::now();
    let mut stream = llm.tokenizer.stream_decoder(false);
    for step in Generator::from_ids(&llm.model, &ids, 1, config)? {
        print!("{}", stream.push(step?.tokens[0])?);
        std::io::stdout().flush()?;
    }
    println!("{}", stream.finish()?);
    let generated = stream.ids().to_vec();
    println!("new ids ({}): {generated:?}", generated.len());
    println!("text: {:?}", llm.tokenizer.decode(&generated, true)?);
    println!("{} tokens in {:.2?}", generated.len(), t1.elapsed());
    Ok(())
}
