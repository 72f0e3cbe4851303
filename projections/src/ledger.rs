//! The fuel ledger's read models: the `tanqueo` table (seed 004) and, as a pure fold over a
//! station's events, its balance on either time axis.

use std::collections::BTreeMap;

use aggregates::fuel::{FuelEvent, FuelRecord, FuelStation, TipoOperacion};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::{
    decode, decode_parts, flag, instant, int, text, Cell, Change, FoldError, Projection, Recorded,
    Row,
};

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
            FuelEvent::OverdraftPolicyChanged { .. } => return Ok(Vec::new()),
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

/// A station's balance kept current event by event, with what it was after each instant, so the
/// balance now and `as_of` any instant are answered without folding the history again.
///
/// It answers exactly what [`station_balance`] answers without `fecha_corte` (the property tests
/// below hold them together), in O(log n) per question and per event (a record whose id is
/// below the newest one also moves the records after it).
///
/// # Memory
///
/// A station with a long history is followed for as long as it is asked about, so what is kept
/// per event bounds memory. Nothing is allocated per event, and what is kept is:
/// - one `Checkpoint` (48 bytes) per distinct instant: `as_of` only ever answers the last event
///   of an instant (it reads the log's prefix up to the instant), so events a commit stamped
///   alike share one;
/// - one `Counted` (32 bytes) per record ever recorded, to take a record back out when it is
///   corrected or voided;
/// - a step only where `ultimo_movimiento`, `ultimo_saldo_reportado` or a stepped-back clock
///   change the answer, an entry of `reported` per live record that reports a balance, and one
///   of `fechas` per date.
///
/// A checkpoint only every K events, with the gap replayed from per-event deltas, would save
/// less than it seems: `ultimo_movimiento` and `ultimo_saldo_reportado` are maxima over the live
/// records, which a delta cannot take back, so each event would still carry them next to its
/// amount and instant.
#[derive(Debug, Clone, Default)]
pub struct RunningBalance {
    /// Every record the station ever had, by id (voided ones stay as tombstones).
    records: Vec<Counted>,
    /// How many of `records` are live.
    movimientos: u32,
    /// Dates of the live movements, with how many fall on each (for `ultimo_movimiento`).
    fechas: BTreeMap<NaiveDate, u32>,
    /// Reported balances of the live records, by (fecha, id): the last one is the station's.
    reported: BTreeMap<(NaiveDate, i64), Decimal>,
    total_anticipos: Decimal,
    total_tanqueos: Decimal,
    /// The totals after the last event of each instant, in log order.
    checkpoints: Vec<Checkpoint>,
    /// By checkpoint: the latest `fecha` among the live movements.
    ultimo_movimiento: Steps<Option<NaiveDate>>,
    /// By checkpoint: the balance the station last reported.
    ultimo_saldo_reportado: Steps<Option<Decimal>>,
    /// By checkpoint: the last event's own `recorded_at` where it is earlier than the
    /// checkpoint's instant (a clock stepped back between two commits); none elsewhere.
    stepped_back: Steps<Option<DateTime<Utc>>>,
}

/// The balance after the last event of one instant.
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    /// The latest `recorded_at` so far, so instants never decrease along `checkpoints` even if a
    /// clock stepped back between two commits.
    at: DateTime<Utc>,
    /// Running sums as folded; normalized only when answered.
    total_anticipos: Decimal,
    total_tanqueos: Decimal,
    movimientos: u32,
}

/// What one record adds to a balance.
#[derive(Debug, Clone, Copy)]
struct Counted {
    id: i64,
    amount: Decimal,
    fecha: NaiveDate,
    tipo: TipoOperacion,
    live: bool,
}

/// A value that changes at few of the checkpoints, kept as the checkpoint indexes where it
/// changes: `(index, value from there on)`, indexes increasing, no two neighbours alike.
#[derive(Debug, Clone)]
struct Steps<T> {
    changes: Vec<(u32, T)>,
}

impl<T> Default for Steps<T> {
    fn default() -> Self {
        Self {
            changes: Vec::new(),
        }
    }
}

impl<T: Copy + Default + PartialEq> Steps<T> {
    /// Sets the value from checkpoint `index` on; `index` is the last checkpoint or a new one.
    fn set(&mut self, index: u32, value: T) {
        if let Some(&(last, _)) = self.changes.last() {
            debug_assert!(last <= index, "steps are set in checkpoint order");
            if last == index {
                // The checkpoint was overwritten by a later event of its instant.
                self.changes.pop();
            }
        }
        if self.at(index) != value {
            self.changes.push((index, value));
        }
    }

    /// The value at checkpoint `index`.
    fn at(&self, index: u32) -> T {
        let changed = self.changes.partition_point(|(from, _)| *from <= index);
        changed
            .checked_sub(1)
            .map(|last| self.changes[last].1)
            .unwrap_or_default()
    }

    fn heap_bytes(&self) -> usize {
        self.changes.capacity() * std::mem::size_of::<(u32, T)>()
    }
}

/// Records and checkpoints a station keeps at most; indexes and counts are `u32`. It lies far
/// beyond what memory holds (4 billion checkpoints are 192 GiB).
const KEPT_MAX: usize = u32::MAX as usize;

impl RunningBalance {
    /// Folds the station's next event (events must come in log order).
    pub fn apply(&mut self, event: &Recorded) -> Result<(), FoldError> {
        self.apply_stored(
            event.position,
            &event.event_type,
            &event.payload,
            event.recorded_at,
        )
    }

    /// Folds the station's next event from its stored parts, decoding the payload once and
    /// without copying it.
    pub fn apply_stored(
        &mut self,
        position: i64,
        event_type: &str,
        payload: &Value,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), FoldError> {
        if self.records.len() >= KEPT_MAX || self.checkpoints.len() >= KEPT_MAX {
            return Err(FoldError {
                position,
                reason: format!(
                    "a station's balance keeps at most {KEPT_MAX} records and instants in memory"
                ),
            });
        }
        match decode_parts::<FuelEvent>(position, event_type, payload)? {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                self.insert(Counted::of(record.id, &record), record.saldo_disponible);
            }
            FuelEvent::TanqueoCorrected { id, despues, .. } => {
                self.remove(id);
                self.insert(Counted::of(id, &despues), despues.saldo_disponible);
            }
            FuelEvent::TanqueoVoided { id, .. } => self.remove(id),
            // Not a movement: the balance and its instants are as they were.
            FuelEvent::OverdraftPolicyChanged { .. } => return Ok(()),
        }
        self.checkpoint(recorded_at);
        Ok(())
    }

    /// The balance after every event folded so far.
    pub fn now(&self) -> StationBalance {
        self.checkpoints
            .len()
            .checked_sub(1)
            .map(|last| self.balance_at(last))
            .unwrap_or_default()
    }

    /// The balance as the ledger knew it at `as_of`: after the events before the first one
    /// recorded later (as [`station_balance`] reads a prefix of the log).
    pub fn as_of(&self, as_of: DateTime<Utc>) -> StationBalance {
        let known = self.checkpoints.partition_point(|c| c.at <= as_of);
        known
            .checked_sub(1)
            .map(|last| self.balance_at(last))
            .unwrap_or_default()
    }

    /// What this balance holds on the heap, in bytes (the maps' nodes estimated).
    pub fn heap_bytes(&self) -> usize {
        // A B-tree node holds up to 11 entries and is about half full when keys arrive in order.
        const BTREE_BYTES_PER_ENTRY_FACTOR: usize = 2;
        let fechas = self.fechas.len() * std::mem::size_of::<(NaiveDate, u32)>();
        let reported = self.reported.len() * std::mem::size_of::<((NaiveDate, i64), Decimal)>();
        self.records.capacity() * std::mem::size_of::<Counted>()
            + self.checkpoints.capacity() * std::mem::size_of::<Checkpoint>()
            + (fechas + reported) * BTREE_BYTES_PER_ENTRY_FACTOR
            + self.ultimo_movimiento.heap_bytes()
            + self.ultimo_saldo_reportado.heap_bytes()
            + self.stepped_back.heap_bytes()
    }

    fn balance_at(&self, index: usize) -> StationBalance {
        let checkpoint = &self.checkpoints[index];
        // `index` < `checkpoints.len()` ≤ KEPT_MAX, so it fits.
        let step = index as u32;
        // Written the way `station_balance` writes computed amounts: without trailing zeros.
        let total_anticipos = checkpoint.total_anticipos.normalize();
        let total_tanqueos = checkpoint.total_tanqueos.normalize();
        StationBalance {
            saldo: (total_anticipos - total_tanqueos).normalize(),
            total_anticipos,
            total_tanqueos,
            movimientos: i64::from(checkpoint.movimientos),
            ultimo_movimiento: self.ultimo_movimiento.at(step),
            ultimo_saldo_reportado: self.ultimo_saldo_reportado.at(step),
            ultima_actualizacion: Some(self.stepped_back.at(step).unwrap_or(checkpoint.at)),
        }
    }

    /// Records the balance after an event recorded at `recorded_at`: a new checkpoint, or the
    /// last one again when the event shares its instant.
    fn checkpoint(&mut self, recorded_at: DateTime<Utc>) {
        let at = self
            .checkpoints
            .last()
            .map_or(recorded_at, |last| last.at.max(recorded_at));
        let checkpoint = Checkpoint {
            at,
            total_anticipos: self.total_anticipos,
            total_tanqueos: self.total_tanqueos,
            movimientos: self.movimientos,
        };
        match self.checkpoints.last_mut() {
            Some(last) if last.at == at => *last = checkpoint,
            _ => self.checkpoints.push(checkpoint),
        }
        // Checked in `apply_stored` before anything was folded.
        debug_assert!(self.checkpoints.len() <= KEPT_MAX);
        let index = (self.checkpoints.len() - 1) as u32;
        self.ultimo_movimiento
            .set(index, self.fechas.keys().next_back().copied());
        self.ultimo_saldo_reportado
            .set(index, self.reported.values().next_back().copied());
        self.stepped_back
            .set(index, (recorded_at < at).then_some(recorded_at));
    }

    /// Where record `id` is (`Ok`) or would go (`Err`) in `records`.
    fn find(&self, id: i64) -> Result<usize, usize> {
        // Ids are handed out in increasing order, so the record asked about is usually last.
        match self.records.last() {
            None => Err(0),
            Some(last) if last.id < id => Err(self.records.len()),
            Some(last) if last.id == id => Ok(self.records.len() - 1),
            Some(_) => self.records.binary_search_by_key(&id, |r| r.id),
        }
    }

    fn insert(&mut self, counted: Counted, reported: Option<Decimal>) {
        debug_assert!(counted.live);
        match counted.tipo {
            TipoOperacion::Anticipo => self.total_anticipos += counted.amount,
            TipoOperacion::Tanqueo => self.total_tanqueos += counted.amount,
        }
        *self.fechas.entry(counted.fecha).or_default() += 1;
        if let Some(saldo) = reported {
            self.reported.insert((counted.fecha, counted.id), saldo);
        }
        match self.find(counted.id) {
            Ok(index) => {
                // A record comes back only after `remove` took it out (a correction).
                debug_assert!(!self.records[index].live);
                self.records[index] = counted;
            }
            // Only a record with an id below the newest one moves the records after it.
            Err(index) => self.records.insert(index, counted),
        }
        self.movimientos += 1;
        debug_assert!(self.movimientos as usize <= self.records.len());
    }

    fn remove(&mut self, id: i64) {
        let Ok(index) = self.find(id) else {
            return;
        };
        let counted = &mut self.records[index];
        if !counted.live {
            return;
        }
        counted.live = false;
        let counted = *counted;
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
        self.movimientos -= 1;
    }
}

impl Counted {
    /// Record `id` as `record` has it (a correction names the id it replaces).
    fn of(id: i64, record: &FuelRecord) -> Self {
        let amount = match record.tipo_operacion {
            TipoOperacion::Anticipo => record.valor_anticipo,
            TipoOperacion::Tanqueo => record.valor_tanqueo,
        };
        Self {
            id,
            amount: amount.unwrap_or_default(),
            fecha: record.fecha,
            tipo: record.tipo_operacion,
            live: true,
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
            FuelEvent::OverdraftPolicyChanged { .. } => {}
        }
    }
    Ok(live)
}

/// The station's statement: its live movements in date order (then id), each with the running
/// computed balance and, where the station reported one, the difference.
pub fn station_statement(events: &[Recorded]) -> Result<Vec<StatementLine>, FoldError> {
    let mut records: Vec<FuelRecord> = live_records(events.iter())?.into_values().collect();
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
        /// A change of the station's overdraft policy: no movement, so no balance changes.
        Policy(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Amounts in cents, so decimals with two places are exercised.
        prop_oneof![
            (1i64..10_000_000, 1u32..28).prop_map(|(c, d)| Op::Anticipo(c, d)),
            (1i64..10_000_000, 1u32..28).prop_map(|(c, d)| Op::Tanqueo(c, d)),
            (0usize..20, 0i64..10_000_000).prop_map(|(i, c)| Op::Correct(i, c)),
            (0usize..20).prop_map(Op::Void),
            any::<bool>().prop_map(Op::Policy),
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
                        registered_policy: true,
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
                        registered_policy: true,
                    }
                }
                Op::Void(index) if !ids.is_empty() => {
                    let Some(current) = live.get(&ids[index % ids.len()]) else {
                        continue;
                    };
                    FuelCommand::Void {
                        antes: current.clone(),
                        motivo: "x".into(),
                        registered_policy: true,
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
                    FuelEvent::OverdraftPolicyChanged { .. } => {}
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

    /// The same history with record ids that do not arrive in increasing order, and with a
    /// reported balance on two records in three (twice the record's amount, so a correction
    /// changes it too).
    fn with_scrambled_ids_and_reports(events: Vec<Recorded>) -> Vec<Recorded> {
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
                        motivo, mut record, ..
                    } => {
                        scramble(&mut record);
                        FuelEvent::TanqueoVoided {
                            id: record.id,
                            motivo,
                            record,
                        }
                    }
                    policy @ FuelEvent::OverdraftPolicyChanged { .. } => policy,
                };
                event.payload = aggregates::codec::encode(&rewritten).unwrap().1;
                event
            })
            .collect()
    }

    /// Stamps each event `seconds` after the one before (cycling through them): with 0 the
    /// instant repeats, as for the events of one commit; below 0 the clock stepped back.
    fn restamped(mut events: Vec<Recorded>, seconds: &[i64]) -> Vec<Recorded> {
        let mut at = Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap();
        for (event, step) in events.iter_mut().zip(seconds.iter().cycle()) {
            at += chrono::Duration::seconds(*step);
            event.recorded_at = at;
        }
        events
    }

    #[test]
    fn steps_keep_only_the_checkpoints_where_the_value_changes() {
        let mut steps = Steps::<Option<i32>>::default();
        steps.set(0, None);
        steps.set(1, Some(5));
        steps.set(2, Some(5));
        // Checkpoint 3 is overwritten twice, the last time back to the value before it.
        steps.set(3, Some(6));
        steps.set(3, Some(5));
        steps.set(4, Some(7));
        assert_eq!(steps.changes, [(1, Some(5)), (4, Some(7))]);
        let values: Vec<_> = (0..6).map(|index| steps.at(index)).collect();
        assert_eq!(values, [None, Some(5), Some(5), Some(5), Some(7), Some(7)]);
    }

    #[test]
    fn what_a_running_balance_keeps_per_event_is_as_documented() {
        assert_eq!(std::mem::size_of::<Checkpoint>(), 48);
        assert_eq!(std::mem::size_of::<Counted>(), 32);
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

        /// As above, where events share instants (the running balance keeps one checkpoint per
        /// instant), clocks step back, ids arrive out of order and stations report balances.
        #[test]
        fn the_running_balance_equals_folding_the_history_whatever_the_instants_and_ids(
            ops in proptest::collection::vec(op(), 1..40),
            seconds in proptest::collection::vec(-2i64..=2, 1..60),
        ) {
            let (events, _) = history(ops);
            let events = restamped(with_scrambled_ids_and_reports(events), &seconds);
            let mut running = RunningBalance::default();
            for event in &events {
                running.apply(event).unwrap();
            }
            prop_assert_eq!(running.now(), station_balance(&events, None, None).unwrap());
            let nanosecond = chrono::Duration::nanoseconds(1);
            for event in &events {
                for at in [event.recorded_at - nanosecond, event.recorded_at, event.recorded_at + nanosecond] {
                    prop_assert_eq!(running.as_of(at), station_balance(&events, Some(at), None).unwrap());
                }
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
