//! The loop over a shard: skip the ids a results file already holds (repairing a line
//! cut short by a crash), run the rest, append each result as it finishes.
//!
//! While inputs run, a file beside the results (`<results>.running`) names them and
//! how many runs have started them. A run that finds it knows the process ended while
//! those inputs ran (a crash, or a kill): it runs each of them again, alone, first; an
//! input that was already being run again when the process ended is not run a third
//! time but written as failed, so that one input that crashes the process cannot stop
//! a resumed batch from finishing.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Runs of an input that ended the process before it is written as failed.
pub const MAX_ATTEMPTS: u32 = 2;

/// The file that names the inputs running for `results`: its name with `.running`
/// appended.
pub fn running_path(results: &Path) -> PathBuf {
    let mut name = results.file_name().unwrap_or_default().to_owned();
    name.push(".running");
    results.with_file_name(name)
}

/// What `<results>.running` holds: the inputs being run, and the how-manieth run of
/// them this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// Ids of the inputs being run.
    pub ids: Vec<String>,
    /// 1 on their first run, 2 when they are run again after the process ended.
    pub attempt: u32,
}

impl Running {
    /// The inputs a process that ended left in `path`, if any (an unreadable file, cut
    /// while it was written, names none).
    pub fn read(path: &Path) -> Result<Option<Self>, BatchError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BatchError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes `path` whole (a temporary file renamed over it) and to the disk.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("running.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).expect("ids serialize"))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// The most inputs of one chunk: a chunk's lines are written when it finishes, so many
/// questions of one photo are split into chunks of this many (the photo encoded once
/// per chunk).
const MAX_CHUNK_INPUTS: usize = 64;

/// `inputs` in order, cut into chunks of at most `batch_size` distinct image files
/// (and [`MAX_CHUNK_INPUTS`] inputs): consecutive inputs of one photo share a chunk,
/// so that the photo is encoded once for all of them.
fn photo_chunks(inputs: &[&Input], batch_size: usize) -> Vec<Vec<Input>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<Input> = Vec::new();
    let mut files: HashSet<&Path> = HashSet::new();
    for &input in inputs {
        let new_file = !files.contains(input.image_path.as_path());
        if (new_file && files.len() == batch_size.max(1)) || chunk.len() == MAX_CHUNK_INPUTS {
            chunks.push(std::mem::take(&mut chunk));
            files.clear();
        }
        files.insert(input.image_path.as_path());
        chunk.push(input.clone());
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Runs `inputs` (see [`pending`]), `batch_size` images per encoder pass (consecutive
/// inputs of one image file share its encoding), and appends
/// one line per input to `results`, flushed as each batch finishes. Inputs that were
/// running when an earlier process ended run first, alone; those that ended it twice
/// are written as failed (see the module's documentation).
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
    let marker = running_path(results);
    let marker_io = |source| BatchError::Io {
        path: marker.clone(),
        source,
    };
    let ended = Running::read(&marker)?;
    let was_running = |i: &Input| ended.as_ref().is_some_and(|r| r.ids.contains(&i.id));
    let (again, first): (Vec<&Input>, Vec<&Input>) = inputs.iter().partition(|i| was_running(i));
    let attempt = ended.as_ref().map_or(1, |r| r.attempt + 1);
    // each input that was running, alone; then the rest in chunks
    let mut chunks: Vec<(Vec<Input>, u32)> = again
        .into_iter()
        .map(|i| (vec![i.clone()], attempt))
        .collect();
    chunks.extend(photo_chunks(&first, batch_size).into_iter().map(|c| (c, 1)));
    let mut write = |out: &Output, summary: &mut Summary| -> Result<(), BatchError> {
        let mut line = serde_json::to_string(out).expect("an output record serializes");
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        summary.written += 1;
        summary.failed += usize::from(out.error.is_some());
        progress.done(out);
        Ok(())
    };
    for (chunk, attempt) in chunks {
        if attempt > MAX_ATTEMPTS {
            let mut out = Output::of(&chunk[0], default_task);
            out.error = Some(format!(
                "the process ended {MAX_ATTEMPTS} times while running this input (a crash, or a kill), so it was not run again; remove this line from the results to try it once more"
            ));
            write(&out, &mut summary)?;
            continue;
        }
        let running = Running {
            ids: chunk.iter().map(|i| i.id.clone()).collect(),
            attempt,
        };
        running.write(&marker).map_err(marker_io)?;
        for out in process_batch(p, &chunk, default_task, options) {
            write(&out, &mut summary)?;
        }
    }
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(marker_io(e)),
        _ => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(id: usize, image: &str) -> Input {
        Input {
            id: id.to_string(),
            image: image.into(),
            task: None,
            prompt: None,
            regions: Vec::new(),
            image_path: image.into(),
        }
    }

    /// The image files of each chunk, in order.
    fn shapes(inputs: &[Input], batch_size: usize) -> Vec<Vec<String>> {
        let refs: Vec<&Input> = inputs.iter().collect();
        photo_chunks(&refs, batch_size)
            .iter()
            .map(|c| c.iter().map(|i| i.image.display().to_string()).collect())
            .collect()
    }

    #[test]
    fn consecutive_inputs_of_one_photo_share_a_chunk() {
        let files = ["a", "a", "a", "b", "b", "c", "a"];
        let inputs: Vec<Input> = files.iter().enumerate().map(|(k, f)| input(k, f)).collect();
        assert_eq!(
            shapes(&inputs, 1),
            [vec!["a"; 3], vec!["b"; 2], vec!["c"], vec!["a"]]
        );
        assert_eq!(
            shapes(&inputs, 2),
            [vec!["a", "a", "a", "b", "b"], vec!["c", "a"]]
        );
        assert_eq!(shapes(&inputs, 0), shapes(&inputs, 1));
        // every input once, in order
        let all: Vec<String> = shapes(&inputs, 2).concat();
        assert_eq!(all, files);
    }

    #[test]
    fn many_questions_of_one_photo_are_cut_into_bounded_chunks() {
        let inputs: Vec<Input> = (0..MAX_CHUNK_INPUTS * 2 + 3)
            .map(|k| input(k, "a"))
            .collect();
        let lens: Vec<usize> = shapes(&inputs, 4).iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_CHUNK_INPUTS, MAX_CHUNK_INPUTS, 3]);
    }
}
