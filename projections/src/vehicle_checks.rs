//! The latest result of each resource for each vehicle (seed 001's batch lookup). A later result
//! of the same resource replaces the row; the earlier ones stay in the log.
//!
//! Each row holds the result already rendered as seed 001's stored entry, the JSON text a lookup
//! answers: rendering once per result recorded, instead of once per result answered, leaves a
//! 500-vehicle lookup (about a thousand entries) to concatenate text.

use aggregates::vehicle_check::{CheckTime, VehicleCheck, VehicleCheckEvent, VehicleChecks};
use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;

use crate::{decode, int, text, Change, FoldError, Projection, Recorded};

pub const TABLE: &str = "rm_vehicle_checks";

/// Seed 001's stored entry of a result: what recording answers and what a lookup lists under
/// `info`. Fields serialise in declaration order, which is the seed's: keep it, the answers are
/// pinned byte for byte.
#[derive(Debug, Serialize)]
pub struct StoredEntry<'a> {
    #[serde(rename = "_id")]
    pub id: String,
    pub plate: &'a str,
    pub vin: &'a str,
    #[serde(rename = "resourceId")]
    pub resource_id: i64,
    /// `null` when the resource sent none (processed with errors).
    pub status: Option<&'a Value>,
    pub result: &'a Value,
    #[serde(rename = "creationDateTime")]
    pub creation_date_time: &'a str,
    #[serde(rename = "finishedDateTime")]
    pub finished_date_time: Option<&'a str>,
}

impl<'a> StoredEntry<'a> {
    pub fn of(check: &'a VehicleCheck) -> Self {
        Self {
            id: check.id(),
            plate: check.vehicle.plate.as_str(),
            vin: check.vehicle.vin.as_str(),
            resource_id: check.resource_id,
            status: check.status.as_ref(),
            result: &check.result,
            creation_date_time: check.creation_date_time.as_str(),
            finished_date_time: check.finished_date_time.as_ref().map(CheckTime::as_str),
        }
    }

    /// The entry as compact JSON text, as the service answers it.
    pub fn to_json(&self) -> String {
        // Every field is a string, an integer or an already parsed `Value`: nothing can fail.
        serde_json::to_string(self).expect("a stored entry always serialises")
    }
}

pub struct VehicleChecksProjection;

impl Projection for VehicleChecksProjection {
    fn name(&self) -> &'static str {
        "vehicle_checks"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != VehicleChecks::TYPE {
            return Ok(Vec::new());
        }
        let VehicleCheckEvent::VehicleCheckRecorded { check } = decode(event)?;
        Ok(vec![Change::Upsert {
            table: TABLE,
            key: vec![
                ("vehicle", text(check.vehicle.key())),
                ("resource_id", int(check.resource_id)),
            ],
            values: vec![
                ("entry", text(StoredEntry::of(&check).to_json())),
                ("position", int(event.position)),
            ],
        }])
    }
}
