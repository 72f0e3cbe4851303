//! Random station histories for the property tests: the events the station aggregate decides
//! for random operations, as the log would record them.

use std::collections::BTreeMap;

use aggregates::fuel::{
    Concepto, FuelCommand, FuelEvent, FuelRecord, FuelStation, RecordAsRead, TipoOperacion,
};
use chrono::{NaiveDate, TimeZone, Utc};
use cqrs_es::Aggregate;
use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::{decode, Recorded};

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Anticipo(i64, u32),
    Tanqueo(i64, u32),
    /// A new amount for one of the records, and maybe a new date.
    Correct(usize, i64, Option<u32>),
    Void(usize),
    /// A change of the station's overdraft policy: no movement, so no balance changes.
    Policy(bool),
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    // Amounts in cents, so decimals with two places are exercised.
    prop_oneof![
        (1i64..10_000_000, 1u32..28).prop_map(|(c, d)| Op::Anticipo(c, d)),
        (1i64..10_000_000, 1u32..28).prop_map(|(c, d)| Op::Tanqueo(c, d)),
        (0usize..20, 0i64..10_000_000, proptest::option::of(1u32..28))
            .prop_map(|(i, c, d)| Op::Correct(i, c, d)),
        (0usize..20).prop_map(Op::Void),
        any::<bool>().prop_map(Op::Policy),
    ]
}

pub(crate) fn record(id: i64, tipo: TipoOperacion, cents: i64, day: u32) -> FuelRecord {
    let valor = Some(Decimal::new(cents, 2));
    FuelRecord {
        id,
        fecha: NaiveDate::from_ymd_opt(2024, 3, day).unwrap(),
        bomba_id: 7,
        area_operacion_id: 1,
        concepto: Concepto::Operativo,
        tipo_operacion: tipo,
        observacion: None,
        saldo_disponible: None,
        conductor_id: None,
        placa_id: None,
        tipo_combustible: None,
        valor_tanqueo: if tipo == TipoOperacion::Tanqueo {
            valor
        } else {
            None
        },
        cantidad_galones: None,
        costo_por_galon: None,
        horometro: None,
        valor_anticipo: if tipo == TipoOperacion::Anticipo {
            valor
        } else {
            None
        },
    }
}

/// Runs `ops` on a station and answers its recorded events and the aggregate.
pub(crate) fn history(ops: Vec<Op>) -> (Vec<Recorded>, FuelStation) {
    let mut station = FuelStation::default();
    // The records as a reader sees them: what corrections and voids are made from.
    let mut live: BTreeMap<i64, FuelRecord> = BTreeMap::new();
    let mut events = Vec::new();
    let mut ids = Vec::new();
    let start = Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap();
    for op in ops {
        let command = match op {
            Op::Anticipo(cents, day) | Op::Tanqueo(cents, day) => {
                let tipo = if matches!(op, Op::Anticipo(..)) {
                    TipoOperacion::Anticipo
                } else {
                    TipoOperacion::Tanqueo
                };
                let id = ids.len() as i64 + 1;
                ids.push(id);
                FuelCommand::Record {
                    record: record(id, tipo, cents, day),
                    registered_policy: true,
                    inherited: Default::default(),
                }
            }
            Op::Correct(index, cents, day) if !ids.is_empty() => {
                let id = ids[index % ids.len()];
                let Some(current) = live.get(&id) else {
                    continue;
                };
                let mut corrected = current.clone();
                let amount = Some(Decimal::new(cents, 2));
                if let Some(day) = day {
                    corrected.fecha = NaiveDate::from_ymd_opt(2024, 3, day).unwrap();
                }
                match corrected.tipo_operacion {
                    TipoOperacion::Anticipo => corrected.valor_anticipo = amount,
                    TipoOperacion::Tanqueo => corrected.valor_tanqueo = amount,
                }
                FuelCommand::Correct {
                    antes: RecordAsRead {
                        record: current.clone(),
                        voided: false,
                        // The reader is current: it has seen every event so far.
                        folded_through: Some(station.version()),
                    },
                    corrected,
                    registered_policy: true,
                    inherited: Default::default(),
                }
            }
            Op::Void(index) if !ids.is_empty() => {
                let Some(current) = live.get(&ids[index % ids.len()]) else {
                    continue;
                };
                FuelCommand::Void {
                    antes: RecordAsRead {
                        record: current.clone(),
                        voided: false,
                        // The reader is current: it has seen every event so far.
                        folded_through: Some(station.version()),
                    },
                    motivo: "x".into(),
                    registered_policy: true,
                    inherited: Default::default(),
                }
            }
            Op::Policy(permitir) => FuelCommand::ChangeOverdraftPolicy {
                bomba_id: 7,
                permitir_saldo_negativo: permitir,
            },

            _ => continue,
        };
        let Ok(decided) = station.decide(command) else {
            continue;
        };
        for event in decided {
            match &event {
                FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                    live.insert(record.id, record.clone());
                }
                FuelEvent::TanqueoCorrected { id, despues, .. } => {
                    live.insert(*id, despues.clone());
                }
                FuelEvent::TanqueoVoided { id, .. } => {
                    live.remove(id);
                }
                FuelEvent::OverdraftPolicyChanged { .. }
                | FuelEvent::PeriodClosed { .. }
                | FuelEvent::PeriodReopened { .. } => {}
            }
            station.apply(event.clone());
            let (event_type, payload) = aggregates::codec::encode(&event).unwrap();
            let position = events.len() as i64 + 1;
            events.push(Recorded {
                position,
                stream_type: FuelStation::TYPE.into(),
                stream_id: "7".into(),
                version: position,
                schema_version: aggregates::upcast::REGISTRY.current_version(&event_type),
                event_type,
                payload,
                actor: None,
                recorded_at: start + chrono::Duration::seconds(position),
            });
        }
    }
    (events, station)
}

/// The same history with record ids that do not arrive in increasing order, and with a
/// reported balance on two records in three (twice the record's amount, so a correction
/// changes it too).
pub(crate) fn with_scrambled_ids_and_reports(events: Vec<Recorded>) -> Vec<Recorded> {
    // 37 is invertible modulo the prime 101, and the histories have fewer than 101 ids.
    let scramble = |record: &mut FuelRecord| {
        record.id = record.id * 37 % 101;
        record.saldo_disponible = (record.id % 3 != 0)
            .then(|| record.valor_anticipo.or(record.valor_tanqueo))
            .flatten()
            .map(|valor| valor * Decimal::TWO);
    };
    events
        .into_iter()
        .map(|mut event| {
            let rewritten = match decode::<FuelEvent>(&event).unwrap() {
                FuelEvent::TanqueoRecorded { mut record } => {
                    scramble(&mut record);
                    FuelEvent::TanqueoRecorded { record }
                }
                FuelEvent::AnticipoPaid { mut record } => {
                    scramble(&mut record);
                    FuelEvent::AnticipoPaid { record }
                }
                FuelEvent::TanqueoCorrected {
                    mut antes,
                    mut despues,
                    ..
                } => {
                    scramble(&mut antes);
                    scramble(&mut despues);
                    FuelEvent::TanqueoCorrected {
                        id: despues.id,
                        antes,
                        despues,
                    }
                }
                FuelEvent::TanqueoVoided {
                    motivo,
                    mut record,
                    efecto_saldo,
                    ..
                } => {
                    scramble(&mut record);
                    FuelEvent::TanqueoVoided {
                        id: record.id,
                        motivo,
                        record,
                        efecto_saldo,
                    }
                }
                other @ (FuelEvent::OverdraftPolicyChanged { .. }
                | FuelEvent::PeriodClosed { .. }
                | FuelEvent::PeriodReopened { .. }) => other,
            };
            event.payload = aggregates::codec::encode(&rewritten).unwrap().1;
            event
        })
        .collect()
}

/// Stamps each event `seconds` after the one before (cycling through them): with 0 the
/// instant repeats, as for the events of one commit; below 0 the clock stepped back.
pub(crate) fn restamped(mut events: Vec<Recorded>, seconds: &[i64]) -> Vec<Recorded> {
    let mut at = Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap();
    for (event, step) in events.iter_mut().zip(seconds.iter().cycle()) {
        at += chrono::Duration::seconds(*step);
        event.recorded_at = at;
    }
    events
}
