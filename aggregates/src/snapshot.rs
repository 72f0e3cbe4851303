//! Which aggregates may be saved as snapshots, and the schema of each one's saved state.
//!
//! A snapshot is an aggregate's state serialized at a stream version, so that loading a long
//! stream folds only the events after it. The state's serialized form is a schema of its own,
//! apart from the events': when it changes (a field added, renamed or meaning something else),
//! bump the aggregate's [`Snapshotted::SNAPSHOT_VERSION`]. Snapshots of another version are
//! then ignored, the stream is folded from its events, and a new snapshot replaces them.

use cqrs_es::Aggregate;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fleet::Fleet;
use crate::fuel::{FuelRecordIds, FuelStation};
use crate::inspection::Inspections;
use crate::registry::{Catalog, Drivers, Stations};
use crate::vehicle_check::VehicleChecks;
use crate::OperationAreas;

/// An aggregate whose state can be saved and read back as it was.
pub trait Snapshotted: Aggregate + Serialize + DeserializeOwned {
    /// The version of the serialized state's schema.
    const SNAPSHOT_VERSION: i32;
}

impl Snapshotted for crate::alert::Alert {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for Fleet {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for FuelStation {
    // 2: the station remembers only its recent changes, not every record.
    // 3: each month's totals and whether the station closed it (issue 16).
    const SNAPSHOT_VERSION: i32 = 3;
}
impl Snapshotted for FuelRecordIds {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for Inspections {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for OperationAreas {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for Drivers {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for Stations {
    // 2: the months closed for every station (issue 16).
    const SNAPSHOT_VERSION: i32 = 2;
}
impl Snapshotted for Catalog {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for VehicleChecks {
    const SNAPSHOT_VERSION: i32 = 1;
}
impl Snapshotted for crate::band::ReferenceBands {
    const SNAPSHOT_VERSION: i32 = 1;
}
