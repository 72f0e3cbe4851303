//! Liveness and readiness for orchestrators, and the projections' state for operators.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::CommandContext;
use crate::read_store::ReadStoreError;
use crate::rebuild::{self, RebuildRecord};
use crate::runner::ProjectionStatus;
use crate::AppState;

/// Longest a readiness probe waits for the read models to fold the log's head.
const READINESS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 once the store answers and every projection has folded the whole log; 503 until then. A
/// stalled projection is named with the position it cannot pass and the error, in its entry of
/// `projections` and in `reason`.
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
    let status = if projections.iter().any(|p| p.position < head) {
        body["status"] = json!("catching_up");
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
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

/// `GET /api/admin/proyecciones` (admin): every projection's position, lag, state (`rebuilding`
/// while a rebuild of it runs, in any process) and last error; when stalled, the position it
/// cannot get past, the error, since when and how many attempts; its latest rebuild; and the
/// same, with the lag, for every consumer of the log.
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

/// `POST /api/admin/proyecciones/{name}/reconstruir` (admin): starts rebuilding the projection
/// into shadow tables in the background (see [`crate::rebuild`]) and answers 202 with its entry
/// of `GET /api/admin/proyecciones`; 404 for a name no projection has, 409 while a rebuild of it
/// runs (here or in another process).
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
