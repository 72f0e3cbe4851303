//! The read side: every statement against the read models, one module per resource family. Each
//! answers typed rows, so the HTTP layer renders and never writes SQL.
//!
//! Statements use only portable SQL with `$n` placeholders: they run unchanged on SQLite and
//! PostgreSQL through sqlx's `Any` driver (see [`crate::read_store`]).

pub mod alertas;
pub mod balances;
pub mod checkpoints;
pub mod cierres;
pub mod fleet;
pub mod inspections;
pub mod ledger;
pub mod registry;
pub mod tanqueos;
pub mod vehicle_checks;
pub mod webhooks;

use projections::Cell;
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::read_store::ReadStore;

/// The query layer's one error type. Never the caller's fault: the read models are the
/// service's own. An unreachable database is a 503 (retry later), anything else a 500.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("read models: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value that its column's type cannot hold (the projection never writes one).
    #[error("read models: stored {0}")]
    Corrupt(String),
}

impl QueryError {
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Database(error) if crate::store::is_outage(error))
    }
}

/// Every row `sql` (without placeholders) selects, each read by `read`.
async fn all<T>(
    read_models: &ReadStore,
    sql: &str,
    read: impl Fn(&AnyRow) -> Result<T, QueryError>,
) -> Result<Vec<T>, QueryError> {
    let rows = sqlx::query(sql).fetch_all(read_models.pool()).await?;
    rows.iter().map(read).collect()
}

/// The row `sql` selects when its one placeholder is `id`, read by `read`; `None` if none is.
async fn by_id<T>(
    read_models: &ReadStore,
    sql: &str,
    id: i64,
    read: impl Fn(&AnyRow) -> Result<T, QueryError>,
) -> Result<Option<T>, QueryError> {
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(read_models.pool())
        .await?
        .as_ref()
        .map(read)
        .transpose()
}

/// A read-only transaction whose statements all see the same committed state, for an answer
/// read from several tables (or several ranges of one) while the projections write. SQLite's WAL
/// gives a transaction one snapshot from its first read; PostgreSQL's default (read committed)
/// takes a new one per statement, so it is asked for repeatable read.
async fn snapshot(read_models: &ReadStore) -> Result<Transaction<'static, Any>, QueryError> {
    let mut snapshot = read_models.pool().begin().await?;
    if snapshot.backend_name() == "PostgreSQL" {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *snapshot)
            .await?;
    }
    Ok(snapshot)
}

/// A decimal column (exact text). Unreadable text is `None`, the same as an empty column, as
/// [`crate::read_store::decimal_json`] renders it.
fn optional_decimal(row: &AnyRow, index: usize) -> Result<Option<Decimal>, QueryError> {
    let text: Option<String> = row.try_get(index)?;
    Ok(text.and_then(|text| text.parse().ok()))
}

/// A decimal column that must hold one: anything else is a corrupt row.
fn exact_decimal(row: &AnyRow, index: usize) -> Result<Decimal, QueryError> {
    let text: String = row.try_get(index)?;
    text.parse()
        .map_err(|_| QueryError::Corrupt(format!("amount {text:?} is not a decimal")))
}

/// ` WHERE a AND b`, or nothing when there are no conditions.
fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// `sql` with `binds` bound in order: the filters of a list build both together.
pub(super) fn query_with<'q>(
    sql: &'q str,
    binds: &'q [Cell],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for cell in binds {
        query = match cell {
            Cell::Int(value) => query.bind(*value),
            Cell::Text(value) => query.bind(value.clone()),
        };
    }
    query
}
