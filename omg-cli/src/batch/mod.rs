//! `omg batch`: a dataset tool. A JSON-lines manifest in (one image and task per
//! line), a JSON-lines file of results out (one line per input, written as each
//! finishes), resumable, and shardable so that a scheduler (a Slurm array, a
//! Kubernetes indexed Job, `xargs -P`) fans it out with no cluster code of ours; and
//! the export of results to COCO annotation JSON. `docs/scaling.md` shows the recipes.
//!
//! - [`manifest`]: the input records, reading a manifest, `--shard I/N`;
//! - [`process`]: inputs through the Pipeline (photos encoded together, each input's
//!   job run by [`crate::jobs::run_job`]) into output records;
//! - [`runner`]: the loop over a shard, resuming after the ids already written;
//! - [`coco`]: results (from one or many shards) to COCO JSON.

pub mod coco;
pub mod manifest;
pub mod process;
pub mod runner;

pub use manifest::{Input, Shard, read_manifest};
pub use process::{Output, Timings, process_batch};
pub use runner::{Progress, Summary, run_batch};

/// What can stop a batch (a failing input does not: it gets an output line with its
/// error).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A manifest or results file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest line is not an input record.
    #[error("{}:{line}: {reason}", path.display())]
    Manifest {
        /// The manifest.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--shard` that is not `I/N` with `I < N`.
    #[error("invalid shard {0:?}: expected I/N with 0 <= I < N, e.g. 3/8")]
    Shard(String),
    /// A results file line that is not an output record.
    #[error("{}:{line}: not a result record: {reason}", path.display())]
    Results {
        /// The results file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        reason: String,
    },
}
