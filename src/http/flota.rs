//! `POST /api/flota/sync` (seed 000): a vehicle for every activated plate that has none.

use aggregates::fleet::{FleetCommand, FLEET_STREAM_ID};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::CommandContext;
use super::run_command_viewing;
use crate::AppState;
use utoipa::ToSchema;

/// What a sync did, counted on the state it decided on, so the three numbers always agree.
#[derive(ToSchema)]
#[schema(example = json!({"message": "Sync successful", "total_active_plates": 3, "newly_synced": 1, "already_existing": 2}))]
pub struct SyncSummary {
    /// `Sync successful`, or `No active plates found`.
    pub message: String,
    pub total_active_plates: i64,
    pub newly_synced: i64,
    pub already_existing: i64,
}

/// Create a vehicle for every ACTIVADA plate that has none (seed 000)
///
/// Idempotent: a plate that has a vehicle is counted in `already_existing`, never given another.
#[utoipa::path(post, path = "/api/flota/sync", responses((status = 200, body = SyncSummary)))]
pub async fn sync(
    State(state): State<AppState>,
    context: CommandContext,
) -> Result<Json<Value>, ApiError> {
    // Counted on the state the sync itself decided on, so the three numbers always agree.
    let (executed, total) = run_command_viewing(
        &state,
        &state.fleet,
        FLEET_STREAM_ID,
        FleetCommand::Sync,
        &context,
        ApiError::from,
        |fleet| fleet.active_plate_count(),
    )
    .await?;
    let newly = executed.events.len();
    let message = if total == 0 {
        "No active plates found"
    } else {
        "Sync successful"
    };
    Ok(Json(json!({
        "message": message,
        "total_active_plates": total,
        "newly_synced": newly,
        "already_existing": total - newly,
    })))
}
