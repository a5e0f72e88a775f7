//! The Pipeline's tasks as endpoints: `POST /v1/segment`, `/v1/ground`, `/v1/caption`,
//! `/v1/regions`, `/v1/interactive`, `/v1/panoptic`. A request is JSON
//! (`{"image": "data:image/png;base64,...", "prompt"?, "regions"?, "max_tokens"?, …}`)
//! or multipart (an `image` file part and the same fields as text parts, `regions` as
//! JSON); the answer is `{"task", "width", "height", "text"?, "masks": [{rle, bbox,
//! area, score, label?, class_id?, phrase?}], "timings": {"total_ms"}}`, masks in COCO
//! RLE of the photo's pixels.

use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::images::PhotoBytes;
use super::options::{SamplingFields, generate_options};
use crate::batch::{OutputMask, RegionSpec, Task, TaskError, run_task};

/// What an endpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// A task of `omg batch` (segment, ground, caption, region, panoptic).
    Task(Task),
    /// Interactive segmentation: one mask per region (`Pipeline::interactive`).
    Interactive,
}

/// A task request.
#[derive(Debug, Default, Deserialize)]
pub struct TaskRequest {
    /// The photo as a data URL (JSON requests).
    #[serde(default)]
    pub image: Option<String>,
    /// The expression (`segment`) or question (`regions`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Points, boxes or RLE masks (`regions`, `interactive`).
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    /// Generation fields.
    #[serde(flatten)]
    pub sampling: SamplingFields,
}

/// A task's answer.
#[derive(Debug, Serialize)]
pub struct TaskResponse {
    /// The task run (`segment`, …, `interactive`).
    pub task: String,
    /// Photo width.
    pub width: u32,
    /// Photo height.
    pub height: u32,
    /// The answer, if the task has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The masks.
    pub masks: Vec<OutputMask>,
    /// Wall-clock time on the model thread.
    pub timings: serde_json::Value,
}

impl Endpoint {
    fn name(self) -> String {
        match self {
            Endpoint::Task(Task::Region) => "regions".into(),
            Endpoint::Task(t) => format!("{t:?}").to_lowercase(),
            Endpoint::Interactive => "interactive".into(),
        }
    }
}

/// Reads a JSON or multipart task request.
async fn read_request(
    state: &AppState,
    request: Request,
) -> Result<(TaskRequest, PhotoBytes), ApiError> {
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let body = super::body_bytes(state, request).await?;
        let parsed: TaskRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "bad_json",
                format!("the request is not a task request: {e}"),
            )
        })?;
        let url = parsed.image.as_deref().ok_or_else(|| {
            ApiError::bad_request("bad_image", "the request has no \"image\" (a data URL)")
        })?;
        let photo = PhotoBytes::from_data_url(url)?;
        return Ok((parsed, photo));
    }
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::new(e.status(), "bad_multipart", e.body_text()))?;
    let mut parsed = TaskRequest::default();
    let mut photo = None;
    let bad = |m: String| ApiError::bad_request("bad_multipart", m);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::new(e.status(), "bad_multipart", e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_multipart", e.body_text()))?;
        if name == "image" {
            photo = Some(PhotoBytes::new(bytes.to_vec())?);
            continue;
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| bad(format!("the field {name:?} is not UTF-8 text")))?;
        let number = |what: &str| -> Result<_, ApiError> {
            text.trim()
                .parse::<f64>()
                .map_err(|_| bad(format!("the field {what:?} must be a number, got {text:?}")))
        };
        let count = |what: &str| -> Result<usize, ApiError> {
            text.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("the field {what:?} must be a count, got {text:?}")))
        };
        match name.as_str() {
            "prompt" => parsed.prompt = Some(text.clone()),
            "regions" => {
                parsed.regions = serde_json::from_str(&text).map_err(|e| {
                    bad(format!(
                        "the field \"regions\" is not a JSON list of regions: {e}"
                    ))
                })?
            }
            "max_tokens" => parsed.sampling.max_tokens = Some(count("max_tokens")?),
            "force_seg" => parsed.sampling.force_seg = Some(count("force_seg")?),
            "seed" => parsed.sampling.seed = Some(count("seed")? as u64),
            "temperature" => parsed.sampling.temperature = Some(number("temperature")? as f32),
            "top_p" => parsed.sampling.top_p = Some(number("top_p")? as f32),
            other => return Err(bad(format!("unknown field {other:?}"))),
        }
    }
    let photo = photo.ok_or_else(|| bad("the form has no \"image\" file part".into()))?;
    Ok((parsed, photo))
}

/// Runs `endpoint` on a request.
pub async fn run_endpoint(
    endpoint: Endpoint,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<TaskResponse>, ApiError> {
    let (req, photo) = read_request(&state, request).await?;
    let config = state.config.clone();
    let response = state
        .queue
        .run(move |w| {
            let t0 = Instant::now();
            let img = w.image(&photo)?;
            let p = &w.pipeline;
            let (text, masks) = match endpoint {
                Endpoint::Interactive => {
                    if req.regions.is_empty() {
                        return Err(ApiError::bad_request(
                            "bad_regions",
                            "interactive segmentation needs \"regions\" (points, boxes or masks)",
                        ));
                    }
                    let mut masks = Vec::new();
                    for spec in &req.regions {
                        let region = spec
                            .to_region()
                            .map_err(|e| ApiError::bad_request("bad_regions", e))?;
                        masks.push(OutputMask::new(&p.interactive(&img, &region)?));
                    }
                    (None, masks)
                }
                Endpoint::Task(task) => {
                    let generates = task != Task::Panoptic;
                    let options = if generates {
                        generate_options(&req.sampling, &config, p)?
                    } else {
                        Default::default()
                    };
                    let out =
                        run_task(p, &img, task, req.prompt.as_deref(), &req.regions, &options)
                            .map_err(|e| match e {
                                TaskError::Input(m) => ApiError::bad_request("bad_input", m),
                                TaskError::Pipeline(e) => e.into(),
                            })?;
                    (out.text, out.masks)
                }
            };
            Ok(TaskResponse {
                task: endpoint.name(),
                width: img.width(),
                height: img.height(),
                text,
                masks,
                timings: serde_json::json!({"total_ms": t0.elapsed().as_secs_f64() * 1e3}),
            })
        })
        .await?;
    Ok(Json(response))
}
