//! Record ids handed out like a PostgreSQL sequence with a cache: unique across processes,
//! increasing within one, gaps allowed.
//!
//! Reserving an id with a durable append per refuel put every refuel of every station behind one
//! stream and two commits. Instead a process reserves a block of [`BLOCK_IDS`] ids with one event
//! and hands them out from memory; the ids left in a block when the process stops are never used,
//! exactly as a sequence's cached values are lost on a restart.

use aggregates::fuel::{FuelRecordIdEvent, FuelRecordIds, NeverRefused, ReserveFuelRecordIds};
use tokio::sync::Mutex;

use crate::commands::{CommandBus, CommandError};
use crate::store::{EventMetadata, SharedLog, StoreError};

/// Ids reserved per block: one durable event per this many records.
pub const BLOCK_IDS: i64 = 1000;

/// The fuel ledger's one id stream.
const STREAM_ID: &str = "all";

#[derive(Debug, Default)]
struct Block {
    next: i64,
    last: i64,
}

impl Block {
    fn remaining(&self) -> i64 {
        if self.next == 0 {
            0
        } else {
            self.last - self.next + 1
        }
    }
}

pub struct FuelRecordIdBlocks {
    bus: CommandBus<FuelRecordIds>,
    block: Mutex<Block>,
}

impl FuelRecordIdBlocks {
    /// `snapshot_every`: as [`CommandBus::snapshot_every`].
    pub fn new(log: SharedLog, snapshot_every: u64) -> Self {
        Self {
            bus: CommandBus::new(log, ()).snapshot_every(snapshot_every),
            block: Mutex::new(Block::default()),
        }
    }

    /// `count` consecutive ids; answers the first. A request larger than what is left in the
    /// block reserves a fresh block big enough for it (the rest of the old one is a gap).
    pub async fn take(
        &self,
        count: i64,
        metadata: &EventMetadata,
    ) -> Result<i64, CommandError<NeverRefused>> {
        let count = count.max(1);
        let mut block = self.block.lock().await;
        if block.remaining() < count {
            let reserved = self
                .bus
                .execute(
                    STREAM_ID,
                    ReserveFuelRecordIds {
                        count: count.max(BLOCK_IDS),
                    },
                    metadata,
                )
                .await?;
            let Some(FuelRecordIdEvent::FuelRecordIdsReserved { first, last }) =
                reserved.events.into_iter().next()
            else {
                return Err(CommandError::Store(StoreError::Unavailable(
                    "the id reservation appended no block".to_string(),
                )));
            };
            *block = Block { next: first, last };
        }
        let first = block.next;
        block.next += count;
        debug_assert!(block.next - 1 <= block.last);
        Ok(first)
    }
}
