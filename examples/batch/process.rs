//! One manifest input through the Pipeline: its output record, an error line
//! instead when the input is bad (a missing image, a region outside it, …).

use std::time::Instant;

use burn::tensor::backend::Backend;
use omg_llava::{CocoRle, GenerateOptions, MaskOutput, Pipeline, Region};
use serde::{Deserialize, Serialize};

use super::{Input, Task};

/// A mask of a result, in the image's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputMask {
    /// COCO compressed RLE (`{"size": [h, w], "counts": "..."}`).
    pub rle: CocoRle,
    /// `[x, y, width, height]`, absent for an empty mask.
    pub bbox: Option<[u32; 4]>,
    /// Pixels inside.
    pub area: u64,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// The class name (`panoptic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The class index (`panoptic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_id: Option<usize>,
    /// The phrase the mask grounds (`ground`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase: Option<String>,
}

impl OutputMask {
    /// The summary of a Pipeline mask (no label or phrase).
    pub fn new(m: &MaskOutput) -> Self {
        let s = m.summary();
        Self {
            rle: s.segmentation,
            bbox: s.bbox,
            area: s.area,
            score: s.score,
            label: None,
            class_id: None,
            phrase: None,
        }
    }
}

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
    pub task: Task,
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

/// Runs several inputs, their images encoded in one forward pass
/// (`Pipeline::encode_batch`); one output per input, in order. An image that cannot
/// be read or is past the pipeline's limits fails alone. `encode_ms` is each image's
/// share of the batch's reading and encoding time.
pub fn process_batch<B: Backend>(
    p: &Pipeline<B>,
    inputs: &[Input],
    default_task: Task,
    options: &GenerateOptions,
) -> Vec<Output> {
    let t0 = Instant::now();
    let mut outs: Vec<Output> = inputs
        .iter()
        .map(|input| Output {
            id: input.id.clone(),
            task: input.task.unwrap_or(default_task),
            image: input.image.display().to_string(),
            width: None,
            height: None,
            text: None,
            masks: Vec::new(),
            timings: Timings::default(),
            error: None,
        })
        .collect();
    // The readable photos within the limits, and the index of their input.
    let (mut photos, mut owners) = (Vec::new(), Vec::new());
    for (k, input) in inputs.iter().enumerate() {
        match image::open(&input.image_path) {
            Ok(photo) => {
                outs[k].width = Some(photo.width());
                outs[k].height = Some(photo.height());
                match p.image_limits().check(photo.width(), photo.height()) {
                    Ok(()) => {
                        photos.push(photo);
                        owners.push(k);
                    }
                    Err(e) => outs[k].error = Some(e.to_string()),
                }
            }
            Err(e) => {
                outs[k].error = Some(format!("cannot read {}: {e}", input.image_path.display()));
            }
        }
    }
    let handles = match p.encode_batch(&photos) {
        Ok(handles) => handles,
        Err(e) => {
            for &k in &owners {
                outs[k].error = Some(e.to_string());
            }
            return outs;
        }
    };
    let share = t0.elapsed().as_secs_f64() * 1e3 / inputs.len().max(1) as f64;
    for out in &mut outs {
        out.timings.encode_ms = share;
    }
    for (&k, handle) in owners.iter().zip(&handles) {
        let out = &mut outs[k];
        let t1 = Instant::now();
        let input = &inputs[k];
        match run_task(
            p,
            handle,
            out.task,
            input.prompt.as_deref(),
            &input.regions,
            options,
        ) {
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

/// Why a task could not run on an input.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The input lacks what the task needs (a prompt, regions) or has a bad region.
    #[error("{0}")]
    Input(String),
    /// The Pipeline refused or failed.
    #[error(transparent)]
    Pipeline(#[from] omg_llava::OmgLlavaError),
}

/// What a task produced: its text (none for `panoptic`) and masks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskOutput {
    /// The answer (`ground`: the caption, without `<p>` tags).
    pub text: Option<String>,
    /// The masks (`ground`: with their phrases; `panoptic`: with labels).
    pub masks: Vec<OutputMask>,
}

/// Runs `task` on an encoded image: `prompt` is the expression (`segment`) or the
/// question (`region`; without one each region is described), `regions` those of a
/// `region` task.
pub fn run_task<B: Backend>(
    p: &Pipeline<B>,
    img: &omg_llava::ImageHandle<B>,
    task: Task,
    prompt: Option<&str>,
    regions: &[super::RegionSpec],
    options: &GenerateOptions,
) -> Result<TaskOutput, TaskError> {
    let mut out = TaskOutput::default();
    let prompt_or =
        || prompt.ok_or_else(|| TaskError::Input(format!("a {task:?} input needs a \"prompt\"")));
    match task {
        Task::Segment => {
            let s = p.segment(img, prompt_or()?, options)?;
            out.masks = s.answer.masks.iter().map(OutputMask::new).collect();
            out.text = Some(s.answer.text);
        }
        Task::Caption => out.text = Some(p.caption(img, options)?.text),
        Task::Ground => {
            let g = p.ground(img, options)?;
            out.masks = g
                .phrases
                .iter()
                .filter_map(|ph| {
                    ph.mask.as_ref().map(|m| OutputMask {
                        phrase: Some(ph.phrase.clone()),
                        ..OutputMask::new(m)
                    })
                })
                .collect();
            out.text = Some(g.caption);
        }
        Task::Panoptic => {
            out.masks = p
                .panoptic(img)?
                .segments
                .iter()
                .map(|s| OutputMask {
                    label: Some(s.label.clone()),
                    class_id: Some(s.class_id),
                    ..OutputMask::new(&s.mask)
                })
                .collect();
        }
        Task::Region => {
            if regions.is_empty() {
                return Err(TaskError::Input("a region input needs \"regions\"".into()));
            }
            let regions = regions
                .iter()
                .map(|r| r.to_region().map_err(TaskError::Input))
                .collect::<Result<Vec<Region>, TaskError>>()?;
            let text = match prompt {
                Some(q) => {
                    let a = p.ask_regions(img, &regions, q, options)?;
                    out.masks = a.masks.iter().map(OutputMask::new).collect();
                    a.text
                }
                None => regions
                    .iter()
                    .map(|r| p.describe_region(img, r, options).map(|a| a.text))
                    .collect::<Result<Vec<_>, _>>()?
                    .join("\n"),
            };
            out.text = Some(text);
        }
    }
    Ok(out)
}
