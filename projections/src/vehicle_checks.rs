//! The latest result of each resource for each vehicle (seed 001's batch lookup). A later result
//! of the same resource replaces the row; the earlier ones stay in the log.

use aggregates::vehicle_check::{VehicleCheckEvent, VehicleChecks};
use cqrs_es::Aggregate;

use crate::{decode, int, text, Change, FoldError, Projection, Recorded};

pub const TABLE: &str = "rm_vehicle_checks";

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
                ("vin", text(check.vehicle.vin.as_str().to_string())),
                ("plate", text(check.vehicle.plate.as_str().to_string())),
                ("status", text(check.status.map(|s| s.to_string()))),
                ("result", text(check.result.to_string())),
                (
                    "creation_date_time",
                    text(check.creation_date_time.as_str().to_string()),
                ),
                (
                    "finished_date_time",
                    text(check.finished_date_time.map(|t| t.as_str().to_string())),
                ),
                ("position", int(event.position)),
            ],
        }])
    }
}
