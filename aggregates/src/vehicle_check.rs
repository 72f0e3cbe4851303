//! Vehicle check results (seed 001): what an external resource (Jalisco traffic fines, owner
//! taxes, …) found about a vehicle. Each result is a fact on the stream of the vehicle it
//! concerns, identified by VIN and plate together, so a resource's whole history of results for
//! that vehicle is in the audit trail; lookups read the latest through a projection.
//!
//! VIN and plate are parsed strictly, unlike [`crate::placa::Placa`]: seed 001 refuses anything
//! but uppercase letters and digits instead of normalising it.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const VIN_LEN_MAX: usize = 17;
pub const VEHICLE_PLATE_LEN_MAX: usize = 15;
/// Longest date-time text kept as sent (RFC 3339 with nanoseconds and an offset is 35).
pub const CHECK_TIME_LEN_MAX: usize = 64;

/// Why a VIN or plate is refused; the HTTP layer answers every one with seed 001's
/// `BadParameters`, so the variants only matter to logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VehicleIdError {
    #[error("empty")]
    Empty,
    #[error("longer than {max} characters")]
    TooLong { max: usize },
    #[error("not only uppercase letters and digits")]
    Malformed,
}

/// Seed 001's rule for both identifiers: uppercase ASCII letters and digits, nothing else.
fn strict_id(raw: &str, max: usize) -> Result<String, VehicleIdError> {
    if raw.is_empty() {
        return Err(VehicleIdError::Empty);
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(VehicleIdError::Malformed);
    }
    // Only ASCII is left, so bytes are characters.
    if raw.len() > max {
        return Err(VehicleIdError::TooLong { max });
    }
    Ok(raw.to_string())
}

/// A vehicle identification number as seed 001 accepts it: at most 17 uppercase letters and
/// digits. The check digit is not verified: the seed does not ask for it, and resources report on
/// vehicles with older, shorter VINs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Vin(String);

impl Vin {
    pub fn parse(raw: &str) -> Result<Self, VehicleIdError> {
        strict_id(raw, VIN_LEN_MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plate as seed 001 accepts it: at most 15 uppercase letters and digits, taken as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VehiclePlate(String);

impl VehiclePlate {
    pub fn parse(raw: &str) -> Result<Self, VehicleIdError> {
        strict_id(raw, VEHICLE_PLATE_LEN_MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The vehicle a result concerns: VIN and plate together, as seed 001 identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckedVehicle {
    pub vin: Vin,
    pub plate: VehiclePlate,
}

impl CheckedVehicle {
    /// The vehicle's stream, and its key in the read model. Both parts are letters and digits
    /// only, so the hyphen cannot be confused with either.
    pub fn key(&self) -> String {
        format!("{}-{}", self.vin.as_str(), self.plate.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a date and time")]
pub struct CheckTimeError;

/// A date and time as the resource sent it. The text is kept exactly (`2024-03-01T10:00:00.000Z`
/// comes back with its milliseconds), but only once it reads as one of the forms resources send:
/// RFC 3339, an ISO date-time without offset, or a plain date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckTime(String);

impl CheckTime {
    pub fn parse(raw: &str) -> Result<Self, CheckTimeError> {
        if raw.len() > CHECK_TIME_LEN_MAX {
            return Err(CheckTimeError);
        }
        let readable = chrono::DateTime::parse_from_rfc3339(raw).is_ok()
            || chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
            || chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f").is_ok()
            || chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_ok();
        if readable {
            Ok(Self(raw.to_string()))
        } else {
            Err(CheckTimeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One result of one resource for one vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleCheck {
    pub resource_id: i64,
    pub vehicle: CheckedVehicle,
    /// The resource's status; absent when the vehicle was processed with errors (seed 001).
    pub status: Option<Value>,
    /// What the resource found (fines, owner taxes, …), as the resource sent it.
    pub result: Value,
    pub creation_date_time: CheckTime,
    pub finished_date_time: Option<CheckTime>,
}

impl VehicleCheck {
    /// Seed 001's `_id`: `resourceId-vin-plate`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.resource_id, self.vehicle.key())
    }
}

/// The results recorded for one vehicle. Nothing a later result is checked against: a resource
/// may report on a vehicle any number of times, and the latest one is what lookups answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VehicleChecks {
    results_recorded: u64,
}

#[derive(Debug, Clone)]
pub enum VehicleCheckCommand {
    /// Records these results of this stream's vehicle, in order, all in one append.
    Record { checks: Vec<VehicleCheck> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VehicleCheckEvent {
    VehicleCheckRecorded { check: VehicleCheck },
}

impl DomainEvent for VehicleCheckEvent {
    fn event_type(&self) -> String {
        match self {
            Self::VehicleCheckRecorded { .. } => "VehicleCheckRecorded".to_string(),
        }
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VehicleCheckError {
    #[error("no result to record")]
    NothingToRecord,
    /// A result for another vehicle sent to this vehicle's stream: a bug of the caller.
    #[error("result for {got} sent to the stream of {stream}")]
    OtherVehicle { stream: String, got: String },
}

impl VehicleChecks {
    pub fn results_recorded(&self) -> u64 {
        self.results_recorded
    }

    /// The events `command` appends, or why it is refused; `handle` writes them.
    pub fn decide(
        &self,
        command: VehicleCheckCommand,
    ) -> Result<Vec<VehicleCheckEvent>, VehicleCheckError> {
        let VehicleCheckCommand::Record { checks } = command;
        let Some(first) = checks.first() else {
            return Err(VehicleCheckError::NothingToRecord);
        };
        let stream = first.vehicle.key();
        if let Some(other) = checks.iter().find(|c| c.vehicle.key() != stream) {
            return Err(VehicleCheckError::OtherVehicle {
                stream,
                got: other.vehicle.key(),
            });
        }
        Ok(checks
            .into_iter()
            .map(|check| VehicleCheckEvent::VehicleCheckRecorded { check })
            .collect())
    }
}

impl Aggregate for VehicleChecks {
    const TYPE: &'static str = "vehicle-checks";
    type Command = VehicleCheckCommand;
    type Event = VehicleCheckEvent;
    type Error = VehicleCheckError;
    type Services = ();

    async fn handle(
        &mut self,
        command: VehicleCheckCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), VehicleCheckError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: VehicleCheckEvent) {
        match event {
            VehicleCheckEvent::VehicleCheckRecorded { .. } => self.results_recorded += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn vins_and_plates_are_refused_rather_than_normalised() {
        assert_eq!(
            Vin::parse("3VWFE21C04M000001").unwrap().as_str(),
            "3VWFE21C04M000001"
        );
        assert_eq!(VehiclePlate::parse("JAL1234").unwrap().as_str(), "JAL1234");
        assert_eq!(
            VehiclePlate::parse("jal1234"),
            Err(VehicleIdError::Malformed)
        );
        assert_eq!(
            VehiclePlate::parse("JAL-1234"),
            Err(VehicleIdError::Malformed)
        );
        assert_eq!(
            VehiclePlate::parse("JAL 1234"),
            Err(VehicleIdError::Malformed)
        );
        assert_eq!(Vin::parse(" 3VW"), Err(VehicleIdError::Malformed));
        assert_eq!(Vin::parse("ÑANDÚ"), Err(VehicleIdError::Malformed));
        assert_eq!(Vin::parse(""), Err(VehicleIdError::Empty));
        assert!(Vin::parse(&"A".repeat(17)).is_ok());
        assert_eq!(
            Vin::parse(&"A".repeat(18)),
            Err(VehicleIdError::TooLong { max: 17 })
        );
        assert!(VehiclePlate::parse(&"1".repeat(15)).is_ok());
        assert_eq!(
            VehiclePlate::parse(&"1".repeat(16)),
            Err(VehicleIdError::TooLong { max: 15 })
        );
    }

    #[test]
    fn check_times_keep_the_text_the_resource_sent() {
        for sent in [
            "2024-03-01T10:00:00.000Z",
            "2024-03-01T10:00:00-06:00",
            "2024-03-01T10:00:00",
            "2024-03-01 10:00:00.5",
            "2024-03-01",
        ] {
            assert_eq!(CheckTime::parse(sent).unwrap().as_str(), sent);
        }
        for refused in ["", "yesterday", "2024-13-01", "01/03/2024"] {
            assert_eq!(CheckTime::parse(refused), Err(CheckTimeError), "{refused}");
        }
    }

    #[test]
    fn arbitrary_results_read_back_from_the_log_exactly() {
        let result: Value = serde_json::from_str(
            r#"[{"multa":12.10,"z":1,"a":[1e400,-0,18446744073709551616],"nested":{"b":null,"a":"x"}}]"#,
        )
        .unwrap();
        let event = VehicleCheckEvent::VehicleCheckRecorded {
            check: VehicleCheck {
                resource_id: 12,
                vehicle: CheckedVehicle {
                    vin: Vin::parse("VIN1").unwrap(),
                    plate: VehiclePlate::parse("PLACA1").unwrap(),
                },
                status: Some(Value::from("Completed")),
                result: result.clone(),
                creation_date_time: CheckTime::parse("2024-03-01T10:00:00.000Z").unwrap(),
                finished_date_time: None,
            },
        };
        let (event_type, payload) = codec::round_trip(&event).unwrap();
        assert_eq!(event_type, "VehicleCheckRecorded");
        let stored = payload["check"]["result"].to_string();
        assert_eq!(stored, result.to_string());
        // Exact digits, never through f64: no drift, no overflow to a float's infinity.
        assert!(
            stored.contains("12.10") && stored.contains("1e+400"),
            "{stored}"
        );
    }

    #[test]
    fn one_command_records_only_its_own_vehicle() {
        let check = |plate: &str| VehicleCheck {
            resource_id: 1,
            vehicle: CheckedVehicle {
                vin: Vin::parse("VIN1").unwrap(),
                plate: VehiclePlate::parse(plate).unwrap(),
            },
            status: None,
            result: Value::Array(Vec::new()),
            creation_date_time: CheckTime::parse("2024-03-01").unwrap(),
            finished_date_time: None,
        };
        let checks = VehicleChecks::default();
        assert_eq!(
            checks.decide(VehicleCheckCommand::Record { checks: vec![] }),
            Err(VehicleCheckError::NothingToRecord)
        );
        assert_eq!(
            checks
                .decide(VehicleCheckCommand::Record {
                    checks: vec![check("A1"), check("A1")]
                })
                .unwrap()
                .len(),
            2
        );
        assert!(matches!(
            checks.decide(VehicleCheckCommand::Record {
                checks: vec![check("A1"), check("B2")]
            }),
            Err(VehicleCheckError::OtherVehicle { .. })
        ));
    }
}
