//! The fleet: plates, the vehicles bound to them, and the vehicles' missions.
//!
//! They are one aggregate (one stream) on purpose. The rules that span them — a plate has at most
//! one vehicle, ever; sync creates each missing vehicle exactly once; a vehicle with an active
//! mission cannot be deleted, and a deleted vehicle cannot get a mission — are then decided by
//! one `handle` on one consistent state, and the stream's optimistic concurrency makes a race
//! between, say, a deletion and a scheduling end with exactly one of them refused.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::placa::Placa;

/// The single stream holding the whole fleet.
pub const FLEET_STREAM_ID: &str = "main";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlateStatus {
    #[serde(rename = "ACTIVADA")]
    Activada,
    #[serde(rename = "DESACTIVADA")]
    Desactivada,
}

impl PlateStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ACTIVADA" => Some(Self::Activada),
            "DESACTIVADA" => Some(Self::Desactivada),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activada => "ACTIVADA",
            Self::Desactivada => "DESACTIVADA",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissionStatus {
    #[serde(rename = "PROGRAMADA")]
    Programada,
    #[serde(rename = "EN_EJECUCION")]
    EnEjecucion,
    #[serde(rename = "COMPLETADA")]
    Completada,
    #[serde(rename = "CANCELADA")]
    Cancelada,
}

impl MissionStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Programada,
            Self::EnEjecucion,
            Self::Completada,
            Self::Cancelada,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Programada => "PROGRAMADA",
            Self::EnEjecucion => "EN_EJECUCION",
            Self::Completada => "COMPLETADA",
            Self::Cancelada => "CANCELADA",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Programada | Self::EnEjecucion)
    }
}

/// The writable fields of a vehicle (seed 002). In a command or a `VehicleUpdated`, an absent
/// field means "unchanged".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_clase_vehiculo: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_estado_vehiculo: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tipo_combustible: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_motorista_por_defecto: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_departamento_asignado: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modelo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anio: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_motor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_chasis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_vin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacidad_pasajeros: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacidad_combustible_galones: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kilometraje_actual: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fecha_ultima_revision: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fecha_proximo_mantenimiento: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fecha_tarjeta_circulacion: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numero_poliza_seguro: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fecha_vencimiento_seguro: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observaciones: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_empresa: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_operacion: Option<i64>,
}

macro_rules! for_each_vehicle_field {
    ($m:ident) => {
        $m!(
            id_clase_vehiculo,
            id_estado_vehiculo,
            id_tipo_combustible,
            id_motorista_por_defecto,
            id_departamento_asignado,
            marca,
            modelo,
            anio,
            color,
            numero_motor,
            numero_chasis,
            numero_vin,
            capacidad_pasajeros,
            capacidad_combustible_galones,
            kilometraje_actual,
            fecha_ultima_revision,
            fecha_proximo_mantenimiento,
            fecha_tarjeta_circulacion,
            numero_poliza_seguro,
            fecha_vencimiento_seguro,
            observaciones,
            id_empresa,
            id_operacion
        )
    };
}

impl VehicleFields {
    /// `(what changes, what it was)`: only the fields `changes` sets to a different value.
    pub fn diff(&self, changes: &VehicleFields) -> (VehicleFields, VehicleFields) {
        let mut changed = VehicleFields::default();
        let mut previous = VehicleFields::default();
        macro_rules! compare {
            ($($field:ident),*) => {$(
                if changes.$field.is_some() && changes.$field != self.$field {
                    changed.$field = changes.$field.clone();
                    previous.$field = self.$field.clone();
                }
            )*};
        }
        for_each_vehicle_field!(compare);
        (changed, previous)
    }

    pub fn merge(&mut self, changes: &VehicleFields) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if changes.$field.is_some() {
                    self.$field = changes.$field.clone();
                }
            )*};
        }
        for_each_vehicle_field!(take);
    }

    pub fn is_empty(&self) -> bool {
        *self == VehicleFields::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlateState {
    pub placa: Placa,
    pub estado: PlateStatus,
    /// The vehicle bound to this plate, live or deleted: a plate never gets a second one.
    pub vehicle_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VehicleState {
    pub plate_id: i64,
    pub placa: Placa,
    pub deleted: bool,
    pub fields: VehicleFields,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissionState {
    pub vehicle_id: i64,
    pub estado: MissionStatus,
    pub kilometraje_inicial: Option<i64>,
    pub combustible_inicial_galones: Option<Decimal>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fleet {
    plates: BTreeMap<i64, PlateState>,
    plate_ids: HashMap<Placa, i64>,
    vehicles: BTreeMap<i64, VehicleState>,
    missions: BTreeMap<i64, MissionState>,
    last_plate_id: i64,
    last_vehicle_id: i64,
    last_mission_id: i64,
}

#[derive(Debug, Clone)]
pub enum FleetCommand {
    /// All of them or none.
    RegisterPlates {
        plates: Vec<(Placa, PlateStatus)>,
    },
    ChangePlateStatus {
        plate_id: i64,
        estado: PlateStatus,
    },
    /// Gives every `ACTIVADA` plate without a vehicle one (seed 000).
    Sync,
    /// `POST /vehiculo`: registers, or reactivates the deleted vehicle of that plate (seed 002).
    CreateVehicle {
        placa: Placa,
        fields: VehicleFields,
    },
    UpdateVehicle {
        vehicle_id: i64,
        changes: VehicleFields,
    },
    DeleteVehicle {
        vehicle_id: i64,
    },
    ScheduleMission {
        vehicle_id: i64,
        conductor_id: i64,
        descripcion: String,
        fecha_programada: NaiveDate,
    },
    StartMission {
        mission_id: i64,
        kilometraje_inicial: i64,
        combustible_inicial_galones: Decimal,
    },
    CompleteMission {
        mission_id: i64,
        kilometraje_final: i64,
        combustible_final_galones: Decimal,
    },
    CancelMission {
        mission_id: i64,
        motivo: String,
    },
}

// Events are built once per command and moved straight into the log; boxing the vehicle fields
// would only add an indirection to every fold.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FleetEvent {
    PlateRegistered {
        plate_id: i64,
        placa: Placa,
        estado: PlateStatus,
    },
    PlateStatusChanged {
        plate_id: i64,
        placa: Placa,
        anterior: PlateStatus,
        estado: PlateStatus,
    },
    VehicleSynced {
        vehicle_id: i64,
        plate_id: i64,
        placa: Placa,
        id_empresa: Option<i64>,
        id_operacion: Option<i64>,
    },
    VehicleRegistered {
        vehicle_id: i64,
        plate_id: i64,
        placa: Placa,
        fields: VehicleFields,
    },
    VehicleUpdated {
        vehicle_id: i64,
        placa: Placa,
        changes: VehicleFields,
        previous: VehicleFields,
    },
    VehicleDeleted {
        vehicle_id: i64,
        placa: Placa,
    },
    VehicleReactivated {
        vehicle_id: i64,
        plate_id: i64,
        placa: Placa,
        fields: VehicleFields,
    },
    MissionScheduled {
        mission_id: i64,
        vehicle_id: i64,
        conductor_id: i64,
        descripcion: String,
        fecha_programada: NaiveDate,
    },
    MissionStarted {
        mission_id: i64,
        vehicle_id: i64,
        kilometraje_inicial: i64,
        combustible_inicial_galones: Decimal,
    },
    MissionCompleted {
        mission_id: i64,
        vehicle_id: i64,
        kilometraje_final: i64,
        combustible_final_galones: Decimal,
        kilometraje_recorrido: i64,
        combustible_consumido_galones: Decimal,
    },
    MissionCancelled {
        mission_id: i64,
        vehicle_id: i64,
        anterior: MissionStatus,
        motivo: String,
    },
}

impl DomainEvent for FleetEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::PlateRegistered { .. } => "PlateRegistered",
            Self::PlateStatusChanged { .. } => "PlateStatusChanged",
            Self::VehicleSynced { .. } => "VehicleSynced",
            Self::VehicleRegistered { .. } => "VehicleRegistered",
            Self::VehicleUpdated { .. } => "VehicleUpdated",
            Self::VehicleDeleted { .. } => "VehicleDeleted",
            Self::VehicleReactivated { .. } => "VehicleReactivated",
            Self::MissionScheduled { .. } => "MissionScheduled",
            Self::MissionStarted { .. } => "MissionStarted",
            Self::MissionCompleted { .. } => "MissionCompleted",
            Self::MissionCancelled { .. } => "MissionCancelled",
        };
        name.to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("La placa {placa} ya está registrada")]
    PlateAlreadyRegistered { index: usize, placa: Placa },
    #[error("No se encontró la placa con ID {plate_id}")]
    PlateNotFound { plate_id: i64 },
    #[error("No se encontró el vehículo con ID {vehicle_id}")]
    VehicleNotFound { vehicle_id: i64 },
    #[error("El vehículo con ID {vehicle_id} ya está eliminado")]
    VehicleAlreadyDeleted { vehicle_id: i64 },
    #[error("El vehículo con ID {vehicle_id} está eliminado")]
    VehicleDeleted { vehicle_id: i64 },
    #[error("No se puede eliminar el vehículo con ID {vehicle_id} porque tiene misiones activas")]
    VehicleHasActiveMissions { vehicle_id: i64 },
    #[error("Ya existe un vehículo con la placa {placa}")]
    PlateHasLiveVehicle { placa: Placa },
    #[error("No se encontró la misión con ID {mission_id}")]
    MissionNotFound { mission_id: i64 },
    #[error("No se puede pasar la misión de {} a {}", from.as_str(), to.as_str())]
    MissionTransition {
        from: MissionStatus,
        to: MissionStatus,
    },
    #[error("El kilometraje inicial ({inicial}) no puede ser menor que el kilometraje actual del vehículo ({actual})")]
    StartBelowOdometer { inicial: i64, actual: i64 },
    #[error("El kilometraje final ({final_km}) no puede ser menor que el kilometraje inicial ({inicial})")]
    FinalBelowStart { final_km: i64, inicial: i64 },
    #[error("No hay placas para registrar")]
    NothingToRegister,
}

impl Fleet {
    pub fn plate(&self, plate_id: i64) -> Option<&PlateState> {
        self.plates.get(&plate_id)
    }

    pub fn vehicle(&self, vehicle_id: i64) -> Option<&VehicleState> {
        self.vehicles.get(&vehicle_id)
    }

    pub fn mission(&self, mission_id: i64) -> Option<&MissionState> {
        self.missions.get(&mission_id)
    }

    pub fn active_plate_count(&self) -> usize {
        self.plates
            .values()
            .filter(|p| p.estado == PlateStatus::Activada)
            .count()
    }

    fn live_vehicle(&self, vehicle_id: i64) -> Result<&VehicleState, FleetError> {
        let vehicle = self
            .vehicles
            .get(&vehicle_id)
            .ok_or(FleetError::VehicleNotFound { vehicle_id })?;
        if vehicle.deleted {
            return Err(FleetError::VehicleDeleted { vehicle_id });
        }
        Ok(vehicle)
    }

    fn mission_in(
        &self,
        mission_id: i64,
        to: MissionStatus,
        allowed: &[MissionStatus],
    ) -> Result<&MissionState, FleetError> {
        let mission = self
            .missions
            .get(&mission_id)
            .ok_or(FleetError::MissionNotFound { mission_id })?;
        if !allowed.contains(&mission.estado) {
            return Err(FleetError::MissionTransition {
                from: mission.estado,
                to,
            });
        }
        Ok(mission)
    }

    fn decide(&self, command: FleetCommand) -> Result<Vec<FleetEvent>, FleetError> {
        match command {
            FleetCommand::RegisterPlates { plates } => self.decide_register_plates(plates),
            FleetCommand::ChangePlateStatus { plate_id, estado } => {
                self.decide_change_plate_status(plate_id, estado)
            }
            FleetCommand::Sync => Ok(self.decide_sync()),
            FleetCommand::CreateVehicle { placa, fields } => {
                self.decide_create_vehicle(placa, fields)
            }
            FleetCommand::UpdateVehicle {
                vehicle_id,
                changes,
            } => self.decide_update_vehicle(vehicle_id, changes),
            FleetCommand::DeleteVehicle { vehicle_id } => self.decide_delete_vehicle(vehicle_id),
            FleetCommand::ScheduleMission {
                vehicle_id,
                conductor_id,
                descripcion,
                fecha_programada,
            } => self.decide_schedule_mission(
                vehicle_id,
                conductor_id,
                descripcion,
                fecha_programada,
            ),
            FleetCommand::StartMission {
                mission_id,
                kilometraje_inicial,
                combustible_inicial_galones,
            } => self.decide_start_mission(
                mission_id,
                kilometraje_inicial,
                combustible_inicial_galones,
            ),
            FleetCommand::CompleteMission {
                mission_id,
                kilometraje_final,
                combustible_final_galones,
            } => self.decide_complete_mission(
                mission_id,
                kilometraje_final,
                combustible_final_galones,
            ),
            FleetCommand::CancelMission { mission_id, motivo } => {
                self.decide_cancel_mission(mission_id, motivo)
            }
        }
    }

    /// Plates register all or none: refused if none are given, or one is taken or repeated.
    fn decide_register_plates(
        &self,
        plates: Vec<(Placa, PlateStatus)>,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        if plates.is_empty() {
            return Err(FleetError::NothingToRegister);
        }
        let mut seen = HashMap::new();
        let mut events = Vec::with_capacity(plates.len());
        for (index, (placa, estado)) in plates.into_iter().enumerate() {
            if self.plate_ids.contains_key(&placa) || seen.insert(placa.clone(), index).is_some() {
                return Err(FleetError::PlateAlreadyRegistered { index, placa });
            }
            let plate_id = self.last_plate_id + 1 + index as i64;
            events.push(FleetEvent::PlateRegistered {
                plate_id,
                placa,
                estado,
            });
        }
        Ok(events)
    }

    /// A known plate changes status; setting the status it already has changes nothing.
    fn decide_change_plate_status(
        &self,
        plate_id: i64,
        estado: PlateStatus,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let plate = self
            .plates
            .get(&plate_id)
            .ok_or(FleetError::PlateNotFound { plate_id })?;
        if plate.estado == estado {
            return Ok(Vec::new());
        }
        Ok(vec![FleetEvent::PlateStatusChanged {
            plate_id,
            placa: plate.placa.clone(),
            anterior: plate.estado,
            estado,
        }])
    }

    /// Sync creates exactly one vehicle for each `ACTIVADA` plate that has never had one.
    fn decide_sync(&self) -> Vec<FleetEvent> {
        let missing = self
            .plates
            .iter()
            .filter(|(_, p)| p.estado == PlateStatus::Activada && p.vehicle_id.is_none());
        missing
            .enumerate()
            .map(|(n, (plate_id, plate))| FleetEvent::VehicleSynced {
                vehicle_id: self.last_vehicle_id + 1 + n as i64,
                plate_id: *plate_id,
                placa: plate.placa.clone(),
                id_empresa: None,
                id_operacion: None,
            })
            .collect()
    }

    /// A plate has at most one vehicle, ever: create it (and the plate), reactivate it, or refuse.
    fn decide_create_vehicle(
        &self,
        placa: Placa,
        fields: VehicleFields,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let Some(plate_id) = self.plate_ids.get(&placa).copied() else {
            let plate_id = self.last_plate_id + 1;
            return Ok(vec![
                FleetEvent::PlateRegistered {
                    plate_id,
                    placa: placa.clone(),
                    estado: PlateStatus::Activada,
                },
                FleetEvent::VehicleRegistered {
                    vehicle_id: self.last_vehicle_id + 1,
                    plate_id,
                    placa,
                    fields,
                },
            ]);
        };
        match self.plates[&plate_id].vehicle_id {
            None => Ok(vec![FleetEvent::VehicleRegistered {
                vehicle_id: self.last_vehicle_id + 1,
                plate_id,
                placa,
                fields,
            }]),
            Some(vehicle_id) if self.vehicles[&vehicle_id].deleted => {
                // The body's fields win; what it leaves out keeps its value, so a
                // reactivation never loses data (an odometer must not go back to zero).
                let mut merged = self.vehicles[&vehicle_id].fields.clone();
                merged.merge(&fields);
                Ok(vec![FleetEvent::VehicleReactivated {
                    vehicle_id,
                    plate_id,
                    placa,
                    fields: merged,
                }])
            }

            Some(_) => Err(FleetError::PlateHasLiveVehicle { placa }),
        }
    }

    /// Only a live vehicle is updated, and only with the fields that actually change.
    fn decide_update_vehicle(
        &self,
        vehicle_id: i64,
        changes: VehicleFields,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let vehicle = self.live_vehicle(vehicle_id)?;
        let (changes, previous) = vehicle.fields.diff(&changes);
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![FleetEvent::VehicleUpdated {
            vehicle_id,
            placa: vehicle.placa.clone(),
            changes,
            previous,
        }])
    }

    /// A vehicle with an active mission cannot be deleted, nor one already deleted.
    fn decide_delete_vehicle(&self, vehicle_id: i64) -> Result<Vec<FleetEvent>, FleetError> {
        let vehicle = self
            .vehicles
            .get(&vehicle_id)
            .ok_or(FleetError::VehicleNotFound { vehicle_id })?;
        if vehicle.deleted {
            return Err(FleetError::VehicleAlreadyDeleted { vehicle_id });
        }
        if self
            .missions
            .values()
            .any(|m| m.vehicle_id == vehicle_id && m.estado.is_active())
        {
            return Err(FleetError::VehicleHasActiveMissions { vehicle_id });
        }
        Ok(vec![FleetEvent::VehicleDeleted {
            vehicle_id,
            placa: vehicle.placa.clone(),
        }])
    }

    /// A deleted vehicle cannot get a mission: only a live one is scheduled.
    fn decide_schedule_mission(
        &self,
        vehicle_id: i64,
        conductor_id: i64,
        descripcion: String,
        fecha_programada: NaiveDate,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        self.live_vehicle(vehicle_id)?;
        Ok(vec![FleetEvent::MissionScheduled {
            mission_id: self.last_mission_id + 1,
            vehicle_id,
            conductor_id,
            descripcion,
            fecha_programada,
        }])
    }

    /// A scheduled mission of a live vehicle starts, never below the vehicle's odometer.
    fn decide_start_mission(
        &self,
        mission_id: i64,
        kilometraje_inicial: i64,
        combustible_inicial_galones: Decimal,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let mission = self.mission_in(
            mission_id,
            MissionStatus::EnEjecucion,
            &[MissionStatus::Programada],
        )?;
        let vehicle = self.live_vehicle(mission.vehicle_id)?;
        let actual = vehicle.fields.kilometraje_actual.unwrap_or(0);
        if kilometraje_inicial < actual {
            return Err(FleetError::StartBelowOdometer {
                inicial: kilometraje_inicial,
                actual,
            });
        }
        Ok(vec![FleetEvent::MissionStarted {
            mission_id,
            vehicle_id: mission.vehicle_id,
            kilometraje_inicial,
            combustible_inicial_galones,
        }])
    }

    /// A mission in progress completes, never ending below the kilometraje it started at.
    fn decide_complete_mission(
        &self,
        mission_id: i64,
        kilometraje_final: i64,
        combustible_final_galones: Decimal,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let mission = self.mission_in(
            mission_id,
            MissionStatus::Completada,
            &[MissionStatus::EnEjecucion],
        )?;
        let inicial = mission.kilometraje_inicial.unwrap_or(0);
        if kilometraje_final < inicial {
            return Err(FleetError::FinalBelowStart {
                final_km: kilometraje_final,
                inicial,
            });
        }
        let combustible_inicial = mission.combustible_inicial_galones.unwrap_or_default();
        Ok(vec![FleetEvent::MissionCompleted {
            mission_id,
            vehicle_id: mission.vehicle_id,
            kilometraje_final,
            combustible_final_galones,
            kilometraje_recorrido: kilometraje_final - inicial,
            combustible_consumido_galones: combustible_inicial - combustible_final_galones,
        }])
    }

    /// Only an active mission (scheduled or in progress) can be cancelled.
    fn decide_cancel_mission(
        &self,
        mission_id: i64,
        motivo: String,
    ) -> Result<Vec<FleetEvent>, FleetError> {
        let mission = self.mission_in(
            mission_id,
            MissionStatus::Cancelada,
            &[MissionStatus::Programada, MissionStatus::EnEjecucion],
        )?;
        Ok(vec![FleetEvent::MissionCancelled {
            mission_id,
            vehicle_id: mission.vehicle_id,
            anterior: mission.estado,
            motivo,
        }])
    }
}

impl Aggregate for Fleet {
    const TYPE: &'static str = "fleet";
    type Command = FleetCommand;
    type Event = FleetEvent;
    type Error = FleetError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            FleetEvent::PlateRegistered {
                plate_id,
                placa,
                estado,
            } => {
                self.last_plate_id = self.last_plate_id.max(plate_id);
                self.plate_ids.insert(placa.clone(), plate_id);
                self.plates.insert(
                    plate_id,
                    PlateState {
                        placa,
                        estado,
                        vehicle_id: None,
                    },
                );
            }
            FleetEvent::PlateStatusChanged {
                plate_id, estado, ..
            } => {
                if let Some(plate) = self.plates.get_mut(&plate_id) {
                    plate.estado = estado;
                }
            }
            FleetEvent::VehicleSynced {
                vehicle_id,
                plate_id,
                placa,
                id_empresa,
                id_operacion,
            } => {
                let fields = VehicleFields {
                    id_empresa,
                    id_operacion,
                    ..Default::default()
                };
                self.bind_vehicle(vehicle_id, plate_id, placa, fields);
            }
            FleetEvent::VehicleRegistered {
                vehicle_id,
                plate_id,
                placa,
                fields,
            } => {
                self.bind_vehicle(vehicle_id, plate_id, placa, fields);
            }
            FleetEvent::VehicleUpdated {
                vehicle_id,
                changes,
                ..
            } => {
                if let Some(vehicle) = self.vehicles.get_mut(&vehicle_id) {
                    vehicle.fields.merge(&changes);
                }
            }
            FleetEvent::VehicleDeleted { vehicle_id, .. } => {
                if let Some(vehicle) = self.vehicles.get_mut(&vehicle_id) {
                    vehicle.deleted = true;
                }
            }
            FleetEvent::VehicleReactivated {
                vehicle_id, fields, ..
            } => {
                if let Some(vehicle) = self.vehicles.get_mut(&vehicle_id) {
                    vehicle.deleted = false;
                    vehicle.fields = fields;
                }
            }
            FleetEvent::MissionScheduled {
                mission_id,
                vehicle_id,
                ..
            } => {
                self.last_mission_id = self.last_mission_id.max(mission_id);
                self.missions.insert(
                    mission_id,
                    MissionState {
                        vehicle_id,
                        estado: MissionStatus::Programada,
                        kilometraje_inicial: None,
                        combustible_inicial_galones: None,
                    },
                );
            }
            FleetEvent::MissionStarted {
                mission_id,
                kilometraje_inicial,
                combustible_inicial_galones,
                ..
            } => {
                if let Some(mission) = self.missions.get_mut(&mission_id) {
                    mission.estado = MissionStatus::EnEjecucion;
                    mission.kilometraje_inicial = Some(kilometraje_inicial);
                    mission.combustible_inicial_galones = Some(combustible_inicial_galones);
                }
            }
            FleetEvent::MissionCompleted {
                mission_id,
                vehicle_id,
                kilometraje_final,
                ..
            } => {
                if let Some(mission) = self.missions.get_mut(&mission_id) {
                    mission.estado = MissionStatus::Completada;
                }
                if let Some(vehicle) = self.vehicles.get_mut(&vehicle_id) {
                    vehicle.fields.kilometraje_actual = Some(kilometraje_final);
                }
            }
            FleetEvent::MissionCancelled { mission_id, .. } => {
                if let Some(mission) = self.missions.get_mut(&mission_id) {
                    mission.estado = MissionStatus::Cancelada;
                }
            }
        }
    }
}

impl Fleet {
    fn bind_vehicle(
        &mut self,
        vehicle_id: i64,
        plate_id: i64,
        placa: Placa,
        fields: VehicleFields,
    ) {
        self.last_vehicle_id = self.last_vehicle_id.max(vehicle_id);
        if let Some(plate) = self.plates.get_mut(&plate_id) {
            plate.vehicle_id = Some(vehicle_id);
        }
        self.vehicles.insert(
            vehicle_id,
            VehicleState {
                plate_id,
                placa,
                deleted: false,
                fields,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(fleet: &mut Fleet, command: FleetCommand) -> Result<Vec<FleetEvent>, FleetError> {
        let events = fleet.decide(command)?;
        for event in &events {
            fleet.apply(event.clone());
        }
        Ok(events)
    }

    fn placa(n: u8) -> Placa {
        Placa::parse(&format!("P{n}")).unwrap()
    }

    #[derive(Debug, Clone)]
    enum Step {
        Register(u8, bool),
        Deactivate(i64),
        Sync,
        Create(u8),
        Delete(i64),
        Schedule(i64),
        Cancel(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..6, any::<bool>()).prop_map(|(n, active)| Step::Register(n, active)),
            (1i64..7).prop_map(Step::Deactivate),
            Just(Step::Sync),
            (0u8..6).prop_map(Step::Create),
            (1i64..7).prop_map(Step::Delete),
            (1i64..7).prop_map(Step::Schedule),
            (1i64..7).prop_map(Step::Cancel),
        ]
    }

    fn command(step: Step) -> FleetCommand {
        let estado = |active| {
            if active {
                PlateStatus::Activada
            } else {
                PlateStatus::Desactivada
            }
        };
        match step {
            Step::Register(n, active) => FleetCommand::RegisterPlates {
                plates: vec![(placa(n), estado(active))],
            },
            Step::Deactivate(plate_id) => FleetCommand::ChangePlateStatus {
                plate_id,
                estado: PlateStatus::Desactivada,
            },
            Step::Sync => FleetCommand::Sync,
            Step::Create(n) => FleetCommand::CreateVehicle {
                placa: placa(n),
                fields: VehicleFields::default(),
            },
            Step::Delete(vehicle_id) => FleetCommand::DeleteVehicle { vehicle_id },
            Step::Schedule(vehicle_id) => FleetCommand::ScheduleMission {
                vehicle_id,
                conductor_id: 1,
                descripcion: "Ruta".into(),
                fecha_programada: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            },
            Step::Cancel(mission_id) => FleetCommand::CancelMission {
                mission_id,
                motivo: "x".into(),
            },
        }
    }

    proptest! {
        /// Whatever operators do, in whatever order: a plate has at most one vehicle, no deleted
        /// vehicle has an active mission, a sync leaves every active plate with a vehicle, and
        /// replaying the recorded events rebuilds exactly the state the commands produced.
        #[test]
        fn fleet_rules_hold_for_any_history(steps in proptest::collection::vec(step(), 1..60)) {
            let mut fleet = Fleet::default();
            let mut history = Vec::new();
            for step in steps {
                let is_sync = matches!(step, Step::Sync);
                if let Ok(events) = run(&mut fleet, command(step)) {
                    history.extend(events);
                }
                if is_sync {
                    prop_assert!(fleet.plates.values().all(|p| p.estado != PlateStatus::Activada || p.vehicle_id.is_some()));
                }
                let mut plates_with_vehicles: Vec<i64> = fleet.vehicles.values().map(|v| v.plate_id).collect();
                let vehicles = plates_with_vehicles.len();
                plates_with_vehicles.sort_unstable();
                plates_with_vehicles.dedup();
                prop_assert_eq!(plates_with_vehicles.len(), vehicles, "a plate never gets two vehicles");
                for (id, vehicle) in &fleet.vehicles {
                    if vehicle.deleted {
                        prop_assert!(!fleet.missions.values().any(|m| m.vehicle_id == *id && m.estado.is_active()));
                    }
                }
            }
            let mut replayed = Fleet::default();
            for event in history {
                replayed.apply(event);
            }
            prop_assert_eq!(serde_json::to_value(&replayed).unwrap(), serde_json::to_value(&fleet).unwrap());
        }
    }
}
