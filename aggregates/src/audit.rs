//! What an auditor names: a subject kind and an id (`bomba/7`, `vehiculo/1`), mapped onto the
//! log's streams, and the subject's state folded from its stream by its aggregate's own `apply`.
//!
//! A subject is either a whole stream (a station's ledger is the stream `fuel-station/7`) or one
//! entity of a stream that holds many: plates, vehicles and missions share the single `fleet`
//! stream (see [`crate::fleet`]), so `vehiculo/1` is the fleet's events whose payload names
//! `vehicle_id` 1, and its state is vehicle 1 in the fleet folded from the whole stream.
//!
//! The registries' aggregates (operation areas, drivers, the stations' register) keep only the
//! counters their rules need, not the entities: an entity of a registry is its registration with
//! its updates applied, folded from its own events' payloads. A vehicle's check results are the
//! latest result of each resource, as seed 001's lookup answers them.

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;

use crate::alert::Alert;
use crate::codec::{self, CodecError};
use crate::fleet::{Fleet, FLEET_STREAM_ID};
use crate::fuel::{FuelRecordIds, FuelStation};
use crate::inspection::Inspections;
use crate::operation_area::OPERATION_AREAS_STREAM_ID;
use crate::registry::{
    Catalog, CatalogKind, DriverEvent, Drivers, StationEvent, Stations, REGISTRY_STREAM_ID,
};
use crate::snapshot::Snapshotted;
use crate::vehicle_check::{CheckedVehicle, VehicleCheckEvent, VehicleChecks, VehiclePlate, Vin};
use crate::{OperationAreaEvent, OperationAreas};

/// Every stream type the log holds, one per aggregate.
pub const STREAM_TYPES: [&str; 10] = [
    Fleet::TYPE,
    FuelStation::TYPE,
    FuelRecordIds::TYPE,
    Inspections::TYPE,
    OperationAreas::TYPE,
    Drivers::TYPE,
    Stations::TYPE,
    Catalog::TYPE,
    VehicleChecks::TYPE,
    Alert::TYPE,
];

/// Every event type the domain writes (`tests::every_event_type_is_listed` keeps it complete):
/// a feed filter on a type that can never occur is a typo, refused rather than answered empty.
pub const EVENT_TYPES: &[&str] = &[
    // fleet
    "PlateRegistered",
    "PlateStatusChanged",
    "VehicleSynced",
    "VehicleRegistered",
    "VehicleUpdated",
    "VehicleDeleted",
    "VehicleReactivated",
    "MissionScheduled",
    "MissionStarted",
    "MissionCompleted",
    "MissionCancelled",
    // fuel-station
    "TanqueoRecorded",
    "AnticipoPaid",
    "TanqueoCorrected",
    "TanqueoVoided",
    "OverdraftPolicyChanged",
    "PeriodClosed",
    "PeriodReopened",
    // fuel-record-ids
    "FuelRecordIdsReserved",
    // auto-inspecao
    "CompanyRegistered",
    "CompanyChanged",
    "OperationTypeRegistered",
    "OperationTypeChanged",
    "QuestionnaireRegistered",
    "QuestionnaireChanged",
    "UserRegistered",
    "UserChanged",
    "WebhookRegistered",
    "InspectionRequested",
    "InspectionCreated",
    "InspectionConcluded",
    "InspectionCancelled",
    // operation-areas, drivers, stations, catalog, vehicle-checks
    "OperationAreaRegistered",
    "DriverRegistered",
    "StationRegistered",
    "StationUpdated",
    "AccountingPeriodClosed",
    "AccountingPeriodReopened",
    "CatalogEntryAdded",
    "VehicleCheckRecorded",
    // alerta
    "AnomalyFlagged",
    "AnomalyCleared",
    "AnomalyReviewed",
    // bandas-referencia
    "ReferenceBandSet",
];

/// What an auditor can ask about by kind and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A station's own stream: its fuel records, advances and overdraft policy.
    Bomba,
    Placa,
    Vehiculo,
    Mision,
    /// A catalogue by its slug (`clases-vehiculo`, `combustibles`, …).
    Catalogo,
    /// An operation area in its registry.
    Area,
    /// A driver in its registry.
    Conductor,
    /// A station in the stations' register (its name, area and overdraft policy), apart from
    /// its fuel ledger (`bomba`).
    RegistroBomba,
    /// A vehicle's check results (seed 001), by `VIN-PLATE`.
    Verificacion,
}

impl SubjectKind {
    pub const ALL: [Self; 9] = [
        Self::Bomba,
        Self::Placa,
        Self::Vehiculo,
        Self::Mision,
        Self::Catalogo,
        Self::Area,
        Self::Conductor,
        Self::RegistroBomba,
        Self::Verificacion,
    ];

    /// The path segment of `/api/auditoria/{tipo}/…`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bomba => "bomba",
            Self::Placa => "placa",
            Self::Vehiculo => "vehiculo",
            Self::Mision => "mision",
            Self::Catalogo => "catalogo",
            Self::Area => "area",
            Self::Conductor => "conductor",
            Self::RegistroBomba => "registro-bomba",
            Self::Verificacion => "verificacion",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn stream_type(self) -> &'static str {
        match self {
            Self::Bomba => FuelStation::TYPE,
            Self::Placa | Self::Vehiculo | Self::Mision => Fleet::TYPE,
            Self::Catalogo => Catalog::TYPE,
            Self::Area => OperationAreas::TYPE,
            Self::Conductor => Drivers::TYPE,
            Self::RegistroBomba => Stations::TYPE,
            Self::Verificacion => VehicleChecks::TYPE,
        }
    }

    /// The payload field naming the entity, for kinds that share a stream with others.
    pub fn entity_field(self) -> Option<&'static str> {
        match self {
            Self::Placa => Some("plate_id"),
            Self::Vehiculo => Some("vehicle_id"),
            Self::Mision => Some("mission_id"),
            Self::Area | Self::Conductor | Self::RegistroBomba => Some("id"),
            Self::Bomba | Self::Catalogo | Self::Verificacion => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("Invalid value for tipo: {0}")]
    UnknownKind(String),
    #[error("Invalid value for id: {0} (expected a positive integer)")]
    NotAnId(String),
    #[error("Invalid value for id: {0} (expected a catalogue)")]
    UnknownCatalog(String),
    #[error("Invalid value for id: {0} (expected VIN-PLATE, uppercase letters and digits)")]
    NotAVehicle(String),
}

/// One subject: a kind and the id that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    kind: SubjectKind,
    /// The integer id, for every kind but a catalogue.
    number: i64,
    /// The stream id: the station's or catalogue's own, or the shared fleet stream's.
    stream_id: String,
}

impl Subject {
    /// Parses `tipo` and `id` as they come in a path.
    pub fn parse(tipo: &str, id: &str) -> Result<Self, SubjectError> {
        let kind =
            SubjectKind::from_name(tipo).ok_or_else(|| SubjectError::UnknownKind(tipo.into()))?;
        if kind == SubjectKind::Verificacion {
            let not_a_vehicle = || SubjectError::NotAVehicle(id.into());
            let (vin, plate) = id.split_once('-').ok_or_else(not_a_vehicle)?;
            let vehicle = CheckedVehicle {
                vin: Vin::parse(vin).map_err(|_| not_a_vehicle())?,
                plate: VehiclePlate::parse(plate).map_err(|_| not_a_vehicle())?,
            };
            return Ok(Self {
                kind,
                number: 0,
                stream_id: vehicle.key(),
            });
        }
        if kind == SubjectKind::Catalogo {
            let catalog = CatalogKind::from_slug(id)
                .ok_or_else(|| SubjectError::UnknownCatalog(id.into()))?;
            return Ok(Self {
                kind,
                number: 0,
                stream_id: catalog.slug().to_string(),
            });
        }
        let number = id
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| SubjectError::NotAnId(id.into()))?;
        let stream_id = match kind {
            SubjectKind::Bomba => number.to_string(),
            SubjectKind::Area => OPERATION_AREAS_STREAM_ID.to_string(),
            SubjectKind::Conductor | SubjectKind::RegistroBomba => REGISTRY_STREAM_ID.to_string(),
            _ => FLEET_STREAM_ID.to_string(),
        };
        Ok(Self {
            kind,
            number,
            stream_id,
        })
    }

    pub fn kind(&self) -> SubjectKind {
        self.kind
    }

    pub fn stream_type(&self) -> &'static str {
        self.kind.stream_type()
    }

    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// When the subject is one entity of a shared stream: the payload field naming it and its
    /// id. Only the stream's events that name it are the subject's.
    pub fn entity(&self) -> Option<(&'static str, i64)> {
        self.kind.entity_field().map(|field| (field, self.number))
    }

    /// Whether an event of the subject's stream is about the subject.
    pub fn concerns(&self, payload: &Value) -> bool {
        match self.entity() {
            None => true,
            Some((field, id)) => payload.get(field).and_then(Value::as_i64) == Some(id),
        }
    }

    /// The snapshot schema of the aggregate the subject's stream folds into; `None` when the
    /// subject's state is not the aggregate's (registries' entities and check results are folded
    /// from their events, from the start).
    pub fn snapshot_version(&self) -> Option<i32> {
        match self.kind {
            SubjectKind::Bomba => Some(FuelStation::SNAPSHOT_VERSION),
            SubjectKind::Placa | SubjectKind::Vehiculo | SubjectKind::Mision => {
                Some(Fleet::SNAPSHOT_VERSION)
            }
            SubjectKind::Catalogo => Some(Catalog::SNAPSHOT_VERSION),
            SubjectKind::Area
            | SubjectKind::Conductor
            | SubjectKind::RegistroBomba
            | SubjectKind::Verificacion => None,
        }
    }

    /// A fold of the subject's stream resumed from a snapshot of it (`state`, the aggregate as
    /// saved); `about_subject`: whether any of the events it covers is about the subject.
    pub fn resume(&self, state: &str, about_subject: bool) -> Result<SubjectFold, CodecError> {
        let aggregate = match self.kind {
            SubjectKind::Bomba => Folded::Station(serde_json::from_str(state)?),
            SubjectKind::Placa | SubjectKind::Vehiculo | SubjectKind::Mision => {
                Folded::Fleet(Box::new(serde_json::from_str(state)?))
            }
            SubjectKind::Catalogo => Folded::Catalog(serde_json::from_str(state)?),
            SubjectKind::Area
            | SubjectKind::Conductor
            | SubjectKind::RegistroBomba
            | SubjectKind::Verificacion => return Ok(self.fold()),
        };
        Ok(SubjectFold {
            subject: self.clone(),
            aggregate,
            concerning: u64::from(about_subject),
        })
    }

    /// An empty fold of the subject's stream.
    pub fn fold(&self) -> SubjectFold {
        let aggregate = match self.kind {
            SubjectKind::Bomba => Folded::Station(FuelStation::default()),
            SubjectKind::Placa | SubjectKind::Vehiculo | SubjectKind::Mision => {
                Folded::Fleet(Box::default())
            }
            SubjectKind::Catalogo => Folded::Catalog(Catalog::default()),
            SubjectKind::Area | SubjectKind::Conductor | SubjectKind::RegistroBomba => {
                Folded::Entity(serde_json::Map::new())
            }
            SubjectKind::Verificacion => Folded::Checks(BTreeMap::new()),
        };
        SubjectFold {
            subject: self.clone(),
            aggregate,
            concerning: 0,
        }
    }
}

#[derive(Debug, Clone)]
enum Folded {
    Station(FuelStation),
    Fleet(Box<Fleet>),
    Catalog(Catalog),
    /// A registry's entity: its registration's fields, then each update's `changes`.
    Entity(serde_json::Map<String, Value>),
    /// A vehicle's latest check result of each resource, by resource id.
    Checks(BTreeMap<i64, Value>),
}

/// A subject's aggregate as its stream is folded into it, event by event.
#[derive(Debug, Clone)]
pub struct SubjectFold {
    subject: Subject,
    aggregate: Folded,
    /// Events folded so far that are about the subject (a snapshot it resumed from counts as
    /// one when any of its events were).
    concerning: u64,
}

impl SubjectFold {
    /// Folds the next event of the subject's stream (every event of it, in version order: an
    /// entity's state may depend on its neighbours').
    pub fn apply(&mut self, event_type: &str, payload: &Value) -> Result<(), CodecError> {
        let concerns = self.subject.concerns(payload);
        match &mut self.aggregate {
            Folded::Station(station) => station.apply(codec::decode(event_type, payload)?),
            Folded::Fleet(fleet) => fleet.apply(codec::decode(event_type, payload)?),
            Folded::Catalog(catalog) => catalog.apply(codec::decode(event_type, payload)?),
            Folded::Entity(entity) => {
                // Decoded to be checked, as every other fold checks its events.
                match self.subject.kind {
                    SubjectKind::Area => {
                        drop(codec::decode::<OperationAreaEvent>(event_type, payload)?)
                    }
                    SubjectKind::Conductor => {
                        drop(codec::decode::<DriverEvent>(event_type, payload)?)
                    }
                    _ => drop(codec::decode::<StationEvent>(event_type, payload)?),
                }
                let fields = match payload.get("changes") {
                    Some(Value::Object(changes)) => Some(changes),
                    _ => payload.as_object(),
                };
                if let (true, Some(fields)) = (concerns, fields) {
                    for (name, value) in fields {
                        entity.insert(name.clone(), value.clone());
                    }
                }
            }
            Folded::Checks(latest) => {
                let VehicleCheckEvent::VehicleCheckRecorded { check } =
                    codec::decode(event_type, payload)?;
                latest.insert(check.resource_id, serde_json::to_value(&check)?);
            }
        }
        if concerns {
            self.concerning += 1;
        }
        Ok(())
    }

    /// The subject's state as JSON; `None` before its first event.
    pub fn state(&self) -> Option<Value> {
        if self.concerning == 0 {
            return None;
        }
        let id = self.subject.number;
        match &self.aggregate {
            Folded::Station(station) => to_value(&station.view()),
            Folded::Catalog(catalog) => to_value(catalog),
            Folded::Entity(entity) => Some(Value::Object(entity.clone())),
            Folded::Checks(latest) => Some(serde_json::json!({
                "resultados": latest.values().collect::<Vec<_>>(),
            })),
            Folded::Fleet(fleet) => match self.subject.kind {
                SubjectKind::Placa => fleet.plate(id).and_then(to_value),
                SubjectKind::Vehiculo => fleet.vehicle(id).and_then(to_value),
                SubjectKind::Mision => fleet.mission(id).and_then(to_value),
                _ => None,
            },
        }
    }
}

fn to_value(state: &impl Serialize) -> Option<Value> {
    serde_json::to_value(state).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetEvent;
    use crate::fuel::{FuelEvent, FuelRecordIdEvent};
    use crate::inspection::InspectionEvent;
    use crate::registry::{CatalogEvent, DriverEvent, StationEvent};
    use crate::vehicle_check::VehicleCheckEvent;
    use crate::OperationAreaEvent;
    use serde::de::DeserializeOwned;

    /// The variant names serde knows for `E`, read from the error it gives for an unknown one
    /// ("unknown variant `x`, expected one of `A`, `B`"): the list cannot drift from the enums.
    fn variants<E: DeserializeOwned>() -> Vec<String> {
        let error = serde_json::from_str::<E>(r#""__no_such_variant__""#)
            .err()
            .expect("no variant has that name")
            .to_string();
        let listed = error
            .split_once("expected ")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_event_type_is_listed() {
        let mut written: Vec<String> = [
            variants::<FleetEvent>(),
            variants::<FuelEvent>(),
            variants::<FuelRecordIdEvent>(),
            variants::<InspectionEvent>(),
            variants::<OperationAreaEvent>(),
            variants::<DriverEvent>(),
            variants::<StationEvent>(),
            variants::<CatalogEvent>(),
            variants::<VehicleCheckEvent>(),
            variants::<crate::alert::AlertEvent>(),
            variants::<crate::band::BandEvent>(),
        ]
        .concat();
        written.sort();
        let mut listed: Vec<String> = EVENT_TYPES.iter().map(|t| t.to_string()).collect();
        listed.sort();
        assert_eq!(listed, written);
    }

    #[test]
    fn a_subject_is_a_kind_and_an_id() {
        let vehicle = Subject::parse("vehiculo", "12").unwrap();
        assert_eq!(
            (vehicle.stream_type(), vehicle.stream_id(), vehicle.entity()),
            ("fleet", "main", Some(("vehicle_id", 12)))
        );
        let station = Subject::parse("bomba", "7").unwrap();
        assert_eq!(
            (station.stream_type(), station.stream_id(), station.entity()),
            ("fuel-station", "7", None)
        );
        assert_eq!(
            Subject::parse("catalogo", "combustibles")
                .unwrap()
                .stream_id(),
            "combustibles"
        );
        assert_eq!(
            Subject::parse("camion", "1"),
            Err(SubjectError::UnknownKind("camion".into()))
        );
        assert_eq!(
            Subject::parse("vehiculo", "0"),
            Err(SubjectError::NotAnId("0".into()))
        );
        assert_eq!(
            Subject::parse("catalogo", "colores"),
            Err(SubjectError::UnknownCatalog("colores".into()))
        );
    }

    #[test]
    fn an_entity_has_no_state_before_its_first_event() {
        let vehicle = Subject::parse("vehiculo", "1").unwrap();
        let mut fold = vehicle.fold();
        let (event_type, payload) = codec::encode(&FleetEvent::PlateRegistered {
            plate_id: 1,
            placa: crate::placa::Placa::parse("ABC123").unwrap(),
            estado: crate::fleet::PlateStatus::Activada,
        })
        .unwrap();
        fold.apply(&event_type, &payload).unwrap();
        assert_eq!(
            fold.state(),
            None,
            "the plate's registration is not the vehicle's"
        );
        let (event_type, payload) = codec::encode(&FleetEvent::VehicleSynced {
            vehicle_id: 1,
            plate_id: 1,
            placa: crate::placa::Placa::parse("ABC123").unwrap(),
            id_empresa: None,
            id_operacion: None,
        })
        .unwrap();
        fold.apply(&event_type, &payload).unwrap();
        assert_eq!(
            fold.state(),
            Some(serde_json::json!({
                "plate_id": 1, "placa": "ABC123", "deleted": false, "fields": {}
            }))
        );
    }
}
