//! Cross-cutting request handling: request ids and logging, authentication, panics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ReadModelsLag, RequestId, TRACE_ID_LEN_MAX};
use crate::state::READ_YOUR_WRITES_TIMEOUT;
use crate::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Present (`true`) when a write was answered while a read model it touches is stalled, or a
/// read was answered from read models that had not yet folded every acknowledged write.
pub const READ_MODELS_LAG_HEADER: &str = "x-read-models-lag";

/// Takes `x-request-id` from the request or generates one, echoes it in the response and logs the
/// request under it.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= TRACE_ID_LEN_MAX)
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let lag = ReadModelsLag::default();
    request.extensions_mut().insert(lag.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let mut response = next.run(request).instrument(span.clone()).await;
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    crate::telemetry::record_request(
        route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request handled"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if lag.is_marked() {
        response
            .headers_mut()
            .insert(READ_MODELS_LAG_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// The route label of requests no route matched (404s): one label, however many paths are tried.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Hands the matched route template (`/api/bombas/{id}`) to [`request_id`] through the response:
/// it is known only once routing ran, inside the layers that wrap the whole router.
pub async fn matched_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Requires a valid bearer token; reads need any role, writes `admin` or `operador`.
///
/// A read first waits for the read models to fold every write acknowledged before it arrived
/// ([`AppState::read_barrier`]): the wait that gives read-your-writes sits on the read side, so
/// a write that answers from its own events need not wait for the projections.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return ApiError::Unauthorized.into_response();
    };
    let actor = match state.keys().verify(token) {
        Ok(actor) => actor,
        Err(reason) => {
            tracing::info!(%reason, "token refused");
            return ApiError::Unauthorized.into_response();
        }
    };
    let reading = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    // Reviewing an alert is the audit side's write: admin and auditor, not operador.
    let reviewing = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|path| path.as_str() == super::alertas::REVIEW_ROUTE);
    // A route that refuses roles in its own words (the monthly closes) takes any valid token
    // and decides in its handler.
    let allowed = if reviewing {
        actor.can_audit()
    } else if reading || super::cierres::ROLE_CHECKED_BY_HANDLER.contains(&request.uri().path()) {
        actor.can_read()
    } else {
        actor.can_write()
    };
    if !allowed {
        tracing::info!(sub = %actor.sub, method = %request.method(), "role refused");
        return ApiError::Forbidden.into_response();
    }
    if reading {
        wait_for_read_models(&state, &mut request).await;
    }
    request.extensions_mut().insert(actor);
    next.run(request).await
}

/// Waits, before a read, for the read models to fold every write acknowledged before it
/// arrived, and hands the head it waited for to [`super::extract::ReadHead`]; a read answered
/// before they caught up is marked (`x-read-models-lag`). The API's and the dashboard's reads
/// both pass here.
pub async fn wait_for_read_models(state: &AppState, request: &mut Request) {
    let barrier = state.read_barrier_at(READ_YOUR_WRITES_TIMEOUT).await;
    if !barrier.settled {
        if let Some(lag) = request.extensions().get::<ReadModelsLag>() {
            lag.mark();
        }
    }
    request.extensions_mut().insert(barrier);
}

/// Error bodies are short JSON; anything longer is not a refusal to rewrite.
const ERROR_BODY_LEN_MAX: usize = 64 * 1024;

/// Runs the request and rewrites its answer, when it is a refusal (not 2xx), into a family's
/// error format: the one body rewriter of the families that answer in their own words (seeds
/// 001, 002 and 003). `rewrite` gets the status, the body as JSON (when it is) and its bytes,
/// and answers the new body, or `None` for an answer already in the family's format, which
/// passes as it is.
pub async fn rewrite_refusals(
    request: Request,
    next: Next,
    rewrite: impl FnOnce(
        axum::http::StatusCode,
        Option<&serde_json::Value>,
        &[u8],
    ) -> Option<serde_json::Value>,
) -> Response {
    let response = next.run(request).await;
    if response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LEN_MAX)
        .await
        .unwrap_or_default();
    let parsed = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    let Some(rewritten) = rewrite(parts.status, parsed.as_ref(), &bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(rewritten.to_string()))
}

/// Turns a panic in a handler into the seed's 500 body; the panic message is logged, not sent.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let cause = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string());
    ApiError::Internal(format!("handler panicked: {cause}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    #[tokio::test]
    async fn a_panicking_handler_answers_the_seed_500_without_the_cause() {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async { panic!("secret detail") as &'static str }),
            )
            .layer(CatchPanicLayer::custom(panic_response));
        let response = router
            .oneshot(Request::builder().uri("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"error":"Error en el servidor"}"#);
    }
}
