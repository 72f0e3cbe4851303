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
            FuelEvent::OverdraftPolicyChanged { .. }
            | FuelEvent::PeriodClosed { .. }
            | FuelEvent::PeriodReopened { .. } => return Ok(Vec::new()),
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
    // A policy change is no movement: it is invisible here, its instant included.
    let known: Vec<&Recorded> = events
        .iter()
        .filter(|e| FuelEvent::moves_balance(&e.event_type))
        .take_while(|e| as_of.is_none_or(|as_of| e.recorded_at <= as_of))
        .collect();
    let live = live_records(known.iter().copied())?;
    let mut balance = StationBalance {
        ultima_actualizacion: known.last().map(|e| e.recorded_at),
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

/// A live movement as a statement line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub id: i64,
    pub fecha: NaiveDate,
    pub tipo_operacion: TipoOperacion,
    /// The anticipo's or the tanqueo's amount, as recorded.
    pub valor: Option<Decimal>,
    /// The balance the station reported with the record.
    pub saldo_disponible: Option<Decimal>,
}

impl Movement {
    /// Record `id` as `record` has it (a correction names the id it replaces).
    pub fn of(id: i64, record: &FuelRecord) -> Self {
        Self {
            id,
            fecha: record.fecha,
            tipo_operacion: record.tipo_operacion,
            valor: match record.tipo_operacion {
                TipoOperacion::Anticipo => record.valor_anticipo,
                TipoOperacion::Tanqueo => record.valor_tanqueo,
            },
            saldo_disponible: record.saldo_disponible,
        }
    }

    /// What it does to the station's balance: + anticipo, − tanqueo (a missing amount is zero).
    pub fn effect(&self) -> Decimal {
        let valor = self.valor.unwrap_or_default();
        match self.tipo_operacion {
            TipoOperacion::Anticipo => valor,
            TipoOperacion::Tanqueo => -valor,
        }
    }
}

/// One movement of a station statement, with the balance the ledger computes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub movement: Movement,
    pub saldo_calculado: Decimal,
    /// `saldo_disponible` − `saldo_calculado`, when the station reported a balance.
    pub diferencia: Option<Decimal>,
}

/// Statement lines for `movements` (in statement order: date, then id), the running balance
/// starting from `opening`, the balance of every movement before them.
pub fn statement_lines(
    opening: Decimal,
    movements: impl IntoIterator<Item = Movement>,
) -> Vec<StatementLine> {
    let mut saldo = opening;
    movements
        .into_iter()
        .map(|movement| {
            saldo += movement.effect();
            let diferencia = movement
                .saldo_disponible
                .map(|reported| (reported - saldo).normalize());
            StatementLine {
                movement,
                saldo_calculado: saldo.normalize(),
                diferencia,
            }
        })
        .collect()
}

/// The live records of a station after its events, by id.
fn live_records<'a>(
    events: impl IntoIterator<Item = &'a Recorded>,
) -> Result<BTreeMap<i64, FuelRecord>, FoldError> {
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
            FuelEvent::OverdraftPolicyChanged { .. }
            | FuelEvent::PeriodClosed { .. }
            | FuelEvent::PeriodReopened { .. } => {}
        }
    }
    Ok(live)
}

/// The station's statement: its live movements in date order (then id), each with the running
/// computed balance and, where the station reported one, the difference.
pub fn station_statement(events: &[Recorded]) -> Result<Vec<StatementLine>, FoldError> {
    let mut movements: Vec<Movement> = live_records(events.iter())?
        .iter()
        .map(|(id, record)| Movement::of(*id, record))
        .collect();
    movements.sort_by_key(|m| (m.fecha, m.id));
    Ok(statement_lines(Decimal::ZERO, movements))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histories::{history, op};
    use chrono::TimeZone;
    use proptest::prelude::*;

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
