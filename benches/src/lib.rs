//! Helpers shared by the benchmark programs of omg-llava-rs (`bench`, `llm_bench`):
//! peak memory, the backend's memory bandwidth, an InternLM2 with random weights made
//! through the real loader, and timed greedy generation.

#![warn(missing_docs)]

use burn::tensor::backend::Backend;
use omg_llm::{InternLM2, InternLM2Config, LlmError};

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    proc_mib("/proc/self/status", "VmHWM:")
}

/// Anonymous memory of this process backed by transparent huge pages, in MiB (Linux).
pub fn huge_pages_mib() -> Option<f64> {
    proc_mib("/proc/self/smaps_rollup", "AnonHugePages:")
}

/// The `key` line of the proc file `path` (a value in kB) in MiB.
fn proc_mib(path: &str, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Memory bandwidth of backend `B` on `device`: an in-place elementwise op over
/// 256 MiB, `runs` times after one warm-up (the buffer is touched first, so no page
/// faults are timed). Returns the times in ms and the GB/s (bytes read + written) of
/// the median run.
pub fn copy_bandwidth<B: Backend>(device: &B::Device, runs: usize) -> (Vec<f64>, f64) {
    use burn::tensor::Tensor;
    let n = 64 << 20;
    let mut x = Tensor::<B, 1>::ones([n], device) * 2.0;
    let _ = B::sync(device);
    let mut ms = Vec::new();
    for run in 0..runs.max(1) + 1 {
        let t = std::time::Instant::now();
        x = x + 1.0;
        let _ = B::sync(device);
        if run > 0 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    (ms, (2 * 4 * n) as f64 / (median * 1e-3) / 1e9)
}

/// An InternLM2 of `config`'s shapes with deterministic random weights, loaded through
/// the real loader from an [`omg_checkpoint::SyntheticSource`], so the linears are
/// converted to `weights` one tensor at a time (the f32 model never exists).
pub fn random_llm<B: Backend>(
    config: &InternLM2Config,
    weights: omg_llm::LlmWeights,
    device: &B::Device,
) -> Result<InternLM2<B>, LlmError> {
    let source =
        omg_checkpoint::SyntheticSource::new(omg_llm::loader::official_tensors(config), 2406);
    omg_llm::loader::load_hf_with(config, &source, weights, device)
}

/// Times greedy generation from a synthetic `prompt_len`-token prompt: the prefill, then
/// `new_tokens` (at least 1) decode forwards, each feeding one new token through the
/// model (as llama.cpp's `llama-bench -n` counts them; the token after the last
/// forward is only chosen, which is included in the time).
/// Returns (prefill seconds, decode seconds per forward).
pub fn time_generation<B: Backend>(
    llm: &InternLM2<B>,
    prompt_len: usize,
    new_tokens: usize,
) -> Result<(f64, f64), LlmError> {
    use omg_llm::generation::{GenerationConfig, Generator};
    let vocab = llm.config().vocab_size;
    let prompt: Vec<u32> = (0..prompt_len).map(|i| (i * 7919 % vocab) as u32).collect();
    let forwards = new_tokens.max(1);
    // every step but the last feeds its token: forwards + 1 steps
    let mut config = GenerationConfig::greedy(forwards + 1);
    config.eos_token_id = None;
    let t = std::time::Instant::now();
    let mut generator = Generator::from_ids(llm, &prompt, 1, config)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    while generator.next_step()?.is_some() {}
    Ok((prefill, t.elapsed().as_secs_f64() / forwards as f64))
}

/// Mean prefill and decode speeds of `runs` timed generations of [`time_generation`]
/// (tokens/s, the mean of each run's tokens/s), after one untimed generation when
/// `warmup`: llama.cpp's `llama-bench` protocol (a warm-up run, then `-r` repetitions
/// averaged).
pub fn time_generation_runs<B: Backend>(
    llm: &InternLM2<B>,
    prompt_len: usize,
    new_tokens: usize,
    warmup: bool,
    runs: usize,
) -> Result<(f64, f64), LlmError> {
    if warmup {
        time_generation(llm, prompt_len, new_tokens)?;
    }
    let runs = runs.max(1);
    let (mut prefill_ts, mut decode_ts) = (0.0, 0.0);
    for _ in 0..runs {
        let (p, d) = time_generation(llm, prompt_len, new_tokens)?;
        prefill_ts += prompt_len as f64 / p;
        decode_ts += 1.0 / d;
    }
    Ok((prefill_ts / runs as f64, decode_ts / runs as f64))
}
