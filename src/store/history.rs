//! The log as sealed rows, each with its chain hash: what the writer links new events to, the
//! backfill of events stored before the chain existed, and the reads and writes of `verify`,
//! `export` and `import` (src/integrity.rs), which see the stored bytes rather than decoded
//! events.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::chain::{ChainHash, SealedEvent};
use super::StoreError;

/// The start of every insert into the log (the writer's and an import's), whose values follow
/// in this column order.
pub const INSERT_EVENTS: &str = "INSERT INTO events (position, event_id, stream_type, \
     stream_id, version, event_type, schema_version, payload, metadata, recorded_at, chain_hash) ";

/// Rows read, hashed and written at once by the backfill, and read per page by `verify` and
/// `export`: a bounded amount of memory whatever the log's length.
pub const PAGE_EVENTS: i64 = 2_000;

/// The backend-specific pieces the shared chain code below needs: `SELECT_SEALED` (the sealed
/// columns, in [`SealedEvent`]'s order, every one as text or integer) and
/// `write_hashes(connection, &[(position, hash)])`.
macro_rules! impl_sealed_rows {
    ($connection:ty) => {
        /// Up to `limit` sealed events with `position > after`, in position order.
        pub async fn read_sealed(
            connection: &mut $connection,
            after: i64,
            limit: i64,
        ) -> Result<Vec<$crate::store::chain::SealedEvent>, $crate::store::StoreError> {
            use sqlx::Row;
            let sql = format!("{SELECT_SEALED} WHERE position > $1 ORDER BY position LIMIT $2");
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *connection)
                .await?;
            rows.into_iter()
                .map(|row| {
                    Ok($crate::store::chain::SealedEvent {
                        position: row.try_get(0)?,
                        event_id: row.try_get(1)?,
                        stream_type: row.try_get(2)?,
                        stream_id: row.try_get(3)?,
                        version: row.try_get(4)?,
                        event_type: row.try_get(5)?,
                        schema_version: row.try_get(6)?,
                        payload: row.try_get(7)?,
                        metadata: row.try_get(8)?,
                        recorded_at: row.try_get(9)?,
                        hash: row.try_get(10)?,
                    })
                })
                .collect()
        }

        /// The stored hash at `position`; `None` when no hash is stored there (or no event).
        async fn stored_hash(
            connection: &mut $connection,
            position: i64,
        ) -> Result<Option<String>, $crate::store::StoreError> {
            let hash: Option<Option<String>> =
                sqlx::query_scalar("SELECT chain_hash FROM events WHERE position = $1")
                    .bind(position)
                    .fetch_optional(&mut *connection)
                    .await?;
            Ok(hash.flatten())
        }

        /// The hash of the event at `head` (the genesis hash when the log is empty), filling in
        /// the chain first if the events before it were stored without one. Called with the
        /// log's write lock held, so `head` is the last event and nobody appends meanwhile.
        pub async fn chain_tip(
            connection: &mut $connection,
            head: i64,
        ) -> Result<$crate::store::chain::ChainHash, $crate::store::StoreError> {
            if head == 0 {
                return Ok($crate::store::chain::ChainHash::GENESIS);
            }
            let hash = match stored_hash(connection, head).await? {
                Some(hash) => hash,
                None => {
                    backfill_chain(connection).await?;
                    stored_hash(connection, head).await?.ok_or(
                        $crate::store::StoreError::Corrupt {
                            position: head,
                            reason: "no event at the head of the log".to_string(),
                        },
                    )?
                }
            };
            $crate::store::history::parse_stored(head, &hash)
        }

        /// Hashes every event stored without a hash, in position order, linking the first of
        /// them to the hash stored before it. Idempotent: an interrupted backfill resumes where
        /// it stopped. Answers how many events it hashed.
        pub async fn backfill_chain(
            connection: &mut $connection,
        ) -> Result<u64, $crate::store::StoreError> {
            let first: Option<i64> =
                sqlx::query_scalar("SELECT MIN(position) FROM events WHERE chain_hash IS NULL")
                    .fetch_one(&mut *connection)
                    .await?;
            let Some(first) = first else {
                return Ok(0);
            };
            let mut previous = if first == 1 {
                $crate::store::chain::ChainHash::GENESIS
            } else {
                let hash = stored_hash(connection, first - 1).await?.ok_or(
                    $crate::store::StoreError::Corrupt {
                        position: first - 1,
                        reason: "missing: the chain cannot be linked across it".to_string(),
                    },
                )?;
                $crate::store::history::parse_stored(first - 1, &hash)?
            };
            let mut after = first - 1;
            let mut hashed = 0;
            loop {
                let page =
                    read_sealed(connection, after, $crate::store::history::PAGE_EVENTS).await?;
                let Some(last) = page.last() else {
                    return Ok(hashed);
                };
                after = last.position;
                let mut hashes = Vec::with_capacity(page.len());
                for event in &page {
                    let fields =
                        event
                            .fields()
                            .map_err(|problem| $crate::store::StoreError::Corrupt {
                                position: event.position,
                                reason: problem.to_string(),
                            })?;
                    previous = fields.link(&previous);
                    hashes.push((event.position, previous.to_string()));
                }
                write_hashes(connection, &hashes).await?;
                hashed += hashes.len() as u64;
            }
        }
    };
}

/// A stored hash, parsed; a malformed one is a corrupt row.
pub fn parse_stored(position: i64, text: &str) -> Result<ChainHash, StoreError> {
    ChainHash::parse(text).ok_or_else(|| StoreError::Corrupt {
        position,
        reason: format!("its chain hash {text:?} is not 64 hex digits"),
    })
}

/// What an import batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Events written.
    pub added: u64,
    /// Events the store already held, identical.
    pub present: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "position {position} conflicts: the store holds another event there \
         (stored hash {stored}, the file's {imported})"
    )]
    Conflict {
        position: i64,
        stored: String,
        imported: String,
    },
    #[error(
        "position {position} does not follow the store's history: the store ends at position \
         {head} with hash {stored}, and the file links position {position} to {stated}"
    )]
    Unlinked {
        position: i64,
        head: i64,
        stored: String,
        stated: String,
    },
    #[error(
        "the store ends at position {head}, and the file continues at {position}: \
         import an export from --desde-posicion {next}"
    )]
    Gap { position: i64, head: i64, next: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ImportError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Checks a batch of imported events (consecutive, chain already checked, `previous` the hash
/// the first one links to) against a store whose last position is `head` with hash
/// `stored_tip` (and whose hashes at the batch's positions up to `head` are `stored`). Answers
/// the index of the first event to write.
pub fn plan_import(
    events: &[SealedEvent],
    previous: &ChainHash,
    head: i64,
    stored_tip: &ChainHash,
    stored: &[(i64, Option<String>)],
) -> Result<usize, ImportError> {
    debug_assert!(events
        .windows(2)
        .all(|w| w[1].position == w[0].position + 1));
    let mut first_new = 0;
    for event in events.iter().take_while(|event| event.position <= head) {
        let stored_hash = stored
            .iter()
            .find(|(position, _)| *position == event.position)
            .and_then(|(_, hash)| hash.clone())
            .unwrap_or_default();
        let imported = event.hash.clone().unwrap_or_default();
        if stored_hash != imported {
            return Err(ImportError::Conflict {
                position: event.position,
                stored: stored_hash,
                imported,
            });
        }
        first_new += 1;
    }
    let Some(new) = events.get(first_new) else {
        return Ok(first_new);
    };
    if new.position != head + 1 {
        return Err(ImportError::Gap {
            position: new.position,
            head,
            next: head + 1,
        });
    }
    let links_to = match first_new {
        0 => *previous,
        n => ChainHash::parse(events[n - 1].hash.as_deref().unwrap_or_default())
            .unwrap_or(ChainHash::GENESIS),
    };
    if links_to != *stored_tip {
        return Err(ImportError::Unlinked {
            position: new.position,
            head,
            stored: stored_tip.to_string(),
            stated: links_to.to_string(),
        });
    }
    Ok(first_new)
}

/// A direct connection to a log, for the integrity commands.
pub enum History {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl History {
    /// Connects to the log at `database_url` as it is: no migration, no backfill (`verify` and
    /// `export` only read). A SQLite file that does not exist is an error, not a new store.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        refuse_kurrentdb(database_url)?;
        if super::is_postgres(database_url) {
            let options: sqlx::postgres::PgConnectOptions = database_url.parse()?;
            Ok(Self::Postgres(PgConnection::connect_with(&options).await?))
        } else {
            let options = super::sqlite::connect_options(database_url)?.create_if_missing(false);
            Ok(Self::Sqlite(
                SqliteConnection::connect_with(&options).await?,
            ))
        }
    }

    /// Connects to the log at `database_url`, creating and migrating it if needed and filling
    /// in the chain of events stored before it existed (`import`).
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        refuse_kurrentdb(database_url)?;
        let mut history = if super::is_postgres(database_url) {
            Self::Postgres(super::postgres::migrated_connection(database_url).await?)
        } else {
            Self::Sqlite(super::sqlite::migrated_connection(database_url).await?)
        };
        history.backfill().await?;
        Ok(history)
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The last committed position as the store records it (PostgreSQL's head row; SQLite's
    /// highest position).
    pub async fn head(&mut self) -> Result<i64, StoreError> {
        Ok(match self {
            Self::Sqlite(connection) => {
                sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
                    .fetch_one(connection)
                    .await?
            }
            Self::Postgres(connection) => {
                sqlx::query_scalar("SELECT position FROM event_log_head WHERE id = 1")
                    .fetch_one(connection)
                    .await?
            }
        })
    }

    /// Up to `limit` sealed events after `after`, in position order.
    pub async fn page(&mut self, after: i64, limit: i64) -> Result<Vec<SealedEvent>, StoreError> {
        match self {
            Self::Sqlite(connection) => super::sqlite::read_sealed(connection, after, limit).await,
            Self::Postgres(connection) => {
                super::postgres::read_sealed(connection, after, limit).await
            }
        }
    }

    /// The stored hash at `position`, if any (none for position 0: the genesis).
    pub async fn hash_at(&mut self, position: i64) -> Result<Option<ChainHash>, StoreError> {
        if position == 0 {
            return Ok(Some(ChainHash::GENESIS));
        }
        let page = self.page(position - 1, 1).await?;
        match page.first() {
            Some(event) if event.position == position => event
                .hash
                .as_deref()
                .map(|hash| parse_stored(position, hash))
                .transpose(),
            _ => Ok(None),
        }
    }

    /// Hashes the events stored without one; answers how many.
    pub async fn backfill(&mut self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(connection) => super::sqlite::backfill_chain_locked(connection).await,
            Self::Postgres(connection) => super::postgres::backfill_chain_locked(connection).await,
        }
    }

    /// Writes `events` (consecutive and chain-checked, the first linking to `previous`) at their
    /// own positions in one transaction, skipping those the store already holds identically.
    pub async fn import(
        &mut self,
        events: &[SealedEvent],
        previous: &ChainHash,
    ) -> Result<Imported, ImportError> {
        match self {
            Self::Sqlite(connection) => {
                super::sqlite::import_sealed(connection, events, previous).await
            }
            Self::Postgres(connection) => {
                super::postgres::import_sealed(connection, events, previous).await
            }
        }
    }

    pub async fn close(self) {
        let _ = match self {
            Self::Sqlite(connection) => connection.close().await,
            Self::Postgres(connection) => connection.close().await,
        };
    }
}

/// `recorded_at` of an imported event, to bind as the store's timestamp.
pub fn imported_time(event: &SealedEvent) -> Result<DateTime<Utc>, StoreError> {
    event
        .fields()
        .map(|fields| fields.recorded_at)
        .map_err(|problem| StoreError::Corrupt {
            position: event.position,
            reason: problem.to_string(),
        })
}

/// The import flow both backends share, around their own `begin_locked(connection)` (a
/// transaction holding the log's write lock, and the head under it) and
/// `insert_sealed(transaction, events)`.
macro_rules! impl_import_sealed {
    ($connection:ty) => {
        /// Hashes the events stored without one, under the log's write lock.
        pub async fn backfill_chain_locked(
            connection: &mut $connection,
        ) -> Result<u64, $crate::store::StoreError> {
            let (mut tx, _) = begin_locked(connection).await?;
            let hashed = backfill_chain(&mut tx).await?;
            tx.commit().await?;
            Ok(hashed)
        }

        /// [`crate::store::history::History::import`].
        pub async fn import_sealed(
            connection: &mut $connection,
            events: &[$crate::store::chain::SealedEvent],
            previous: &$crate::store::chain::ChainHash,
        ) -> Result<$crate::store::history::Imported, $crate::store::history::ImportError> {
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Ok(Default::default());
            };
            let (mut tx, head) = begin_locked(connection).await?;
            let stored: Vec<(i64, Option<String>)> = sqlx::query_as(
                "SELECT position, chain_hash FROM events \
                 WHERE position >= $1 AND position <= $2 ORDER BY position",
            )
            .bind(first.position)
            .bind(last.position.min(head))
            .fetch_all(&mut *tx)
            .await?;
            let tip = chain_tip(&mut tx, head).await?;
            let first_new =
                $crate::store::history::plan_import(events, previous, head, &tip, &stored)?;
            let new = &events[first_new..];
            if !new.is_empty() {
                insert_sealed(&mut tx, new).await?;
            }
            tx.commit().await?;
            Ok($crate::store::history::Imported {
                added: new.len() as u64,
                present: first_new as u64,
            })
        }
    };
}

/// What the writer remembers of the chain: the position and hash of the last event it wrote, so
/// that linking a batch costs one hash per event and no read. It is only trusted while the
/// locked head is still that position; otherwise (another process appended, a commit's outcome
/// was lost with its connection) the tip is read again under the lock.
#[derive(Debug, Default)]
pub struct TipCache(Option<(i64, ChainHash)>);

impl TipCache {
    /// The remembered hash, if it is the hash at `head`.
    pub fn at(&self, head: i64) -> Option<ChainHash> {
        self.0
            .filter(|(position, _)| *position == head)
            .map(|(_, hash)| hash)
    }

    pub fn remember(&mut self, position: i64, hash: ChainHash) {
        self.0 = Some((position, hash));
    }

    pub fn forget(&mut self) {
        self.0 = None;
    }
}

/// The stored text and hash of one planned row.
#[derive(Debug)]
pub struct SealedRow {
    pub payload: String,
    pub metadata: String,
    pub hash: String,
}

/// Links `rows` (consecutive, right after the event hashed `previous`) into the chain, all
/// recorded at `recorded_at`: the exact text the writer stores, and each row's hash over it.
/// Answers the rows and the new tip.
pub fn seal_rows(
    rows: &[super::group_commit::PlannedRow<'_>],
    mut previous: ChainHash,
    recorded_at: DateTime<Utc>,
) -> (Vec<SealedRow>, ChainHash) {
    let mut event_id = uuid::Uuid::encode_buffer();
    let sealed = rows
        .iter()
        .map(|row| {
            let payload = row.event.payload.to_string();
            let metadata = serde_json::to_string(&row.event.metadata).unwrap_or_default();
            let fields = super::chain::EventFields {
                position: row.position,
                event_id: row.event.event_id.hyphenated().encode_lower(&mut event_id),
                stream_type: row.stream_type,
                stream_id: row.stream_id,
                version: row.version,
                event_type: &row.event.event_type,
                schema_version: row.event.schema_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            };
            previous = fields.link(&previous);
            SealedRow {
                hash: previous.to_string(),
                payload,
                metadata,
            }
        })
        .collect();
    (sealed, previous)
}

/// The chain and the rows `verify`, `export`, `import` and `backup` read are the SQL logs' own:
/// a KurrentDB log has neither (see `store::kurrentdb`), which is said here rather than taking
/// its URL for a SQLite file name.
fn refuse_kurrentdb(database_url: &str) -> Result<(), StoreError> {
    if super::is_kurrentdb(database_url) {
        return Err(StoreError::NotSupported {
            backend: "kurrentdb",
            what:
                "hash chain (verify, export, import and backup work on SQLite and PostgreSQL logs)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::group_commit::PlannedRow;
    use crate::store::{EventMetadata, NewEvent};

    proptest::proptest! {
        /// However the writer's batches cut a run of appends, and whether the writer remembered
        /// the tip or read it again, every event gets the hash it would get sealed alone after
        /// its predecessor: the chain depends on the log's order only.
        #[test]
        fn a_chain_does_not_depend_on_how_batches_cut_it(
            cuts in proptest::collection::vec(1usize..5, 1..12),
        ) {
            let total: usize = cuts.iter().sum();
            let events: Vec<NewEvent> = (0..total)
                .map(|n| NewEvent::new("Happened", serde_json::json!({ "n": n }), EventMetadata::default()))
                .collect();
            let rows: Vec<PlannedRow> = events
                .iter()
                .enumerate()
                .map(|(n, event)| PlannedRow {
                    position: n as i64 + 1,
                    version: n as i64 + 1,
                    stream_type: "test",
                    stream_id: "a",
                    event,
                })
                .collect();
            let at = chrono::Utc::now();
            let (whole, whole_tip) = seal_rows(&rows, ChainHash::GENESIS, at);
            let mut tip = ChainHash::GENESIS;
            let mut start = 0;
            let mut pieces = Vec::new();
            for cut in cuts {
                let (sealed, next) = seal_rows(&rows[start..start + cut], tip, at);
                pieces.extend(sealed.into_iter().map(|row| row.hash));
                tip = next;
                start += cut;
            }
            proptest::prop_assert_eq!(whole.iter().map(|row| row.hash.clone()).collect::<Vec<_>>(), pieces);
            proptest::prop_assert_eq!(whole_tip, tip);
        }
    }
}
