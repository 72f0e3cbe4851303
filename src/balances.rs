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

/// Bytes of running balances kept in memory at most (as [`RunningBalance::heap_bytes`] counts
/// them): a count of stations alone does not bound memory when one station can hold a million
/// events. Beyond it the least recently asked stations are dropped, never the one just asked,
/// so a station longer than the budget is still answered from memory while it is the one asked.
pub const BALANCES_BYTES_MAX: usize = 256 << 20;

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

struct Cached {
    slot: Slot,
    /// The slot's heap bytes after its last fold.
    bytes: usize,
}

/// The stations followed, least recently asked first out, within [`STATIONS_CACHED_MAX`]
/// stations and [`BALANCES_BYTES_MAX`] bytes.
struct Stations {
    cached: LruCache<i64, Cached>,
    /// Σ `bytes` of `cached`.
    bytes: usize,
    bytes_max: usize,
}

impl Stations {
    fn new(stations_max: usize, bytes_max: usize) -> Self {
        let capacity = NonZeroUsize::new(stations_max).unwrap_or(NonZeroUsize::MIN);
        Self {
            cached: LruCache::new(capacity),
            bytes: 0,
            bytes_max,
        }
    }

    /// The station's slot, made (empty) if it is not followed yet.
    fn slot(&mut self, bomba_id: i64) -> Slot {
        if let Some(cached) = self.cached.get(&bomba_id) {
            return cached.slot.clone();
        }
        let slot = Slot::default();
        let new = Cached {
            slot: slot.clone(),
            bytes: 0,
        };
        // Not followed yet, so what `push` hands back is the station it dropped to make room.
        if let Some((_, dropped)) = self.cached.push(bomba_id, new) {
            self.forget(dropped.bytes);
        }
        slot
    }

    /// Counts what `slot` holds now that it was folded, and drops the least recently asked
    /// other stations while the total is over budget.
    fn account(&mut self, bomba_id: i64, slot: &Slot, bytes: usize) {
        match self.cached.peek_mut(&bomba_id) {
            Some(cached) if Arc::ptr_eq(&cached.slot, slot) => {
                self.bytes = self.bytes.saturating_sub(cached.bytes) + bytes;
                cached.bytes = bytes;
            }
            // Dropped while it was folded: its memory goes with the last request holding it.
            _ => return,
        }
        // It was just asked, whatever others asked while it was folded.
        self.cached.promote(&bomba_id);
        while self.bytes > self.bytes_max && self.cached.len() > 1 {
            if let Some((_, dropped)) = self.cached.pop_lru() {
                self.forget(dropped.bytes);
            }
        }
    }

    fn forget(&mut self, bytes: usize) {
        debug_assert!(
            bytes <= self.bytes,
            "a station's bytes are part of the total"
        );
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

pub struct StationBalances {
    log: SharedLog,
    stations: Mutex<Stations>,
}

impl StationBalances {
    pub fn new(log: SharedLog) -> Self {
        Self {
            log,
            stations: Mutex::new(Stations::new(STATIONS_CACHED_MAX, BALANCES_BYTES_MAX)),
        }
    }

    fn stations(&self) -> std::sync::MutexGuard<'_, Stations> {
        self.stations
            .lock()
            .expect("the station map lock is never poisoned")
    }

    /// The station's balance now, or as the ledger knew it at `as_of`.
    pub async fn balance(
        &self,
        bomba_id: i64,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<StationBalance, BalanceError> {
        let slot = self.stations().slot(bomba_id);
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
        self.stations()
            .account(bomba_id, &slot, followed.running.heap_bytes());
        Ok(match as_of {
            None => followed.running.now(),
            Some(as_of) => followed.running.as_of(as_of),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(stations: &mut Stations, bomba_id: i64, bytes: usize) {
        let slot = stations.slot(bomba_id);
        stations.account(bomba_id, &slot, bytes);
    }

    fn followed(stations: &Stations) -> Vec<i64> {
        let mut ids: Vec<i64> = stations.cached.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn over_the_byte_budget_the_least_recently_asked_stations_are_dropped() {
        let mut stations = Stations::new(10, 250);
        folded(&mut stations, 1, 100);
        folded(&mut stations, 2, 100);
        stations.slot(1);
        folded(&mut stations, 3, 100);
        assert_eq!(followed(&stations), [1, 3]);
        assert_eq!(stations.bytes, 200);
    }

    #[test]
    fn a_station_longer_than_the_budget_is_kept_while_it_is_the_one_asked() {
        let mut stations = Stations::new(10, 250);
        folded(&mut stations, 1, 100);
        folded(&mut stations, 2, 1_000);
        assert_eq!(followed(&stations), [2]);
        assert_eq!(stations.bytes, 1_000);
        folded(&mut stations, 1, 100);
        assert_eq!(followed(&stations), [1]);
        assert_eq!(stations.bytes, 100);
    }

    #[test]
    fn a_station_dropped_for_room_takes_its_bytes_with_it() {
        let mut stations = Stations::new(2, 1_000);
        folded(&mut stations, 1, 100);
        folded(&mut stations, 2, 200);
        folded(&mut stations, 3, 300);
        assert_eq!(followed(&stations), [2, 3]);
        assert_eq!(stations.bytes, 500);
        // A slot dropped while it was folded is not counted when its fold ends.
        let stale = Slot::default();
        stations.account(2, &stale, 10_000);
        assert_eq!(stations.bytes, 500);
    }
}
