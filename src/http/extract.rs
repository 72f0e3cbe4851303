//! Request extractors shared by every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::Actor;
use crate::idempotency::IdempotencyScope;
use crate::store::EventMetadata;

/// Largest request body accepted, unless the route says otherwise with [`BodyLimit`]: every
/// body here is a handful of fields, or an array of at most a few thousand small records.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Deepest nesting of arrays and objects in a body. The deepest body any endpoint reads is an
/// import (object → records → row → cell); the rest is only ever an attack on the parser.
pub const JSON_DEPTH_MAX: usize = 16;
/// Longest `x-request-id`, `x-correlation-id` or `x-causation-id` taken from a caller (each is
/// stored with every event the request causes): a longer request id is replaced by a generated
/// one, a longer correlation or causation id is ignored.
pub const TRACE_ID_LEN_MAX: usize = 128;
/// Longest caller text repeated in an error message.
const ECHO_LEN_MAX: usize = 64;

/// A route's own body limit (in bytes), set as a layer on routes that take more than
/// [`BODY_BYTES_MAX`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body. A body with no `Content-Type` is read as JSON; any type but JSON is a 415. Too
/// large a body is a 413, and a malformed or too deeply nested one a 400 that says what is wrong
/// with it (never axum's plain-text rejection, never a 500).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        json_content_type(request.headers())?;
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(BODY_BYTES_MAX, |l| l.0);
        let (parts, body) = request.into_parts();
        let bytes = read_body(&parts.headers, body, limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("Request body is required".to_string()));
        }
        if nested_deeper_than(&bytes, JSON_DEPTH_MAX) {
            return Err(ApiError::BadRequest(format!(
                "Invalid JSON: nested deeper than {JSON_DEPTH_MAX} levels"
            )));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("Invalid JSON: {e}")))
    }
}

/// Reads a whole request body of at most `limit` bytes: a 413 past it (at once when the
/// `Content-Length` says so), a 400 when the body cannot be read.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("Request body too large: at most {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over_limit = std::error::Error::source(&e)
            .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
        if over_limit {
            too_large()
        } else {
            ApiError::BadRequest(format!("Invalid request body: {e}"))
        }
    })
}

/// Refuses a body declared as anything but JSON (`application/json`, `application/…+json`,
/// with or without parameters). No `Content-Type` at all is read as JSON, as clients of the
/// seeds' services send it.
pub fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("(not text)").trim();
    if text.is_empty() {
        return Ok(());
    }
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"));
    if json {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "Unsupported Content-Type: {} (expected application/json)",
        echo(text)
    )))
}

/// Whether the JSON text opens more than `depth_max` arrays or objects inside one another.
/// Checked on the bytes, before parsing, so a hostile body never builds a deep tree.
pub fn nested_deeper_than(bytes: &[u8], depth_max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > depth_max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Caller text as an error message repeats it: at most [`ECHO_LEN_MAX`] characters.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_LEN_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// axum's `Query`, refusing in the family's format (axum's own rejection is plain text).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| ApiError::BadRequest(format!("Invalid query string: {}", e.body_text())))
    }
}

/// axum's `Path`, refusing in the family's format (axum's own rejection is plain text).
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| ApiError::BadRequest(format!("Invalid path: {}", e.body_text())))
    }
}

/// The request id the middleware settled on for this request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Marks a response whose command was answered before the read models showed it; the
/// middleware turns the mark into the `X-Read-Models-Lag: true` header.
#[derive(Debug, Clone, Default)]
pub struct ReadModelsLag(Arc<AtomicBool>);

impl ReadModelsLag {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The log's head a read waited for before it was answered (see [`crate::state::ReadBarrier`]):
/// a read model that has folded it shows every write acknowledged before the read.
#[derive(Debug, Clone, Copy)]
pub struct ReadHead(pub i64);

impl FromRequestParts<crate::AppState> for ReadHead {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<crate::state::ReadBarrier>() {
            Some(barrier) => Ok(Self(barrier.head)),
            // Not behind the authentication layer (which waits): the head as of now.
            None => Ok(Self(state.log.head().await?)),
        }
    }
}

/// Who is asking and in answer to what: becomes the metadata of every event a command appends.
pub struct CommandContext {
    pub actor: Actor,
    pub metadata: EventMetadata,
    pub lag: ReadModelsLag,
    /// The request's Idempotency-Key, when it sent one: its commands derive their event ids from
    /// it (see [`crate::idempotency`]).
    pub idempotency: Option<Arc<IdempotencyScope>>,
}

impl<S: Send + Sync> FromRequestParts<S> for CommandContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let actor = parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= TRACE_ID_LEN_MAX)
                .map(str::to_string)
        };
        let metadata = EventMetadata {
            actor: Some(actor.sub.clone()),
            correlation_id: header("x-correlation-id").or_else(|| request_id.clone()),
            causation_id: header("x-causation-id"),
            request_id,
        };
        let lag = parts
            .extensions
            .get::<ReadModelsLag>()
            .cloned()
            .unwrap_or_default();
        let idempotency = parts.extensions.get::<Arc<IdempotencyScope>>().cloned();
        Ok(Self {
            actor,
            metadata,
            lag,
            idempotency,
        })
    }
}
