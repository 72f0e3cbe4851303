//! Plates, vehicles and missions as read-model rows. `MisionesActivas` is not stored: it is
//! counted from the missions table when a vehicle is read, so it can never drift.

use aggregates::fleet::{Fleet, FleetEvent, MissionStatus, VehicleFields};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;

use crate::{decode, flag, instant, int, text, Cell, Change, FoldError, Projection, Recorded, Row};

pub const PLATES: &str = "rm_placas";
pub const VEHICLES: &str = "rm_vehiculos";
pub const MISSIONS: &str = "rm_misiones";

pub struct FleetProjection;

fn decimal(value: Option<Decimal>) -> Cell {
    Cell::Text(value.map(|d| d.to_string()))
}

fn date(value: Option<chrono::NaiveDate>) -> Cell {
    Cell::Text(value.map(|d| d.format("%Y-%m-%d").to_string()))
}

/// The vehicle columns for `fields`: every column when `all` (absent fields become NULL), else
/// only the fields that are set.
fn vehicle_columns(fields: &VehicleFields, all: bool) -> Row {
    let columns: Row = vec![
        ("id_clase_vehiculo", int(fields.id_clase_vehiculo)),
        ("id_estado_vehiculo", int(fields.id_estado_vehiculo)),
        ("id_tipo_combustible", int(fields.id_tipo_combustible)),
        (
            "id_motorista_por_defecto",
            int(fields.id_motorista_por_defecto),
        ),
        (
            "id_departamento_asignado",
            int(fields.id_departamento_asignado),
        ),
        ("marca", text(fields.marca.clone())),
        ("modelo", text(fields.modelo.clone())),
        ("anio", int(fields.anio)),
        ("color", text(fields.color.clone())),
        ("numero_motor", text(fields.numero_motor.clone())),
        ("numero_chasis", text(fields.numero_chasis.clone())),
        ("numero_vin", text(fields.numero_vin.clone())),
        ("capacidad_pasajeros", int(fields.capacidad_pasajeros)),
        (
            "capacidad_combustible_galones",
            decimal(fields.capacidad_combustible_galones),
        ),
        ("kilometraje_actual", int(fields.kilometraje_actual)),
        ("fecha_ultima_revision", date(fields.fecha_ultima_revision)),
        (
            "fecha_proximo_mantenimiento",
            date(fields.fecha_proximo_mantenimiento),
        ),
        (
            "fecha_tarjeta_circulacion",
            date(fields.fecha_tarjeta_circulacion),
        ),
        (
            "numero_poliza_seguro",
            text(fields.numero_poliza_seguro.clone()),
        ),
        (
            "fecha_vencimiento_seguro",
            date(fields.fecha_vencimiento_seguro),
        ),
        ("observaciones", text(fields.observaciones.clone())),
        ("id_empresa", int(fields.id_empresa)),
        ("id_operacion", int(fields.id_operacion)),
    ];
    if all {
        return columns;
    }
    columns
        .into_iter()
        .filter(|(_, cell)| !matches!(cell, Cell::Int(None) | Cell::Text(None)))
        .collect()
}

fn new_vehicle(
    event: &Recorded,
    vehicle_id: i64,
    plate_id: i64,
    placa: String,
    fields: &VehicleFields,
) -> Vec<Change> {
    let mut values: Row = vec![
        ("placa_id", int(plate_id)),
        ("placa", text(placa)),
        ("eliminado", flag(false)),
        ("creado_en", instant(&event.recorded_at)),
        ("actualizado_en", instant(&event.recorded_at)),
    ];
    values.extend(vehicle_columns(fields, true));
    vec![
        Change::Upsert {
            table: VEHICLES,
            key: vec![("id", int(vehicle_id))],
            values,
        },
        Change::Update {
            table: PLATES,
            key: vec![("id", int(plate_id))],
            values: vec![("vehiculo_id", int(vehicle_id))],
        },
    ]
}

fn update_vehicle(event: &Recorded, vehicle_id: i64, mut values: Row) -> Change {
    values.push(("actualizado_en", instant(&event.recorded_at)));
    Change::Update {
        table: VEHICLES,
        key: vec![("id", int(vehicle_id))],
        values,
    }
}

fn update_mission(
    event: &Recorded,
    mission_id: i64,
    estado: MissionStatus,
    mut values: Row,
) -> Change {
    values.push(("estado", text(estado.as_str().to_string())));
    values.push(("actualizado_en", instant(&event.recorded_at)));
    Change::Update {
        table: MISSIONS,
        key: vec![("id", int(mission_id))],
        values,
    }
}

impl Projection for FleetProjection {
    fn name(&self) -> &'static str {
        "flota"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[PLATES, VEHICLES, MISSIONS]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != Fleet::TYPE {
            return Ok(Vec::new());
        }
        let changes = match decode::<FleetEvent>(event)? {
            FleetEvent::PlateRegistered {
                plate_id,
                placa,
                estado,
            } => vec![Change::Upsert {
                table: PLATES,
                key: vec![("id", int(plate_id))],
                values: vec![
                    ("placa", text(placa.to_string())),
                    ("estado", text(estado.as_str().to_string())),
                    ("vehiculo_id", int(None)),
                ],
            }],
            FleetEvent::PlateStatusChanged {
                plate_id, estado, ..
            } => vec![Change::Update {
                table: PLATES,
                key: vec![("id", int(plate_id))],
                values: vec![("estado", text(estado.as_str().to_string()))],
            }],
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
                new_vehicle(event, vehicle_id, plate_id, placa.to_string(), &fields)
            }
            FleetEvent::VehicleRegistered {
                vehicle_id,
                plate_id,
                placa,
                fields,
            } => new_vehicle(event, vehicle_id, plate_id, placa.to_string(), &fields),
            FleetEvent::VehicleUpdated {
                vehicle_id,
                changes,
                ..
            } => {
                vec![update_vehicle(
                    event,
                    vehicle_id,
                    vehicle_columns(&changes, false),
                )]
            }
            FleetEvent::VehicleDeleted { vehicle_id, .. } => {
                vec![update_vehicle(
                    event,
                    vehicle_id,
                    vec![("eliminado", flag(true))],
                )]
            }
            FleetEvent::VehicleReactivated {
                vehicle_id, fields, ..
            } => {
                let mut values = vehicle_columns(&fields, true);
                values.push(("eliminado", flag(false)));
                vec![update_vehicle(event, vehicle_id, values)]
            }
            FleetEvent::MissionScheduled {
                mission_id,
                vehicle_id,
                conductor_id,
                descripcion,
                fecha_programada,
            } => {
                vec![Change::Upsert {
                    table: MISSIONS,
                    key: vec![("id", int(mission_id))],
                    values: vec![
                        ("vehiculo_id", int(vehicle_id)),
                        ("conductor_id", int(conductor_id)),
                        ("descripcion", text(descripcion)),
                        ("fecha_programada", date(Some(fecha_programada))),
                        (
                            "estado",
                            text(MissionStatus::Programada.as_str().to_string()),
                        ),
                        ("creado_en", instant(&event.recorded_at)),
                        ("actualizado_en", instant(&event.recorded_at)),
                    ],
                }]
            }
            FleetEvent::MissionStarted {
                mission_id,
                kilometraje_inicial,
                combustible_inicial_galones,
                ..
            } => {
                vec![update_mission(
                    event,
                    mission_id,
                    MissionStatus::EnEjecucion,
                    vec![
                        ("kilometraje_inicial", int(kilometraje_inicial)),
                        (
                            "combustible_inicial_galones",
                            decimal(Some(combustible_inicial_galones)),
                        ),
                    ],
                )]
            }
            FleetEvent::MissionCompleted {
                mission_id,
                vehicle_id,
                kilometraje_final,
                combustible_final_galones,
                kilometraje_recorrido,
                combustible_consumido_galones,
            } => vec![
                update_mission(
                    event,
                    mission_id,
                    MissionStatus::Completada,
                    vec![
                        ("kilometraje_final", int(kilometraje_final)),
                        (
                            "combustible_final_galones",
                            decimal(Some(combustible_final_galones)),
                        ),
                        ("kilometraje_recorrido", int(kilometraje_recorrido)),
                        (
                            "combustible_consumido_galones",
                            decimal(Some(combustible_consumido_galones)),
                        ),
                    ],
                ),
                update_vehicle(
                    event,
                    vehicle_id,
                    vec![("kilometraje_actual", int(kilometraje_final))],
                ),
            ],
            FleetEvent::MissionCancelled {
                mission_id, motivo, ..
            } => vec![update_mission(
                event,
                mission_id,
                MissionStatus::Cancelada,
                vec![("motivo_cancelacion", text(motivo))],
            )],
        };
        Ok(changes)
    }
}
