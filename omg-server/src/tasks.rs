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
use omg_cli::jobs::{Job, JobError, JobKind, run_job};
use omg_cli::records::{OutputMask, RegionSpec};
use omg_llava::{CancelToken, OmgLlavaError};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::bounds;
use super::error::ApiError;
use super::images::PhotoBytes;
use super::options::{SamplingFields, generate_options};

/// A task request (other fields are skipped without being kept; `regions` is parsed
/// with a cap on its length).
#[derive(Debug, Default, Deserialize)]
pub struct TaskRequest {
    /// The photo as a data URL (JSON requests).
    #[serde(default)]
    pub image: Option<String>,
    /// The expression (`segment`) or question (`regions`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Points, boxes or RLE masks (`regions`, `interactive`).
    #[serde(default, deserialize_with = "bounds::capped_seq")]
    pub regions: Vec<RegionSpec>,
    /// The generation fields: read by a second pass over a JSON body (a flattened
    /// struct would buffer every unknown field), or from a form's text parts.
    #[serde(skip)]
    pub sampling: SamplingFields,
}

/// A task's answer.
#[derive(Debug, Serialize)]
pub struct TaskResponse {
    /// The task run (`segment`, `ground`, `caption`, `regions`, `panoptic`,
    /// `interactive`: the endpoint's name).
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

/// The endpoint of a job kind: `/v1/{name}`.
pub fn endpoint_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Region => "regions",
        other => other.name(),
    }
}

/// The answer to a job's error: what the request lacks is a 400 (`bad_regions` for
/// interactive segmentation, whose only input is its regions, as is a region mask that
/// does not decode; `bad_input` otherwise), the Pipeline's errors as
/// [`ApiError::from`] maps them.
fn job_error(kind: JobKind, e: JobError) -> ApiError {
    match (kind, e) {
        (JobKind::Interactive, JobError::Missing { .. }) => ApiError::bad_request(
            "bad_regions",
            "interactive segmentation needs \"regions\" (points, boxes or masks)",
        ),
        (JobKind::Interactive, JobError::Pipeline(e @ OmgLlavaError::Mask(_))) => {
            ApiError::bad_request("bad_regions", e.to_string())
        }
        (_, e) => e.into(),
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
    let (parts, body) = request.into_parts();
    let body = super::body_bytes(state, Request::from_parts(parts.clone(), body)).await?;
    if !multipart {
        let what = "a task request";
        let mut parsed: TaskRequest =
            bounds::parse_capped(&body, bounds::seq_cap(&state.config.limits), what)?;
        parsed.sampling = bounds::parse_capped(&body, 0, what)?;
        let url = parsed.image.take();
        let url = url.as_deref().ok_or_else(|| {
            ApiError::bad_request("bad_image", "the request has no \"image\" (a data URL)")
        })?;
        let photo = PhotoBytes::from_data_url(url)?;
        return Ok((parsed, photo));
    }
    // the body is in memory already (read within the body timeout)
    let request = Request::from_parts(parts, axum::body::Body::from(body));
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
                #[derive(Deserialize)]
                #[serde(transparent)]
                struct Regions(#[serde(deserialize_with = "bounds::capped_seq")] Vec<RegionSpec>);
                let cap = bounds::seq_cap(&state.config.limits);
                parsed.regions = bounds::parse_capped::<Regions>(
                    text.as_bytes(),
                    cap,
                    "a JSON list of regions (the field \"regions\")",
                )?
                .0
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

/// Runs a job of `kind` on a request (`omg_cli::jobs::run_job`, as `omg batch` does).
pub async fn run_endpoint(
    kind: JobKind,
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<TaskResponse>, ApiError> {
    let (req, photo) = read_request(&state, request).await?;
    let limits = &state.config.limits;
    let chars = req.prompt.as_deref().map_or(0, |p| p.chars().count());
    bounds::check_text(chars, limits)?;
    let photo_size = photo.dimensions(state.queue.image_limits())?;
    bounds::check_regions(&req.regions, photo_size, limits)?;
    let config = state.config.clone();
    let cancel = CancelToken::new();
    let worker_cancel = cancel.clone();
    let response = state
        .queue
        .run(cancel, move |w| {
            let t0 = Instant::now();
            let img = w.image(&photo)?;
            let options = if kind.generates() {
                generate_options(&req.sampling, &config)?.with_cancel(worker_cancel)
            } else {
                Default::default()
            };
            let job = Job {
                kind,
                prompt: req.prompt,
                regions: req.regions,
            };
            let out = run_job(&w.pipeline, &img, &job, &options).map_err(|e| job_error(kind, e))?;
            Ok(TaskResponse {
                task: endpoint_name(kind).to_owned(),
                width: img.width(),
                height: img.height(),
                text: out.text,
                masks: out.masks,
                timings: serde_json::json!({"total_ms": t0.elapsed().as_secs_f64() * 1e3}),
            })
        })
        .await?;
    Ok(Json(response))
}
