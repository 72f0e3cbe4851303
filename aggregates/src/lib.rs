//! The fleet-ledger domain: commands, events, aggregates and the errors that refuse a command.
//!
//! Aggregates implement [`cqrs_es::Aggregate`]: `handle` decides (all validation lives there) and
//! `apply` only assigns. Nothing here performs I/O, so every rule can be tested in memory.

pub mod alert;
pub mod amount;
pub mod anomaly;
pub mod audit;
pub mod band;
pub mod codec;
pub mod fleet;
pub mod fuel;
pub mod import;
pub mod inspection;
pub mod operation_area;
pub mod period;
pub mod placa;
pub mod registry;
pub mod snapshot;
pub mod upcast;
pub mod vehicle_check;

pub use operation_area::{OperationAreaCommand, OperationAreaEvent, OperationAreas};

/// The longest name accepted for reference data (areas, drivers, stations).
pub const NAME_LEN_MAX: usize = 200;
