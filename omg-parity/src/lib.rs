//! The parity harness behind the `omg-parity` binary and the parity tests: each
//! golden fixture (made by running the official PyTorch code) is rebuilt from its
//! sidecar's numbers, loaded by official names through the same loaders users call,
//! run, and compared output by output.

pub mod checker;
pub mod compare;
pub mod coverage;
pub mod e2e;
pub mod encoder;
pub mod fixture;
pub mod hparams;
pub mod llm;
pub mod precision;
pub mod projector;
pub mod seg_head;
pub mod tokenizer;
pub mod tolerance;
pub mod visual_prompts;

use std::path::Path;

use burn::tensor::backend::Backend;

pub use compare::{Comparison, Tolerance};
pub use fixture::Fixture;

/// Why a fixture could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParityError {
    /// The fixture is incomplete or inconsistent.
    #[error("malformed fixture: {0}")]
    Malformed(String),
    /// The sidecar names a stage this version does not check (a failure, never a skip).
    #[error("stage `{0}` is not known to this version")]
    UnknownStage(String),
    /// Loading or running the model failed.
    #[error(transparent)]
    Llm(#[from] omg_llm::LlmError),
    /// Building or loading the encoder failed.
    #[error(transparent)]
    Encoder(#[from] omg_encoder::EncoderError),
    /// Reading a tensor file failed.
    #[error(transparent)]
    Checkpoint(#[from] omg_checkpoint::CheckpointError),
    /// Building or running the projector failed.
    #[error(transparent)]
    Projector(#[from] omg_projector::ProjectorError),
    /// Building or running the `[SEG]` decoder failed.
    #[error(transparent)]
    Decoder(#[from] omg_decoder::DecoderError),
    /// A tokenizer could not be loaded or used.
    #[error(transparent)]
    Tokenizer(#[from] omg_llm::tokenizer::TokenizerError),
}

/// The stages this version checks.
pub const STAGES: &[&str] = &[
    "tokenizer",
    "llm",
    "checkpoint_format",
    "encoder",
    "projector",
    "visual_prompts",
    "seg_head",
    "e2e",
];

/// Checks one fixture path: a `.safetensors` file with its `.json` sidecar, or a
/// tokenizer fixture folder.
pub fn run_path<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<Vec<Comparison>, ParityError> {
    if path.is_dir() {
        return tokenizer::run_tokenizer(path);
    }
    if !path.is_file() {
        return Err(ParityError::Malformed(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    let fixture = Fixture::open(path)?;
    let results = match fixture.stage()? {
        "llm" => llm::run_llm::<B>(&fixture, device),
        "checkpoint_format" => llm::run_checkpoint_format::<B>(&fixture, device),
        "encoder" => encoder::run_encoder::<B>(&fixture, device),
        "projector" => projector::run_projector::<B>(&fixture, device),
        "e2e" => e2e::run_e2e::<B>(&fixture, device),
        "seg_head" => seg_head::run_seg_head::<B>(&fixture, device),
        "visual_prompts" => visual_prompts::run_visual_prompts::<B>(&fixture, device),
        "tokenizer" => tokenizer::run_tokenizer(path.parent().unwrap_or(Path::new("."))),
        other => Err(ParityError::UnknownStage(other.to_owned())),
    }?;
    let ignored = coverage::ignored(fixture.stage()?);
    fixture.reject_unread_weights(&ignored.iter().map(String::as_str).collect::<Vec<_>>())?;
    Ok(results)
}
