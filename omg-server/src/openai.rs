//! `POST /v1/chat/completions`, OpenAI-compatible: `messages` with text and
//! `image_url` parts (one image per conversation, as a data URL), `max_tokens` (or
//! `max_completion_tokens`), `temperature`, `top_p`, `seed`, `stream` (server-sent
//! events in OpenAI's chunk format, ending with `data: [DONE]`). Extensions:
//! `regions` in the request (points, boxes, RLE masks the question's `<region>` /
//! `<mark>` placeholders refer to; single-turn only), `masks` in the response (one per
//! `[SEG]`, with the phrase it grounds when the answer has `<p>` tags), and
//! `force_seg` (force `[SEG]` at a new-token index: shows masks on random weights).
//!
//! Choices made where OpenAI and OMG-LLaVA differ: a missing `temperature` (or 0)
//! decodes greedily, as the official evaluation; `system` messages are accepted and
//! ignored (the official chat template has no system turn); `n` must be 1;
//! `usage.prompt_tokens` counts the prompt's text tokens with the image as one.
//!
//! The prompts are the Pipeline's: a chat turn is `Task::chat_after` the earlier turns
//! (each recorded with `Conversation::push_turn`), a question with regions is
//! `Task::ask_regions`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use omg_cli::records::{OutputMask, RegionSpec};
use omg_llava::{CancelToken, FinishReason, GroundedAnswer};
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

use super::AppState;
use super::batching::{ChatRow, Chunk, Dialogue, Reply, usage};
use super::bounds;
use super::error::ApiError;
use super::images::PhotoBytes;
use super::options::SamplingFields;
use super::queue::Job;
use super::worker::CancelOnDrop;

/// A chat completion request (the fields OMG-LLaVA uses; other OpenAI fields are
/// accepted and skipped without being kept). Its lists are parsed with
/// [`bounds::capped_seq`], so their length is bounded while they are read.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    #[serde(deserialize_with = "bounds::capped_seq")]
    pub messages: Vec<Message>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// `stream_options.include_usage` adds a last chunk with the usage.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices (only 1).
    #[serde(default)]
    pub n: Option<usize>,
    /// `max_tokens`, `temperature`, `top_p`, `seed`, `force_seg`: read by a second
    /// pass over the body (a flattened struct would buffer every unknown field).
    #[serde(skip)]
    pub sampling: SamplingFields,
    /// Extension: regions the last question refers to.
    #[serde(default, deserialize_with = "bounds::capped_seq")]
    pub regions: Vec<RegionSpec>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// One message.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text, or a list of parts.
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content (read by its own visitor: a string or a capped list of parts,
/// never buffered).
#[derive(Debug)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<Part>),
}

/// A content part (read by its own visitor: other fields are skipped, not buffered).
#[derive(Debug)]
pub enum Part {
    /// `{"type": "text", "text": "..."}`.
    Text {
        /// The text.
        text: String,
    },
    /// `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
}

/// An `image_url` part's target.
#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    /// A data URL.
    pub url: String,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                bounds::read_capped(seq).map(Content::Parts)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "snake_case")]
        enum Field {
            Type,
            Text,
            ImageUrl,
            #[serde(other)]
            Other,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Part;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a content part ({\"type\": \"text\" | \"image_url\", ...})")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
                use serde::de::Error;
                let (mut kind, mut text, mut image_url) = (None::<String>, None, None);
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Type => kind = Some(map.next_value()?),
                        Field::Text => text = Some(map.next_value()?),
                        Field::ImageUrl => image_url = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                match kind.as_deref() {
                    Some("text") => Ok(Part::Text {
                        text: text.ok_or_else(|| A::Error::missing_field("text"))?,
                    }),
                    Some("image_url") => Ok(Part::ImageUrl {
                        image_url: image_url.ok_or_else(|| A::Error::missing_field("image_url"))?,
                    }),
                    Some(other) => Err(A::Error::unknown_variant(other, &["text", "image_url"])),
                    None => Err(A::Error::missing_field("type")),
                }
            }
        }
        d.deserialize_map(V)
    }
}

fn read_dialogue(messages: &[Message]) -> Result<Dialogue, ApiError> {
    let bad = |m: String| ApiError::bad_request("bad_messages", m);
    let mut photo = None;
    let mut history = Vec::new();
    let mut pending: Option<String> = None;
    for (k, m) in messages.iter().enumerate() {
        let (mut text, mut images) = (Vec::new(), Vec::new());
        match &m.content {
            None => {}
            Some(Content::Text(t)) => text.push(t.clone()),
            Some(Content::Parts(parts)) => {
                for part in parts {
                    match part {
                        Part::Text { text: t } => text.push(t.clone()),
                        Part::ImageUrl { image_url } => images.push(&image_url.url),
                    }
                }
            }
        }
        let text = text.join("\n");
        match m.role.as_str() {
            "system" | "developer" => {}
            "user" => {
                if pending.is_some() {
                    return Err(bad(format!(
                        "messages[{k}]: two user messages in a row; put an assistant message between them"
                    )));
                }
                for url in images {
                    if photo.is_some() {
                        return Err(bad(
                            "the conversation has more than one image; OMG-LLaVA takes one image per conversation".into(),
                        ));
                    }
                    photo = Some(PhotoBytes::from_data_url(url)?);
                }
                pending = Some(text);
            }
            "assistant" => {
                let question = pending.take().ok_or_else(|| {
                    bad(format!(
                        "messages[{k}]: an assistant message must follow a user message"
                    ))
                })?;
                history.push((question, text));
            }
            other => return Err(bad(format!("messages[{k}]: unknown role {other:?}"))),
        }
    }
    let question = pending.ok_or_else(|| bad("the last message must be a user message".into()))?;
    let photo = photo.ok_or_else(|| {
        bad(
            "the conversation has no image: add an image_url part (a data URL) to a user message"
                .into(),
        )
    })?;
    Ok(Dialogue {
        photo,
        history,
        question,
    })
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The response masks of an answer, in order, each with the `<p>` phrase it grounds
/// when the answer has that many phrases.
fn answer_masks(grounded: &GroundedAnswer) -> Vec<OutputMask> {
    grounded
        .answer
        .masks
        .iter()
        .enumerate()
        .map(|(k, m)| OutputMask::with_phrase(m, grounded.phrases.get(k).map(|p| p.phrase.clone())))
        .collect()
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = super::body_bytes(&state, request).await?;
    let limits = &state.config.limits;
    let what = "a chat completion request";
    let mut request: ChatRequest = bounds::parse_capped(&body, bounds::seq_cap(limits), what)?;
    request.sampling = bounds::parse_capped(&body, 0, what)?;
    drop(body);
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("bad_n", "only n = 1 is supported"));
    }
    bounds::check_messages(request.messages.len(), limits)?;
    let dialogue = read_dialogue(&request.messages)?;
    bounds::check_text(dialogue.chars(), limits)?;
    let photo_size = dialogue.photo.dimensions(state.queue.image_limits())?;
    bounds::check_regions(&request.regions, photo_size, limits)?;
    if !request.regions.is_empty() && !dialogue.history.is_empty() {
        return Err(ApiError::bad_request(
            "bad_regions",
            "regions are supported in a single-turn conversation only",
        ));
    }
    let sampling = request.sampling.clone();
    let regions = request.regions;
    let cancel = CancelToken::new();
    let limits = state.config.clone();
    let id = format!("chatcmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let model = state.config.model_name.clone();
    let created = now();
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);

    let row = |reply| {
        Box::new(ChatRow {
            dialogue,
            regions,
            sampling,
            config: limits,
            cancel: cancel.clone(),
            metrics: state.metrics.clone(),
            reply,
        })
    };
    if !request.stream {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // a client that goes away cancels its row: skipped if waiting, stopped at its
        // next token if running
        let guard = CancelOnDrop::new(cancel.clone());
        state
            .queue
            .submit_job(Job::Chat(row(Reply::Blocking(tx))))?;
        let answer = rx
            .await
            .map_err(|_| ApiError::internal("the request failed inside the model (a panic)"))??;
        guard.disarm();
        let usage = usage(answer.prompt_tokens, answer.token_ids.len());
        let finish = answer.finish_reason;
        let grounded = GroundedAnswer::from(answer);
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": grounded.answer.text},
                "finish_reason": finish,
                "logprobs": null
            }],
            "usage": usage,
            "masks": answer_masks(&grounded),
        }))
        .into_response());
    }

    // Streaming: the worker reports first whether the request could start (so a bad
    // image or a prompt too long is a 4xx, not an event), then sends chunks.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Chunk>();
    // held by the response: a client that goes away, before the start or during the
    // answer, stops the generation at its next token
    let guard = CancelOnDrop::new(cancel.clone());
    state.queue.submit_job(Job::Chat(row(Reply::Streaming {
        started: Some(started_tx),
        chunks: tx,
    })))?;
    started_rx
        .await
        .map_err(|_| ApiError::internal("the request failed inside the model (a panic)"))??;

    let head = chunk_json(
        &id,
        created,
        &model,
        json!({"role": "assistant", "content": ""}),
        None,
    );
    let queued = std::collections::VecDeque::from([data(&head)]);
    let events = futures_util::stream::unfold((rx, queued, false, guard), move |state| {
        let (id, model) = (id.clone(), model.clone());
        async move {
            let (mut rx, mut queued, mut closed, guard) = state;
            loop {
                if let Some(event) = queued.pop_front() {
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (rx, queued, closed, guard),
                    ));
                }
                if closed {
                    return None;
                }
                match rx.recv().await {
                    Some(Chunk::Text(piece)) => queued.push_back(data(&chunk_json(
                        &id,
                        created,
                        &model,
                        json!({"content": piece}),
                        None,
                    ))),
                    Some(Chunk::Mask(index, mask)) => {
                        let mut c = chunk_json(&id, created, &model, json!({}), None);
                        let mut m = serde_json::to_value(mask).unwrap_or(Value::Null);
                        m["index"] = json!(index);
                        c["masks"] = json!([m]);
                        queued.push_back(data(&c));
                    }
                    Some(Chunk::Done {
                        finish_reason,
                        usage,
                    }) => {
                        let mut c =
                            chunk_json(&id, created, &model, json!({}), Some(finish_reason));
                        if include_usage {
                            c["usage"] = usage;
                        }
                        queued.push_back(data(&c));
                        queued.push_back(Event::default().data("[DONE]"));
                        closed = true;
                    }
                    Some(Chunk::Failed(e)) => {
                        queued.push_back(data(&e.body()));
                        closed = true;
                    }
                    None => {
                        let e = ApiError::internal("the request failed inside the model (a panic)");
                        queued.push_back(data(&e.body()));
                        closed = true;
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).into_response())
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

fn chunk_json(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish: Option<FinishReason>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
    })
}
