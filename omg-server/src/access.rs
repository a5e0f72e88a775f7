//! Who may call, checked before a request's body is read: the `Host` header (and
//! `Origin`, when a browser sends one) must name an allowed host, so that a web page
//! elsewhere cannot drive a server on this machine (DNS rebinding, cross-site forms);
//! with an API key, `Authorization: Bearer <key>` must carry it (compared in constant
//! time); a `POST` must be `application/json` or `multipart/form-data`, which a page
//! cannot send to another origin without the browser asking first.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::config::AccessPolicy;
use super::error::ApiError;

/// The middleware: refuses a request from a host or origin not allowed (403), without
/// the API key (401), or a `POST` of another content type (415); lets the others
/// through.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match check(
        &state.config.access,
        request.method(),
        request.uri().path(),
        request.headers(),
    ) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let unauthorized = e.status == StatusCode::UNAUTHORIZED;
            let mut response = e.into_response();
            if unauthorized {
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// The checks of [`guard`], in order: host, origin, key, content type.
pub fn check(
    policy: &AccessPolicy,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let forbidden = |code, m: String| ApiError::new(StatusCode::FORBIDDEN, code, m);
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbidden("forbidden_host", "the request has no Host header".into()))?;
    if !allowed(policy, host_name(host)) {
        return Err(forbidden(
            "forbidden_host",
            format!("the host {host:?} is not one this server answers for (its --allow-host list)"),
        ));
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let name = origin
            .split_once("://")
            .map(|(_, rest)| host_name(rest.split('/').next().unwrap_or("")));
        if !name.is_some_and(|n| allowed(policy, n)) {
            return Err(forbidden(
                "forbidden_origin",
                format!("requests from pages of {origin:?} are not allowed (--allow-host)"),
            ));
        }
    }
    let public = *method == Method::GET && (path == "/health" || path == "/");
    if let Some(key) = &policy.api_key
        && !public
    {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(given) = given else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "this server needs an API key: send it as Authorization: Bearer <key>",
            ));
        };
        if !same_secret(given, key) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is not this server's",
            ));
        }
    }
    if *method == Method::POST {
        let kind = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = kind.split(';').next().unwrap_or("").trim();
        let json = essence.eq_ignore_ascii_case("application/json");
        let form = essence.eq_ignore_ascii_case("multipart/form-data");
        if !(json || form) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
                format!(
                    "a request body must be application/json (or multipart/form-data for the task endpoints), not {kind:?}"
                ),
            ));
        }
    }
    Ok(())
}

/// The host name of a `Host` header value or an origin's authority: without port, an
/// IPv6 address without its brackets, lower case.
pub fn host_name(authority: &str) -> String {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let name = if let Some(rest) = authority.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn allowed(policy: &AccessPolicy, name: String) -> bool {
    policy
        .allowed_hosts
        .iter()
        .any(|h| h == "*" || h.eq_ignore_ascii_case(&name))
}

/// Whether two secrets are equal, in a time that does not depend on where they differ
/// (their SHA-256 digests are compared in full).
fn same_secret(given: &str, key: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(key.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_brackets_and_case() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("user@evil.example:1"), "evil.example");
        assert_eq!(host_name("localhost."), "localhost");
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("k-123", "k-123"));
        assert!(!same_secret("k-123", "k-124"));
        assert!(!same_secret("k-12", "k-123"));
        assert!(!same_secret("", "k"));
    }
}
