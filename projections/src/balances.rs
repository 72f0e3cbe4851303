//! Station balances as rows (`saldos`): what `GET /api/bombas/{id}/saldo`, `/api/saldos-bombas`,
//! statements and reconciliation read, so no request folds a station's history.
//!
//! Four tables, all fed by the station streams' movements (a policy change is no movement and
//! leaves them as they are, as [`crate::ledger::station_balance`] ignores it):
//! - [`STATIONS`]: one row per station, its balance now;
//! - [`HISTORY`]: one row per movement event, the balance right after it, so a balance `as_of`
//!   an instant is one indexed lookup (the last row whose instant is not later);
//! - [`DAYS`]: totals per station and date, so a balance up to a `fecha_corte` is a sum over
//!   days, not over records;
//! - [`MOVEMENTS`]: the live records in statement order, with what a statement line shows.
//!
//! Running totals are [`Change::Derive`]s: each event says what it adds, the writer adds it to
//! the stored row. The latest date and reported balance only grow while records are added; a
//! correction or a void can take the latest one away, so those two events look the new ones up
//! among the live records instead.
//!
//! Dates are stored as day numbers (days from 0001-01-01) and instants as nanoseconds since the
//! epoch, so integer order is time order on both databases, whatever their text collation.

use std::sync::Arc;

use aggregates::amount::bounded;
use aggregates::fuel::{FuelEvent, FuelRecord, FuelStation, TipoOperacion};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;

use crate::ledger::StationBalance;
use crate::{
    decode, int, text, Cell, Change, Derive, Derived, FoldError, Kind, Lookup, Projection,
    Recorded, Row, Step, Stored,
};

/// The projection's name (its checkpoint's key).
pub const NAME: &str = "saldos";

/// One row per station: its balance after every movement so far.
pub const STATIONS: &str = "rm_saldos_bombas";
/// One row per movement event (by station and stream version): the balance right after it.
pub const HISTORY: &str = "rm_saldos_historial";
/// Totals of the live movements per station and date.
pub const DAYS: &str = "rm_saldos_dias";
/// The live movements, one row per record.
pub const MOVEMENTS: &str = "rm_saldos_movimientos";

/// A station row's columns: the balance (a history row holds the same, as of its event), and
/// what the next event needs to extend it.
const STATION_COLUMNS: &[(&str, Kind)] = &[
    ("saldo", Kind::Text),
    ("total_anticipos", Kind::Text),
    ("total_tanqueos", Kind::Text),
    ("movimientos", Kind::Int),
    ("ultimo_movimiento", Kind::Int),
    ("ultimo_saldo_reportado", Kind::Text),
    ("ultima_actualizacion", Kind::Text),
    ("instante_ns", Kind::Int),
    // The (date, id) of the record whose balance is `ultimo_saldo_reportado`.
    ("reportado_fecha", Kind::Int),
    ("reportado_id", Kind::Int),
    ("version", Kind::Int),
];

const DAY_COLUMNS: &[(&str, Kind)] = &[
    ("total_anticipos", Kind::Text),
    ("total_tanqueos", Kind::Text),
    ("movimientos", Kind::Int),
];

pub struct StationBalancesProjection;

impl Projection for StationBalancesProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &[STATIONS, HISTORY, DAYS, MOVEMENTS]
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.stream_type != FuelStation::TYPE || !FuelEvent::moves_balance(&event.event_type) {
            return Ok(Vec::new());
        }
        let bomba_id: i64 = event.stream_id.parse().map_err(|_| FoldError {
            position: event.position,
            reason: format!("station stream id {:?} is not a number", event.stream_id),
        })?;
        let fuel_event: FuelEvent = decode(event)?;
        let in_bounds = |record: &FuelRecord| -> Result<Amounts, FoldError> {
            let amounts = Amounts::of(record);
            // Sums of bounded amounts cannot overflow a decimal; anything else is refused here
            // rather than met as an overflow in the writer.
            for amount in [amounts.anticipos, amounts.tanqueos] {
                bounded(amount).map_err(|error| FoldError {
                    position: event.position,
                    reason: format!("record {} has an amount {amount}: {error}", record.id),
                })?;
            }
            Ok(amounts)
        };
        let moved = Moved {
            bomba_id,
            version: event.version,
            recorded_at: event.recorded_at,
        };
        let changes = match fuel_event {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                let amounts = in_bounds(&record)?;
                vec![
                    movement(bomba_id, record.id, &record),
                    day(bomba_id, record.fecha, amounts),
                    moved.station(
                        amounts,
                        Latest::Added {
                            fecha: day_number(record.fecha),
                            id: record.id,
                            reportado: record.saldo_disponible,
                        },
                    ),
                ]
            }
            FuelEvent::TanqueoCorrected { id, antes, despues } => {
                let (before, after) = (in_bounds(&antes)?, in_bounds(&despues)?);
                vec![
                    movement(bomba_id, id, &despues),
                    day(bomba_id, antes.fecha, before.negated()),
                    day(bomba_id, despues.fecha, after),
                    moved.station(after.minus(before), Latest::LookedUp),
                ]
            }
            FuelEvent::TanqueoVoided { id, record, .. } => {
                let amounts = in_bounds(&record)?;
                vec![
                    Change::Delete {
                        table: MOVEMENTS,
                        key: vec![("bomba_id", int(bomba_id)), ("id", int(id))],
                    },
                    day(bomba_id, record.fecha, amounts.negated()),
                    moved.station(amounts.negated(), Latest::LookedUp),
                ]
            }
            FuelEvent::OverdraftPolicyChanged { .. }
            | FuelEvent::PeriodClosed { .. }
            | FuelEvent::PeriodReopened { .. } => Vec::new(),
        };
        Ok(changes)
    }
}

/// A date as the tables store it: days from 0001-01-01.
pub fn day_number(fecha: NaiveDate) -> i64 {
    i64::from(fecha.num_days_from_ce())
}

/// The date a stored day number stands for.
pub fn from_day_number(days: i64) -> Option<NaiveDate> {
    i32::try_from(days)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

/// An instant as the tables order it: nanoseconds since the epoch. The log stamps instants
/// within 1677–2262, where this is exact; beyond, it saturates (order is kept, ties may appear).
pub fn instant_ns(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// An instant as the tables show it: RFC 3339 with nine fractional digits (exact).
fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A stored instant (see [`instant_text`]).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn decimal_cell(value: Option<Decimal>) -> Cell {
    Cell::Text(value.map(|d| d.to_string()))
}

/// The live record `id` as a statement line shows it.
fn movement(bomba_id: i64, id: i64, record: &FuelRecord) -> Change {
    let valor = match record.tipo_operacion {
        TipoOperacion::Anticipo => record.valor_anticipo,
        TipoOperacion::Tanqueo => record.valor_tanqueo,
    };
    Change::Upsert {
        table: MOVEMENTS,
        key: vec![("bomba_id", int(bomba_id)), ("id", int(id))],
        values: vec![
            ("fecha", int(day_number(record.fecha))),
            (
                "tipo_operacion",
                text(record.tipo_operacion.as_str().to_string()),
            ),
            ("valor", decimal_cell(valor)),
            ("saldo_disponible", decimal_cell(record.saldo_disponible)),
        ],
    }
}

/// What a record adds to a balance (as [`crate::ledger::station_balance`] counts it: a missing
/// amount counts as zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Amounts {
    anticipos: Decimal,
    tanqueos: Decimal,
    movimientos: i64,
}

impl Amounts {
    fn of(record: &FuelRecord) -> Self {
        let (anticipos, tanqueos) = match record.tipo_operacion {
            TipoOperacion::Anticipo => (record.valor_anticipo.unwrap_or_default(), Decimal::ZERO),
            TipoOperacion::Tanqueo => (Decimal::ZERO, record.valor_tanqueo.unwrap_or_default()),
        };
        Self {
            anticipos,
            tanqueos,
            movimientos: 1,
        }
    }

    fn negated(self) -> Self {
        Self {
            anticipos: -self.anticipos,
            tanqueos: -self.tanqueos,
            movimientos: -self.movimientos,
        }
    }

    fn minus(self, other: Self) -> Self {
        Self {
            anticipos: self.anticipos - other.anticipos,
            tanqueos: self.tanqueos - other.tanqueos,
            movimientos: self.movimientos - other.movimientos,
        }
    }
}

fn day(bomba_id: i64, fecha: NaiveDate, amounts: Amounts) -> Change {
    Change::Derive(Derive {
        table: DAYS,
        key: vec![
            ("bomba_id", int(bomba_id)),
            ("fecha", int(day_number(fecha))),
        ],
        columns: DAY_COLUMNS,
        lookups: Vec::new(),
        step: Arc::new(AddToDay(amounts)),
    })
}

/// Adds a movement's amounts to its date's totals (negative ones take them out).
#[derive(Debug)]
struct AddToDay(Amounts);

impl Step for AddToDay {
    fn next(&self, stored: Option<&Stored>, _: &[Option<Stored>]) -> Derived {
        let totals = Totals::stored(stored).plus(self.0);
        Derived {
            values: vec![
                ("total_anticipos", decimal_cell(Some(totals.anticipos))),
                ("total_tanqueos", decimal_cell(Some(totals.tanqueos))),
                ("movimientos", int(totals.movimientos)),
            ],
            also: Vec::new(),
        }
    }
}

/// Running totals as stored: written without trailing zeros (as the balance answers them).
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    anticipos: Decimal,
    tanqueos: Decimal,
    movimientos: i64,
}

impl Totals {
    fn stored(stored: Option<&Stored>) -> Self {
        Self {
            anticipos: stored_decimal(stored, "total_anticipos").unwrap_or_default(),
            tanqueos: stored_decimal(stored, "total_tanqueos").unwrap_or_default(),
            movimientos: stored_int(stored, "movimientos").unwrap_or_default(),
        }
    }

    fn plus(self, amounts: Amounts) -> Self {
        Self {
            anticipos: (self.anticipos + amounts.anticipos).normalize(),
            tanqueos: (self.tanqueos + amounts.tanqueos).normalize(),
            movimientos: self.movimientos + amounts.movimientos,
        }
    }
}

fn stored_int(stored: Option<&Stored>, column: &str) -> Option<i64> {
    match stored?.get(column)? {
        Cell::Int(value) => *value,
        Cell::Text(_) => None,
    }
}

fn stored_text<'a>(stored: Option<&'a Stored>, column: &str) -> Option<&'a str> {
    match stored?.get(column)? {
        Cell::Text(value) => value.as_deref(),
        Cell::Int(_) => None,
    }
}

/// A stored amount. The writer only ever stores decimals it formatted, so text that does not
/// parse cannot occur; it would read as no amount.
fn stored_decimal(stored: Option<&Stored>, column: &str) -> Option<Decimal> {
    stored_text(stored, column).and_then(|text| text.parse().ok())
}

/// One movement event of a station.
struct Moved {
    bomba_id: i64,
    version: i64,
    recorded_at: DateTime<Utc>,
}

/// How a movement moves the station's latest date and reported balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latest {
    /// A record came in: the latest are the stored ones or its own, whichever is later.
    Added {
        fecha: i64,
        id: i64,
        reportado: Option<Decimal>,
    },
    /// A record changed or went: the latest are what the lookups find among the live records.
    LookedUp,
}

impl Moved {
    fn station(&self, amounts: Amounts, latest: Latest) -> Change {
        let station = vec![("bomba_id", int(self.bomba_id))];
        let lookups = match latest {
            Latest::Added { .. } => Vec::new(),
            Latest::LookedUp => vec![
                Lookup {
                    table: MOVEMENTS,
                    prefix: station.clone(),
                    present: None,
                    order: &["fecha", "id"],
                    columns: &[("fecha", Kind::Int)],
                },
                Lookup {
                    table: MOVEMENTS,
                    prefix: station.clone(),
                    present: Some("saldo_disponible"),
                    order: &["fecha", "id"],
                    columns: &[
                        ("fecha", Kind::Int),
                        ("id", Kind::Int),
                        ("saldo_disponible", Kind::Text),
                    ],
                },
            ],
        };
        Change::Derive(Derive {
            table: STATIONS,
            key: station,
            columns: STATION_COLUMNS,
            lookups,
            step: Arc::new(StationMoved {
                bomba_id: self.bomba_id,
                version: self.version,
                recorded_at: self.recorded_at,
                amounts,
                latest,
            }),
        })
    }
}

/// The station's balance after one movement, and the history row that keeps it.
#[derive(Debug)]
struct StationMoved {
    bomba_id: i64,
    version: i64,
    recorded_at: DateTime<Utc>,
    amounts: Amounts,
    latest: Latest,
}

impl Step for StationMoved {
    fn next(&self, stored: Option<&Stored>, found: &[Option<Stored>]) -> Derived {
        let totals = Totals::stored(stored).plus(self.amounts);
        let (ultimo_movimiento, reportado) = match self.latest {
            Latest::Added {
                fecha,
                id,
                reportado,
            } => {
                let stored_fecha = stored_int(stored, "ultimo_movimiento");
                let stored_reportado = stored_int(stored, "reportado_fecha")
                    .zip(stored_int(stored, "reportado_id"))
                    .map(|(fecha, id)| {
                        (fecha, id, stored_decimal(stored, "ultimo_saldo_reportado"))
                    });
                let reportado = match (reportado, stored_reportado) {
                    (Some(saldo), Some((f, i, _))) if (fecha, id) > (f, i) => {
                        Some((fecha, id, Some(saldo)))
                    }
                    (Some(saldo), None) => Some((fecha, id, Some(saldo))),
                    (_, stored) => stored,
                };
                (
                    Some(stored_fecha.map_or(fecha, |f| f.max(fecha))),
                    reportado,
                )
            }
            Latest::LookedUp => {
                let latest = found.first().and_then(Option::as_ref);
                let reported = found.get(1).and_then(Option::as_ref);
                (
                    stored_int(latest, "fecha"),
                    stored_int(reported, "fecha")
                        .zip(stored_int(reported, "id"))
                        .map(|(fecha, id)| {
                            (fecha, id, stored_decimal(reported, "saldo_disponible"))
                        }),
                )
            }
        };
        // Instants never decrease along a station's rows, even where a clock stepped back
        // between two commits: the rows at or before an instant are then exactly the events a
        // prefix of the log holds, as `station_balance` reads it.
        let instante_ns = stored_int(stored, "instante_ns")
            .map_or(instant_ns(self.recorded_at), |stored| {
                stored.max(instant_ns(self.recorded_at))
            });
        let saldo = (totals.anticipos - totals.tanqueos).normalize();
        let balance: Row = vec![
            ("saldo", decimal_cell(Some(saldo))),
            ("total_anticipos", decimal_cell(Some(totals.anticipos))),
            ("total_tanqueos", decimal_cell(Some(totals.tanqueos))),
            ("movimientos", int(totals.movimientos)),
            ("ultimo_movimiento", int(ultimo_movimiento)),
            (
                "ultimo_saldo_reportado",
                decimal_cell(reportado.and_then(|(_, _, saldo)| saldo)),
            ),
            ("ultima_actualizacion", text(instant_text(self.recorded_at))),
            ("instante_ns", int(instante_ns)),
        ];
        let history = Change::Upsert {
            table: HISTORY,
            key: vec![
                ("bomba_id", int(self.bomba_id)),
                ("version", int(self.version)),
            ],
            values: balance.clone(),
        };
        let mut values = balance;
        values.extend([
            ("reportado_fecha", int(reportado.map(|(fecha, _, _)| fecha))),
            ("reportado_id", int(reportado.map(|(_, id, _)| id))),
            ("version", int(self.version)),
        ]);
        // What is written is what the next event's step reads back.
        debug_assert!(values
            .iter()
            .map(|(column, _)| *column)
            .eq(STATION_COLUMNS.iter().map(|(column, _)| *column)));
        Derived {
            values,
            also: vec![history],
        }
    }
}

/// A balance row as the tables hold it (a station's now, or a history row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    pub saldo: Decimal,
    pub total_anticipos: Decimal,
    pub total_tanqueos: Decimal,
    pub movimientos: i64,
    /// Day number of the latest live movement.
    pub ultimo_movimiento: Option<i64>,
    pub ultimo_saldo_reportado: Option<Decimal>,
    pub ultima_actualizacion: Option<DateTime<Utc>>,
}

impl BalanceRow {
    /// The balance this row answers.
    pub fn balance(&self) -> StationBalance {
        StationBalance {
            saldo: self.saldo,
            total_anticipos: self.total_anticipos,
            total_tanqueos: self.total_tanqueos,
            movimientos: self.movimientos,
            ultimo_movimiento: self.ultimo_movimiento.and_then(from_day_number),
            ultimo_saldo_reportado: self.ultimo_saldo_reportado,
            ultima_actualizacion: self.ultima_actualizacion,
        }
    }
}

/// One date's totals of a station's live movements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotals {
    /// Day number (see [`day_number`]).
    pub fecha: i64,
    pub total_anticipos: Decimal,
    pub total_tanqueos: Decimal,
    pub movimientos: i64,
}

/// The balance of the live movements dated on or before a cut-off: `days` are the station's
/// day totals up to it, `reportado` the balance reported by the latest live record up to it,
/// `ultima_actualizacion` the station's last movement's instant (a cut-off by date does not
/// move it). What [`crate::ledger::station_balance`] answers with `fecha_corte` and no `as_of`.
pub fn balance_up_to(
    days: &[DayTotals],
    reportado: Option<Decimal>,
    ultima_actualizacion: Option<DateTime<Utc>>,
) -> StationBalance {
    let mut balance = StationBalance {
        ultima_actualizacion,
        ultimo_saldo_reportado: reportado,
        ..StationBalance::default()
    };
    for day in days {
        balance.total_anticipos += day.total_anticipos;
        balance.total_tanqueos += day.total_tanqueos;
        balance.movimientos += day.movimientos;
        // A date whose movements were all voided keeps its row, with nothing in it.
        if day.movimientos > 0 {
            balance.ultimo_movimiento = balance.ultimo_movimiento.max(from_day_number(day.fecha));
        }
    }
    balance.total_anticipos = balance.total_anticipos.normalize();
    balance.total_tanqueos = balance.total_tanqueos.normalize();
    balance.saldo = (balance.total_anticipos - balance.total_tanqueos).normalize();
    balance
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histories::{history, op, restamped, with_scrambled_ids_and_reports};
    use crate::ledger::{statement_lines, station_balance, station_statement, Movement};
    use crate::MemoryModel;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// The rows of `table` for station `bomba_id`.
    fn rows<'a>(model: &'a MemoryModel, table: &str, bomba_id: i64) -> Vec<&'a Stored> {
        model
            .tables
            .get(table)
            .into_iter()
            .flat_map(|rows| rows.values())
            .filter(|row| row.get("bomba_id") == Some(&int(bomba_id)))
            .collect()
    }

    /// A balance row from its stored cells.
    fn balance_row(stored: &Stored) -> BalanceRow {
        let stored = Some(stored);
        BalanceRow {
            saldo: stored_decimal(stored, "saldo").unwrap(),
            total_anticipos: stored_decimal(stored, "total_anticipos").unwrap(),
            total_tanqueos: stored_decimal(stored, "total_tanqueos").unwrap(),
            movimientos: stored_int(stored, "movimientos").unwrap(),
            ultimo_movimiento: stored_int(stored, "ultimo_movimiento"),
            ultimo_saldo_reportado: stored_decimal(stored, "ultimo_saldo_reportado"),
            ultima_actualizacion: stored_text(stored, "ultima_actualizacion")
                .and_then(parse_instant),
        }
    }

    fn int_of(row: &Stored, column: &str) -> i64 {
        stored_int(Some(row), column).unwrap()
    }

    /// What `GET …/saldo?as_of=` reads: the last history row at or before the instant.
    fn as_of(model: &MemoryModel, bomba_id: i64, at: DateTime<Utc>) -> StationBalance {
        rows(model, HISTORY, bomba_id)
            .into_iter()
            .filter(|row| int_of(row, "instante_ns") <= instant_ns(at))
            .max_by_key(|row| (int_of(row, "instante_ns"), int_of(row, "version")))
            .map(|row| balance_row(row).balance())
            .unwrap_or_default()
    }

    fn now(model: &MemoryModel, bomba_id: i64) -> StationBalance {
        rows(model, STATIONS, bomba_id)
            .first()
            .map(|row| balance_row(row).balance())
            .unwrap_or_default()
    }

    /// What `GET …/saldo?fecha_corte=` reads: the day totals up to the date, and the latest
    /// reported balance among the live movements up to it.
    fn up_to(model: &MemoryModel, bomba_id: i64, corte: NaiveDate) -> StationBalance {
        let corte = day_number(corte);
        let days: Vec<DayTotals> = rows(model, DAYS, bomba_id)
            .into_iter()
            .filter(|row| int_of(row, "fecha") <= corte)
            .map(|row| DayTotals {
                fecha: int_of(row, "fecha"),
                total_anticipos: stored_decimal(Some(row), "total_anticipos").unwrap(),
                total_tanqueos: stored_decimal(Some(row), "total_tanqueos").unwrap(),
                movimientos: int_of(row, "movimientos"),
            })
            .collect();
        let reportado = rows(model, MOVEMENTS, bomba_id)
            .into_iter()
            .filter(|row| int_of(row, "fecha") <= corte)
            .filter_map(|row| {
                stored_decimal(Some(row), "saldo_disponible")
                    .map(|saldo| ((int_of(row, "fecha"), int_of(row, "id")), saldo))
            })
            .max_by_key(|(order, _)| *order)
            .map(|(_, saldo)| saldo);
        balance_up_to(&days, reportado, now(model, bomba_id).ultima_actualizacion)
    }

    fn movements(model: &MemoryModel, bomba_id: i64) -> Vec<Movement> {
        let mut movements: Vec<Movement> = rows(model, MOVEMENTS, bomba_id)
            .into_iter()
            .map(|row| Movement {
                id: int_of(row, "id"),
                fecha: from_day_number(int_of(row, "fecha")).unwrap(),
                tipo_operacion: TipoOperacion::parse(
                    stored_text(Some(row), "tipo_operacion").unwrap(),
                )
                .unwrap(),
                valor: stored_decimal(Some(row), "valor"),
                saldo_disponible: stored_decimal(Some(row), "saldo_disponible"),
            })
            .collect();
        movements.sort_by_key(|m| (m.fecha, m.id));
        movements
    }

    /// The history of station 7 moved to station `bomba_id`.
    fn on_station(events: &[Recorded], bomba_id: i64) -> Vec<Recorded> {
        events
            .iter()
            .cloned()
            .map(|mut event| {
                event.stream_id = bomba_id.to_string();
                event
            })
            .collect()
    }

    /// Two stations' histories interleaved in one log, positions renumbered.
    fn interleaved(a: Vec<Recorded>, b: Vec<Recorded>) -> Vec<Recorded> {
        let mut log: Vec<Recorded> = Vec::with_capacity(a.len() + b.len());
        let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.recorded_at <= y.recorded_at => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let mut event = next.expect("one of them had an event");
            event.position = log.len() as i64 + 1;
            log.push(event);
        }
        log
    }

    fn station_events(log: &[Recorded], bomba_id: i64) -> Vec<Recorded> {
        log.iter()
            .filter(|e| e.stream_id == bomba_id.to_string())
            .cloned()
            .collect()
    }

    /// Every answer the rows give for `bomba_id` equals folding its stream.
    fn assert_rows_answer_as_the_fold(
        model: &MemoryModel,
        log: &[Recorded],
        bomba_id: i64,
    ) -> Result<(), TestCaseError> {
        let events = station_events(log, bomba_id);
        prop_assert_eq!(
            now(model, bomba_id),
            station_balance(&events, None, None).unwrap()
        );
        let nanosecond = chrono::Duration::nanoseconds(1);
        let before = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        prop_assert_eq!(
            as_of(model, bomba_id, before),
            station_balance(&events, Some(before), None).unwrap()
        );
        for event in &events {
            for at in [
                event.recorded_at - nanosecond,
                event.recorded_at,
                event.recorded_at + nanosecond,
            ] {
                prop_assert_eq!(
                    as_of(model, bomba_id, at),
                    station_balance(&events, Some(at), None).unwrap()
                );
            }
        }
        for day in 0..=29 {
            let corte = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap() + chrono::Days::new(day);
            prop_assert_eq!(
                up_to(model, bomba_id, corte),
                station_balance(&events, None, Some(corte)).unwrap()
            );
        }
        prop_assert_eq!(
            statement_lines(Decimal::ZERO, movements(model, bomba_id)),
            station_statement(&events).unwrap()
        );
        Ok(())
    }

    #[test]
    fn a_station_without_movements_has_no_rows() {
        let model = MemoryModel::default();
        assert_eq!(now(&model, 7), StationBalance::default());
        assert_eq!(
            up_to(&model, 7, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()),
            StationBalance::default()
        );
    }

    #[test]
    fn day_numbers_and_instants_keep_their_order_and_value() {
        let fecha = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(from_day_number(day_number(fecha)), Some(fecha));
        assert!(day_number(fecha) < day_number(fecha + chrono::Days::new(1)));
        let at =
            Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap() + chrono::Duration::nanoseconds(7);
        assert_eq!(parse_instant(&instant_text(at)), Some(at));
        assert_eq!(
            instant_ns(at) + 1,
            instant_ns(at + chrono::Duration::nanoseconds(1))
        );
        let far = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(instant_ns(far), i64::MAX);
    }

    proptest! {
        /// The rows answer what folding the station's stream answers: the balance now, as of
        /// every event's instant (and just before and after it), up to every date, and the
        /// statement; for two stations sharing one log.
        #[test]
        fn the_rows_answer_what_folding_the_stream_answers(
            ops_a in proptest::collection::vec(op(), 1..40),
            ops_b in proptest::collection::vec(op(), 0..20),
        ) {
            let (a, _) = history(ops_a);
            let (b, _) = history(ops_b);
            let log = interleaved(a, on_station(&b, 8));
            let model = MemoryModel::replay(&StationBalancesProjection, &log).unwrap();
            assert_rows_answer_as_the_fold(&model, &log, 7)?;
            assert_rows_answer_as_the_fold(&model, &log, 8)?;
        }

        /// As above, where events share instants, clocks step back, ids arrive out of order and
        /// stations report balances.
        #[test]
        fn the_rows_answer_what_folding_the_stream_answers_whatever_the_instants_and_ids(
            ops in proptest::collection::vec(op(), 1..40),
            seconds in proptest::collection::vec(-2i64..=2, 1..60),
        ) {
            let (events, _) = history(ops);
            let events = restamped(with_scrambled_ids_and_reports(events), &seconds);
            let model = MemoryModel::replay(&StationBalancesProjection, &events).unwrap();
            assert_rows_answer_as_the_fold(&model, &events, 7)?;
        }

        /// A statement from a date on starts from the balance of the day totals before it.
        #[test]
        fn a_statement_from_a_date_opens_with_the_days_before_it(
            ops in proptest::collection::vec(op(), 1..40),
            desde_day in 1u32..29,
        ) {
            let (events, _) = history(ops);
            let events = with_scrambled_ids_and_reports(events);
            let model = MemoryModel::replay(&StationBalancesProjection, &events).unwrap();
            let desde = NaiveDate::from_ymd_opt(2024, 3, desde_day).unwrap();
            let day_before = desde.pred_opt().unwrap();
            let opening = up_to(&model, 7, day_before).saldo;
            let from_rows = statement_lines(
                opening,
                movements(&model, 7).into_iter().filter(|m| m.fecha >= desde),
            );
            let folded: Vec<_> = station_statement(&events)
                .unwrap()
                .into_iter()
                .filter(|line| line.movement.fecha >= desde)
                .collect();
            prop_assert_eq!(from_rows, folded);
        }
    }
}
