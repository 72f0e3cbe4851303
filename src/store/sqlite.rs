//! The embedded default: the log in one SQLite file, in WAL mode with `synchronous=FULL`, so an
//! append is on disk before it is acknowledged.
//!
//! Gap-safe tailing comes from SQLite itself: there is one writer (our group-commit task, and
//! SQLite admits one write transaction at a time anyway), positions are assigned as `head + 1…`
//! inside that transaction, so positions become visible in exactly the order they were assigned.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::watch;
use uuid::Uuid;

use super::group_commit::{plan_batch, BatchContext, BatchWriter, GroupCommit, KnownEvent};
use super::{
    stored_event_from_columns, AppendRequest, Appended, EventLog, StoreError, StoredEvent,
};

/// SQLite refuses statements with more bound parameters than this (32766); stay well below.
const PARAMS_PER_STATEMENT_MAX: usize = 30_000;
const COLUMNS_PER_EVENT: usize = 10;

pub struct SqliteLog {
    readers: SqlitePool,
    writer: GroupCommit,
    head: watch::Receiver<i64>,
}

pub fn connect_options(database_url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let options = if database_url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(database_url)?
    } else {
        SqliteConnectOptions::new().filename(database_url)
    };
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10)))
}

impl SqliteLog {
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let options = connect_options(database_url)?;
        let mut connection = SqliteConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut connection)
            .await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut connection)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let (head_sender, head_receiver) = watch::channel(head);
        Ok(Self {
            readers,
            writer: GroupCommit::start(SqliteBatchWriter { connection }, head_sender),
            head: head_receiver,
        })
    }
}

struct SqliteBatchWriter {
    connection: SqliteConnection,
}

impl BatchWriter for SqliteBatchWriter {
    async fn write_batch(
        &mut self,
        batch: &[AppendRequest],
    ) -> Result<(Vec<Result<Appended, StoreError>>, i64), StoreError> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
        // writes later fails with SQLITE_BUSY when another process wrote in between.
        let mut tx = self.connection.begin_with("BEGIN IMMEDIATE").await?;
        let context = load_context(&mut tx, batch).await?;
        let plan = plan_batch(batch, context);
        let mut head = None;
        for chunk in plan
            .rows
            .chunks(PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT)
        {
            let recorded_at = Utc::now();
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (position, event_id, stream_type, stream_id, version, \
                 event_type, schema_version, payload, metadata, recorded_at) ",
            );
            insert.push_values(chunk, |mut row, planned| {
                row.push_bind(planned.position)
                    .push_bind(planned.event.event_id.to_string())
                    .push_bind(planned.stream_type)
                    .push_bind(planned.stream_id)
                    .push_bind(planned.version)
                    .push_bind(&planned.event.event_type)
                    .push_bind(planned.event.schema_version)
                    .push_bind(planned.event.payload.to_string())
                    .push_bind(serde_json::to_string(&planned.event.metadata).unwrap_or_default())
                    .push_bind(recorded_at);
            });
            insert.build().execute(&mut *tx).await?;
            head = chunk.last().map(|row| row.position);
        }
        tx.commit().await?;
        let head = match head {
            Some(head) => head,
            None => current_head(&mut self.connection).await?,
        };
        Ok((plan.outcomes, head))
    }
}

async fn current_head(connection: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(connection)
            .await?,
    )
}

async fn load_context(
    connection: &mut SqliteConnection,
    batch: &[AppendRequest],
) -> Result<BatchContext, StoreError> {
    let head = current_head(connection).await?;

    let mut streams: Vec<(&str, &str)> = batch
        .iter()
        .map(|r| (r.stream_type.as_str(), r.stream_id.as_str()))
        .collect();
    streams.sort_unstable();
    streams.dedup();
    let mut versions = HashMap::new();
    for chunk in streams.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT stream_type, stream_id, MAX(version) FROM events \
             WHERE (stream_type, stream_id) IN (VALUES ",
        );
        let mut values = query.separated(", ");
        for (stream_type, stream_id) in chunk {
            values.push("(");
            values.push_bind_unseparated(*stream_type);
            values.push_unseparated(", ");
            values.push_bind_unseparated(*stream_id);
            values.push_unseparated(")");
        }
        query.push(") GROUP BY stream_type, stream_id");
        for row in query.build().fetch_all(&mut *connection).await? {
            versions.insert((row.get(0), row.get(1)), row.get::<i64, _>(2));
        }
    }

    let ids: Vec<String> = batch
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id.to_string()))
        .collect();
    let mut known = HashMap::new();
    for chunk in ids.chunks(PARAMS_PER_STATEMENT_MAX) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT event_id, stream_type, stream_id, version, position FROM events \
             WHERE event_id IN (",
        );
        let mut values = query.separated(", ");
        for id in chunk {
            values.push_bind(id);
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *connection).await? {
            let id: String = row.get(0);
            let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
                position: row.get(4),
                reason: e.to_string(),
            })?;
            known.insert(
                id,
                KnownEvent {
                    stream_type: row.get(1),
                    stream_id: row.get(2),
                    version: row.get(3),
                    position: row.get(4),
                },
            );
        }
    }
    Ok(BatchContext {
        head,
        versions,
        known,
    })
}

const SELECT_EVENTS: &str = "SELECT position, event_id, stream_type, stream_id, version, \
     event_type, schema_version, payload, metadata, recorded_at FROM events ";

fn decode_row(row: sqlx::sqlite::SqliteRow) -> Result<StoredEvent, StoreError> {
    let event_id: String = row.try_get(1)?;
    let payload: String = row.try_get(7)?;
    let metadata: String = row.try_get(8)?;
    let recorded_at: DateTime<Utc> = row.try_get(9)?;
    stored_event_from_columns(
        row.try_get(0)?,
        &event_id,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        &payload,
        &metadata,
        recorded_at,
    )
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        self.writer.append(request).await
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "{SELECT_EVENTS} WHERE stream_type = $1 AND stream_id = $2 AND version > $3 \
             ORDER BY version"
        );
        sqlx::query(&sql)
            .bind(stream_type)
            .bind(stream_id)
            .bind(after_version)
            .fetch_all(&self.readers)
            .await?
            .into_iter()
            .map(decode_row)
            .collect()
    }

    async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2");
        sqlx::query(&sql)
            .bind(after_position)
            .bind(limit)
            .fetch_all(&self.readers)
            .await?
            .into_iter()
            .map(decode_row)
            .collect()
    }

    async fn read_type(
        &self,
        stream_type: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "{SELECT_EVENTS} WHERE stream_type = $1 AND position > $2 ORDER BY position LIMIT $3"
        );
        sqlx::query(&sql)
            .bind(stream_type)
            .bind(after_position)
            .bind(limit)
            .fetch_all(&self.readers)
            .await?
            .into_iter()
            .map(decode_row)
            .collect()
    }

    async fn head(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
                .fetch_one(&self.readers)
                .await?,
        )
    }

    fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    async fn shutdown(&self) {
        self.writer.shutdown().await;
        self.readers.close().await;
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
