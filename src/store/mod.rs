//! The event log: one global order over every stream, behind one trait with a SQLite and a
//! PostgreSQL implementation.
//!
//! Both implementations append through [`group_commit`]: a single writer task takes every append
//! waiting at that moment and commits them in one durable transaction. Each caller still gets its
//! own answer, and a conflict in one append leaves the others untouched.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

pub use idempotency::{IdempotencyClaim, IdempotencyStore};

/// Who caused an event and in answer to what; stored with every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EventMetadata {
    /// The JWT `sub` of the caller.
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: EventMetadata,
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, payload: Value, metadata: EventMetadata) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata,
        }
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The event as a projection sees it, without copying its payload.
    pub fn into_recorded(self) -> projections::Recorded {
        projections::Recorded {
            position: self.position,
            stream_type: self.stream_type,
            stream_id: self.stream_id,
            version: self.version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: self.payload,
            actor: self.metadata.actor,
            recorded_at: self.recorded_at,
        }
    }

    pub fn to_recorded(&self) -> projections::Recorded {
        projections::Recorded {
            position: self.position,
            stream_type: self.stream_type.clone(),
            stream_id: self.stream_id.clone(),
            version: self.version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.clone(),
            actor: self.metadata.actor.clone(),
            recorded_at: self.recorded_at,
        }
    }
}

/// One append: events for one stream, valid only if the stream is still at `expected_version`
/// (0 for a stream that does not exist yet).
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream_type: String,
    pub stream_id: String,
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
    /// The Idempotency-Key this append answers, written in the same transaction as its events.
    pub idempotency: Option<IdempotencyClaim>,
}

/// Where an accepted append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_position: i64,
    pub last_position: i64,
    /// The stream's version after the append.
    pub version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream_type}/{stream_id} is at version {actual}, not {expected}")]
    Conflict {
        stream_type: String,
        stream_id: String,
        expected: i64,
        actual: i64,
    },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("event {0} is already stored in another stream or at another version")]
    EventIdReused(Uuid),
    /// Another request (another use of the key) already claimed it: see [`idempotency`].
    #[error("idempotency key {key} of {actor} is claimed by another request")]
    KeyClaimed { actor: String, key: String },
    #[error("the event log is shut down")]
    Closed,
    #[error("the event log could not commit: {0}")]
    Unavailable(String),
    /// The log's server refused a request for a reason other than an outage or a conflict.
    #[error("event log server: {0}")]
    Backend(String),
    /// A part of the log this backend has no home for (see `kurrentdb`'s module doc).
    #[error("the {backend} event log keeps no {what}")]
    NotSupported {
        backend: &'static str,
        what: &'static str,
    },
    /// `DATABASE_URL` names a backend this binary was built without.
    #[error(
        "{url_scheme}:// names a KurrentDB (EventStoreDB) event log, but this binary was built \
         without the cargo feature `kurrentdb`: rebuild with `cargo build --release --features kurrentdb`"
    )]
    FeatureMissing { url_scheme: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: i64, reason: String },
    /// A stored event this release has no way to read at the current version of its type.
    #[error("stored event at position {position}: {source}")]
    Schema {
        position: i64,
        source: aggregates::upcast::UpcastError,
    },
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// The store could not be reached (or is shutting down): nothing was decided, and the same
    /// request may succeed once it is back.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Closed => true,
            Self::Database(error) => is_outage(error),
            _ => false,
        }
    }
}

/// Whether a database error means the database is out of reach (down, restarting, refusing
/// connections, or every connection is busy past the timeout) rather than a statement's fault.
pub fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception) and 57P (the server is shutting down or starting).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// The global, ordered, durable log of every event.
#[async_trait]
pub trait EventLog: IdempotencyStore + Send + Sync {
    /// Appends atomically, or writes nothing. Appending events whose ids are already stored as
    /// exactly that append is a no-op answering the original positions.
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError>;

    /// Queues an append and answers once it is queued, so the caller can decide what comes
    /// next before it commits; appends commit in the order they were queued. `after` is the
    /// last event of an earlier append this one was decided after, while that one was not yet
    /// answered: if it fails, this one fails too. A log without a queue appends at once.
    async fn submit(
        &self,
        request: AppendRequest,
        after: Option<Uuid>,
    ) -> Result<PendingAppend, StoreError> {
        let _ = after;
        Ok(PendingAppend::done(self.append(request).await))
    }

    /// A stream's events with `version > after_version`, in version order.
    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` of a stream's events with `version > after_version`, in version order: a
    /// long stream read page by page never holds more than one page of decoded events.
    ///
    /// Both stores override this with one indexed range read; the default, for logs that cannot
    /// page (test doubles), reads the whole tail and keeps its first `limit` events.
    async fn read_stream_page(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = self
            .read_stream(stream_type, stream_id, after_version)
            .await?;
        events.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(events)
    }

    /// Up to `limit` events with `position > after_position`, in position order. Never skips an
    /// event: see each implementation for why.
    async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Events of one stream type with `position > after_position`, in position order.
    async fn read_type(
        &self,
        stream_type: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events that `filter` selects with `after_position < position <=
    /// until_position`, in position order (bounding the range by a head read first keeps a
    /// page consistent with that head). Both stores override this with one statement; the
    /// default, for logs that cannot filter (test doubles), reads the range page by page and
    /// keeps what matches.
    async fn read_filtered(
        &self,
        filter: &EventFilter,
        after_position: i64,
        until_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut found = Vec::new();
        let mut after = after_position;
        while found.len() < limit && after < until_position {
            let page = self.read_all(after, STREAM_PAGE_EVENTS).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            found.extend(
                page.into_iter()
                    .filter(|e| e.position <= until_position && filter.matches(e)),
            );
        }
        found.truncate(limit);
        Ok(found)
    }

    /// The last event `filter` selects at or before `until_position`, if any. Both stores
    /// override this with one statement read newest first; the default (test doubles) reads the
    /// range page by page and keeps the last match.
    async fn read_filtered_last(
        &self,
        filter: &EventFilter,
        until_position: i64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let mut last = None;
        let mut after = 0;
        loop {
            let page = self
                .read_filtered(filter, after, until_position, STREAM_PAGE_EVENTS)
                .await?;
            let Some(end) = page.last() else {
                return Ok(last);
            };
            after = end.position;
            last = page.into_iter().last();
        }
    }

    /// The store's plan for [`Self::read_filtered`] with `filter`, one step a line, as its
    /// `EXPLAIN` says (with sequential scans off on PostgreSQL, so that the plan shows whether
    /// an index can serve the query at all, whatever the table's size). Empty for logs without
    /// a planner.
    async fn explain_filtered(&self, filter: &EventFilter) -> Result<String, StoreError> {
        let _ = filter;
        Ok(String::new())
    }

    /// The newest snapshot of a stream in `schema_version` that `bound` allows. Logs that keep
    /// none (test doubles) answer `None`.
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
        schema_version: i32,
        bound: SnapshotBound,
    ) -> Result<Option<Snapshot>, StoreError> {
        let _ = (stream_type, stream_id, schema_version, bound);
        Ok(None)
    }

    /// Saves `state`, the stream's aggregate at `version` (an event already committed), and
    /// deletes the stream's snapshots of any other schema. Logs without snapshots drop it.
    async fn save_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
        version: i64,
        schema_version: i32,
        state: &str,
    ) -> Result<(), StoreError> {
        let _ = (stream_type, stream_id, version, schema_version, state);
        Ok(())
    }

    /// The highest committed position, asking the database.
    async fn head(&self) -> Result<i64, StoreError>;

    /// Follows the committed head: changes whenever an append commits (in this process or, on
    /// PostgreSQL, in another one).
    fn watch_head(&self) -> watch::Receiver<i64>;

    /// Commits what the writer holds and stops accepting appends.
    async fn shutdown(&self);

    /// `sqlite`, `postgres` or `kurrentdb`.
    fn backend(&self) -> &'static str;

    /// `None` while appends can commit; otherwise why they cannot (the writer lost its
    /// connection and is reconnecting, or it stopped).
    fn writer_unhealthy(&self) -> Option<String> {
        None
    }

    /// The readers' connection pool as `/metrics` shows it.
    fn pool_usage(&self) -> PoolUsage {
        PoolUsage::default()
    }
}

/// Connections of one pool: open ones, the idle among them, and the most it may open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolUsage {
    pub fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        Self {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

pub type SharedLog = Arc<dyn EventLog>;

/// Events one read of a long stream holds at most (each decoded, with its JSON payload). Pages
/// of 10,000 raised the resident set by ~190 MB while a 200,000-event station was folded, pages
/// of 2,000 by ~11 MB, and were no slower (`bench --scenario as-of --events 200000`: 4.2 s
/// against 4.8 s for the whole fold, one indexed range read per page).
pub const STREAM_PAGE_EVENTS: i64 = 2_000;

/// Folds a stream's events with `version > after_version` into `fold`, in version order, reading
/// `page_events` (at least one; [`STREAM_PAGE_EVENTS`] unless testing) at a time. Answers the
/// version reached; when `fold` or a read fails, the events before it have been folded (the
/// caller's own record of the version, kept in `fold`, says how far).
pub async fn fold_stream<E: From<StoreError>>(
    log: &dyn EventLog,
    stream_type: &str,
    stream_id: &str,
    after_version: i64,
    page_events: i64,
    mut fold: impl FnMut(&StoredEvent) -> Result<(), E>,
) -> Result<i64, E> {
    // A page of none would never reach the end of the stream.
    let page_events = page_events.max(1);
    let mut version = after_version;
    loop {
        let page = log
            .read_stream_page(stream_type, stream_id, version, page_events)
            .await?;
        for stored in &page {
            debug_assert!(
                stored.version > version,
                "a stream is read in version order"
            );
            fold(stored)?;
            version = stored.version;
        }
        if (page.len() as i64) < page_events {
            return Ok(version);
        }
    }
}

/// Opens the log `database_url` names: `postgres://…`, `esdb://…` / `kurrentdb://…` (with the
/// feature `kurrentdb`), or `sqlite://…` / a file path.
pub async fn open(database_url: &str) -> Result<SharedLog, StoreError> {
    if is_kurrentdb(database_url) {
        open_kurrentdb(database_url).await
    } else if is_postgres(database_url) {
        Ok(Arc::new(postgres::PostgresLog::open(database_url).await?))
    } else {
        Ok(Arc::new(sqlite::SqliteLog::open(database_url).await?))
    }
}

pub fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// The URL schemes the KurrentDB client reads (with `+discover` for cluster discovery by DNS).
const KURRENTDB_SCHEMES: [&str; 4] = ["esdb", "kurrentdb", "kurrent", "kdb"];

/// Whether `database_url` names a KurrentDB (EventStoreDB) server: whether or not this build
/// can open one, so that a build without the feature can say so instead of making a SQLite
/// file of the URL.
pub fn is_kurrentdb(database_url: &str) -> bool {
    kurrentdb_scheme(database_url).is_some()
}

fn kurrentdb_scheme(database_url: &str) -> Option<&str> {
    let (scheme, _) = database_url.split_once("://")?;
    let base = scheme.strip_suffix("+discover").unwrap_or(scheme);
    KURRENTDB_SCHEMES.contains(&base).then_some(scheme)
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(database_url: &str) -> Result<SharedLog, StoreError> {
    Ok(self::kurrentdb::open(database_url).await?)
}

#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(database_url: &str) -> Result<SharedLog, StoreError> {
    Err(StoreError::FeatureMissing {
        url_scheme: kurrentdb_scheme(database_url)
            .unwrap_or_default()
            .to_string(),
    })
}

/// The `EventLog` impl both backends share. A backend provides `readers` (its pool), `writer`
/// (its [`group_commit::GroupCommit`]), `head` (its head watch), `SELECT_EVENTS` (selecting the
/// columns in `stored_event_from_columns` order, ids and JSON as text) and an inherent
/// `close_readers`; it names its row type and the SQL that reads the committed head.
macro_rules! impl_event_log {
    ($log:ty, row = $row:ty, backend = $backend:literal, head_sql = $head_sql:literal) => {
        fn decode_row(row: $row) -> Result<$crate::store::StoredEvent, $crate::store::StoreError> {
            use sqlx::Row;
            let event_id: String = row.try_get(1)?;
            let payload: String = row.try_get(7)?;
            let metadata: String = row.try_get(8)?;
            $crate::store::stored_event_from_columns(
                row.try_get(0)?,
                &event_id,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
                &payload,
                &metadata,
                row.try_get(9)?,
            )
        }

        /// `sql` with `binds` bound in order.
        fn bound(
            sql: &str,
            binds: Vec<$crate::store::filter::Bind>,
        ) -> sqlx::query::Query<
            '_,
            <$row as sqlx::Row>::Database,
            <<$row as sqlx::Row>::Database as sqlx::Database>::Arguments<'_>,
        > {
            use $crate::store::filter::Bind;
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text),
                    Bind::Int(int) => query.bind(int),
                    Bind::Time(time) => query.bind(time),
                };
            }
            query
        }

        #[async_trait::async_trait]
        impl $crate::store::EventLog for $log {
            async fn append(
                &self,
                request: $crate::store::AppendRequest,
            ) -> Result<$crate::store::Appended, $crate::store::StoreError> {
                self.writer.append(request).await
            }

            async fn submit(
                &self,
                request: $crate::store::AppendRequest,
                after: Option<uuid::Uuid>,
            ) -> Result<$crate::store::group_commit::PendingAppend, $crate::store::StoreError> {
                self.writer.submit(request, after).await
            }

            async fn read_stream(
                &self,
                stream_type: &str,
                stream_id: &str,
                after_version: i64,
            ) -> Result<Vec<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let sql = format!(
                    "{SELECT_EVENTS} WHERE stream_type = $1 AND stream_id = $2 AND version > $3 \
                     ORDER BY version"
                );
                let query = sqlx::query(&sql).bind(stream_type).bind(stream_id).bind(after_version);
                query.fetch_all(&self.readers).await?.into_iter().map(decode_row).collect()
            }

            async fn read_stream_page(
                &self,
                stream_type: &str,
                stream_id: &str,
                after_version: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let sql = format!(
                    "{SELECT_EVENTS} WHERE stream_type = $1 AND stream_id = $2 AND version > $3 \
                     ORDER BY version LIMIT $4"
                );
                let query = sqlx::query(&sql)
                    .bind(stream_type)
                    .bind(stream_id)
                    .bind(after_version)
                    .bind(limit);
                query.fetch_all(&self.readers).await?.into_iter().map(decode_row).collect()
            }

            async fn read_all(
                &self,
                after_position: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let sql = format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2");
                let query = sqlx::query(&sql).bind(after_position).bind(limit);
                query.fetch_all(&self.readers).await?.into_iter().map(decode_row).collect()
            }

            async fn read_type(
                &self,
                stream_type: &str,
                after_position: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let sql = format!(
                    "{SELECT_EVENTS} WHERE stream_type = $1 AND position > $2 \
                     ORDER BY position LIMIT $3"
                );
                let query = sqlx::query(&sql).bind(stream_type).bind(after_position).bind(limit);
                query.fetch_all(&self.readers).await?.into_iter().map(decode_row).collect()
            }

            async fn read_filtered(
                &self,
                filter: &$crate::store::EventFilter,
                after_position: i64,
                until_position: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let (sql, binds) = $crate::store::filter::select(
                    SELECT_EVENTS,
                    &DIALECT,
                    filter,
                    after_position,
                    until_position,
                    limit,
                );
                bound(&sql, binds).fetch_all(&self.readers).await?.into_iter().map(decode_row).collect()
            }

            async fn read_filtered_last(
                &self,
                filter: &$crate::store::EventFilter,
                until_position: i64,
            ) -> Result<Option<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let (sql, binds) =
                    $crate::store::filter::select_last(SELECT_EVENTS, &DIALECT, filter, until_position);
                bound(&sql, binds).fetch_optional(&self.readers).await?.map(decode_row).transpose()
            }

            async fn explain_filtered(
                &self,
                filter: &$crate::store::EventFilter,
            ) -> Result<String, $crate::store::StoreError> {
                use sqlx::Row;
                let (sql, binds) =
                    $crate::store::filter::select(SELECT_EVENTS, &DIALECT, filter, 0, i64::MAX, 100);
                let sql = format!("{}{sql}", DIALECT.explain);
                let mut tx = self.readers.begin().await?;
                if let Some(setup) = DIALECT.explain_setup {
                    sqlx::query(setup).execute(&mut *tx).await?;
                }
                let lines = bound(&sql, binds)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| row.try_get::<String, _>(DIALECT.explain_column))
                    .collect::<Result<Vec<_>, _>>()?;
                tx.rollback().await?;
                Ok(lines.join("\n"))
            }

            async fn load_snapshot(
                &self,
                stream_type: &str,
                stream_id: &str,
                schema_version: i32,
                bound: $crate::store::SnapshotBound,
            ) -> Result<Option<$crate::store::Snapshot>, $crate::store::StoreError> {
                use sqlx::Row;
                let mut query = sqlx::query($crate::store::snapshots::select_sql(bound))
                    .bind(stream_type)
                    .bind(stream_id)
                    .bind(schema_version);
                if let $crate::store::SnapshotBound::RecordedBy(instant) = bound {
                    query = query.bind(instant);
                }
                let Some(row) = query.fetch_optional(&self.readers).await? else {
                    return Ok(None);
                };
                Ok(Some($crate::store::Snapshot {
                    version: row.try_get(0)?,
                    position: row.try_get(1)?,
                    schema_version: row.try_get(2)?,
                    recorded_at: row.try_get(3)?,
                    state: row.try_get(4)?,
                }))
            }

            async fn save_snapshot(
                &self,
                stream_type: &str,
                stream_id: &str,
                version: i64,
                schema_version: i32,
                state: &str,
            ) -> Result<(), $crate::store::StoreError> {
                // Three statements, each atomic on its own: a snapshot saved by another process
                // in between only makes `previous` older, and `recorded_at` the latest over more
                // events, which is the same instant.
                let previous: Option<i64> =
                    sqlx::query_scalar($crate::store::snapshots::PREVIOUS_SQL)
                        .bind(stream_type)
                        .bind(stream_id)
                        .bind(version)
                        .fetch_optional(&self.readers)
                        .await?;
                sqlx::query($crate::store::snapshots::INSERT_SQL)
                    .bind(stream_type)
                    .bind(stream_id)
                    .bind(version)
                    .bind(schema_version)
                    .bind(state)
                    .bind(previous.unwrap_or(0))
                    .execute(&self.readers)
                    .await?;
                sqlx::query($crate::store::snapshots::DELETE_STALE_SQL)
                    .bind(stream_type)
                    .bind(stream_id)
                    .bind(schema_version)
                    .execute(&self.readers)
                    .await?;
                Ok(())
            }

            async fn head(&self) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar($head_sql).fetch_one(&self.readers).await?)
            }

            fn watch_head(&self) -> tokio::sync::watch::Receiver<i64> {
                self.head.clone()
            }

            async fn shutdown(&self) {
                self.writer.shutdown().await;
                self.close_readers().await;
            }

            fn backend(&self) -> &'static str {
                $backend
            }

            fn writer_unhealthy(&self) -> Option<String> {
                self.writer.unhealthy()
            }

            fn pool_usage(&self) -> $crate::store::PoolUsage {
                $crate::store::PoolUsage::of(&self.readers)
            }
        }
    };
}

pub mod chain;
pub mod cqrs_adapter;
pub mod filter;
pub use filter::EventFilter;
pub mod group_commit;
#[macro_use]
pub mod history;
#[macro_use]
pub mod idempotency;

pub use group_commit::PendingAppend;
#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;
pub mod postgres;
pub mod snapshots;
pub mod sqlite;

pub use snapshots::{Snapshot, SnapshotBound};

/// Rebuilds a stored event from the textual columns both backends share, at the current version
/// of its type: the one place where events are upcast ([`aggregates::upcast`]), so that no
/// reader of the log (aggregate, read model, feed, audit) ever sees an old schema. The bytes
/// stored, hashed and exported stay as written (`verify` and `export` read sealed rows).
#[allow(clippy::too_many_arguments)]
fn stored_event_from_columns(
    position: i64,
    event_id: &str,
    stream_type: String,
    stream_id: String,
    version: i64,
    event_type: String,
    schema_version: i32,
    payload: &str,
    metadata: &str,
    recorded_at: DateTime<Utc>,
) -> Result<StoredEvent, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let payload = serde_json::from_str(payload).map_err(|e| corrupt(e.to_string()))?;
    let (schema_version, payload) = aggregates::upcast::REGISTRY
        .upcast(&event_type, schema_version, payload)
        .map_err(|source| StoreError::Schema { position, source })?;
    Ok(StoredEvent {
        position,
        event_id: Uuid::parse_str(event_id).map_err(|e| corrupt(e.to_string()))?,
        stream_type,
        stream_id,
        version,
        event_type,
        schema_version,
        payload,
        metadata: serde_json::from_str(metadata).map_err(|e| corrupt(e.to_string()))?,
        recorded_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kurrentdb_urls_are_told_apart_from_sql_ones() {
        for url in [
            "esdb://127.0.0.1:2113?tls=false",
            "esdb+discover://cluster.local:2113",
            "kurrentdb://db:2113",
            "kurrentdb+discover://db:2113",
            "kurrent://db:2113",
            "kdb://db:2113",
        ] {
            assert!(is_kurrentdb(url), "{url}");
        }
        for url in [
            "postgres://postgres@127.0.0.1/test",
            "sqlite://data/ledger.db",
            "data/esdb://odd-but-a-path.db",
            "esdbx://db:2113",
        ] {
            assert!(!is_kurrentdb(url), "{url}");
        }
    }

    /// A build without the feature stops at startup and says how to get one, instead of taking
    /// the URL for a SQLite file name.
    #[cfg(not(feature = "kurrentdb"))]
    #[tokio::test]
    async fn a_kurrentdb_url_without_the_feature_names_the_feature() {
        let error = match open("esdb://127.0.0.1:2113?tls=false").await {
            Err(error) => error,
            Ok(_) => panic!("a build without the feature opened a KurrentDB log"),
        };
        assert_eq!(
            error.to_string(),
            "esdb:// names a KurrentDB (EventStoreDB) event log, but this binary was built \
             without the cargo feature `kurrentdb`: rebuild with `cargo build --release \
             --features kurrentdb`"
        );
    }
}
