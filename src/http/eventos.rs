//! `GET /api/eventos`: the global feed in position order, for auditors and for tailing clients.

use std::collections::HashMap;

use super::extract::Query;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::AppState;

pub const LIMIT_DEFAULT: i64 = 100;
pub const LIMIT_MAX: i64 = 1000;

/// `desde_posicion` is inclusive (positions start at 1); `siguiente_posicion` in the answer is the
/// value to ask for next, so a client that follows it sees every event exactly once.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let desde = match params.get("desde_posicion").map(|v| v.trim()) {
        None | Some("") => 1,
        Some(raw) => raw.parse::<i64>().ok().filter(|p| *p >= 0).ok_or_else(|| {
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
    let events = state.log.read_all(desde.max(1) - 1, limite).await?;
    let siguiente = events.last().map_or(desde.max(1), |e| e.position + 1);
    let head = state.log.head().await?;
    Ok(Json(json!({
        "data": events,
        "desde_posicion": desde,
        "limite": limite,
        "siguiente_posicion": siguiente,
        "ultima_posicion": head,
    })))
}
