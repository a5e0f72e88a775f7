//! Shared helpers of the omg-llava-rs examples.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use omg_llm::checkpoint::pth::PthFile;
use omg_llm::checkpoint::safetensors::open_hf_dir;
use omg_llm::loader::{LoadReport, LoraOptions, load_omg_llava};
use omg_llm::tokenizer::{InternLm2Tokenizer, SpecialTokens, add_omg_llava_tokens};
use omg_llm::{InternLM2, InternLM2Config, LlmError};

/// The tiny demo bundle shipped in the repository (`examples/assets/tiny`).
pub fn tiny_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tiny")
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
