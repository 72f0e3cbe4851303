//! Where every checkpointed reader of the log stands, for `fleet-ledger verify`: read without
//! opening a [`crate::read_store::ReadStore`], which would create and migrate what it opens.

use std::path::Path;
use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::QueryError;

/// One reader's checkpoint: a projection's or a consumer's (src/reactor.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `projection` or `consumer`.
    pub kind: String,
    pub name: String,
    pub position: i64,
}

/// Every checkpoint in the read models at `read_models_url`, by kind and name; `None` when there
/// are no read models there (a SQLite file that does not exist, or tables never created: a copy
/// of the log alone, say).
pub async fn all_checkpoints(read_models_url: &str) -> Result<Option<Vec<Checkpoint>>, QueryError> {
    sqlx::any::install_default_drivers();
    let url = match read_models_url.strip_prefix("sqlite://") {
        Some(rest) => {
            let path = rest.split('?').next().unwrap_or_default();
            if !Path::new(path).exists() {
                return Ok(None);
            }
            format!("sqlite://{path}?mode=ro")
        }
        None => read_models_url.to_string(),
    };
    let mut connection = AnyConnectOptions::from_str(&url)?
        .disable_statement_logging()
        .connect()
        .await?;
    let rows: Result<Vec<(String, String, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT 'projection', name, position FROM projection_checkpoints \
         UNION ALL SELECT 'consumer', name, position FROM consumer_checkpoints \
         ORDER BY 1 DESC, 2",
    )
    .fetch_all(&mut connection)
    .await;
    let _ = connection.close().await;
    match rows {
        Ok(rows) => Ok(Some(
            rows.into_iter()
                .map(|(kind, name, position)| Checkpoint {
                    kind,
                    name,
                    position,
                })
                .collect(),
        )),
        Err(sqlx::Error::Database(error)) if is_missing_table(error.as_ref()) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// PostgreSQL's `undefined_table`, or SQLite's "no such table".
fn is_missing_table(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().as_deref() == Some("42P01") || error.message().starts_with("no such table")
}
