//! The loop over a shard: skip the ids a results file already holds (repairing a line
//! cut short by a crash), run the rest, append each result as it finishes.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use burn::tensor::backend::Backend;
use omg_llava::{GenerateOptions, Pipeline};

use super::coco::parse_results;
use super::process::process_batch;
use super::{BatchError, Input, Output};
use crate::jobs::JobKind;

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Inputs of the shard.
    pub inputs: usize,
    /// Inputs run and written.
    pub written: usize,
    /// Of those, the ones whose output holds an error.
    pub failed: usize,
}

/// Called after each input (for a progress bar).
pub trait Progress {
    /// One more output was written.
    fn done(&mut self, output: &Output);
}

impl<F: FnMut(&Output)> Progress for F {
    fn done(&mut self, output: &Output) {
        self(output)
    }
}

/// The ids a results file holds. A last line without its newline (a run killed while
/// writing) is cut off the file, so that the run resumed appends whole lines; the file
/// is changed only after every whole line has read as a result record and the cut line
/// as the start of one, so pointing `--out` at another file (the manifest, say) is an
/// error that leaves it as it was.
pub fn finished_ids(path: &Path) -> Result<HashSet<String>, BatchError> {
    let io = |source| BatchError::Io {
        path: path.to_owned(),
        source,
    };
    let mut ids = HashSet::new();
    if !path.exists() {
        return Ok(ids);
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = bytes[..whole].iter().filter(|&&b| b == b'\n').count();
    let not_results = |line: usize, reason: &str| BatchError::Results {
        path: path.to_owned(),
        line,
        reason: format!("{reason}; is it a results file? (it was left as it was)"),
    };
    let text = std::str::from_utf8(&bytes[..whole]).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        not_results(line, "not UTF-8 text")
    })?;
    let results = parse_results(path, text).map_err(|e| match e {
        BatchError::Results { line, reason, .. } => not_results(line, &reason),
        other => other,
    })?;
    if whole < bytes.len() {
        let tail = &bytes[whole..];
        if !matches!(
            tail.iter().find(|b| !b.is_ascii_whitespace()),
            None | Some(b'{')
        ) {
            return Err(not_results(
                lines + 1,
                "the last line is neither a result record nor the start of one",
            ));
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        file.set_len(whole as u64).map_err(io)?;
    }
    ids.extend(results.into_iter().map(|out| out.id));
    Ok(ids)
}

/// The inputs whose ids `results` does not hold yet, and how many were skipped.
pub fn pending(inputs: Vec<Input>, results: &Path) -> Result<(Vec<Input>, usize), BatchError> {
    let done = finished_ids(results)?;
    let total = inputs.len();
    let left: Vec<Input> = inputs
        .into_iter()
        .filter(|i| !done.contains(&i.id))
        .collect();
    let skipped = total - left.len();
    Ok((left, skipped))
}

/// Runs `inputs` (see [`pending`]), `batch_size` images per encoder pass, and appends
/// one line per input to `results`, flushed as each batch finishes.
pub fn run_batch<B: Backend>(
    p: &Pipeline<B>,
    inputs: &[Input],
    results: &Path,
    default_task: JobKind,
    options: &GenerateOptions,
    batch_size: usize,
    mut progress: impl Progress,
) -> Result<Summary, BatchError> {
    let io = |source| BatchError::Io {
        path: results.to_owned(),
        source,
    };
    if let Some(dir) = results.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .map_err(io)?;
    let mut summary = Summary {
        inputs: inputs.len(),
        ..Summary::default()
    };
    for chunk in inputs.chunks(batch_size.max(1)) {
        for out in process_batch(p, chunk, default_task, options) {
            let mut line = serde_json::to_string(&out).expect("an output record serializes");
            line.push('\n');
            file.write_all(line.as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            summary.written += 1;
            summary.failed += usize::from(out.error.is_some());
            progress.done(&out);
        }
    }
    Ok(summary)
}
