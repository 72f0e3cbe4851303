//! Drivers, fuel stations and vehicle catalogues as read-model rows.

use aggregates::fuel::{FuelEvent, FuelStation};
use aggregates::registry::{CatalogEvent, DriverEvent, StationEvent};
use cqrs_es::Aggregate;

use crate::{decode, flag, instant, int, text, Change, FoldError, Projection, Recorded, Row};

pub const DRIVERS: &str = "rm_conductores";
pub const STATIONS: &str = "rm_bombas";
pub const CATALOGS: &str = "rm_catalogos";

pub struct RegistryProjection;

impl Projection for RegistryProjection {
    fn name(&self) -> &'static str {
        "registros"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[DRIVERS, STATIONS, CATALOGS]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        let stream = event.stream_type.as_str();
        let change = if stream == aggregates::registry::Drivers::TYPE {
            let DriverEvent::DriverRegistered {
                id,
                conductor,
                area_principal,
            } = decode(event)?;
            Change::Upsert {
                table: DRIVERS,
                key: vec![("id", int(id))],
                values: vec![
                    ("conductor", text(conductor)),
                    ("area_principal", int(area_principal)),
                    ("creado_en", instant(&event.recorded_at)),
                ],
            }
        } else if stream == aggregates::registry::Stations::TYPE {
            match decode(event)? {
                StationEvent::StationRegistered {
                    id,
                    bomba,
                    area_operacion_id,
                    permitir_saldo_negativo,
                } => Change::Upsert {
                    table: STATIONS,
                    key: vec![("id", int(id))],
                    values: vec![
                        ("bomba", text(bomba)),
                        ("area_operacion_id", int(area_operacion_id)),
                        ("permitir_saldo_negativo", flag(permitir_saldo_negativo)),
                        ("creado_en", instant(&event.recorded_at)),
                        ("actualizado_en", instant(&event.recorded_at)),
                    ],
                },
                StationEvent::StationUpdated { id, changes } => {
                    let mut values: Row = vec![("actualizado_en", instant(&event.recorded_at))];
                    if let Some(bomba) = changes.bomba {
                        values.push(("bomba", text(bomba)));
                    }
                    if let Some(area) = changes.area_operacion_id {
                        values.push(("area_operacion_id", int(area)));
                    }
                    if let Some(permitir) = changes.permitir_saldo_negativo {
                        values.push(("permitir_saldo_negativo", flag(permitir)));
                    }
                    Change::Update {
                        table: STATIONS,
                        key: vec![("id", int(id))],
                        values,
                    }
                }
                // Closes and reopens are the `cierres` read model's (`crate::periods`).
                StationEvent::AccountingPeriodClosed { .. }
                | StationEvent::AccountingPeriodReopened { .. } => return Ok(Vec::new()),
            }
        } else if stream == FuelStation::TYPE {
            // The policy lives in the station's own stream (see `aggregates::fuel`); the list of
            // stations shows it. Refuels are skipped by type, without decoding them.
            if FuelEvent::moves_balance(&event.event_type) {
                return Ok(Vec::new());
            }
            let FuelEvent::OverdraftPolicyChanged {
                bomba_id,
                permitir_saldo_negativo,
            } = decode(event)?
            else {
                return Ok(Vec::new());
            };
            Change::Update {
                table: STATIONS,
                key: vec![("id", int(bomba_id))],
                values: vec![
                    ("permitir_saldo_negativo", flag(permitir_saldo_negativo)),
                    ("actualizado_en", instant(&event.recorded_at)),
                ],
            }
        } else if stream == aggregates::registry::Catalog::TYPE {
            let CatalogEvent::CatalogEntryAdded {
                catalogo,
                id,
                nombre,
            } = decode(event)?;
            Change::Upsert {
                table: CATALOGS,
                key: vec![("catalogo", text(catalogo)), ("id", int(id))],
                values: vec![("nombre", text(nombre))],
            }
        } else {
            return Ok(Vec::new());
        };
        Ok(vec![change])
    }
}
