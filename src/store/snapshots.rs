//! Snapshots of long streams: an aggregate's state saved at a stream version, so that loading
//! the stream for a command or an `as_of` folds only the events after it instead of its whole
//! history. Stored beside the log (migration 0005), never in it: not events, so never hashed,
//! exported or in the feed. Rows whose schema is not the aggregate's current
//! [`aggregates::snapshot::Snapshotted::SNAPSHOT_VERSION`] are ignored, and deleted when the
//! stream's next snapshot is saved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aggregates::snapshot::Snapshotted;
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Semaphore};

use super::{SharedLog, StoreError};

/// A saved state of one stream's aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream version the state includes: every event up to it, none after.
    pub version: i64,
    /// The position of the event at `version`.
    pub position: i64,
    pub schema_version: i32,
    /// The latest `recorded_at` of the events the state includes.
    pub recorded_at: DateTime<Utc>,
    /// The aggregate, serialized.
    pub state: String,
}

/// Which snapshot of a stream a load may start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotBound {
    /// The newest.
    Latest,
    /// The newest whose events were all recorded at or before this instant.
    RecordedBy(DateTime<Utc>),
}

/// Events between snapshots, unless configured (`serve --snapshot-every`).
pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 500;

/// What folding one stored event costs, in bytes of snapshot read instead: a fuel event is about
/// half a kilobyte of JSON (BENCHMARKS.md), and a state is read at about the same speed per byte.
pub const SNAPSHOT_BYTES_PER_EVENT: u64 = 500;

/// Whether a stream at `version`, whose newest snapshot is at `snapshot_version` and held
/// `snapshot_bytes` of state, should be saved again: once `every` events (at least one) were
/// added since, and never before saving spares more than it costs. A state that grows with its
/// stream (a station's records) would otherwise be written whole every `every` events: with the
/// second condition, the bytes written for snapshots stay about the bytes of events appended.
pub fn snapshot_due(version: i64, snapshot_version: i64, snapshot_bytes: u64, every: u64) -> bool {
    let since = u64::try_from(version - snapshot_version).unwrap_or(0);
    every > 0 && since >= every && since.saturating_mul(SNAPSHOT_BYTES_PER_EVENT) >= snapshot_bytes
}

/// Snapshots saved at once per aggregate type: each holds a copy of a state until it is written,
/// and serializing a large one takes a core for a while.
const WRITES_IN_FLIGHT_MAX: usize = 2;

/// What a command bus knows of a stream's newest snapshot: its version and the size of its state
/// (filled in once the task saving it has serialized it).
#[derive(Debug, Clone, Default)]
pub struct SnapshotMark {
    pub version: i64,
    bytes: Arc<AtomicU64>,
}

impl SnapshotMark {
    fn new(version: i64, bytes: u64) -> Self {
        Self {
            version,
            bytes: Arc::new(AtomicU64::new(bytes)),
        }
    }
}

/// One aggregate type's snapshots, as its command bus loads and saves them.
pub struct Snapshots {
    log: SharedLog,
    /// Events between snapshots; 0: snapshots are neither read nor written.
    every: u64,
    writes: Arc<Semaphore>,
}

impl Snapshots {
    pub fn new(log: SharedLog, every: u64) -> Self {
        Self {
            log,
            every,
            writes: Arc::new(Semaphore::new(WRITES_IN_FLIGHT_MAX)),
        }
    }

    /// The stream's newest snapshot in `A`'s schema, read back: the aggregate, its version and
    /// its mark. A snapshot that does not read back as `A` is ignored (with a warning): the
    /// stream is then folded from its events, as if there were none.
    pub async fn load<A: Snapshotted>(
        &self,
        stream_id: &str,
    ) -> Result<Option<(A, SnapshotMark)>, StoreError> {
        if self.every == 0 {
            return Ok(None);
        }
        let found = self
            .log
            .load_snapshot(
                A::TYPE,
                stream_id,
                A::SNAPSHOT_VERSION,
                SnapshotBound::Latest,
            )
            .await?;
        let Some(snapshot) = found else {
            return Ok(None);
        };
        match serde_json::from_str::<A>(&snapshot.state) {
            Ok(aggregate) => Ok(Some((
                aggregate,
                SnapshotMark::new(snapshot.version, snapshot.state.len() as u64),
            ))),
            Err(error) => {
                tracing::warn!(
                    stream_type = A::TYPE,
                    stream_id,
                    version = snapshot.version,
                    %error,
                    "a snapshot does not read back: ignored, the stream is folded from its events"
                );
                Ok(None)
            }
        }
    }

    /// Saves `aggregate`, the stream at `version`, in the background when a snapshot is due
    /// ([`snapshot_due`]), and moves `mark` to it. With `committed`, the state includes an
    /// append not yet known to commit: it is saved only once that says it did. When as many
    /// saves as allowed are in flight, nothing is saved: the stream's next command asks again.
    pub fn save_if_due<A: Snapshotted + Clone + 'static>(
        &self,
        stream_id: &str,
        aggregate: &A,
        version: i64,
        mark: &mut SnapshotMark,
        committed: Option<watch::Receiver<Option<bool>>>,
    ) {
        let bytes = mark.bytes.load(Ordering::Relaxed);
        if !snapshot_due(version, mark.version, bytes, self.every) {
            return;
        }
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            return;
        };
        // Until the new state's size is known, the last one's stands in for it.
        *mark = SnapshotMark::new(version, bytes);
        let written = mark.bytes.clone();
        let state = aggregate.clone();
        let log = self.log.clone();
        let stream_id = stream_id.to_string();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(mut committed) = committed {
                match committed.wait_for(Option::is_some).await {
                    Ok(outcome) if *outcome == Some(true) => {}
                    _ => return,
                }
            }
            // A large state takes a while to serialize: off the runtime's workers.
            let text = match tokio::task::spawn_blocking(move || serde_json::to_string(&state))
                .await
            {
                Ok(Ok(text)) => text,
                Ok(Err(error)) => {
                    tracing::warn!(stream_type = A::TYPE, %stream_id, %error, "snapshot not saved");
                    return;
                }
                Err(_) => return,
            };
            written.store(text.len() as u64, Ordering::Relaxed);
            let saved = log
                .save_snapshot(A::TYPE, &stream_id, version, A::SNAPSHOT_VERSION, &text)
                .await;
            if let Err(error) = saved {
                tracing::warn!(stream_type = A::TYPE, %stream_id, version, %error, "snapshot not saved");
            }
        });
    }
}

/// The newest usable snapshot: `$1` stream type, `$2` stream id, `$3` schema version; with
/// [`SnapshotBound::RecordedBy`], `$4` the instant.
pub(crate) fn select_sql(bound: SnapshotBound) -> &'static str {
    match bound {
        SnapshotBound::Latest => {
            "SELECT version, position, schema_version, recorded_at, state FROM snapshots \
             WHERE stream_type = $1 AND stream_id = $2 AND schema_version = $3 \
             ORDER BY version DESC LIMIT 1"
        }
        SnapshotBound::RecordedBy(_) => {
            "SELECT version, position, schema_version, recorded_at, state FROM snapshots \
             WHERE stream_type = $1 AND stream_id = $2 AND schema_version = $3 \
             AND recorded_at <= $4 ORDER BY version DESC LIMIT 1"
        }
    }
}

/// The newest snapshot's version below `$3` (`$1` stream type, `$2` stream id), of any schema:
/// the `recorded_at` it holds bounds the events before it.
pub(crate) const PREVIOUS_SQL: &str = "SELECT version FROM snapshots \
     WHERE stream_type = $1 AND stream_id = $2 AND version < $3 ORDER BY version DESC LIMIT 1";

/// Saves a state (`$1` stream type, `$2` stream id, `$3` version, `$4` schema version, `$5`
/// state) whose stream's previous snapshot is at `$6` (0: none). Its position and `recorded_at`
/// come from the log itself: the latest of the previous snapshot's and of the events after it.
/// A snapshot already saved at that version is replaced: it holds the same state, unless it
/// did not read back.
pub(crate) const INSERT_SQL: &str = "INSERT INTO snapshots \
     (stream_type, stream_id, version, position, schema_version, recorded_at, state) \
     SELECT $1, $2, $3, \
     (SELECT position FROM events WHERE stream_type = $1 AND stream_id = $2 AND version = $3), \
     $4, MAX(recorded_at), $5 FROM ( \
     SELECT recorded_at FROM events \
     WHERE stream_type = $1 AND stream_id = $2 AND version > $6 AND version <= $3 \
     UNION ALL SELECT recorded_at FROM snapshots \
     WHERE stream_type = $1 AND stream_id = $2 AND version = $6) AS covered \
     WHERE true \
     ON CONFLICT (stream_type, stream_id, version) DO UPDATE SET \
     position = excluded.position, schema_version = excluded.schema_version, \
     recorded_at = excluded.recorded_at, state = excluded.state";

/// Snapshots of the stream (`$1`, `$2`) in another schema than `$3`: never read again.
pub(crate) const DELETE_STALE_SQL: &str = "DELETE FROM snapshots \
     WHERE stream_type = $1 AND stream_id = $2 AND schema_version <> $3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_state_is_saved_every_n_events() {
        assert!(!snapshot_due(499, 0, 0, 500));
        assert!(snapshot_due(500, 0, 0, 500));
        assert!(!snapshot_due(999, 500, 200, 500));
        assert!(snapshot_due(1_000, 500, 200, 500));
        assert!(!snapshot_due(1_000, 0, 0, 0), "0 turns snapshots off");
    }

    #[test]
    fn a_state_that_grows_with_its_stream_is_saved_less_often() {
        // 50 MB of state: worth saving again once 100,000 events (about 50 MB of them) follow.
        let bytes = 50_000_000;
        assert!(!snapshot_due(1_099_999, 1_000_000, bytes, 500));
        assert!(snapshot_due(1_100_000, 1_000_000, bytes, 500));
    }
}
