//! `Idempotency-Key` on every write (POST, PUT, PATCH, DELETE) of both families: the first
//! answer to a key is kept and replayed, marked `Idempotency-Replayed: true`. How a retry after a
//! crash is kept from appending twice is in [`crate::idempotency`].
//!
//! The layer sits right inside authentication, since keys belong to the token's `sub`. On
//! `/vehiculo` the family's envelope is applied inside it as well, so what it keeps and replays
//! is the very body the client got, timestamp included.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Retryable};
use super::extract::read_body;
use crate::auth::Actor;
use crate::idempotency::{fingerprint, Begun, KEY_LEN_MAX};
use crate::store::idempotency::SavedResponse;
use crate::AppState;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const IDEMPOTENCY_REPLAYED_HEADER: &str = "idempotency-replayed";
/// A keyed request's body is read whole to fingerprint it. No endpoint accepts more than the
/// import's limit; the endpoint's own limit still applies after this.
const REQUEST_BYTES_MAX: usize = super::import::BODY_BYTES_MAX;

pub async fn idempotency_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let writing = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let key = match key_of(request.headers()) {
        Some(key) if writing => key,
        _ => return next.run(request).await,
    };
    let key = match key {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(actor) = request.extensions().get::<Actor>().map(|a| a.sub.clone()) else {
        // Authentication runs first and always sets the actor; without one there is no owner.
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body, REQUEST_BYTES_MAX).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let fingerprint = fingerprint(parts.method.as_str(), path, &body);
    let (scope, _turn) = match state.idempotency.begin(&actor, &key, fingerprint).await {
        Ok(Begun::Replay(saved)) => return replay(saved),
        Ok(Begun::Execute(scope, turn)) => (scope, turn),
        Err(refusal) => return ApiError::from(refusal).into_response(),
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(scope.clone());
    let response = next.run(request).await;
    if !worth_keeping(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // The body is ours and already in memory; reading it whole costs no more than sending it.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            return ApiError::internal(format!("reading a response to keep: {e}")).into_response()
        }
    };
    let saved = SavedResponse {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.to_vec(),
    };
    if let Err(error) = state.idempotency.finish(&scope, &saved).await {
        // The answer still goes out. Its events (if any) are claimed with the key already, so a
        // retry resumes from the log instead of appending again.
        tracing::warn!(%error, %key, "keeping the answer to an Idempotency-Key failed");
    }
    Response::from_parts(parts, Body::from(body))
}

/// The request's key: `None` without the header, a 400 when it is empty, too long or not text.
fn key_of(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let raw = headers.get(IDEMPOTENCY_KEY_HEADER)?;
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= KEY_LEN_MAX);
    Some(key.map(str::to_string).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Idempotency-Key debe ser texto de 1 a {KEY_LEN_MAX} caracteres"
        ))
    }))
}

/// Marks an answer that shows a secret (a webhook's signing secret): it is not kept, so no
/// secret rests in clear in the keys' table. A retry with the key resumes from the log instead,
/// and the handler shows the secret its events hold (sealed) again.
#[derive(Debug, Clone, Copy)]
pub struct HoldsSecret;

/// Stripe keeps every answer but those a retry may not get: a server failure (5xx), a refusal
/// of the credentials rather than of the request (401, 403), or a collision with another request.
/// Nor is an answer that shows a secret kept ([`HoldsSecret`]).
fn worth_keeping(response: &Response) -> bool {
    let status = response.status();
    !(status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || response.extensions().get::<Retryable>().is_some()
        || response.extensions().get::<HoldsSecret>().is_some())
}

fn replay(saved: SavedResponse) -> Response {
    let Ok(status) = StatusCode::from_u16(saved.status) else {
        return ApiError::internal(format!("a kept answer has status {}", saved.status))
            .into_response();
    };
    let mut response = (status, Bytes::from(saved.body)).into_response();
    let headers = response.headers_mut();
    match saved
        .content_type
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        Some(content_type) => headers.insert(header::CONTENT_TYPE, content_type),
        None => headers.remove(header::CONTENT_TYPE),
    };
    headers.insert(
        IDEMPOTENCY_REPLAYED_HEADER,
        HeaderValue::from_static("true"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode) -> Response {
        (status, "{}").into_response()
    }

    #[test]
    fn answers_a_retry_may_not_get_are_not_kept() {
        for kept in [
            StatusCode::OK,
            StatusCode::CREATED,
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
        ] {
            assert!(worth_keeping(&answer(kept)), "{kept}");
        }
        for not_kept in [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(!worth_keeping(&answer(not_kept)), "{not_kept}");
        }
        let collided = ApiError::Contended("otra vez".into()).into_response();
        assert_eq!(collided.status(), StatusCode::CONFLICT);
        assert!(!worth_keeping(&collided));
    }
}
