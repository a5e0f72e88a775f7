//! The server's settings, each with the default the `omg-server` flags show: what a
//! request may ask for ([`RequestLimits`]), who may call ([`AccessPolicy`]), how
//! connections are held ([`ConnectionLimits`]), the queue and the photo cache.

use std::time::Duration;

/// Server settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServeConfig {
    /// The model id of `/v1/models` and the responses.
    pub model_name: String,
    /// Requests allowed to wait for the model besides the one running; more get 503.
    pub queue_capacity: usize,
    /// Encoded photos kept (LRU), at most.
    pub cache_size: usize,
    /// Bytes the kept encoded photos may hold together (the least recently used go
    /// first past it; a photo larger than this is not kept).
    pub cache_bytes: usize,
    /// Largest request body, in bytes (413 past it).
    pub max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// `max_tokens` of a request that gives none.
    pub default_max_tokens: usize,
    /// The `Retry-After` of a 503, in seconds.
    pub retry_after_s: u64,
    /// Chat completions generated together at most (1: one at a time).
    pub max_batch: usize,
    /// How long the model thread waits for more chat completions to join a batch it
    /// starts with fewer than `max_batch` (requests sent together arrive a few
    /// milliseconds apart).
    pub batch_wait: Duration,
    /// What one request may carry.
    pub limits: RequestLimits,
    /// Who may call.
    pub access: AccessPolicy,
    /// Connection timeouts and cap.
    pub connections: ConnectionLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            model_name: "omg-llava".into(),
            queue_capacity: 8,
            cache_size: 16,
            cache_bytes: 1 << 30,
            max_body_bytes: 32 << 20,
            max_tokens_limit: 2048,
            default_max_tokens: 100,
            retry_after_s: 2,
            max_batch: 4,
            batch_wait: Duration::from_millis(20),
            limits: RequestLimits::default(),
            access: AccessPolicy::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// What one request may carry, checked before any work on it (the cheapest check
/// first: the body's size, then its shape, then the text, then the regions against the
/// photo's header). Past a limit the answer is a 400 naming the limit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestLimits {
    /// Characters of text in one request: the chat messages together, or a task's
    /// prompt. The default, 8192, is about 2048 tokens of English, the length
    /// OMG-LLaVA was trained at; the Pipeline refuses a prompt longer than the model's
    /// context after tokenizing it, before any model work.
    pub max_text_chars: usize,
    /// Messages of a chat request (a turn is two), and content parts of one message.
    pub max_messages: usize,
    /// Regions (points, boxes and masks) of one request.
    pub max_regions: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_text_chars: 8192,
            max_messages: 64,
            max_regions: 16,
        }
    }
}

/// Who may call: an optional API key, and the host names the `Host` and `Origin`
/// headers may name.
#[derive(Clone, PartialEq, serde::Serialize)]
pub struct AccessPolicy {
    /// With a key, every route but `GET /health` and the page at `/` needs
    /// `Authorization: Bearer <key>` (401 otherwise).
    #[serde(skip)]
    pub api_key: Option<String>,
    /// Host names (without port) a request's `Host`, and its `Origin` when it has one,
    /// may name (403 otherwise); `*` allows any. The default is the loopback names,
    /// so that a web page elsewhere cannot drive a server on this machine.
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            api_key: None,
            allowed_hosts: LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        }
    }
}

/// The host names of this machine's loopback interface.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How connections are held.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConnectionLimits {
    /// Open connections at most; one past it is answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, from the moment the server waits
    /// for them (so also the idle time of a kept-alive connection); the connection is
    /// closed past it.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its headers are in (408 past
    /// it).
    pub body_timeout: Duration,
    /// On SIGTERM or Ctrl-C, how long running requests may take to finish before the
    /// server exits anyway (no new connection is taken meanwhile).
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
