//! The fuel ledger's read models: the `tanqueo` table (seed 004) and, as a pure fold over a
//! station's events, its balance on either time axis.

use std::collections::BTreeMap;

use aggregates::fuel::{FuelEvent, FuelRecord, FuelStation, TipoOperacion};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;

use crate::{decode, flag, instant, int, text, Cell, Change, FoldError, Projection, Recorded, Row};

pub const TANQUEOS: &str = "rm_tanqueos";

pub struct FuelLedgerProjection;

fn decimal(value: Option<Decimal>) -> Cell {
    Cell::Text(value.map(|d| d.to_string()))
}

/// Every column of the record, as `POST /api/tanqueos` answers it.
fn record_columns(record: &FuelRecord) -> Row {
    vec![
        ("fecha", text(record.fecha.format("%Y-%m-%d").to_string())),
        ("conductor_id", int(record.conductor_id)),
        ("placa_id", int(record.placa_id)),
        ("bomba_id", int(record.bomba_id)),
        ("area_operacion_id", int(record.area_operacion_id)),
        ("tipo_combustible", text(record.tipo_combustible.clone())),
        ("valor_tanqueo", decimal(record.valor_tanqueo)),
        ("cantidad_galones", decimal(record.cantidad_galones)),
        ("costo_por_galon", decimal(record.costo_por_galon)),
        ("horometro", decimal(record.horometro)),
        ("valor_anticipo", decimal(record.valor_anticipo)),
        ("saldo_disponible", decimal(record.saldo_disponible)),
        ("concepto", text(record.concepto.as_str().to_string())),
        (
            "tipo_operacion",
            text(record.tipo_operacion.as_str().to_string()),
        ),
        ("observacion", text(record.observacion.clone())),
    ]
}

impl Projection for FuelLedgerProjection {
    fn name(&self) -> &'static str {
        "tanqueos"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TANQUEOS]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != FuelStation::TYPE {
            return Ok(Vec::new());
        }
        let change = match decode::<FuelEvent>(event)? {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                let mut values = record_columns(&record);
                values.extend([
                    ("creado_por", text(event.actor.clone())),
                    ("creado_en", instant(&event.recorded_at)),
                    ("actualizado_por", text(None)),
                    ("actualizado_en", text(None)),
                    ("anulado", flag(false)),
                    ("motivo_anulacion", text(None)),
                ]);
                Change::Upsert {
                    table: TANQUEOS,
                    key: vec![("id", int(record.id))],
                    values,
                }
            }
            FuelEvent::TanqueoCorrected { id, despues, .. } => {
                let mut values = record_columns(&despues);
                values.extend([
                    ("actualizado_por", text(event.actor.clone())),
                    ("actualizado_en", instant(&event.recorded_at)),
                ]);
                Change::Update {
                    table: TANQUEOS,
                    key: vec![("id", int(id))],
                    values,
                }
            }
            FuelEvent::TanqueoVoided { id, motivo, .. } => Change::Update {
                table: TANQUEOS,
                key: vec![("id", int(id))],
                values: vec![
                    ("anulado", flag(true)),
                    ("motivo_anulacion", text(motivo)),
                    ("actualizado_por", text(event.actor.clone())),
                    ("actualizado_en", instant(&event.recorded_at)),
                ],
            },
        };
        Ok(vec![change])
    }
}

/// A station's balance: Σ anticipos − Σ tanqueos over its live records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationBalance {
    pub saldo: Decimal,
    pub total_anticipos: Decimal,
    pub total_tanqueos: Decimal,
    pub movimientos: i64,
    /// The latest `fecha` among the counted movements.
    pub ultimo_movimiento: Option<NaiveDate>,
    /// The `saldo_disponible` the station last reported (latest by `fecha`, then id).
    pub ultimo_saldo_reportado: Option<Decimal>,
    /// When the ledger last recorded anything for the station.
    pub ultima_actualizacion: Option<DateTime<Utc>>,
}

/// Folds a station's events into its balance as the ledger knew it at `as_of` (later events,
/// corrections and voids included, are ignored), counting only movements dated on or before
/// `fecha_corte`.
pub fn station_balance(
    events: &[Recorded],
    as_of: Option<DateTime<Utc>>,
    fecha_corte: Option<NaiveDate>,
) -> Result<StationBalance, FoldError> {
    let known = events
        .iter()
        .take_while(|e| as_of.is_none_or(|as_of| e.recorded_at <= as_of))
        .count();
    let live = live_records(&events[..known])?;
    let mut balance = StationBalance {
        ultima_actualizacion: events[..known].last().map(|e| e.recorded_at),
        ..StationBalance::default()
    };

    let mut reported: Option<(NaiveDate, i64, Decimal)> = None;
    for record in live
        .values()
        .filter(|r| fecha_corte.is_none_or(|corte| r.fecha <= corte))
    {
        match record.tipo_operacion {
            TipoOperacion::Anticipo => {
                balance.total_anticipos += record.valor_anticipo.unwrap_or_default()
            }
            TipoOperacion::Tanqueo => {
                balance.total_tanqueos += record.valor_tanqueo.unwrap_or_default()
            }
        }
        balance.movimientos += 1;
        balance.ultimo_movimiento = balance.ultimo_movimiento.max(Some(record.fecha));
        if let Some(saldo) = record.saldo_disponible {
            if reported.is_none_or(|(fecha, id, _)| (record.fecha, record.id) > (fecha, id)) {
                reported = Some((record.fecha, record.id, saldo));
            }
        }
    }
    // Computed amounts are written without trailing zeros (`19`, not `19.0`); inputs keep theirs.
    balance.total_anticipos = balance.total_anticipos.normalize();
    balance.total_tanqueos = balance.total_tanqueos.normalize();
    balance.saldo = (balance.total_anticipos - balance.total_tanqueos).normalize();
    balance.ultimo_saldo_reportado = reported.map(|(_, _, saldo)| saldo);
    Ok(balance)
}

/// A station's balance kept current event by event, with what it was after each event, so the
/// balance now and `as_of` any instant are answered without folding the history again.
///
/// It answers exactly what [`station_balance`] answers without `fecha_corte` (the property test
/// below holds them together), in O(log n) per event and per question.
#[derive(Debug, Clone, Default)]
pub struct RunningBalance {
    /// Live records' amounts and dates, by id, to undo a record when it is corrected or voided.
    live: BTreeMap<i64, Counted>,
    /// Dates of the live movements, with how many fall on each (for `ultimo_movimiento`).
    fechas: BTreeMap<NaiveDate, u32>,
    /// Reported balances of the live records, by (fecha, id): the last one is the station's.
    reported: BTreeMap<(NaiveDate, i64), Decimal>,
    total_anticipos: Decimal,
    total_tanqueos: Decimal,
    /// The balance after each event, in log order, keyed by the latest `recorded_at` so far (so
    /// the keys never decrease, even if a clock stepped back between two commits).
    after_each: Vec<(DateTime<Utc>, StationBalance)>,
}

/// What one live record adds to a balance.
#[derive(Debug, Clone)]
struct Counted {
    tipo: TipoOperacion,
    amount: Decimal,
    fecha: NaiveDate,
    reported: Option<Decimal>,
}

impl Counted {
    fn of(record: &FuelRecord) -> Self {
        let (tipo, amount) = match record.tipo_operacion {
            TipoOperacion::Anticipo => (
                TipoOperacion::Anticipo,
                record.valor_anticipo.unwrap_or_default(),
            ),
            TipoOperacion::Tanqueo => (
                TipoOperacion::Tanqueo,
                record.valor_tanqueo.unwrap_or_default(),
            ),
        };
        Self {
            tipo,
            amount,
            fecha: record.fecha,
            reported: record.saldo_disponible,
        }
    }
}

impl RunningBalance {
    /// Folds the station's next event (events must come in log order).
    pub fn apply(&mut self, event: &Recorded) -> Result<(), FoldError> {
        match decode::<FuelEvent>(event)? {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                self.insert(record.id, Counted::of(&record));
            }
            FuelEvent::TanqueoCorrected { id, despues, .. } => {
                self.remove(id);
                self.insert(id, Counted::of(&despues));
            }
            FuelEvent::TanqueoVoided { id, .. } => self.remove(id),
        }
        let mut balance = self.current_totals();
        balance.ultima_actualizacion = Some(event.recorded_at);
        let key = self
            .after_each
            .last()
            .map_or(event.recorded_at, |(latest, _)| {
                (*latest).max(event.recorded_at)
            });
        self.after_each.push((key, balance));
        Ok(())
    }

    /// The balance after every event folded so far.
    pub fn now(&self) -> StationBalance {
        self.after_each
            .last()
            .map(|(_, balance)| balance.clone())
            .unwrap_or_default()
    }

    /// The balance as the ledger knew it at `as_of`: after the events before the first one
    /// recorded later (as [`station_balance`] reads a prefix of the log).
    pub fn as_of(&self, as_of: DateTime<Utc>) -> StationBalance {
        let known = self.after_each.partition_point(|(at, _)| *at <= as_of);
        known
            .checked_sub(1)
            .map(|last| self.after_each[last].1.clone())
            .unwrap_or_default()
    }

    fn insert(&mut self, id: i64, counted: Counted) {
        match counted.tipo {
            TipoOperacion::Anticipo => self.total_anticipos += counted.amount,
            TipoOperacion::Tanqueo => self.total_tanqueos += counted.amount,
        }
        *self.fechas.entry(counted.fecha).or_default() += 1;
        if let Some(saldo) = counted.reported {
            self.reported.insert((counted.fecha, id), saldo);
        }
        self.live.insert(id, counted);
    }

    fn remove(&mut self, id: i64) {
        let Some(counted) = self.live.remove(&id) else {
            return;
        };
        match counted.tipo {
            TipoOperacion::Anticipo => self.total_anticipos -= counted.amount,
            TipoOperacion::Tanqueo => self.total_tanqueos -= counted.amount,
        }
        if let Some(count) = self.fechas.get_mut(&counted.fecha) {
            *count -= 1;
            if *count == 0 {
                self.fechas.remove(&counted.fecha);
            }
        }
        self.reported.remove(&(counted.fecha, id));
    }

    fn current_totals(&self) -> StationBalance {
        // Written the way `station_balance` writes computed amounts: without trailing zeros.
        let total_anticipos = self.total_anticipos.normalize();
        let total_tanqueos = self.total_tanqueos.normalize();
        StationBalance {
            saldo: (total_anticipos - total_tanqueos).normalize(),
            total_anticipos,
            total_tanqueos,
            movimientos: self.live.len() as i64,
            ultimo_movimiento: self.fechas.keys().next_back().copied(),
            ultimo_saldo_reportado: self.reported.values().next_back().copied(),
            ultima_actualizacion: None,
        }
    }
}

/// One movement of a station statement, with the balance the ledger computes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub record: FuelRecord,
    pub saldo_calculado: Decimal,
    /// `saldo_disponible` − `saldo_calculado`, when the station reported a balance.
    pub diferencia: Option<Decimal>,
}

/// The live records of a station after its events, by id.
fn live_records(events: &[Recorded]) -> Result<BTreeMap<i64, FuelRecord>, FoldError> {
    let mut live = BTreeMap::new();
    for event in events {
        match decode::<FuelEvent>(event)? {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                live.insert(record.id, record);
            }
            FuelEvent::TanqueoCorrected { id, despues, .. } => {
                live.insert(id, despues);
            }
            FuelEvent::TanqueoVoided { id, .. } => {
                live.remove(&id);
            }
        }
    }
    Ok(live)
}

/// The station's statement: its live movements in date order (then id), each with the running
/// computed balance and, where the station reported one, the difference.
pub fn station_statement(events: &[Recorded]) -> Result<Vec<StatementLine>, FoldError> {
    let mut records: Vec<FuelRecord> = live_records(events)?.into_values().collect();
    records.sort_by_key(|r| (r.fecha, r.id));
    let mut saldo = Decimal::ZERO;
    Ok(records
        .into_iter()
        .map(|record| {
            saldo += record.effect();
            let diferencia = record
                .saldo_disponible
                .map(|reported| (reported - saldo).normalize());
            StatementLine {
                record,
                saldo_calculado: saldo.normalize(),
                diferencia,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aggregates::fuel::{Concepto, FuelCommand};
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Anticipo(i64, u32),
        Tanqueo(i64, u32),
        Correct(usize, i64),
        Void(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Amounts in cents, so decimals with two places are exercised.
        prop_oneof![
            (1i64..10_000_000, 1u32..28).prop_map(|(c, d)| Op::Anticipo(c, d)),
            (1i64..10_000_000, 1u32..28).prop_map(|(c, d)| Op::Tanqueo(c, d)),
            (0usize..20, 0i64..10_000_000).prop_map(|(i, c)| Op::Correct(i, c)),
            (0usize..20).prop_map(Op::Void),
        ]
    }

    fn record(id: i64, tipo: TipoOperacion, cents: i64, day: u32) -> FuelRecord {
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
    fn history(ops: Vec<Op>) -> (Vec<Recorded>, FuelStation) {
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
                        permitir_saldo_negativo: true,
                    }
                }
                Op::Correct(index, cents) if !ids.is_empty() => {
                    let id = ids[index % ids.len()];
                    let Some(current) = live.get(&id) else {
                        continue;
                    };
                    let mut corrected = current.clone();
                    let amount = Some(Decimal::new(cents, 2));
                    match corrected.tipo_operacion {
                        TipoOperacion::Anticipo => corrected.valor_anticipo = amount,
                        TipoOperacion::Tanqueo => corrected.valor_tanqueo = amount,
                    }
                    FuelCommand::Correct {
                        antes: current.clone(),
                        corrected,
                        permitir_saldo_negativo: true,
                    }
                }
                Op::Void(index) if !ids.is_empty() => {
                    let Some(current) = live.get(&ids[index % ids.len()]) else {
                        continue;
                    };
                    FuelCommand::Void {
                        antes: current.clone(),
                        motivo: "x".into(),
                        permitir_saldo_negativo: true,
                    }
                }

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
                }
                station.apply(event.clone());
                let (event_type, payload) = aggregates::codec::encode(&event).unwrap();
                let position = events.len() as i64 + 1;
                events.push(Recorded {
                    position,
                    stream_type: FuelStation::TYPE.into(),
                    stream_id: "7".into(),
                    version: position,
                    event_type,
                    schema_version: 1,
                    payload,
                    actor: None,
                    recorded_at: start + chrono::Duration::seconds(position),
                });
            }
        }
        (events, station)
    }

    proptest! {
        /// (a) the balance is Σ anticipos − Σ tanqueos of the live records, and the aggregate that
        /// enforces overdraft rules agrees with the read side; (d) an `as_of` answer equals the
        /// balance of only the events recorded by then.
        #[test]
        fn balances_follow_live_records_and_as_of_is_a_prefix(
            ops in proptest::collection::vec(op(), 1..40),
            cut in 0usize..60,
            corte_day in 1u32..28,
        ) {
            let (events, station) = history(ops);
            let balance = station_balance(&events, None, None).unwrap();
            prop_assert_eq!(balance.saldo, station.saldo());
            prop_assert_eq!(balance.saldo, balance.total_anticipos - balance.total_tanqueos);

            let cut = cut.min(events.len());
            let as_of = events.get(cut.wrapping_sub(1)).map(|e| e.recorded_at)
                .unwrap_or_else(|| Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
            let corte = NaiveDate::from_ymd_opt(2024, 3, corte_day);
            prop_assert_eq!(
                station_balance(&events, Some(as_of), corte).unwrap(),
                station_balance(&events[..cut], None, corte).unwrap()
            );
        }

        /// The running balance answers what folding the history answers: now, and as of the
        /// instant of every event (and before the first one).
        #[test]
        fn the_running_balance_equals_folding_the_history(ops in proptest::collection::vec(op(), 1..40)) {
            let (events, _) = history(ops);
            let mut running = RunningBalance::default();
            for event in &events {
                running.apply(event).unwrap();
            }
            prop_assert_eq!(running.now(), station_balance(&events, None, None).unwrap());
            let before = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
            prop_assert_eq!(running.as_of(before), station_balance(&events, Some(before), None).unwrap());
            for event in &events {
                let at = event.recorded_at;
                prop_assert_eq!(running.as_of(at), station_balance(&events, Some(at), None).unwrap());
            }
        }

        /// (b) the journal always balances, and the station's prepaid account carries exactly
        /// the station's balance.
        #[test]
        fn the_journal_balances_and_mirrors_the_station(ops in proptest::collection::vec(op(), 1..40)) {
            let (events, station) = history(ops);
            let entries: Vec<crate::journal::Entry> = events
                .iter()
                .flat_map(|e| crate::journal::entries(&decode::<FuelEvent>(e).unwrap()))
                .collect();
            let debe: Decimal = entries.iter().map(|e| e.debe).sum();
            let haber: Decimal = entries.iter().map(|e| e.haber).sum();
            prop_assert_eq!(debe, haber);
            let prepaid = crate::journal::prepaid_account(7);
            let prepaid_saldo: Decimal = entries.iter().filter(|e| e.cuenta == prepaid).map(|e| e.debe - e.haber).sum();
            prop_assert_eq!(prepaid_saldo, station.saldo());
        }

    }
}
