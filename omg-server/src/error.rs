//! The server's errors: an HTTP status and a message, sent as OpenAI's error object
//! (`{"error": {"message", "type", "code"}}`), so client libraries show the message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omg_cli::jobs::JobError;
use omg_llava::OmgLlavaError;

/// An error answered to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable code (`bad_image`, `queue_full`, …).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds a client should wait before trying again (a 503's `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// An error of any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The 503 of a full request queue.
    pub fn queue_full(capacity: usize, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!(
                    "the server is busy: {capacity} requests are already waiting for the model; try again in {retry_after} s"
                ),
            )
        }
    }

    /// A 500 for what a client cannot fix.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// OpenAI's error `type` for this status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            503 | 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {"message": self.message, "type": self.kind(), "code": self.code}
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<OmgLlavaError> for ApiError {
    /// The Pipeline's typed errors: what the request got wrong (a bad region, a prompt
    /// too long, a photo too large, a generation setting out of range, …) is a 4xx with
    /// the error's own message; a failure of the model is a 500.
    fn from(e: OmgLlavaError) -> Self {
        use OmgLlavaError as E;
        let (status, code) = match &e {
            E::ImageTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
            E::PromptTooLong { .. } => (StatusCode::BAD_REQUEST, "prompt_too_long"),
            E::InvalidOption { .. } => (StatusCode::BAD_REQUEST, "bad_parameter"),
            E::PointOutside { .. }
            | E::DegenerateBox { .. }
            | E::BoxOutside { .. }
            | E::RegionMaskSize { .. }
            | E::EmptyRegionMask
            | E::NoRegion
            | E::PlaceholderMismatch { .. } => (StatusCode::BAD_REQUEST, "bad_region"),
            E::TooManyImages { .. } => (StatusCode::BAD_REQUEST, "bad_prompt"),
            E::Image(_) | E::Mask(_) => (StatusCode::BAD_REQUEST, "bad_input"),
            // nginx's "client closed request": nobody is left to read it
            E::Cancelled => (
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "cancelled",
            ),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "model_error"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<JobError> for ApiError {
    /// A job's errors: a job that lacks what its kind needs is a 400 `bad_input`, the
    /// Pipeline's errors map as [`OmgLlavaError`]'s do.
    fn from(e: JobError) -> Self {
        match e {
            JobError::Pipeline(e) => e.into(),
            other => Self::bad_request("bad_input", other.to_string()),
        }
    }
}
