//! Seed 001's batch lookup: the latest result of each resource for a list of vehicles.

use sqlx::Row;

use super::QueryError;
use crate::read_store::ReadStore;

/// Vehicles asked for in one statement. A whole lookup (at most 500) is one statement: its
/// `IN` list stays far below both stores' parameter limits, and one indexed read beats several.
pub const VEHICLES_PER_STATEMENT_MAX: usize = 500;

/// A resource's latest result for a vehicle, as the read model stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntryRow {
    /// The vehicle's key, `VIN-PLATE`.
    pub vehicle: String,
    /// Seed 001's stored entry, rendered as JSON text by the projection.
    pub entry: String,
}

/// The stored entries of the vehicles keyed `vehicles` (`VIN-PLATE`), by vehicle and then by
/// resource id. Vehicles no resource processed have none.
pub async fn latest(
    read_models: &ReadStore,
    vehicles: &[String],
) -> Result<Vec<StoredEntryRow>, QueryError> {
    let mut found = Vec::new();
    for chunk in vehicles.chunks(VEHICLES_PER_STATEMENT_MAX) {
        let placeholders = read_models.placeholders(1, chunk.len());
        let sql = format!(
            "SELECT vehicle, entry FROM rm_vehicle_checks WHERE vehicle IN ({}) \
             ORDER BY vehicle, resource_id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for vehicle in chunk {
            query = query.bind(vehicle.as_str());
        }
        for row in query.fetch_all(read_models.pool()).await? {
            found.push(StoredEntryRow {
                vehicle: row.try_get(0)?,
                entry: row.try_get(1)?,
            });
        }
    }
    Ok(found)
}
