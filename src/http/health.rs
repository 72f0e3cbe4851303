//! Liveness and readiness for orchestrators, and the projections' state for operators.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::CommandContext;
use crate::reactor::ConsumerStatus;
use crate::read_store::ReadStoreError;
use crate::rebuild::{self, RebuildRecord};
use crate::runner::ProjectionStatus;
use crate::AppState;

/// Longest a readiness probe waits for the read models to fold the log's head.
const READINESS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `{"status": "ok"}` while the process answers.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Liveness {
    pub status: String,
}

/// Readiness, as an orchestrator's probe reads it.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "head": 28, "lag_max": 1000,
    "projections": [{"name": "tanqueos", "position": 28, "status": "ready"}],
    "consumers": [{"name": "auto_inspecao", "position": 28, "lag": 0, "status": "ready", "leading": true}]}))]
pub struct Readiness {
    /// `ready` (200), `catching_up` or `unavailable` (503).
    pub status: String,
    /// The log's last position. Absent when the log is out of reach.
    #[schema(required = false)]
    pub head: Option<i64>,
    #[schema(required = false)]
    pub projections: Option<Vec<ProjectionStatus>>,
    #[schema(required = false)]
    pub consumers: Option<Vec<ConsumerStatus>>,
    /// `--ready-lag-max`: how far behind the head a projection may be and still count as ready.
    #[schema(required = false)]
    pub lag_max: Option<u64>,
    /// What keeps the instance out: a stalled projection with its position and error, or the
    /// log out of reach.
    #[schema(required = false)]
    pub reason: Option<String>,
}

/// Liveness: the process answers
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Liveness)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Prometheus metrics in text format
///
/// Requests and latency per route and status, events appended per type, append batches and
/// commit latency, projection and consumer positions and lag, store pool usage, process RSS.
/// No token: a scraper on the operators' network reads counts and positions, never ledger data.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain",
    body = String, example = "# TYPE fleet_ledger_process_resident_memory_bytes gauge\nfleet_ledger_process_resident_memory_bytes 52428800\n")))]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(&state).await,
    )
}

/// Readiness: stores reachable, read models caught up (503 otherwise)
///
/// 200 once the store answers and every projection is within `--ready-lag-max` events of the
/// log's head; 503 until then, and whenever a projection is stalled. A stalled projection is named with the position it cannot pass and the error, in its entry of
/// `projections` and in `reason`.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "Not ready: catching up, stalled, or a store out of reach"),
))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // A write acknowledged just before is folded within milliseconds; an orchestrator's probe
    // must not wait long, though, while a projection catches up at startup.
    state.read_barrier(READINESS_WAIT).await;
    let head = match state.log.head().await {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "readiness: event log unreachable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "event log unreachable" })),
            );
        }
    };
    if let Some(reason) = state.log.writer_unhealthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        );
    }
    let projections = state.runner.statuses(head);
    // Consumers are reported, not waited for: reads never depend on them, and a consumer
    // working through a queue is no reason to take the instance out of service.
    let consumers = state.consumers.statuses(head);
    let mut body = json!({
        "status": "ready",
        "head": head,
        "projections": projections,
        "consumers": consumers,
    });
    // `catching_up` means behind the head for whatever reason; a stalled projection says so in
    // its own entry, and `reason` names it with its position and error.
    if let Some(reason) = stalled_reason(&projections) {
        body["reason"] = json!(reason);
    }
    let lag_max = state.settings.ready_lag_max_events;
    body["lag_max"] = json!(lag_max);
    let status = if is_ready(&projections, head, lag_max) {
        StatusCode::OK
    } else {
        body["status"] = json!("catching_up");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Ready when no projection is stalled and none is more than `lag_max_events` behind `head`.
/// Under steady writes every projection is always a few events behind the newest commit; only a
/// lag past the threshold (or a projection that cannot move at all) takes the instance out.
fn is_ready(projections: &[ProjectionStatus], head: i64, lag_max_events: u64) -> bool {
    projections.iter().all(|p| {
        let lag = u64::try_from(head - p.position).unwrap_or(0);
        p.stalled.is_none() && lag <= lag_max_events
    })
}

/// `projection tanqueos is stalled at position 12: …` for each stalled projection.
fn stalled_reason(projections: &[ProjectionStatus]) -> Option<String> {
    let reasons: Vec<String> = projections
        .iter()
        .filter_map(|p| {
            p.stalled.as_ref().map(|stall| {
                format!(
                    "projection {} is stalled at position {}: {}",
                    p.name, stall.position, stall.error
                )
            })
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Read models: position, lag, state and latest rebuild (admin)
///
/// Every projection's position, lag, state (`rebuilding`
/// while a rebuild of it runs, in any process) and last error; when stalled, the position it
/// cannot get past, the error, since when and how many attempts; its latest rebuild; and the
/// same, with the lag, for every consumer of the log.
#[utoipa::path(get, path = "/api/admin/proyecciones", responses((status = 200, body = Projections)))]
pub async fn projections(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Value>, ApiError> {
    if !context.actor.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let head = state.log.head().await?;
    let rebuilds = rebuild::records(&state.read_models)
        .await
        .map_err(ReadStoreError::from)?;
    let projections: Vec<Value> = state
        .runner
        .statuses(head)
        .into_iter()
        .map(|status| {
            let record = rebuilds.get(status.name);
            projection_view(status, head, record)
        })
        .collect();
    Ok(Json(json!({
        "head": head,
        "leading": state.runner.is_leading(),
        "projections": projections,
        "consumers": state.consumers.statuses(head),
    })))
}

/// Rebuild a read model online (admin)
///
/// Starts rebuilding the projection
/// into shadow tables in the background (see [`crate::rebuild`]) and answers 202 with its entry
/// of `GET /api/admin/proyecciones`; 404 for a name no projection has, 409 while a rebuild of it
/// runs (here or in another process).
#[utoipa::path(post, path = "/api/admin/proyecciones/{name}/reconstruir",
    params(("name" = String, Path, description = "A projection's name, as `GET /api/admin/proyecciones` lists it")),
    responses((status = 202, body = ProjectionView, description = "The rebuild started")))]
pub async fn rebuild(
    State(state): State<AppState>,
    context: CommandContext,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !context.actor.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let projection =
        rebuild::select(&state.runner.projections(), std::slice::from_ref(&name))?.remove(0);
    let name = projection.name();
    state
        .rebuilds
        .launch(state.log.clone(), state.read_models.clone(), projection)
        .await?;
    let head = state.log.head().await?;
    let rebuilds = rebuild::records(&state.read_models)
        .await
        .map_err(ReadStoreError::from)?;
    let status = state
        .runner
        .statuses(head)
        .into_iter()
        .find(|status| status.name == name)
        .ok_or_else(|| ApiError::internal(format!("projection {name} has no status")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(projection_view(status, head, rebuilds.get(name))),
    ))
}

/// Every read model and consumer, as an operator follows them.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"head": 46, "leading": true, "projections": [{"name": "saldos", "position": 46,
    "lag": 0, "status": "ready", "last_error": null, "rebuild": null}], "consumers": [{"name": "auto_inspecao",
    "position": 46, "lag": 0, "status": "ready", "leading": true}]}))]
pub struct Projections {
    pub head: i64,
    /// Whether this instance runs the projections (holds their lease).
    pub leading: bool,
    pub projections: Vec<ProjectionView>,
    pub consumers: Vec<ConsumerStatus>,
}

/// One read model.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"name": "saldos", "position": 46, "lag": 0, "status": "rebuilding", "last_error": null,
    "rebuild": {"state": "rebuilding", "position": 0, "target": 46, "progress": 0.0,
    "started_at": "2026-12-06T04:13:22.702Z", "finished_at": null, "error": null}}))]
pub struct ProjectionView {
    pub name: String,
    pub position: i64,
    pub lag: i64,
    /// `ready`, `catching_up`, `stalled` or `rebuilding`.
    pub status: String,
    /// Present while it cannot get past an event.
    #[schema(required = false)]
    pub stalled: Option<crate::runner::Stall>,
    pub last_error: Option<String>,
    pub rebuild: Option<RebuildRecord>,
}

/// One projection as the admin endpoints show it.
fn projection_view(status: ProjectionStatus, head: i64, rebuild: Option<&RebuildRecord>) -> Value {
    let rebuilding = rebuild.is_some_and(RebuildRecord::is_running);
    // A stalled projection's error is the one that matters now; otherwise a rebuild's that
    // failed, until the next one.
    let last_error = status
        .stalled
        .as_ref()
        .map(|stall| stall.error.clone())
        .or_else(|| rebuild.and_then(|r| r.error.clone()));
    let mut view = json!({
        "name": status.name,
        "position": status.position,
        "lag": (head - status.position).max(0),
        "status": if rebuilding { "rebuilding" } else { status.status },
    });
    if let Some(stalled) = &status.stalled {
        view["stalled"] = json!(stalled);
    }
    view["last_error"] = json!(last_error);
    view["rebuild"] = json!(rebuild);
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Stall;

    fn at(position: i64) -> ProjectionStatus {
        ProjectionStatus {
            name: "saldos",
            position,
            status: "catching_up",
            stalled: None,
        }
    }

    #[test]
    fn a_lag_within_the_threshold_is_ready_and_one_past_it_is_not() {
        assert!(is_ready(&[at(100), at(90)], 100, 10));
        assert!(!is_ready(&[at(100), at(89)], 100, 10));
        assert!(is_ready(&[at(100)], 100, 0));
        assert!(!is_ready(&[at(99)], 100, 0));
    }

    #[test]
    fn a_stalled_projection_is_never_ready_however_small_its_lag() {
        let stalled = ProjectionStatus {
            stalled: Some(Stall {
                position: 100,
                error: "cannot fold".into(),
                since: chrono::Utc::now(),
                attempts: 3,
            }),
            ..at(99)
        };
        assert!(!is_ready(&[stalled], 100, 1_000));
    }
}
