//! Where read models live, and how a projection's [`Change`]s become SQL.
//!
//! Read-model SQL is written once for both backends through sqlx's `Any` driver: the tables use
//! only types both databases share (`BIGINT`, `TEXT`), exact decimals are stored as text, and
//! every change is an `INSERT … ON CONFLICT … DO UPDATE` or a `DELETE` that both understand.
//! On SQLite the read models sit in their own file beside the log, so projection transactions
//! never wait for (or delay) the log's writer.

use std::str::FromStr;
use std::time::Duration;

use projections::{Cell, Change};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, QueryBuilder, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum ReadStoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone)]
pub struct ReadStore {
    pool: AnyPool,
}

impl ReadStore {
    pub async fn open(database_url: &str) -> Result<Self, ReadStoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = database_url.starts_with("sqlite:");
        let options = AnyConnectOptions::from_str(database_url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // Read models are rebuilt from the log, so NORMAL suffices: a crash can
                        // only roll back whole (changes + checkpoint) transactions together.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            sqlx::Executor::execute(&mut *connection, pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/read_models")
            .set_ignore_missing(true)
            .run(&pool)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn checkpoint(&self, projection: &str) -> Result<i64, ReadStoreError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                .bind(projection)
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub async fn save_checkpoint(
    tx: &mut Transaction<'_, Any>,
    projection: &str,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )
    .bind(projection)
    .bind(position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn apply_change(
    tx: &mut Transaction<'_, Any>,
    change: Change,
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<Any>::new("");
    match change {
        Change::Upsert { table, key, values } => {
            query.push(format_args!("INSERT INTO {table} ("));
            let columns: Vec<&str> = key.iter().chain(&values).map(|(c, _)| *c).collect();
            query.push(columns.join(", "));
            query.push(") VALUES (");
            let mut cells = query.separated(", ");
            for (_, cell) in key.iter().chain(&values) {
                bind_cell(&mut cells, cell);
            }
            query.push(") ON CONFLICT (");
            query.push(key.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "));
            if values.is_empty() {
                query.push(") DO NOTHING");
            } else {
                query.push(") DO UPDATE SET ");
                let updates: Vec<String> = values
                    .iter()
                    .map(|(c, _)| format!("{c} = excluded.{c}"))
                    .collect();
                query.push(updates.join(", "));
            }
        }
        Change::Delete { table, key } => {
            query.push(format_args!("DELETE FROM {table} WHERE "));
            for (index, (column, cell)) in key.iter().enumerate() {
                if index > 0 {
                    query.push(" AND ");
                }
                query.push(format_args!("{column} = "));
                match cell {
                    Cell::Int(v) => query.push_bind(*v),
                    Cell::Text(v) => query.push_bind(v.clone()),
                };
            }
        }
    }
    query.build().execute(&mut **tx).await?;
    Ok(())
}

fn bind_cell(cells: &mut sqlx::query_builder::Separated<'_, '_, Any, &str>, cell: &Cell) {
    match cell {
        Cell::Int(v) => cells.push_bind(*v),
        Cell::Text(v) => cells.push_bind(v.clone()),
    };
}
