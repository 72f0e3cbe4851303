//! Seed 001's batch lookup: the latest result of each resource for a list of vehicles.

use std::collections::HashMap;

use sqlx::Row;

use super::QueryError;
use crate::read_store::ReadStore;

/// Vehicles asked for in one statement. A whole lookup (at most 500) is one statement: its
/// `IN` list stays far below both stores' parameter limits, and one indexed read beats several.
pub const VEHICLES_PER_STATEMENT_MAX: usize = 500;

/// Between a vehicle's key and its entries, and between vehicles, in the text the database
/// answers. Neither can occur inside either: keys are letters, digits and one hyphen, and JSON
/// text escapes every control character inside its strings.
const KEY_END: char = '\u{1f}';
const VEHICLE_END: char = '\u{1e}';

/// The latest results of the vehicles asked for, as the read model stores them: by vehicle key
/// (`VIN-PLATE`), its stored entries (JSON text rendered by the projection), one per resource,
/// by resource id, joined by commas: the inside of its `info` array.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredEntries {
    /// Every vehicle's key and entries, `KEY KEY_END ENTRIES` joined by `VEHICLE_END`, one
    /// text per statement.
    texts: Vec<String>,
}

impl StoredEntries {
    /// By vehicle key, the entries of each vehicle some resource processed.
    pub fn by_vehicle(&self) -> HashMap<&str, &str> {
        self.texts
            .iter()
            .flat_map(|text| text.split(VEHICLE_END))
            .filter_map(|vehicle| vehicle.split_once(KEY_END))
            .collect()
    }

    /// Bytes of entries in all: what an answer holding them all needs at least.
    pub fn len(&self) -> usize {
        self.texts.iter().map(String::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.iter().all(String::is_empty)
    }
}

/// The stored entries of each vehicle keyed in `vehicles` (`VIN-PLATE`) that some resource
/// processed.
///
/// The database joins them into one text per statement: a row costs far more to hand across
/// the driver (a copy of every value, a channel send, a thread woken) than the join does, and a
/// 500-vehicle lookup has about a thousand entries.
pub async fn latest(
    read_models: &ReadStore,
    vehicles: &[String],
) -> Result<StoredEntries, QueryError> {
    let mut texts = Vec::new();
    for chunk in vehicles.chunks(VEHICLES_PER_STATEMENT_MAX) {
        let placeholders = read_models.placeholders(1, chunk.len());
        let join = read_models.string_agg();
        let sql = format!(
            "SELECT {join}(vehicle || '{KEY_END}' || entries, '{VEHICLE_END}') FROM ( \
             SELECT vehicle, {join}(entry, ',' ORDER BY resource_id) AS entries \
             FROM rm_vehicle_checks WHERE vehicle IN ({}) GROUP BY vehicle) AS found",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for vehicle in chunk {
            query = query.bind(vehicle.as_str());
        }
        // No vehicle found joins nothing: NULL.
        let text: Option<String> = query.fetch_one(read_models.pool()).await?.try_get(0)?;
        texts.extend(text);
    }
    Ok(StoredEntries { texts })
}
