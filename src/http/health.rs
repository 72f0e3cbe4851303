//! Liveness and readiness for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 once the store answers and every projection has folded the whole log; 503 until then.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
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
    let projections: Vec<Value> = state
        .runner
        .checkpoints()
        .into_iter()
        .map(|(name, position)| json!({ "name": name, "position": position }))
        .collect();
    let behind = state
        .runner
        .checkpoints()
        .iter()
        .any(|(_, position)| *position < head);
    let (status, label) = if behind {
        (StatusCode::SERVICE_UNAVAILABLE, "catching_up")
    } else {
        (StatusCode::OK, "ready")
    };
    (
        status,
        Json(json!({ "status": label, "head": head, "projections": projections })),
    )
}
