//! The production log on PostgreSQL.
//!
//! # Why a tailing reader never misses an event
//!
//! With a sequence, transaction A can take position 10, transaction B position 11, and B can
//! commit first: a reader that sees 11 and moves its checkpoint past 10 loses A's event forever.
//! Here positions are allocated at commit time instead. Every appending transaction first locks
//! the single row of `event_log_head` (`SELECT … FOR UPDATE`), reads the head, writes its events at
//! `head + 1…`, moves the head and commits; the row lock is released only after the commit is
//! visible. The next appender (from this process or any other) blocks on that row until then, so
//! it can only ever allocate positions above every committed one, and a position that a reader
//! can see is never followed later by a smaller one. Group commit makes the lock cheap: one
//! transaction carries every append waiting in this process.
//!
//! Appends also `NOTIFY fleet_ledger_events`; a listener turns that into head changes, so tailing
//! readers in every process wake on commits instead of polling.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder, Row};
use tokio::sync::watch;
use uuid::Uuid;

use super::chain::recorded_now;
use super::group_commit::{
    plan_batch_after, BatchContext, BatchWriter, Dependencies, GroupCommit, KnownEvent,
};
use super::history::{seal_rows, TipCache, INSERT_EVENTS};
use super::{AppendRequest, Appended, StoreError};

const NOTIFY_CHANNEL: &str = "fleet_ledger_events";
/// PostgreSQL accepts 65535 bound parameters per statement.
const PARAMS_PER_STATEMENT_MAX: usize = 60_000;
const COLUMNS_PER_EVENT: usize = 11;
/// How often the head is re-read if notifications are lost (a dropped listener connection).
const HEAD_POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct PostgresLog {
    readers: PgPool,
    writer: GroupCommit,
    head: watch::Receiver<i64>,
    listener: tokio::task::JoinHandle<()>,
}

/// The writer's connection to the log at `database_url`, the schema migrated if needed.
pub async fn migrated_connection(database_url: &str) -> Result<PgConnection, StoreError> {
    let options: PgConnectOptions = database_url.parse()?;
    let mut connection = writer_connection(&options).await?;
    sqlx::migrate!("./migrations/postgres")
        .set_ignore_missing(true)
        .run(&mut connection)
        .await?;
    Ok(connection)
}

impl PostgresLog {
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = database_url.parse()?;
        let mut connection = migrated_connection(database_url).await?;
        // Events stored before the chain existed get their hashes now, under the head lock, so
        // that instances starting together backfill once and append only after it.
        backfill_chain_locked(&mut connection).await?;
        let head = current_head(&mut connection).await?;
        let readers = PgPoolOptions::new()
            .max_connections(8)
            // While the database is out of reach, a read fails within this (a 503) instead of
            // queueing for a connection; the pool reconnects by itself once it is back.
            .acquire_timeout(crate::read_store::OUTAGE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let (head_sender, head_receiver) = watch::channel(head);
        let listener = tokio::spawn(follow_other_writers(readers.clone(), head_sender.clone()));
        Ok(Self {
            readers,
            writer: GroupCommit::start(
                PostgresBatchWriter {
                    options,
                    connection: Some(connection),
                    tip: TipCache::default(),
                },
                head_sender,
            ),
            head: head_receiver,
            listener,
        })
    }
}

/// Moves the head when any process commits: on each notification, and every
/// [`HEAD_POLL_INTERVAL`] in case a notification was lost with a dropped connection.
async fn follow_other_writers(pool: PgPool, head: watch::Sender<i64>) {
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "LISTEN failed; falling back to polling the head");
                None
            }
        },
        Err(error) => {
            tracing::warn!(%error, "no listener connection; falling back to polling the head");
            None
        }
    };
    loop {
        match listener.as_mut() {
            Some(listener) => {
                let _ = tokio::time::timeout(HEAD_POLL_INTERVAL, listener.try_recv()).await;
            }
            None => tokio::time::sleep(HEAD_POLL_INTERVAL).await,
        }
        if head.is_closed() {
            return;
        }
        let committed: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1")
                .fetch_one(&pool)
                .await;
        match committed {
            Ok(committed) => {
                head.send_if_modified(|current| {
                    let moved = committed > *current;
                    *current = (*current).max(committed);
                    moved
                });
            }
            Err(_) if pool.is_closed() => return,
            Err(error) => tracing::warn!(%error, "reading the event log head failed"),
        }
    }
}

/// The writer's own connection, set up for appends.
async fn writer_connection(options: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    let mut connection = PgConnection::connect_with(options).await?;
    // A generic plan made while `events` was empty is a sequential scan, and it stays cached
    // as the table grows: appends slowed from thousands to hundreds per second over one
    // 100k-event run. Custom plans are re-made against the table's real size each time.
    sqlx::query("SET plan_cache_mode = force_custom_plan")
        .execute(&mut connection)
        .await?;
    Ok(connection)
}

struct PostgresBatchWriter {
    options: PgConnectOptions,
    /// `None` after a failure, until [`BatchWriter::reconnect`] opens a fresh one.
    connection: Option<PgConnection>,
    /// The chain's last link, as far as this writer knows: other instances append too.
    tip: TipCache,
}

impl BatchWriter for PostgresBatchWriter {
    fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    fn discard_connection(&mut self) {
        self.connection = None;
        // Whether the failed batch committed is unknown: read the tip again under the lock.
        self.tip.forget();
    }

    async fn reconnect(&mut self) -> Result<(), StoreError> {
        self.connection = Some(writer_connection(&self.options).await?);
        Ok(())
    }

    async fn write_batch(
        &mut self,
        batch: &[AppendRequest],
        dependencies: &Dependencies,
    ) -> Result<(Vec<Result<Appended, StoreError>>, i64), StoreError> {
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the event log is unreachable".to_string()))?;
        let mut tx = connection.begin().await?;
        let head: i64 =
            sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let mut context = load_context(&mut tx, batch, head).await?;
        context.claims = load_claims(&mut tx, batch).await?;
        let plan = plan_batch_after(batch, context, dependencies);
        let Some(last) = plan.rows.last() else {
            tx.rollback().await?;
            return Ok((plan.outcomes, head));
        };
        let new_head = last.position;
        // The chain follows the global position order across instances: positions are handed
        // out under the lock on `event_log_head` taken above, and the event at `head` was
        // committed (hash included) by whichever instance held that lock last. So the hash it
        // links to is read under the same lock, and no other instance can link to it before this
        // transaction commits or rolls back. The remembered tip saves that read whenever this
        // instance wrote the head itself.
        let previous = match self.tip.at(head) {
            Some(hash) => hash,
            None => chain_tip(&mut tx, head).await?,
        };
        let recorded_at = recorded_now();
        let (sealed, last_hash) = seal_rows(&plan.rows, previous, recorded_at);
        // Round trips are what a batch costs, so the last insert also moves the head and
        // notifies, in one statement.
        let per_statement = PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT;
        let chunks: Vec<_> = plan
            .rows
            .chunks(per_statement)
            .zip(sealed.chunks(per_statement))
            .collect();
        for (index, (chunk, sealed)) in chunks.iter().enumerate() {
            let is_last = index + 1 == chunks.len();
            let mut insert =
                QueryBuilder::<Postgres>::new(if is_last { "WITH inserted AS (" } else { "" });
            insert.push(INSERT_EVENTS);
            insert.push_values(
                chunk.iter().zip(sealed.iter()),
                |mut row, (planned, sealed)| {
                    row.push_bind(planned.position)
                        .push_bind(planned.event.event_id)
                        .push_bind(planned.stream_type)
                        .push_bind(planned.stream_id)
                        .push_bind(planned.version)
                        .push_bind(&planned.event.event_type)
                        .push_bind(planned.event.schema_version)
                        .push_bind(&sealed.payload)
                        .push_unseparated("::json")
                        .push_bind(&sealed.metadata)
                        .push_unseparated("::json")
                        .push_bind(recorded_at)
                        .push_bind(&sealed.hash);
                },
            );
            if is_last {
                push_move_head(&mut insert, new_head);
            }
            insert.build().execute(&mut *tx).await?;
        }
        insert_claims(&mut tx, batch, &plan.outcomes).await?;
        tx.commit().await?;
        self.tip.remember(new_head, last_hash);
        Ok((plan.outcomes, new_head))
    }
}

async fn current_head(connection: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1")
            .fetch_one(connection)
            .await?,
    )
}

async fn load_context(
    connection: &mut PgConnection,
    batch: &[AppendRequest],
    head: i64,
) -> Result<BatchContext, StoreError> {
    let mut stream_types = Vec::with_capacity(batch.len());
    let mut stream_ids = Vec::with_capacity(batch.len());
    let mut event_ids = Vec::new();
    for request in batch {
        stream_types.push(request.stream_type.as_str());
        stream_ids.push(request.stream_id.as_str());
        event_ids.extend(request.events.iter().map(|e| e.event_id));
    }
    // Versions and already-stored ids in one statement (run after the head lock, so it sees
    // every commit that came before ours). Column 0 is 'v' for a version row, else an event id.
    let rows = sqlx::query(
        "SELECT 'v', s.stream_type, s.stream_id, \
                (SELECT MAX(e.version) FROM events e \
                  WHERE e.stream_type = s.stream_type AND e.stream_id = s.stream_id), \
                NULL::bigint \
           FROM (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS u(stream_type, stream_id)) s \
         UNION ALL \
         SELECT event_id::text, stream_type, stream_id, version, position FROM events \
          WHERE event_id = ANY($3)",
    )
    .bind(&stream_types)
    .bind(&stream_ids)
    .bind(&event_ids)
    .fetch_all(&mut *connection)
    .await?;
    let mut versions = HashMap::new();
    let mut known = HashMap::new();
    for row in rows {
        let kind: String = row.try_get(0)?;
        if kind == "v" {
            if let Some(version) = row.try_get::<Option<i64>, _>(3)? {
                versions.insert((row.try_get(1)?, row.try_get(2)?), version);
            }
            continue;
        }
        let event_id = Uuid::parse_str(&kind).map_err(|e| StoreError::Corrupt {
            position: row
                .try_get::<Option<i64>, _>(4)
                .ok()
                .flatten()
                .unwrap_or_default(),
            reason: e.to_string(),
        })?;
        known.insert(
            event_id,
            KnownEvent {
                stream_type: row.try_get(1)?,
                stream_id: row.try_get(2)?,
                version: row.try_get::<Option<i64>, _>(3)?.unwrap_or_default(),
                position: row.try_get::<Option<i64>, _>(4)?.unwrap_or_default(),
            },
        );
    }
    Ok(BatchContext {
        head,
        versions,
        known,
        claims: HashMap::new(),
    })
}

const SELECT_EVENTS: &str = "SELECT position, event_id::text, stream_type, stream_id, version, \
     event_type, schema_version, payload::text, metadata::text, recorded_at FROM events ";

/// Ends an insert `WITH inserted AS (INSERT …` begun by the caller: moves the head to
/// `new_head` and notifies the other instances, in the same statement.
fn push_move_head(insert: &mut QueryBuilder<'_, Postgres>, new_head: i64) {
    insert.push(" RETURNING position), moved AS (UPDATE event_log_head SET position = ");
    insert.push_bind(new_head);
    insert.push(" WHERE id = 1 RETURNING position) SELECT pg_notify(");
    insert.push_bind(NOTIFY_CHANNEL);
    insert.push(", (SELECT position::text FROM moved))");
}

/// The sealed columns, every one as text or integer; `recorded_at` in the chain's canonical
/// form (microseconds, `Z`), which is all a `timestamptz` holds.
const SELECT_SEALED: &str = "SELECT position, event_id::text, stream_type, stream_id, version, \
     event_type, schema_version, payload::text, metadata::text, \
     to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), chain_hash \
     FROM events ";

/// A transaction holding the log's write lock (the `event_log_head` row: no instance can append
/// until it ends), and the head under it.
async fn begin_locked(
    connection: &mut PgConnection,
) -> Result<(sqlx::Transaction<'_, Postgres>, i64), StoreError> {
    let mut tx = connection.begin().await?;
    let head: i64 =
        sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    Ok((tx, head))
}

/// Stores the backfill's hashes, a page per statement.
async fn write_hashes(
    connection: &mut PgConnection,
    hashes: &[(i64, String)],
) -> Result<(), StoreError> {
    let (positions, hashes): (Vec<i64>, Vec<&str>) = hashes
        .iter()
        .map(|(position, hash)| (*position, hash.as_str()))
        .unzip();
    sqlx::query(
        "UPDATE events SET chain_hash = u.hash \
           FROM UNNEST($1::bigint[], $2::text[]) AS u(position, hash) \
          WHERE events.position = u.position",
    )
    .bind(&positions)
    .bind(&hashes)
    .execute(connection)
    .await?;
    Ok(())
}

/// Writes imported events at their own positions, moves the head past them and notifies.
async fn insert_sealed(
    connection: &mut PgConnection,
    events: &[super::chain::SealedEvent],
) -> Result<(), StoreError> {
    let chunks: Vec<_> = events
        .chunks(PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT)
        .collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let is_last = index + 1 == chunks.len();
        let times = chunk
            .iter()
            .map(super::history::imported_time)
            .collect::<Result<Vec<_>, _>>()?;
        let mut insert =
            QueryBuilder::<Postgres>::new(if is_last { "WITH inserted AS (" } else { "" });
        insert.push(INSERT_EVENTS);
        insert.push_values(chunk.iter().zip(times), |mut row, (event, recorded_at)| {
            row.push_bind(event.position)
                .push_bind(&event.event_id)
                .push_unseparated("::uuid")
                .push_bind(&event.stream_type)
                .push_bind(&event.stream_id)
                .push_bind(event.version)
                .push_bind(&event.event_type)
                .push_bind(event.schema_version)
                .push_bind(&event.payload)
                .push_unseparated("::json")
                .push_bind(&event.metadata)
                .push_unseparated("::json")
                .push_bind(recorded_at)
                .push_bind(&event.hash);
        });
        if is_last {
            let new_head = chunk.last().map_or(0, |event| event.position);
            push_move_head(&mut insert, new_head);
        }
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

impl_sealed_rows!(PgConnection);
impl_import_sealed!(PgConnection);

impl PostgresLog {
    async fn close_readers(&self) {
        self.listener.abort();
        self.readers.close().await;
    }
}

impl_event_log!(
    PostgresLog,
    row = sqlx::postgres::PgRow,
    backend = "postgres",
    head_sql = "SELECT position FROM event_log_head WHERE id = 1"
);

impl_idempotency_store!(
    PostgresLog,
    row = sqlx::postgres::PgRow,
    event_id_is = "event_id = $1::uuid"
);

claims_in_transaction!(Postgres);
