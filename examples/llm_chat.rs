//! The language model alone (`omg-llm`): an InternLM2 loaded from a HF model directory
//! answers one chat turn, the text streamed as it is generated.
//!
//! ```text
//! cargo run --release -p omg-examples --example llm_chat [LLM_DIR] ["question"]
//! ```
//! `LLM_DIR` is a HF InternLM2 directory (`config.json`, safetensors, tokenizer), e.g.
//! `internlm2-chat-7b/`. Without one it uses the demo bundle's tiny InternLM2 (random
//! weights: the text is gibberish; the point is the loading and decoding path).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llm::generation::{GenerationConfig, Generator};
use omg_llm::loader::load_hf_dir;
use omg_llm::tokenizer::{ASSISTANT_TURN_START, IM_END_TOKEN, InternLm2Tokenizer, USER_TURN_START};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reuse freed large blocks instead of page-faulting fresh ones on every layer
    omg_llava::reuse_freed_memory();
    let mut args = std::env::args().skip(1);
    let dir = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => omg_demo::bundle_dir()?.join("internlm2"),
    };
    let question = args
        .next()
        .unwrap_or_else(|| "What can you tell me about cats?".into());

    let t0 = Instant::now();
    let model = load_hf_dir::<DefaultBackend>(&dir, &default_device())?;
    let tokenizer = InternLm2Tokenizer::from_dir(&dir)?;
    let c = model.config();
    println!(
        "loaded {} ({} layers, hidden {}, vocab {}) on {NAME} in {:.2?}",
        dir.display(),
        c.num_hidden_layers,
        c.hidden_size,
        c.vocab_size,
        t0.elapsed()
    );

    // One turn of InternLM2's chat template.
    let prompt = format!("{USER_TURN_START}{question}{ASSISTANT_TURN_START}");
    let ids = tokenizer.encode(&prompt, true)?;
    let mut config = GenerationConfig::greedy(32);
    config.eos_token_id = Some(tokenizer.eos_id());
    config.stop_token_ids = tokenizer.token_id(IM_END_TOKEN).into_iter().collect();

    println!("> {question}");
    let t1 = Instant::now();
    let mut stream = tokenizer.stream_decoder(true);
    for step in Generator::from_ids(&model, &ids, 1, config)? {
        print!("{}", stream.push(step?.tokens[0])?);
        std::io::stdout().flush()?;
    }
    println!("{}", stream.finish()?);
    println!("{} tokens in {:.2?}", stream.ids().len(), t1.elapsed());
    Ok(())
}
