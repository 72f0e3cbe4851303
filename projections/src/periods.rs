//! The monthly closes (issue 16) as rows: `rm_cierres`, one per month ever closed for every
//! station, and `rm_cierres_bombas`, one per month and station that a close named or that
//! closed the month in its own stream, with the station's closing figures.
//!
//! A close is recorded first in the registry's stream (naming the stations it covers), then in
//! each station's stream (see `aggregates::period`). The rows keep both, so a reader can tell a
//! month whose every station is locked from one a close stopped half way through (`PARCIAL`).

use aggregates::fuel::{FuelEvent, FuelStation};
use aggregates::registry::{StationEvent, Stations};
use cqrs_es::Aggregate;

use crate::{decode, flag, instant, int, text, Change, FoldError, Projection, Recorded, Row};

pub const MONTHS: &str = "rm_cierres";
pub const STATIONS: &str = "rm_cierres_bombas";

pub struct PeriodsProjection;

fn month_key(anio: i32, mes: u32) -> Row {
    vec![("anio", int(i64::from(anio))), ("mes", int(i64::from(mes)))]
}

fn station_key(anio: i32, mes: u32, bomba_id: i64) -> Row {
    let mut key = month_key(anio, mes);
    key.push(("bomba_id", int(bomba_id)));
    key
}

/// Exact decimal text, as every amount of the read models.
fn amount(value: rust_decimal::Decimal) -> crate::Cell {
    text(value.normalize().to_string())
}

impl Projection for PeriodsProjection {
    fn name(&self) -> &'static str {
        "cierres"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[MONTHS, STATIONS]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        let by = text(event.actor.clone());
        let at = instant(&event.recorded_at);
        if event.stream_type == Stations::TYPE {
            // Registrations and updates are the `registros` read model's; skipped undecoded.
            if !event.event_type.starts_with("AccountingPeriod") {
                return Ok(Vec::new());
            }
            let changes = match decode::<StationEvent>(event)? {
                StationEvent::AccountingPeriodClosed { anio, mes, bombas } => {
                    let mut changes = vec![Change::Upsert {
                        table: MONTHS,
                        key: month_key(anio, mes),
                        values: vec![
                            ("cerrado", flag(true)),
                            ("bombas", int(bombas.len() as i64)),
                            ("cerrado_por", by),
                            ("cerrado_en", at),
                        ],
                    }];
                    changes.extend(bombas.into_iter().map(|bomba_id| Change::Upsert {
                        table: STATIONS,
                        key: station_key(anio, mes, bomba_id),
                        values: vec![("en_cierre", flag(true))],
                    }));
                    changes
                }
                StationEvent::AccountingPeriodReopened {
                    anio,
                    mes,
                    motivo,
                    bombas,
                } => {
                    let mut changes = vec![Change::Upsert {
                        table: MONTHS,
                        key: month_key(anio, mes),
                        values: vec![
                            ("cerrado", flag(false)),
                            ("reabierto_por", by),
                            ("reabierto_en", at),
                            ("motivo_reapertura", text(motivo)),
                        ],
                    }];
                    changes.extend(bombas.into_iter().map(|bomba_id| Change::Update {
                        table: STATIONS,
                        key: station_key(anio, mes, bomba_id),
                        values: vec![("en_cierre", flag(false))],
                    }));
                    changes
                }
                StationEvent::StationRegistered { .. } | StationEvent::StationUpdated { .. } => {
                    Vec::new()
                }
            };
            return Ok(changes);
        }
        if event.stream_type != FuelStation::TYPE || !event.event_type.starts_with("Period") {
            return Ok(Vec::new());
        }
        let change = match decode::<FuelEvent>(event)? {
            FuelEvent::PeriodClosed {
                bomba_id,
                anio,
                mes,
                saldo_cierre,
                registros,
                total_tanqueos,
                total_anticipos,
            } => Change::Upsert {
                table: STATIONS,
                key: station_key(anio, mes, bomba_id),
                values: vec![
                    ("cerrado", flag(true)),
                    ("saldo_cierre", amount(saldo_cierre)),
                    ("registros", int(registros)),
                    ("total_tanqueos", amount(total_tanqueos)),
                    ("total_anticipos", amount(total_anticipos)),
                    ("cerrado_por", by),
                    ("cerrado_en", at),
                ],
            },
            FuelEvent::PeriodReopened {
                bomba_id,
                anio,
                mes,
                ..
            } => Change::Upsert {
                table: STATIONS,
                key: station_key(anio, mes, bomba_id),
                values: vec![("cerrado", flag(false))],
            },
            _ => return Ok(Vec::new()),
        };
        Ok(vec![change])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryModel;
    use aggregates::codec;
    use chrono::Utc;
    use rust_decimal::Decimal;

    fn recorded(stream_type: &str, event: &impl serde::Serialize) -> Recorded {
        let (event_type, payload) = codec::encode(event).unwrap();
        Recorded {
            position: 1,
            stream_type: stream_type.into(),
            stream_id: "x".into(),
            version: 1,
            event_type,
            schema_version: 1,
            payload,
            actor: Some("contador@flota.co".into()),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn a_close_names_its_stations_and_each_station_adds_its_figures() {
        let events = [
            recorded(
                Stations::TYPE,
                &StationEvent::AccountingPeriodClosed {
                    anio: 2026,
                    mes: 1,
                    bombas: vec![1, 2],
                },
            ),
            recorded(
                FuelStation::TYPE,
                &FuelEvent::PeriodClosed {
                    bomba_id: 1,
                    anio: 2026,
                    mes: 1,
                    saldo_cierre: Decimal::new(1210, 2),
                    registros: 3,
                    total_tanqueos: Decimal::new(5, 0),
                    total_anticipos: Decimal::new(1710, 2),
                },
            ),
        ];
        let model = MemoryModel::replay(&PeriodsProjection, &events).unwrap();
        let stations = &model.tables[STATIONS];
        assert_eq!(stations.len(), 2);
        let first = &stations[&vec![int(2026), int(1), int(1)]];
        assert_eq!(first["cerrado"], flag(true));
        assert_eq!(first["saldo_cierre"], text("12.1".to_string()));
        let second = &stations[&vec![int(2026), int(1), int(2)]];
        assert_eq!(second["en_cierre"], flag(true));
        assert_eq!(
            second.get("cerrado"),
            None,
            "not reached yet: the month is partial"
        );
        assert_eq!(model.tables[MONTHS].len(), 1);
    }
}
