//! Seed 001's batch lookup: the latest result of each resource for a list of vehicles.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::QueryError;
use crate::read_store::ReadStore;

/// Vehicles asked for in one statement. A whole lookup (at most 500) is one statement: its
/// `IN` list stays far below both stores' parameter limits, and one indexed read beats several.
pub const VEHICLES_PER_STATEMENT_MAX: usize = 500;

/// One row of `rm_vehicle_checks`: a resource's latest result for a vehicle, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    /// The vehicle's key, `VIN-PLATE`.
    pub vehicle: String,
    pub resource_id: i64,
    pub vin: String,
    pub plate: String,
    /// JSON text, as the resource sent it.
    pub status: Option<String>,
    /// JSON text, as the resource sent it.
    pub result: String,
    pub creation_date_time: String,
    pub finished_date_time: Option<String>,
}

fn check_from(row: &AnyRow) -> Result<CheckRow, QueryError> {
    Ok(CheckRow {
        vehicle: row.try_get(0)?,
        resource_id: row.try_get(1)?,
        vin: row.try_get(2)?,
        plate: row.try_get(3)?,
        status: row.try_get(4)?,
        result: row.try_get(5)?,
        creation_date_time: row.try_get(6)?,
        finished_date_time: row.try_get(7)?,
    })
}

/// Every stored result of the vehicles keyed `vehicles` (`VIN-PLATE`), by vehicle and then by
/// resource id. Vehicles no resource processed have no rows.
pub async fn latest(
    read_models: &ReadStore,
    vehicles: &[String],
) -> Result<Vec<CheckRow>, QueryError> {
    let mut found = Vec::new();
    for chunk in vehicles.chunks(VEHICLES_PER_STATEMENT_MAX) {
        let placeholders = read_models.placeholders(1, chunk.len());
        let sql = format!(
            "SELECT vehicle, resource_id, vin, plate, status, result, creation_date_time, \
             finished_date_time FROM rm_vehicle_checks WHERE vehicle IN ({}) \
             ORDER BY vehicle, resource_id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for vehicle in chunk {
            query = query.bind(vehicle.as_str());
        }
        for row in query.fetch_all(read_models.pool()).await? {
            found.push(check_from(&row)?);
        }
    }
    Ok(found)
}
