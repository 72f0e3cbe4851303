//! Request extractors shared by every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::Actor;
use crate::idempotency::IdempotencyScope;
use crate::store::EventMetadata;

/// A JSON body. Any content type is read as JSON, and a malformed body is a 400 that says what is
/// wrong with it (never axum's plain-text rejection, never a 500).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("Invalid request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("Request body is required".to_string()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("Invalid JSON: {e}")))
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
