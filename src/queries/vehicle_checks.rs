//! Seed 001's batch lookup: the latest result of each resource for a list of vehicles.

use sqlx::Row;

use super::QueryError;
use crate::read_store::ReadStore;

/// Vehicles asked for in one statement. A whole lookup (at most 500) is one statement: its
/// `IN` list stays far below both stores' parameter limits, and one indexed read beats several.
pub const VEHICLES_PER_STATEMENT_MAX: usize = 500;

/// A vehicle's latest results, as the read model stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleEntries {
    /// The vehicle's key, `VIN-PLATE`.
    pub vehicle: String,
    /// Its stored entries (JSON text rendered by the projection), one per resource, by resource
    /// id, joined by commas: the inside of its `info` array.
    pub entries: String,
}

/// The stored entries of each vehicle keyed in `vehicles` (`VIN-PLATE`) that some resource
/// processed, in no particular order.
///
/// The database joins each vehicle's entries itself: a row costs far more to hand across the
/// driver (a copy of every value, a channel send) than the join does, and a lookup has about
/// twice as many entries as vehicles.
pub async fn latest(
    read_models: &ReadStore,
    vehicles: &[String],
) -> Result<Vec<VehicleEntries>, QueryError> {
    let mut found = Vec::new();
    for chunk in vehicles.chunks(VEHICLES_PER_STATEMENT_MAX) {
        let placeholders = read_models.placeholders(1, chunk.len());
        let sql = format!(
            "SELECT vehicle, {}(entry, ',' ORDER BY resource_id) FROM rm_vehicle_checks \
             WHERE vehicle IN ({}) GROUP BY vehicle",
            read_models.string_agg(),
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for vehicle in chunk {
            query = query.bind(vehicle.as_str());
        }
        for row in query.fetch_all(read_models.pool()).await? {
            found.push(VehicleEntries {
                vehicle: row.try_get(0)?,
                entries: row.try_get(1)?,
            });
        }
    }
    Ok(found)
}
