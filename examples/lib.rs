//! Shared helpers of the omg-llava-rs examples, the `omg batch` tool ([`batch`]) and the
//! HTTP server of the `serve` example ([`server`]).

pub mod batch;
pub mod server;

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use image::DynamicImage;
use omg_checkpoint::pth::PthFile;
use omg_checkpoint::safetensors::open_hf_dir;
use omg_llava::backend::{DefaultBackend, NAME, default_device};
use omg_llava::{LoadStep, Pipeline};
use omg_llm::loader::{LoadReport, LoraOptions, load_omg_llava};
use omg_llm::tokenizer::{InternLm2Tokenizer, SpecialTokens, add_omg_llava_tokens};
use omg_llm::{InternLM2, InternLM2Config, LlmError};

/// The tiny demo bundle shipped in the repository (`examples/assets/tiny`).
pub fn tiny_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tiny")
}

/// The sample photo shipped in the repository (`examples/assets/chelsea.png`, 451×300).
pub fn sample_image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/chelsea.png")
}

/// The bundle directory given as the first command-line argument, or the tiny bundle.
pub fn bundle_from_args() -> PathBuf {
    std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(tiny_bundle)
}

/// A progress bar (stderr) over the steps of a Pipeline load, with the elapsed time
/// of the current step ticking (the language model step of a 7B bundle takes a while).
pub struct LoadProgress(indicatif::ProgressBar);

impl LoadProgress {
    /// A bar that is not started yet.
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::new(1);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(bar)
    }

    /// Shows `step` as the current one.
    pub fn step(&self, step: LoadStep) {
        self.0.set_length(step.total as u64);
        self.0.set_position(step.index as u64);
        self.0.set_message(step.what);
    }

    /// Ends the bar, leaving a final line.
    pub fn finish(&self) {
        self.0.finish_with_message("loaded");
    }
}

impl Default for LoadProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints one step of a Pipeline load to stderr: `[1/5] tokenizer and configuration …`
/// (for logs where a progress bar is not wanted).
pub fn print_load_step(step: LoadStep) {
    eprintln!("[{}/{}] {} …", step.index, step.total, step.what);
}

/// Loads a Pipeline on the default backend from `dir` (printing each load step) and
/// reads the sample photo.
pub fn load_pipeline_and_photo(
    dir: &Path,
) -> Result<(Pipeline<DefaultBackend>, DynamicImage), Box<dyn std::error::Error>> {
    eprintln!("loading {} on {NAME}", dir.display());
    let progress = LoadProgress::new();
    let pipeline = Pipeline::from_dir(dir, default_device(), |s| progress.step(s))?;
    progress.finish();
    let path = sample_image();
    let photo = image::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok((pipeline, photo))
}

/// The OMG-LLaVA language model, its tokenizer and the resolved special tokens.
pub struct LoadedLlm<B: Backend> {
    /// The model with the release's LoRA merged.
    pub model: InternLM2<B>,
    /// The tokenizer with OMG-LLaVA's added tokens.
    pub tokenizer: InternLm2Tokenizer,
    /// `<|im_end|>`, `[SEG]`, … ids.
    pub special: SpecialTokens,
    /// What the loader used.
    pub report: LoadReport,
}

/// Loads a HF InternLM2 directory plus a released OMG-LLaVA `.pth` through the real
/// loader. LoRA settings come from an `adapter_config.json` next to the `.pth`, or
/// the official ones (r = 512, alpha = 256).
pub fn load_llm<B: Backend>(
    llm_dir: &Path,
    pth: &Path,
    device: &B::Device,
) -> Result<LoadedLlm<B>, LlmError> {
    let mut tokenizer = InternLm2Tokenizer::from_dir(llm_dir)?;
    let special = add_omg_llava_tokens(&mut tokenizer)?;
    let config = InternLM2Config::from_json_file(llm_dir.join("config.json"))?;
    let base = open_hf_dir(llm_dir)?;
    let release = PthFile::open(pth)?;
    let adapter = pth.with_file_name("adapter_config.json");
    let lora = if adapter.is_file() {
        LoraOptions::from_adapter_config(adapter)?
    } else {
        LoraOptions::default()
    };
    let (model, report) = load_omg_llava(&config, base.as_ref(), &release, lora, device)?;
    Ok(LoadedLlm {
        model,
        tokenizer,
        special,
        report,
    })
}

/// The official `internlm2_chat` instruction turn (no system prompt).
pub fn chat_prompt(question: &str) -> String {
    format!("<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
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
/// `new_tokens` decode steps after the first (which only reads the prefill's logits).
/// Returns (prefill seconds, decode seconds per token, decode steps timed).
pub fn time_generation<B: Backend>(
    llm: &InternLM2<B>,
    prompt_len: usize,
    new_tokens: usize,
) -> Result<(f64, f64, usize), LlmError> {
    use omg_llm::generation::{GenerationConfig, Generator};
    let vocab = llm.config().vocab_size;
    let prompt: Vec<u32> = (0..prompt_len).map(|i| (i * 7919 % vocab) as u32).collect();
    let mut config = GenerationConfig::greedy(new_tokens + 1);
    config.eos_token_id = None;
    let t = std::time::Instant::now();
    let mut generator = Generator::from_ids(llm, &prompt, 1, config)?;
    let prefill = t.elapsed().as_secs_f64();
    generator.next_step()?;
    let t = std::time::Instant::now();
    let mut steps = 0;
    while generator.next_step()?.is_some() {
        steps += 1;
    }
    Ok((
        prefill,
        t.elapsed().as_secs_f64() / steps.max(1) as f64,
        steps,
    ))
}
