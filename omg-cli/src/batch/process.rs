//! One manifest input through the Pipeline: its output record, an error line
//! instead when the input is bad (a missing image, a region outside it, …).

use std::time::Instant;

use burn::tensor::backend::Backend;
use omg_llava::{GenerateOptions, Pipeline};
use serde::{Deserialize, Serialize};

use super::Input;
use crate::jobs::{JobKind, run_job};
use crate::records::OutputMask;

/// Wall-clock times of one input, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Reading and encoding the image.
    pub encode_ms: f64,
    /// The task itself (generation, masks).
    pub task_ms: f64,
}

/// One results line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The input's id.
    pub id: String,
    /// The task run.
    pub task: JobKind,
    /// The image file as the manifest gives it.
    pub image: String,
    /// Image width (absent when the image could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The answer (`segment`, `ground`, `caption`, `region`); for `ground` without
    /// the `<p>` tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The masks.
    #[serde(default)]
    pub masks: Vec<OutputMask>,
    /// How long it took.
    pub timings: Timings,
    /// Why this input failed (then there are no masks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Output {
    /// The record of `input` before it runs: no answer, no error yet.
    pub fn of(input: &Input, default_task: JobKind) -> Self {
        Self {
            id: input.id.clone(),
            task: input.task.unwrap_or(default_task),
            image: input.image.display().to_string(),
            width: None,
            height: None,
            text: None,
            masks: Vec::new(),
            timings: Timings::default(),
            error: None,
        }
    }
}

/// Runs several inputs, their images encoded in one forward pass
/// (`Pipeline::encode_batch`); one output per input, in order. Inputs that name the
/// same image file share one encoding (a benchmark asks several questions of each
/// photo). An image that cannot be read or is past the pipeline's limits fails its
/// inputs alone. `encode_ms` is each input's share of the batch's reading and
/// encoding time.
pub fn process_batch<B: Backend>(
    p: &Pipeline<B>,
    inputs: &[Input],
    default_task: JobKind,
    options: &GenerateOptions,
) -> Vec<Output> {
    let t0 = Instant::now();
    let mut outs: Vec<Output> = inputs
        .iter()
        .map(|input| Output::of(input, default_task))
        .collect();
    // The distinct image files, and for each input the index of its file.
    let mut files: Vec<&std::path::Path> = Vec::new();
    let file_of: Vec<usize> = inputs
        .iter()
        .map(|input| {
            let path = input.image_path.as_path();
            files.iter().position(|f| *f == path).unwrap_or_else(|| {
                files.push(path);
                files.len() - 1
            })
        })
        .collect();
    // Each file read once: its size when it could be read, and the photo or why it
    // cannot be used.
    type Read = (Option<(u32, u32)>, Result<image::DynamicImage, String>);
    let read: Vec<Read> = files
        .iter()
        .map(|path| match image::open(path) {
            Err(e) => (None, Err(format!("cannot read {}: {e}", path.display()))),
            Ok(photo) => {
                let (w, h) = (photo.width(), photo.height());
                let usable = p
                    .image_limits()
                    .check(w, h)
                    .map(|()| photo)
                    .map_err(|e| e.to_string());
                (Some((w, h)), usable)
            }
        })
        .collect();
    for (out, &f) in outs.iter_mut().zip(&file_of) {
        let (size, photo) = &read[f];
        out.width = size.map(|(w, _)| w);
        out.height = size.map(|(_, h)| h);
        if let Err(e) = photo {
            out.error = Some(e.clone());
        }
    }
    // The photos to encode, and for each file the index of its handle.
    let mut photos = Vec::new();
    let handle_of: Vec<Option<usize>> = read
        .into_iter()
        .map(|(_, photo)| {
            photo.ok().map(|photo| {
                photos.push(photo);
                photos.len() - 1
            })
        })
        .collect();
    let handles = match p.encode_batch(&photos) {
        Ok(handles) => handles,
        Err(e) => {
            for (out, &f) in outs.iter_mut().zip(&file_of) {
                if handle_of[f].is_some() {
                    out.error = Some(e.to_string());
                }
            }
            return outs;
        }
    };
    drop(photos);
    let share = t0.elapsed().as_secs_f64() * 1e3 / inputs.len().max(1) as f64;
    for out in &mut outs {
        out.timings.encode_ms = share;
    }
    for (k, input) in inputs.iter().enumerate() {
        let Some(h) = handle_of[file_of[k]] else {
            continue;
        };
        let out = &mut outs[k];
        let t1 = Instant::now();
        match run_job(p, &handles[h], &input.job(default_task), options) {
            Ok(done) => {
                out.text = done.text;
                out.masks = done.masks;
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        out.timings.task_ms = t1.elapsed().as_secs_f64() * 1e3;
    }
    outs
}
