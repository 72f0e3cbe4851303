//! The embedded default: the log in one SQLite file, in WAL mode with `synchronous=FULL`, so an
//! append is on disk before it is acknowledged.
//!
//! Gap-safe tailing comes from SQLite itself: there is one writer (our group-commit task, and
//! SQLite admits one write transaction at a time anyway), positions are assigned as `head + 1…`
//! inside that transaction, so positions become visible in exactly the order they were assigned.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::watch;
use uuid::Uuid;

use super::chain::recorded_now;
use super::group_commit::{
    plan_batch_after, BatchContext, BatchWriter, Dependencies, GroupCommit, KnownEvent,
};
use super::history::{seal_rows, TipCache, INSERT_EVENTS};
use super::{AppendRequest, Appended, StoreError};

/// SQLite refuses statements with more bound parameters than this (32766); stay well below.
const PARAMS_PER_STATEMENT_MAX: usize = 30_000;
const COLUMNS_PER_EVENT: usize = 11;
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

/// A connection to the log at `database_url`, created and migrated if needed.
pub async fn migrated_connection(database_url: &str) -> Result<SqliteConnection, StoreError> {
    let mut connection = SqliteConnection::connect_with(&connect_options(database_url)?).await?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut connection)
        .await?;
    Ok(connection)
}

impl SqliteLog {
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let options = connect_options(database_url)?;
        let mut connection = migrated_connection(database_url).await?;
        // Events stored before the chain existed get their hashes now, before any append.
        backfill_chain_locked(&mut connection).await?;
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
            writer: GroupCommit::start(
                SqliteBatchWriter {
                    connection,
                    tip: TipCache::default(),
                },
                head_sender,
            ),
            head: head_receiver,
        })
    }
}

struct SqliteBatchWriter {
    connection: SqliteConnection,
    /// The chain's last link, as far as this writer knows (another process may append too).
    tip: TipCache,
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
        let locked_head = context.head;
        let plan = plan_batch_after(batch, context, dependencies);
        let mut head = None;
        let mut tip = None;
        if !plan.rows.is_empty() {
            // The write lock is held (IMMEDIATE), so the event at `locked_head` is the one the
            // batch links to, whichever process wrote it.
            let previous = match self.tip.at(locked_head) {
                Some(hash) => hash,
                None => chain_tip(&mut tx, locked_head).await?,
            };
            let recorded_at = recorded_now();
            let (sealed, last_hash) = seal_rows(&plan.rows, previous, recorded_at);
            for (chunk, sealed) in plan
                .rows
                .chunks(PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT)
                .zip(sealed.chunks(PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT))
            {
                let mut insert = QueryBuilder::<Sqlite>::new(INSERT_EVENTS);
                insert.push_values(chunk.iter().zip(sealed), |mut row, (planned, sealed)| {
                    row.push_bind(planned.position)
                        .push_bind(planned.event.event_id.to_string())
                        .push_bind(planned.stream_type)
                        .push_bind(planned.stream_id)
                        .push_bind(planned.version)
                        .push_bind(&planned.event.event_type)
                        .push_bind(planned.event.schema_version)
                        .push_bind(&sealed.payload)
                        .push_bind(&sealed.metadata)
                        .push_bind(recorded_at)
                        .push_bind(&sealed.hash);
                });
                insert.build().execute(&mut *tx).await?;
                head = chunk.last().map(|row| row.position);
            }
            tip = head.map(|head| (head, last_hash));
            insert_claims(&mut tx, batch, &plan.outcomes).await?;
        }
        tx.commit().await?;
        if let Some((position, hash)) = tip {
            self.tip.remember(position, hash);
        }
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

/// The sealed columns as stored: `recorded_at` is sqlx's RFC 3339 text.
const SELECT_SEALED: &str = "SELECT position, event_id, stream_type, stream_id, version, \
     event_type, schema_version, payload, metadata, recorded_at, chain_hash FROM events ";

/// A transaction holding SQLite's write lock (IMMEDIATE: no other process can append until it
/// ends), and the head under it.
async fn begin_locked(
    connection: &mut SqliteConnection,
) -> Result<(sqlx::Transaction<'_, Sqlite>, i64), StoreError> {
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    let head = current_head(&mut tx).await?;
    Ok((tx, head))
}

/// Stores the backfill's hashes, a page per statement: each statement is a round trip to
/// SQLite's worker thread, which one UPDATE per row made the backfill's whole cost (200,000
/// events took 14 s that way).
async fn write_hashes(
    connection: &mut SqliteConnection,
    hashes: &[(i64, String)],
) -> Result<(), StoreError> {
    for chunk in hashes.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
        let mut update = QueryBuilder::<Sqlite>::new("WITH page(position, hash) AS (");
        update.push_values(chunk, |mut row, (position, hash)| {
            row.push_bind(*position).push_bind(hash);
        });
        update.push(
            ") UPDATE events SET chain_hash = page.hash FROM page \
             WHERE events.position = page.position",
        );
        update.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// Writes imported events at their own positions.
async fn insert_sealed(
    connection: &mut SqliteConnection,
    events: &[super::chain::SealedEvent],
) -> Result<(), StoreError> {
    for chunk in events.chunks(PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(INSERT_EVENTS);
        let times = chunk
            .iter()
            .map(super::history::imported_time)
            .collect::<Result<Vec<_>, _>>()?;
        insert.push_values(chunk.iter().zip(times), |mut row, (event, recorded_at)| {
            row.push_bind(event.position)
                .push_bind(&event.event_id)
                .push_bind(&event.stream_type)
                .push_bind(&event.stream_id)
                .push_bind(event.version)
                .push_bind(&event.event_type)
                .push_bind(event.schema_version)
                .push_bind(&event.payload)
                .push_bind(&event.metadata)
                .push_bind(recorded_at)
                .push_bind(&event.hash);
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

impl_sealed_rows!(SqliteConnection);
impl_import_sealed!(SqliteConnection);

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
