//! # omg-cli
//!
//! The `omg` command and what it shares with `omg-server`:
//!
//! - [`model`]: the model flags (`--bundle`, `--llm-weights`, …) and loading a
//!   [`Pipeline`](omg_llava::Pipeline) from them with a progress bar; the built-in
//!   tiny demo bundle when no bundle is given;
//! - [`jobs`]: a job on one photo (segment, ground, caption, chat, region, panoptic,
//!   interactive) from its kind, prompt and regions, run through the Pipeline's tasks,
//!   and its output with masks as COCO RLE ([`records`]);
//! - [`batch`]: `omg batch` (a JSON-lines manifest in, results written as each input
//!   finishes, resumable and shardable) and `omg coco` (results to COCO JSON);
//! - [`eval`]: `omg eval` (the paper's benchmarks on their official annotation files,
//!   run by the batch runner and scored as the official scorers do).

pub mod batch;
pub mod eval;
pub mod jobs;
pub mod model;
pub mod records;

/// The backend the tools run on: the build's default (Flex, or the one a `--features`
/// flag picks).
pub type B = omg_llava::backend::DefaultBackend;
