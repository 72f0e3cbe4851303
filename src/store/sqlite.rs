//! The embedded default: the log in one SQLite file, in WAL mode with `synchronous=FULL`, so an
//! append is on disk before it is acknowledged.
//!
//! Gap-safe tailing comes from SQLite itself: there is one writer (our group-commit task, and
//! SQLite admits one write transaction at a time anyway), positions are assigned as `head + 1…`
//! inside that transaction, so positions become visible in exactly the order they were assigned.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::watch;
use uuid::Uuid;

use super::group_commit::{
    plan_batch_after, BatchContext, BatchWriter, Dependencies, GroupCommit, KnownEvent,
};
use super::{AppendRequest, Appended, StoreError};

/// SQLite refuses statements with more bound parameters than this (32766); stay well below.
const PARAMS_PER_STATEMENT_MAX: usize = 30_000;
const COLUMNS_PER_EVENT: usize = 10;
/// SQLite refuses a compound SELECT of more than 500 terms; one term per stream, plus the head.
const COMPOUND_SELECT_TERMS_MAX: usize = 400;

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
        dependencies: &Dependencies,
    ) -> Result<(Vec<Result<Appended, StoreError>>, i64), StoreError> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
        // writes later fails with SQLITE_BUSY when another process wrote in between.
        let mut tx = self.connection.begin_with("BEGIN IMMEDIATE").await?;
        let mut context = load_context(&mut tx, batch).await?;
        context.claims = load_claims(&mut tx, batch).await?;
        let plan = plan_batch_after(batch, context, dependencies);
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
        if head.is_some() {
            insert_claims(&mut tx, batch, &plan.outcomes).await?;
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
    let mut streams: Vec<(&str, &str)> = batch
        .iter()
        .map(|r| (r.stream_type.as_str(), r.stream_id.as_str()))
        .collect();
    streams.sort_unstable();
    streams.dedup();
    // The head and every stream's version in one statement (each sub-select is one index probe):
    // round trips to SQLite's worker thread, not the lookups, are what a batch costs.
    let mut head = 0;
    let mut versions = HashMap::new();
    for chunk in streams.chunks(COMPOUND_SELECT_TERMS_MAX) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT NULL, NULL, (SELECT COALESCE(MAX(position), 0) FROM events)",
        );
        for (stream_type, stream_id) in chunk {
            query.push(" UNION ALL SELECT ");
            query.push_bind(*stream_type);
            query.push(", ");
            query.push_bind(*stream_id);
            query.push(", (SELECT MAX(version) FROM events WHERE stream_type = ");
            query.push_bind(*stream_type);
            query.push(" AND stream_id = ");
            query.push_bind(*stream_id);
            query.push(")");
        }
        for row in query.build().fetch_all(&mut *connection).await? {
            let stream_type: Option<String> = row.try_get(0)?;
            let stream_id: Option<String> = row.try_get(1)?;
            let value: Option<i64> = row.try_get(2)?;
            match (stream_type, stream_id, value) {
                (None, None, Some(position)) => head = position,
                (Some(stream_type), Some(stream_id), Some(version)) => {
                    versions.insert((stream_type, stream_id), version);
                }
                _ => {}
            }
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
        claims: HashMap::new(),
    })
}

const SELECT_EVENTS: &str = "SELECT position, event_id, stream_type, stream_id, version, \
     event_type, schema_version, payload, metadata, recorded_at FROM events ";

/// JSON as SQLite reads it; the actor expression is the one migration 0003 indexes.
pub(crate) const DIALECT: super::filter::Dialect = super::filter::Dialect {
    actor: "json_extract(metadata, '$.actor')",
    payload_field_equals: "json_extract(payload, '$.{field}') = {}",
    entity_id_as_text: false,
    explain: "EXPLAIN QUERY PLAN ",
    explain_column: 3,
    explain_setup: None,
};

impl SqliteLog {
    async fn close_readers(&self) {
        self.readers.close().await;
    }
}

impl_event_log!(
    SqliteLog,
    row = sqlx::sqlite::SqliteRow,
    backend = "sqlite",
    head_sql = "SELECT COALESCE(MAX(position), 0) FROM events"
);

impl_idempotency_store!(
    SqliteLog,
    row = sqlx::sqlite::SqliteRow,
    event_id_is = "event_id = $1"
);

claims_in_transaction!(Sqlite);
