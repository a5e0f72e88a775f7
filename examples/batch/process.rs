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
    fn new(m: &MaskOutput) -> Self {
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
        if let Err(e) = run_task(p, handle, &inputs[k], out.task, options, out) {
            out.error = Some(e);
            out.text = None;
            out.masks.clear();
        }
        out.timings.task_ms = t1.elapsed().as_secs_f64() * 1e3;
    }
    outs
}

fn run_task<B: Backend>(
    p: &Pipeline<B>,
    img: &omg_llava::ImageHandle<B>,
    input: &Input,
    task: Task,
    options: &GenerateOptions,
    out: &mut Output,
) -> Result<(), String> {
    let e = |e: omg_llava::OmgLlavaError| e.to_string();
    let prompt = || {
        input
            .prompt
            .as_deref()
            .ok_or_else(|| format!("a {task:?} input needs a \"prompt\""))
    };
    match task {
        Task::Segment => {
            let s = p.segment(img, prompt()?, options).map_err(e)?;
            out.text = Some(s.answer.text.clone());
            out.masks = s.answer.masks.iter().map(OutputMask::new).collect();
        }
        Task::Caption => out.text = Some(p.caption(img, options).map_err(e)?.text),
        Task::Ground => {
            let g = p.ground(img, options).map_err(e)?;
            out.text = Some(g.caption.clone());
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
        }
        Task::Panoptic => {
            out.masks = p
                .panoptic(img)
                .map_err(e)?
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
            if input.regions.is_empty() {
                return Err("a region input needs \"regions\"".into());
            }
            let regions = input
                .regions
                .iter()
                .map(|r| r.to_region())
                .collect::<Result<Vec<Region>, String>>()?;
            let text = match &input.prompt {
                Some(q) => {
                    let a = p.ask_regions(img, &regions, q, options).map_err(e)?;
                    out.masks = a.masks.iter().map(OutputMask::new).collect();
                    a.text
                }
                None => regions
                    .iter()
                    .map(|r| p.describe_region(img, r, options).map(|a| a.text))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?
                    .join("\n"),
            };
            out.text = Some(text);
        }
    }
    Ok(())
}
