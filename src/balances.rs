//! Station balances answered from memory: a [`RunningBalance`] per station, kept current from the
//! station's own stream.
//!
//! Folding a station's whole history per request made a balance (and every row of
//! `/api/saldos-bombas`) cost O(history) in reads and JSON decoding. Here each station's events
//! are folded once, then only the events appended since (one indexed read of the stream's tail
//! per question, usually empty), and `as_of` is a binary search over the balance after each
//! instant. Reading the tail from the log itself, not from a projection, keeps the answer exact
//! and current with every acknowledged write, of this process or another.
//!
//! The first fold of a station reads its stream page by page: a station with a million events
//! costs its compact running balance in memory, not its whole history decoded at once.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use aggregates::fuel::FuelStation;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use lru::LruCache;
use projections::ledger::{RunningBalance, StationBalance};
use projections::FoldError;

use crate::store::{self, SharedLog, StoreError};

/// Stations whose running balance is kept in memory; the least recently asked are dropped and
/// folded again when asked next.
pub const STATIONS_CACHED_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

#[derive(Default)]
struct Followed {
    /// The station stream's version folded so far.
    version: i64,
    running: RunningBalance,
}

type Slot = Arc<tokio::sync::Mutex<Followed>>;

pub struct StationBalances {
    log: SharedLog,
    stations: Mutex<LruCache<i64, Slot>>,
}

impl StationBalances {
    pub fn new(log: SharedLog) -> Self {
        let capacity = NonZeroUsize::new(STATIONS_CACHED_MAX).unwrap_or(NonZeroUsize::MIN);
        Self {
            log,
            stations: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The station's balance now, or as the ledger knew it at `as_of`.
    pub async fn balance(
        &self,
        bomba_id: i64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<StationBalance, BalanceError> {
        let slot = {
            let mut stations = self
                .stations
                .lock()
                .expect("the station map lock is never poisoned");
            stations.get_or_insert(bomba_id, Slot::default).clone()
        };
        let mut followed = slot.lock().await;
        let followed = &mut *followed;
        let after_version = followed.version;
        store::fold_stream(
            self.log.as_ref(),
            FuelStation::TYPE,
            &bomba_id.to_string(),
            after_version,
            store::STREAM_PAGE_EVENTS,
            |stored| -> Result<(), BalanceError> {
                followed.running.apply_stored(
                    stored.position,
                    &stored.event_type,
                    &stored.payload,
                    stored.recorded_at,
                )?;
                followed.version = stored.version;
                Ok(())
            },
        )
        .await?;
        Ok(match as_of {
            None => followed.running.now(),
            Some(as_of) => followed.running.as_of(as_of),
        })
    }
}
