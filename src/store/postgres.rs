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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder, Row};
use tokio::sync::watch;
use uuid::Uuid;

use super::group_commit::{plan_batch, BatchContext, BatchWriter, GroupCommit, KnownEvent};
use super::{
    stored_event_from_columns, AppendRequest, Appended, EventLog, StoreError, StoredEvent,
};

const NOTIFY_CHANNEL: &str = "fleet_ledger_events";
/// PostgreSQL accepts 65535 bound parameters per statement.
const PARAMS_PER_STATEMENT_MAX: usize = 60_000;
const COLUMNS_PER_EVENT: usize = 10;
/// How often the head is re-read if notifications are lost (a dropped listener connection).
const HEAD_POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct PostgresLog {
    readers: PgPool,
    writer: GroupCommit,
    head: watch::Receiver<i64>,
    listener: tokio::task::JoinHandle<()>,
}

impl PostgresLog {
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = database_url.parse()?;
        let mut connection = PgConnection::connect_with(&options).await?;
        sqlx::migrate!("./migrations/postgres")
            .set_ignore_missing(true)
            .run(&mut connection)
            .await?;
        let head = current_head(&mut connection).await?;
        let readers = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let (head_sender, head_receiver) = watch::channel(head);
        let listener = tokio::spawn(follow_other_writers(readers.clone(), head_sender.clone()));
        Ok(Self {
            readers,
            writer: GroupCommit::start(PostgresBatchWriter { connection }, head_sender),
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

struct PostgresBatchWriter {
    connection: PgConnection,
}

impl BatchWriter for PostgresBatchWriter {
    async fn write_batch(
        &mut self,
        batch: &[AppendRequest],
    ) -> Result<(Vec<Result<Appended, StoreError>>, i64), StoreError> {
        let mut tx = self.connection.begin().await?;
        let head: i64 =
            sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let context = load_context(&mut tx, batch, head).await?;
        let plan = plan_batch(batch, context);
        let Some(last) = plan.rows.last() else {
            tx.rollback().await?;
            return Ok((plan.outcomes, head));
        };
        let new_head = last.position;
        let recorded_at = Utc::now();
        for chunk in plan
            .rows
            .chunks(PARAMS_PER_STATEMENT_MAX / COLUMNS_PER_EVENT)
        {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO events (position, event_id, stream_type, stream_id, version, \
                 event_type, schema_version, payload, metadata, recorded_at) ",
            );
            insert.push_values(chunk, |mut row, planned| {
                row.push_bind(planned.position)
                    .push_bind(planned.event.event_id)
                    .push_bind(planned.stream_type)
                    .push_bind(planned.stream_id)
                    .push_bind(planned.version)
                    .push_bind(&planned.event.event_type)
                    .push_bind(planned.event.schema_version)
                    .push_bind(planned.event.payload.to_string())
                    .push_unseparated("::json")
                    .push_bind(serde_json::to_string(&planned.event.metadata).unwrap_or_default())
                    .push_unseparated("::json")
                    .push_bind(recorded_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE event_log_head SET position = $1 WHERE id = 1")
            .bind(new_head)
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(new_head.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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
    let version_rows = sqlx::query(
        "SELECT s.stream_type, s.stream_id, \
                (SELECT MAX(e.version) FROM events e \
                  WHERE e.stream_type = s.stream_type AND e.stream_id = s.stream_id) \
           FROM (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[]) AS u(stream_type, stream_id)) s",
    )
    .bind(&stream_types)
    .bind(&stream_ids)
    .fetch_all(&mut *connection)
    .await?;
    let mut versions = HashMap::new();
    for row in version_rows {
        if let Some(version) = row.try_get::<Option<i64>, _>(2)? {
            versions.insert((row.try_get(0)?, row.try_get(1)?), version);
        }
    }
    let known_rows = sqlx::query(
        "SELECT event_id, stream_type, stream_id, version, position FROM events \
          WHERE event_id = ANY($1)",
    )
    .bind(&event_ids)
    .fetch_all(&mut *connection)
    .await?;
    let mut known = HashMap::new();
    for row in known_rows {
        known.insert(
            row.try_get::<Uuid, _>(0)?,
            KnownEvent {
                stream_type: row.try_get(1)?,
                stream_id: row.try_get(2)?,
                version: row.try_get(3)?,
                position: row.try_get(4)?,
            },
        );
    }
    Ok(BatchContext {
        head,
        versions,
        known,
    })
}

const SELECT_EVENTS: &str = "SELECT position, event_id::text, stream_type, stream_id, version, \
     event_type, schema_version, payload::text, metadata::text, recorded_at FROM events ";

fn decode_row(row: sqlx::postgres::PgRow) -> Result<StoredEvent, StoreError> {
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
impl EventLog for PostgresLog {
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
            sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1")
                .fetch_one(&self.readers)
                .await?,
        )
    }

    fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    async fn shutdown(&self) {
        self.writer.shutdown().await;
        self.listener.abort();
        self.readers.close().await;
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
