//! Idempotency keys, kept in the log's own database.
//!
//! A key is first written by the writer, in the transaction of the first events its request
//! appends (an [`IdempotencyClaim`] rides on the [`AppendRequest`](super::AppendRequest)): the
//! key and its events commit together or not at all. The answer is filled in right after, from
//! the request's response. A process that dies in between leaves a claim without an answer; the
//! retry finds it, derives the same event ids from its `epoch`, and finds its events with
//! [`IdempotencyStore::read_event`] instead of appending them again.
//!
//! The writer also refuses an append that claims a key another request (another epoch) already
//! claimed: two instances that each took a retry of one request cannot both commit it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreError, StoredEvent};

/// An append's claim that it answers `actor`'s `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub actor: String,
    pub key: String,
    /// sha256 (hex) of the request's method, path with query and body.
    pub fingerprint: String,
    /// Seed of the request's event ids, drawn afresh each time the key is used anew.
    pub epoch: Uuid,
    pub created_at: DateTime<Utc>,
}

/// An answer kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A key as stored: its claim, and its answer once the request gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub claim: IdempotencyClaim,
    pub response: Option<SavedResponse>,
}

/// Where keys live. Every [`EventLog`](super::EventLog) is one.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn idempotency_key(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<StoredKey>, StoreError>;

    /// Keeps `response` as the answer to `claim`: inserts the key when no append claimed it,
    /// completes the claim of the same epoch when it has no answer yet, and leaves any other
    /// row as it is (the first answer stands).
    async fn save_idempotency_response(
        &self,
        claim: &IdempotencyClaim,
        response: &SavedResponse,
    ) -> Result<(), StoreError>;

    /// Forgets one use of a key (an expired one, so that it can be used anew).
    async fn forget_idempotency_key(&self, claim: &IdempotencyClaim) -> Result<(), StoreError>;

    /// Deletes every key created before `created_before`; answers how many.
    async fn expire_idempotency_keys(
        &self,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// The stored event with this id, if any.
    async fn read_event(&self, event_id: Uuid) -> Result<Option<StoredEvent>, StoreError>;
}

/// A stored column that does not hold what was written there.
fn corrupt_key(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("idempotency key row: {reason}").into(),
    ))
}

/// Rebuilds a key from the columns of [`SELECT_KEY`].
#[allow(clippy::too_many_arguments)]
pub(super) fn stored_key_from_columns(
    actor: String,
    key: String,
    fingerprint: String,
    epoch: &str,
    created_at: DateTime<Utc>,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
) -> Result<StoredKey, StoreError> {
    let epoch = Uuid::parse_str(epoch).map_err(corrupt_key)?;
    let response = match (status, body) {
        (Some(status), Some(body)) => Some(SavedResponse {
            status: u16::try_from(status).map_err(corrupt_key)?,
            content_type,
            body,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt_key(
                "a status without a body, or a body without one",
            ))
        }
    };
    Ok(StoredKey {
        claim: IdempotencyClaim {
            actor,
            key,
            fingerprint,
            epoch,
            created_at,
        },
        response,
    })
}

pub(super) const SELECT_KEY: &str = "SELECT actor, idempotency_key, fingerprint, epoch, \
     created_at, status, content_type, body FROM idempotency_keys \
     WHERE actor = $1 AND idempotency_key = $2";

pub(super) const SAVE_RESPONSE: &str = "INSERT INTO idempotency_keys (actor, idempotency_key, \
     fingerprint, epoch, created_at, status, content_type, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (actor, idempotency_key) DO UPDATE SET status = excluded.status, \
     content_type = excluded.content_type, body = excluded.body \
     WHERE idempotency_keys.epoch = excluded.epoch AND idempotency_keys.status IS NULL";

/// Keys claimed per statement: SQLite takes a multi-row `VALUES` as a compound select, which it
/// limits to 500 terms.
pub(super) const CLAIMS_PER_STATEMENT_MAX: usize = 400;

/// Implements [`IdempotencyStore`] for a backend, the way `impl_event_log!` implements the log:
/// the backend provides `readers`, `SELECT_EVENTS` and `decode_row`, and names how its SQL
/// compares `event_id` with a bound text parameter.
macro_rules! impl_idempotency_store {
    ($log:ty, row = $row:ty, event_id_is = $event_id_is:literal) => {
        fn decode_key(
            row: $row,
        ) -> Result<$crate::store::idempotency::StoredKey, $crate::store::StoreError> {
            use sqlx::Row;
            let epoch: String = row.try_get(3)?;
            $crate::store::idempotency::stored_key_from_columns(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                &epoch,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
                row.try_get(7)?,
            )
        }

        #[async_trait::async_trait]
        impl $crate::store::idempotency::IdempotencyStore for $log {
            async fn idempotency_key(
                &self,
                actor: &str,
                key: &str,
            ) -> Result<Option<$crate::store::idempotency::StoredKey>, $crate::store::StoreError>
            {
                let query = sqlx::query($crate::store::idempotency::SELECT_KEY)
                    .bind(actor)
                    .bind(key);
                query
                    .fetch_optional(&self.readers)
                    .await?
                    .map(decode_key)
                    .transpose()
            }

            async fn save_idempotency_response(
                &self,
                claim: &$crate::store::idempotency::IdempotencyClaim,
                response: &$crate::store::idempotency::SavedResponse,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::idempotency::SAVE_RESPONSE)
                    .bind(&claim.actor)
                    .bind(&claim.key)
                    .bind(&claim.fingerprint)
                    .bind(claim.epoch.to_string())
                    .bind(claim.created_at)
                    .bind(i32::from(response.status))
                    .bind(&response.content_type)
                    .bind(&response.body)
                    .execute(&self.readers)
                    .await?;
                Ok(())
            }

            async fn forget_idempotency_key(
                &self,
                claim: &$crate::store::idempotency::IdempotencyClaim,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "DELETE FROM idempotency_keys \
                     WHERE actor = $1 AND idempotency_key = $2 AND epoch = $3",
                )
                .bind(&claim.actor)
                .bind(&claim.key)
                .bind(claim.epoch.to_string())
                .execute(&self.readers)
                .await?;
                Ok(())
            }

            async fn expire_idempotency_keys(
                &self,
                created_before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(created_before)
                    .execute(&self.readers)
                    .await?;
                Ok(deleted.rows_affected())
            }

            async fn read_event(
                &self,
                event_id: uuid::Uuid,
            ) -> Result<Option<$crate::store::StoredEvent>, $crate::store::StoreError> {
                let sql = format!("{SELECT_EVENTS} WHERE {}", $event_id_is);
                let query = sqlx::query(&sql).bind(event_id.to_string());
                query
                    .fetch_optional(&self.readers)
                    .await?
                    .map(decode_row)
                    .transpose()
            }
        }
    };
}

/// Defines, for a backend's database, the two statements the writer runs for claims inside a
/// batch's transaction: `load_claims` (the epochs already claimed for the batch's keys) and
/// `insert_claims` (the claims of the appends that committed).
macro_rules! claims_in_transaction {
    ($db:ty) => {
        async fn load_claims(
            connection: &mut <$db as sqlx::Database>::Connection,
            batch: &[$crate::store::AppendRequest],
        ) -> Result<
            std::collections::HashMap<(String, String), uuid::Uuid>,
            $crate::store::StoreError,
        > {
            use sqlx::Row;
            let mut keys: Vec<(&str, &str)> = batch
                .iter()
                .filter_map(|r| r.idempotency.as_ref())
                .map(|c| (c.actor.as_str(), c.key.as_str()))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let mut claims = std::collections::HashMap::new();
            for chunk in keys.chunks($crate::store::idempotency::CLAIMS_PER_STATEMENT_MAX) {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT actor, idempotency_key, epoch FROM idempotency_keys \
                     WHERE (actor, idempotency_key) IN (VALUES ",
                );
                let mut rows = query.separated(", ");
                for (actor, key) in chunk {
                    rows.push("(");
                    rows.push_bind_unseparated(*actor);
                    rows.push_unseparated(", ");
                    rows.push_bind_unseparated(*key);
                    rows.push_unseparated(")");
                }
                query.push(")");
                for row in query.build().fetch_all(&mut *connection).await? {
                    let epoch: String = row.try_get(2)?;
                    let epoch = uuid::Uuid::parse_str(&epoch).map_err(|e| {
                        $crate::store::StoreError::Database(sqlx::Error::Decode(
                            format!("idempotency key row: {e}").into(),
                        ))
                    })?;
                    claims.insert((row.try_get(0)?, row.try_get(1)?), epoch);
                }
            }
            Ok(claims)
        }

        async fn insert_claims(
            connection: &mut <$db as sqlx::Database>::Connection,
            batch: &[$crate::store::AppendRequest],
            outcomes: &[Result<$crate::store::Appended, $crate::store::StoreError>],
        ) -> Result<(), $crate::store::StoreError> {
            let claims: Vec<&$crate::store::idempotency::IdempotencyClaim> = batch
                .iter()
                .zip(outcomes)
                .filter(|(_, outcome)| outcome.is_ok())
                .filter_map(|(request, _)| request.idempotency.as_ref())
                .collect();
            for chunk in claims.chunks($crate::store::idempotency::CLAIMS_PER_STATEMENT_MAX) {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO idempotency_keys \
                     (actor, idempotency_key, fingerprint, epoch, created_at) ",
                );
                insert.push_values(chunk, |mut row, claim| {
                    row.push_bind(&claim.actor)
                        .push_bind(&claim.key)
                        .push_bind(&claim.fingerprint)
                        .push_bind(claim.epoch.to_string())
                        .push_bind(claim.created_at);
                });
                // A later append of the same request finds its own claim: nothing to change.
                insert.push(" ON CONFLICT (actor, idempotency_key) DO NOTHING");
                insert.build().execute(&mut *connection).await?;
            }
            Ok(())
        }
    };
}
