//! Which instance runs the projections when several share one database.
//!
//! Every instance can answer requests, but exactly one at a time may fold the log into the read
//! models: two writers of one read model could commit an older batch after a newer one. The
//! holder of a lease row does it, renewing the row every second; when it dies, its lease expires
//! and another instance takes over within seconds. The lease is an optimisation of who works,
//! not the guarantee: every batch also moves its checkpoints only from the value it read
//! (see `read_store::advance_checkpoint`), so a holder that lost its lease without noticing
//! cannot apply a batch twice or out of order.
//!
//! A row with an expiry, rather than PostgreSQL's advisory locks, so that the same code runs on
//! SQLite (several processes on one file) and PostgreSQL.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::read_store::ReadStore;

/// How long a lease lasts without renewal: the longest the read models stand still after their
/// holder dies.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often the holder renews, and how often an instance without it tries to take it.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(1);

pub struct Lease {
    store: ReadStore,
    name: String,
    /// This instance, as the lease row names it.
    holder: String,
}

impl Lease {
    pub fn new(store: ReadStore, name: impl Into<String>) -> Self {
        Self {
            store,
            name: name.into(),
            holder: Uuid::now_v7().to_string(),
        }
    }

    /// Takes the lease if it is free or expired, or renews it if this instance holds it. `true`
    /// when this instance holds it for the next [`LEASE_TTL`].
    pub async fn hold(&self) -> Result<bool, sqlx::Error> {
        let now_ms = Utc::now().timestamp_millis();
        let expires_at_ms = now_ms + LEASE_TTL.as_millis() as i64;
        let taken = sqlx::query(
            "INSERT INTO projection_leases (name, holder, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at_ms = excluded.expires_at_ms \
             WHERE projection_leases.holder = excluded.holder \
                OR projection_leases.expires_at_ms < $4",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(expires_at_ms)
        .bind(now_ms)
        .execute(self.store.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives the lease up at once (a clean shutdown), so another instance need not wait out
    /// its expiry.
    pub async fn release(&self) {
        let released = sqlx::query("DELETE FROM projection_leases WHERE name = $1 AND holder = $2")
            .bind(&self.name)
            .bind(&self.holder)
            .execute(self.store.pool())
            .await;
        if let Err(error) = released {
            tracing::warn!(%error, lease = %self.name, "lease not released; it will expire");
        }
    }
}
