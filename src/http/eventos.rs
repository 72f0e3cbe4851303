//! `GET /api/eventos`: the global feed in position order, for auditors and for tailing clients;
//! `GET /api/eventos/stream`: the same feed live, as Server-Sent Events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use super::extract::Query;
use aggregates::audit::{EVENT_TYPES, STREAM_TYPES};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::error::ApiError;
use super::fields::{choice_list_param, text_list_param};
use crate::audit::{self, Follower, Page};
use crate::store::EventFilter;
use crate::AppState;

pub const LIMIT_DEFAULT: i64 = 100;
pub const LIMIT_MAX: i64 = 1000;
/// A comment line on the live feed this often, so that proxies keep an idle stream open and a
/// client can tell a quiet feed from a dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Longest stream id accepted in `stream=` (ids are at most a VIN and a plate long).
const STREAM_ID_LEN_MAX: usize = 128;
/// Live feeds open at once in this process. A feed is not counted among the requests in flight
/// once its answer has begun, yet each one reads the log at every commit: past this, a new
/// subscriber is shed with 503 (`Retry-After: 1`) like any request over the cap.
pub const LIVE_FEEDS_MAX: usize = 256;
static LIVE_FEEDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LIVE_FEEDS_MAX);

/// One event of the log, as every feed and audit answer shows it.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"position": 37, "event_id": "01a2498e-7339-7011-938c-52335b0c152b",
    "stream_type": "fuel-station", "stream_id": "1", "version": 1, "event_type": "AnticipoPaid",
    "schema_version": 1, "payload": {"record": {"id": 1, "fecha": "2024-03-15", "bomba_id": 1,
    "valor_anticipo": 500000}}, "metadata": {"actor": "ana@flota.co",
    "request_id": "01a2498e-72aa-73d2-bb60-88041b8ffdab",
    "correlation_id": "01a2498e-72aa-73d2-bb60-88041b8ffdab", "causation_id": null},
    "recorded_at": "2026-12-06T04:13:22.180090Z"}))]
pub struct FeedEvent {
    /// Its place in the one global order, from 1.
    pub position: i64,
    /// A UUID, ours: the same on a retried request.
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    /// Its place in its stream, from 1.
    pub version: i64,
    pub event_type: String,
    pub schema_version: i64,
    /// The fact, as the domain wrote it.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Who (`actor`, the token's `sub`), in answer to which request, caused by which event.
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(format = DateTime)]
    pub recorded_at: String,
}

/// A page of the log.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"data": [], "desde_posicion": 1, "limite": 100, "siguiente_posicion": 47,
    "ultima_posicion": 46}))]
pub struct FeedPage {
    pub data: Vec<FeedEvent>,
    pub desde_posicion: i64,
    pub limite: i64,
    /// What to ask for next: a client that follows it sees every event exactly once.
    pub siguiente_posicion: i64,
    /// The log's head when the page was read.
    pub ultima_posicion: i64,
}

/// The event log, oldest first
///
/// `desde_posicion` is inclusive (positions start at 1); `siguiente_posicion` in the answer is the
/// value to ask for next, so a client that follows it sees every event exactly once. `tipos=`
/// (event types, comma-separated) and `stream=` (`TYPE` or `TYPE/ID`) narrow it.
#[utoipa::path(get, path = "/api/eventos", params(
    ("desde_posicion" = Option<i64>, Query, description = "First position, inclusive (default 1)", minimum = 0),
    ("limite" = Option<i64>, Query, description = "Events per page, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ("tipos" = Option<String>, Query, description = "Event types, comma-separated, any case (`TanqueoRecorded,AnticipoPaid`)"),
    ("stream" = Option<String>, Query, description = "A stream type, or `TYPE/ID` (`fuel-station/1`)"),
), responses((status = 200, body = FeedPage)))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (desde, limite) = page_params(&params)?;
    let filter = feed_filter(&params)?;
    let page = audit::page(state.log.as_ref(), &filter, desde, limite).await?;
    Ok(Json(page_body(page, desde, limite)))
}

/// `desde_posicion` (inclusive, default 1) and `limite` (1–1000, default 100) of a paged read.
pub fn page_params(params: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let desde = match params.get("desde_posicion").map(|v| v.trim()) {
        None | Some("") => 1,
        Some(raw) => parse_position(raw).ok_or_else(|| {
            ApiError::BadRequest("desde_posicion debe ser un entero mayor o igual a 0".to_string())
        })?,
    };
    let limite = match params.get("limite").map(|v| v.trim()) {
        None | Some("") => LIMIT_DEFAULT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=LIMIT_MAX).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limite debe ser un entero entre 1 y {LIMIT_MAX}"))
            })?,
    };
    Ok((desde, limite))
}

fn parse_position(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|p| *p >= 0)
}

/// A page in the feed's shape: the events, where it started, and what to ask for next.
pub fn page_body(page: Page, desde: i64, limite: i64) -> Value {
    json!({
        "data": page.events,
        "desde_posicion": desde,
        "limite": limite,
        "siguiente_posicion": page.next_position,
        "ultima_posicion": page.head,
    })
}

/// `tipos=` and `stream=` as a filter of the log.
fn feed_filter(params: &HashMap<String, String>) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter {
        event_types: event_types_param(params)?,
        ..EventFilter::default()
    };
    if let Some(raw) = params
        .get("stream")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        let (stream_type, stream_id) = match raw.split_once('/') {
            Some((stream_type, stream_id)) => (stream_type, Some(stream_id)),
            None => (raw, None),
        };
        let Some(stream_type) = STREAM_TYPES.into_iter().find(|t| *t == stream_type) else {
            return Err(ApiError::BadRequest(format!(
                "Invalid value for stream: {}; accepted stream types: {}",
                super::extract::echo(raw),
                STREAM_TYPES.join(", ")
            )));
        };
        // Control characters cannot be in a stream id, and PostgreSQL refuses a NUL in text.
        if stream_id.is_some_and(|id| {
            id.is_empty()
                || id.chars().count() > STREAM_ID_LEN_MAX
                || id.chars().any(char::is_control)
        }) {
            return Err(ApiError::BadRequest(format!(
                "Invalid value for stream: {} (expected TYPE or TYPE/ID, the id at most \
                 {STREAM_ID_LEN_MAX} characters without control characters)",
                super::extract::echo(raw)
            )));
        }
        filter.stream_type = Some(stream_type.to_string());
        filter.stream_id = stream_id.map(str::to_string);
    }
    Ok(filter)
}

/// `tipos=`: event types the domain writes, any case, answered in their own spelling.
pub fn event_types_param(params: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    // An empty list is refused like any other list filter's.
    text_list_param(params, "tipos")?;
    let types = choice_list_param(params, "tipos", EVENT_TYPES, |upper| {
        EVENT_TYPES
            .iter()
            .find(|t| t.to_uppercase() == upper)
            .map(|t| t.to_string())
    })?;
    Ok(types.unwrap_or_default())
}

/// Set when the service begins to shut down: the live feeds end, so that their connections close
/// and the graceful shutdown is not held open by subscribers that never leave.
#[derive(Debug, Clone)]
pub struct Closing(pub watch::Receiver<bool>);

/// The event log as Server-Sent Events, live
///
/// Every event from `desde_posicion` (or after the
/// `Last-Event-ID` a reconnecting client sends, which wins) as it is in the feed, then each new
/// one as it commits. Each event's `id:` is its position and `event:` its type; a heartbeat
/// comment every [`HEARTBEAT`].
#[utoipa::path(get, path = "/api/eventos/stream", params(
    ("desde_posicion" = Option<i64>, Query, description = "First position, inclusive (default 1)", minimum = 0),
    ("tipos" = Option<String>, Query, description = "Event types, comma-separated"),
    ("stream" = Option<String>, Query, description = "A stream type, or `TYPE/ID`"),
    ("Last-Event-ID" = Option<i64>, Header, description = "The last position a reconnecting client saw; wins over desde_posicion"),
), responses((status = 200, content_type = "text/event-stream", body = String,
    description = "`id:` the position, `event:` the type, `data:` the event as in /api/eventos",
    example = "id: 37\nevent: AnticipoPaid\ndata: {\"position\":37,\"event_type\":\"AnticipoPaid\"}\n\n")))]
pub async fn stream(
    State(state): State<AppState>,
    closing: Option<Extension<Closing>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (desde, _) = page_params(&params)?;
    let filter = feed_filter(&params)?;
    let desde = match headers.get("last-event-id") {
        None => desde,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| parse_position(v.trim()))
            .map(|last| last + 1)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Last-Event-ID debe ser una posición: un entero mayor o igual a 0".to_string(),
                )
            })?,
    };
    let Ok(open) = LIVE_FEEDS.try_acquire() else {
        tracing::warn!(
            LIVE_FEEDS_MAX,
            "too many live feeds open; shedding this one"
        );
        return Err(ApiError::Overloaded);
    };
    // Read before answering, so that an unreachable store is a 503 rather than an empty stream.
    state.log.head().await?;
    let follower = Follower::new(state.log.clone(), filter, desde);
    let closing = closing.map(|Extension(Closing(receiver))| receiver);
    // The permit lives as long as the stream: dropped when the client hangs up or the feed ends.
    let events = futures_util::stream::unfold(
        (follower, closing, open),
        |(mut follower, mut closing, open)| async move {
            let next = match closing.as_mut() {
                Some(closing) => tokio::select! {
                    next = follower.next() => next,
                    _ = closing.wait_for(|closing| *closing) => Ok(None),
                },
                None => follower.next().await,
            };
            match next {
                Ok(Some(event)) => Some((Ok(sse_event(&event)), (follower, closing, open))),
                Ok(None) => None,
                Err(error) => {
                    // The client reconnects with its Last-Event-ID and loses nothing.
                    tracing::warn!(%error, "live feed stopped: the log cannot be read");
                    None
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}

fn sse_event(event: &crate::store::StoredEvent) -> Event {
    // `id` and `event` panic on a newline: positions are digits, and the domain's type names
    // have none, but a stored type is the log's text, so one that does goes without `event:`.
    let data = serde_json::to_string(event).unwrap_or_default();
    let sse = Event::default().id(event.position.to_string()).data(data);
    if event.event_type.contains(['\n', '\r']) {
        return sse;
    }
    sse.event(&event.event_type)
}
