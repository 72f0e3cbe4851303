//! Seed 001's batch lookup: the latest result of each resource for a list of vehicles.

use std::collections::HashMap;

use sqlx::Row;

use super::QueryError;
use crate::read_store::ReadStore;

/// Vehicles asked for in one statement. A whole lookup (at most 500) is one statement: its
/// `IN` list stays far below both stores' parameter limits, and one indexed read beats several.
pub const VEHICLES_PER_STATEMENT_MAX: usize = 500;

/// Between the fields of one stored entry (vehicle key, resource id, entry), and between
/// entries, in the text the database answers. Neither can occur inside a field: keys are
/// letters, digits and one hyphen, ids are digits, and JSON text escapes every control
/// character inside its strings.
const FIELD_END: char = '\u{1f}';
const ENTRY_END: char = '\u{1e}';

/// The latest results of the vehicles asked for, as the read model stores them: each entry is
/// `VIN-PLATE FIELD_END resource_id FIELD_END entry` (the entry is JSON text rendered by the
/// projection), joined by `ENTRY_END`, one text per statement, in no particular order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredEntries {
    texts: Vec<String>,
}

impl StoredEntries {
    /// By vehicle key, the entries of each vehicle some resource processed, each with its
    /// resource id, in the order of those ids.
    pub fn by_vehicle(&self) -> HashMap<&str, Vec<(i64, &str)>> {
        let mut found: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
        for stored in self.texts.iter().flat_map(|text| text.split(ENTRY_END)) {
            let mut fields = stored.splitn(3, FIELD_END);
            let (Some(vehicle), Some(resource_id), Some(entry)) =
                (fields.next(), fields.next(), fields.next())
            else {
                debug_assert!(false, "a stored entry has three fields: {stored:?}");
                continue;
            };
            let resource_id = resource_id.parse().unwrap_or(i64::MAX);
            found.entry(vehicle).or_default().push((resource_id, entry));
        }
        // The database reads them in its key's order, which SQL does not promise.
        for entries in found.values_mut() {
            entries.sort_unstable_by_key(|&(resource_id, _)| resource_id);
        }
        found
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
/// 500-vehicle lookup has about a thousand entries. One flat join, not one per vehicle inside
/// another: a nested aggregate sorted each vehicle's entries and copied every byte twice more;
/// grouping a thousand entries in memory costs next to nothing.
///
/// On SQLite the vehicles go in as one JSON array walked by `json_each`, each probing the
/// table's key: an `IN` list of 500 placeholders made SQLite bind 500 values, sort them into a
/// temporary index and compare the keys' long shared prefixes over again, a third of the
/// lookup's time (profiled; p99 20.7 → 15.9 ms in `bench --scenario lookup`). PostgreSQL plans
/// its `IN` list as index probes already. `vehicles` holds each vehicle once: the join, unlike
/// `IN`, would answer a repeated one twice.
pub async fn latest(
    read_models: &ReadStore,
    vehicles: &[String],
) -> Result<StoredEntries, QueryError> {
    let mut texts = Vec::new();
    let line = format!(
        "c.vehicle || '{FIELD_END}' || CAST(c.resource_id AS TEXT) || '{FIELD_END}' || c.entry"
    );
    for chunk in vehicles.chunks(VEHICLES_PER_STATEMENT_MAX) {
        let text: Option<String> = if read_models.is_postgres() {
            let placeholders = read_models.placeholders(1, chunk.len());
            let sql = format!(
                "SELECT string_agg({line}, '{ENTRY_END}') FROM rm_vehicle_checks c \
                 WHERE c.vehicle IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for vehicle in chunk {
                query = query.bind(vehicle.as_str());
            }
            query.fetch_one(read_models.pool()).await?.try_get(0)?
        } else {
            let sql = format!(
                "SELECT group_concat({line}, '{ENTRY_END}') FROM json_each(?) AS asked \
                 JOIN rm_vehicle_checks c ON c.vehicle = asked.value"
            );
            let asked = serde_json::to_string(chunk)
                .map_err(|error| QueryError::from(sqlx::Error::Encode(Box::new(error))))?;
            sqlx::query(&sql)
                .bind(asked)
                .fetch_one(read_models.pool())
                .await?
                .try_get(0)?
        };
        // No vehicle found joins nothing: NULL.
        texts.extend(text);
    }
    Ok(StoredEntries { texts })
}
