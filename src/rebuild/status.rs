//! `projection_rebuilds`: each projection's latest rebuild as every instance sees it, whichever
//! process runs it (migration 1013).

use std::collections::HashMap;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{Any, Transaction};

use super::LEASE_PREFIX;
use crate::read_store::ReadStore;

const REBUILDING: &str = "rebuilding";
const SWAPPED: &str = "swapped";
const FAILED: &str = "failed";
/// Still `rebuilding` in the table, but its lease expired: the process running it died.
const ABANDONED: &str = "abandoned";

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) async fn record_start(
    tx: &mut Transaction<'_, Any>,
    names: &[&str],
    head: i64,
) -> Result<(), sqlx::Error> {
    let started_at = now();
    for name in names {
        sqlx::query(
            "INSERT INTO projection_rebuilds \
             (name, state, position, target, started_at, finished_at, error) \
             VALUES ($1, $2, 0, $3, $4, NULL, NULL) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state, position = 0, \
             target = excluded.target, started_at = excluded.started_at, \
             finished_at = NULL, error = NULL",
        )
        .bind(*name)
        .bind(REBUILDING)
        .bind(head)
        .bind(&started_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn record_progress(
    tx: &mut Transaction<'_, Any>,
    positions: &[(&str, i64)],
    head: i64,
) -> Result<(), sqlx::Error> {
    for (name, position) in positions {
        sqlx::query("UPDATE projection_rebuilds SET position = $1, target = $2 WHERE name = $3")
            .bind(*position)
            .bind(head.max(*position))
            .bind(*name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn record_swapped(
    tx: &mut Transaction<'_, Any>,
    positions: &[(&str, i64)],
) -> Result<(), sqlx::Error> {
    let finished_at = now();
    for (name, position) in positions {
        sqlx::query(
            "UPDATE projection_rebuilds SET state = $1, position = $2, target = $2, \
             finished_at = $3 WHERE name = $4",
        )
        .bind(SWAPPED)
        .bind(*position)
        .bind(&finished_at)
        .bind(*name)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn record_failure(
    tx: &mut Transaction<'_, Any>,
    names: &[&str],
    error: &str,
) -> Result<(), sqlx::Error> {
    let finished_at = now();
    for name in names {
        sqlx::query(
            "UPDATE projection_rebuilds SET state = $1, finished_at = $2, error = $3 \
             WHERE name = $4",
        )
        .bind(FAILED)
        .bind(&finished_at)
        .bind(error)
        .bind(*name)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A projection's latest rebuild, as `GET /api/admin/proyecciones` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RebuildRecord {
    /// `rebuilding`, `swapped`, `failed`, or `abandoned` (its process stopped before the swap).
    pub state: &'static str,
    /// The shadow's position (after the swap: the checkpoint it set).
    pub position: i64,
    /// The log's head the shadow is catching up to.
    pub target: i64,
    /// `position / target`, 0 to 1.
    pub progress: f64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

impl RebuildRecord {
    pub fn is_running(&self) -> bool {
        self.state == REBUILDING
    }
}

/// The latest rebuild of every projection that has had one, by name.
pub async fn records(store: &ReadStore) -> Result<HashMap<String, RebuildRecord>, sqlx::Error> {
    type Stored = (
        String,
        String,
        i64,
        i64,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Stored> = sqlx::query_as(&format!(
        "SELECT r.name, r.state, r.position, r.target, r.started_at, r.finished_at, r.error, \
         l.expires_at_ms FROM projection_rebuilds r \
         LEFT JOIN projection_leases l ON l.name = '{LEASE_PREFIX}' || r.name"
    ))
    .fetch_all(store.pool())
    .await?;
    let now_ms = Utc::now().timestamp_millis();
    Ok(rows
        .into_iter()
        .map(
            |(name, state, position, target, started_at, finished_at, error, expires_at_ms)| {
                let alive = expires_at_ms.is_some_and(|at| at >= now_ms);
                let (state, error) = match state.as_str() {
                    REBUILDING if alive => (REBUILDING, error),
                    REBUILDING => (
                        ABANDONED,
                        Some("its process stopped before the swap".to_string()),
                    ),
                    SWAPPED => (SWAPPED, error),
                    _ => (FAILED, error),
                };
                let progress = if target > 0 {
                    (position as f64 / target as f64).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                let record = RebuildRecord {
                    state,
                    position,
                    target,
                    progress,
                    started_at,
                    finished_at,
                    error,
                };
                (name, record)
            },
        )
        .collect())
}
