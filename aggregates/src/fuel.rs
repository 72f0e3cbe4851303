//! The fuel ledger (seed 004): refuels (TANQUEO) and advance payments (ANTICIPO) on the stream of
//! the station they concern. The station aggregate owns the balance — Σ anticipos − Σ tanqueos of
//! its live records — so the overdraft rule is decided on one consistent state and concurrent
//! refuels can never overdraw a station together. The station's overdraft policy lives in the
//! same stream ([`FuelEvent::OverdraftPolicyChanged`]), so the rule and the balance it is applied
//! to are one state: a policy change and a refuel can never be decided on different versions.

use std::collections::VecDeque;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TipoOperacion {
    #[serde(rename = "TANQUEO")]
    Tanqueo,
    #[serde(rename = "ANTICIPO")]
    Anticipo,
}

impl TipoOperacion {
    pub const ALL: [Self; 2] = [Self::Tanqueo, Self::Anticipo];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "TANQUEO" => Some(Self::Tanqueo),
            "ANTICIPO" => Some(Self::Anticipo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tanqueo => "TANQUEO",
            Self::Anticipo => "ANTICIPO",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Concepto {
    #[serde(rename = "OPERATIVO")]
    Operativo,
    #[serde(rename = "ADMINISTRATIVO")]
    Administrativo,
}

impl Concepto {
    pub const ALL: [Self; 2] = [Self::Operativo, Self::Administrativo];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "OPERATIVO" => Some(Self::Operativo),
            "ADMINISTRATIVO" => Some(Self::Administrativo),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operativo => "OPERATIVO",
            Self::Administrativo => "ADMINISTRATIVO",
        }
    }
}

/// One fuel record as seed 004 shows it (without its audit columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuelRecord {
    pub id: i64,
    pub fecha: NaiveDate,
    pub bomba_id: i64,
    pub area_operacion_id: i64,
    pub concepto: Concepto,
    pub tipo_operacion: TipoOperacion,
    pub observacion: Option<String>,
    pub saldo_disponible: Option<Decimal>,
    pub conductor_id: Option<i64>,
    pub placa_id: Option<i64>,
    pub tipo_combustible: Option<String>,
    pub valor_tanqueo: Option<Decimal>,
    pub cantidad_galones: Option<Decimal>,
    pub costo_por_galon: Option<Decimal>,
    pub horometro: Option<Decimal>,
    pub valor_anticipo: Option<Decimal>,
}

impl FuelRecord {
    /// What the record does to the station's balance: + anticipo, − tanqueo.
    pub fn effect(&self) -> Decimal {
        match self.tipo_operacion {
            TipoOperacion::Anticipo => self.valor_anticipo.unwrap_or_default(),
            TipoOperacion::Tanqueo => -self.valor_tanqueo.unwrap_or_default(),
        }
    }

    /// What voiding the record does to the station's balance: its own effect taken back.
    pub fn effect_of_void(&self) -> Decimal {
        let effect = self.effect();
        // A zero is written `0`, never `-0`.
        if effect.is_zero() {
            Decimal::ZERO
        } else {
            -effect
        }
    }
}

/// `valor / galones`, rounded half-even to cents; none for zero gallons.
pub fn costo_por_galon(valor: Decimal, galones: Decimal) -> Option<Decimal> {
    if galones.is_zero() {
        return None;
    }
    valor.checked_div(galones).map(|cost| {
        cost.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
            .normalize()
    })
}

/// What the station's rules need of one of its records: its effect on the balance, whether it is
/// voided, and a fingerprint of the record as it stands. Not the record itself, so the station's
/// recent changes stay small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationRecord {
    pub effect: Decimal,
    pub voided: bool,
    fingerprint: u64,
}

impl StationRecord {
    fn of(record: &FuelRecord) -> Self {
        Self {
            effect: record.effect(),
            voided: false,
            fingerprint: fingerprint(record),
        }
    }

    fn voided(record: &FuelRecord) -> Self {
        Self {
            voided: true,
            ..Self::of(record)
        }
    }

    /// Whether `record` is this record as it stands (exactly, scale of every amount included).
    pub fn is(&self, record: &FuelRecord) -> bool {
        self.fingerprint == fingerprint(record)
    }
}

/// A digest of the record's exact JSON form (64-bit FNV-1a). It is saved with the station's
/// snapshots, so it must not change between releases, which the standard library's hasher does
/// not promise.
fn fingerprint(record: &FuelRecord) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    serde_json::to_string(record)
        .unwrap_or_default()
        .bytes()
        .fold(OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

/// How many of a station's latest events the station remembers the records of. A correction or
/// a void of a record changed further back is decided on the record as the read models show it,
/// which they must have folded to within this many events of the station's head; the handler's
/// read barrier makes that the case but for a burst of this many writes to the same station
/// between its read and its decision (then the command is refused as stale, and retried).
pub const RECENT_CHANGES_REMEMBERED: usize = 512;

/// A station's state: its balance, its overdraft policy and its latest changes, and nothing that
/// grows with its history, so loading it for a command costs the same on a station of ten
/// events or of a million (the station's snapshot is a few kilobytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FuelStation {
    saldo: Decimal,
    /// May the balance go below zero, as the stream last said; `None` until a policy change is
    /// recorded here (the policy the station was registered with applies until then).
    permitir_saldo_negativo: Option<bool>,
    /// Events folded: the stream's version.
    version: u64,
    /// The records changed by the latest [`RECENT_CHANGES_REMEMBERED`] events, oldest first:
    /// (the version of the event, the record's id, the record as that event left it).
    recent: VecDeque<(u64, i64, StationRecord)>,
}

/// [`FuelStation::view`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationView {
    pub saldo: Decimal,
    /// `None` while the policy the station was registered with applies.
    pub permitir_saldo_negativo: Option<bool>,
    pub version: u64,
}

/// A record as the caller read it from the read models, to be corrected or voided.
#[derive(Debug, Clone)]
pub struct RecordAsRead {
    pub record: FuelRecord,
    pub voided: bool,
    /// A version of the station's stream that the read models had folded when the record was
    /// read (they may have folded more); `None` when not known to (they lagged behind).
    pub folded_through: Option<u64>,
}

// A correction names the record before and after; a command lives for one request, so boxing
// would only add an indirection.
//
// `registered_policy` is the overdraft policy the station was registered with (from the
// registry): it applies only while the station's own stream has recorded no policy change.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum FuelCommand {
    Record {
        record: FuelRecord,
        registered_policy: bool,
    },
    /// Records every one or none (an atomic spreadsheet import).
    RecordAll {
        records: Vec<FuelRecord>,
        registered_policy: bool,
    },
    /// Replaces `antes` (the record as the caller read it) with `corrected`.
    Correct {
        antes: RecordAsRead,
        corrected: FuelRecord,
        registered_policy: bool,
    },
    /// Voids `antes` (the record as the caller read it).
    Void {
        antes: RecordAsRead,
        motivo: String,
        registered_policy: bool,
    },
    /// Sets whether the station's balance may go below zero from now on.
    ChangeOverdraftPolicy {
        bomba_id: i64,
        permitir_saldo_negativo: bool,
    },
}

// A correction carries the record before and after, as an auditor needs; boxing it would only
// add an indirection to every fold.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FuelEvent {
    TanqueoRecorded {
        record: FuelRecord,
    },
    AnticipoPaid {
        record: FuelRecord,
    },
    TanqueoCorrected {
        id: i64,
        antes: FuelRecord,
        despues: FuelRecord,
    },
    /// Version 2 added `efecto_saldo` (see [`crate::upcast`]).
    TanqueoVoided {
        id: i64,
        motivo: String,
        record: FuelRecord,
        /// What the void did to the station's balance, as decided:
        /// [`FuelRecord::effect_of_void`].
        efecto_saldo: Decimal,
    },
    /// The station's overdraft policy from this event on; it changes no balance.
    OverdraftPolicyChanged {
        bomba_id: i64,
        permitir_saldo_negativo: bool,
    },
}

impl FuelEvent {
    /// Whether an event of this type moves the station's money (every type but a policy
    /// change), read from the stored type so a fold can tell without decoding.
    pub fn moves_balance(event_type: &str) -> bool {
        event_type != "OverdraftPolicyChanged"
    }
}

impl DomainEvent for FuelEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TanqueoRecorded { .. } => "TanqueoRecorded",
            Self::AnticipoPaid { .. } => "AnticipoPaid",
            Self::TanqueoCorrected { .. } => "TanqueoCorrected",
            Self::TanqueoVoided { .. } => "TanqueoVoided",
            Self::OverdraftPolicyChanged { .. } => "OverdraftPolicyChanged",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FuelError {
    #[error(
        "Saldo insuficiente en la bomba {bomba_id}: disponible {disponible}, requerido {requerido}"
    )]
    SaldoInsuficiente {
        bomba_id: i64,
        disponible: Decimal,
        requerido: Decimal,
    },
    #[error("No se encontró el tanqueo con ID {id}")]
    NotFound { id: i64 },
    #[error("El tanqueo con ID {id} ya está anulado")]
    AlreadyVoided { id: i64 },
    #[error("El tanqueo con ID {id} está anulado y no se puede corregir")]
    Voided { id: i64 },
    /// The record changed after the caller read it (a write not yet visible in reads).
    #[error("El tanqueo con ID {id} cambió mientras se procesaba la solicitud; intente de nuevo")]
    Stale { id: i64 },
    /// Entry `index` of an all-or-nothing batch was refused.
    #[error("{reason}")]
    InBatch {
        index: usize,
        reason: Box<FuelError>,
    },
}

impl FuelStation {
    pub fn saldo(&self) -> Decimal {
        self.saldo
    }

    /// What an auditor sees of the station at a version: its balance and its policy.
    pub fn view(&self) -> StationView {
        StationView {
            saldo: self.saldo,
            permitir_saldo_negativo: self.permitir_saldo_negativo,
            version: self.version,
        }
    }

    /// The stream's version: events folded into this state.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Record `id` as the station's latest events left it, if one of them changed it.
    fn recently_changed(&self, id: i64) -> Option<&StationRecord> {
        self.recent
            .iter()
            .rev()
            .find(|(_, changed, _)| *changed == id)
            .map(|(_, _, record)| record)
    }

    /// Record `antes.record.id` as it stands: as the station's latest events left it, or else
    /// as the caller read it, when that read had folded every event before those the station
    /// remembers (so no event the read missed changed it). Stale when neither can tell.
    fn current(&self, antes: &RecordAsRead) -> Result<StationRecord, FuelError> {
        let id = antes.record.id;
        if let Some(record) = self.recently_changed(id) {
            return Ok(record.clone());
        }
        let remembered_from = self
            .version
            .saturating_sub(RECENT_CHANGES_REMEMBERED as u64);
        match antes.folded_through {
            Some(folded) if folded >= remembered_from => Ok(if antes.voided {
                StationRecord::voided(&antes.record)
            } else {
                StationRecord::of(&antes.record)
            }),
            _ => Err(FuelError::Stale { id }),
        }
    }

    /// Folds one event that changed record `id` into the recent changes.
    fn remember(&mut self, id: i64, record: StationRecord) {
        self.recent.push_back((self.version, id, record));
        let remembered_from = self
            .version
            .saturating_sub(RECENT_CHANGES_REMEMBERED as u64);
        while self
            .recent
            .front()
            .is_some_and(|(version, _, _)| *version <= remembered_from)
        {
            self.recent.pop_front();
        }
    }

    /// The policy recorded in the station's stream, if any change was.
    pub fn overdraft_policy(&self) -> Option<bool> {
        self.permitir_saldo_negativo
    }

    /// Refuses a change that would leave a no-overdraft station below zero. The stream's own
    /// policy wins over `registered_policy`.
    fn check_balance(
        &self,
        change: Decimal,
        record: &FuelRecord,
        registered_policy: bool,
    ) -> Result<(), FuelError> {
        let permitir = self.permitir_saldo_negativo.unwrap_or(registered_policy);
        if permitir || change >= Decimal::ZERO || self.saldo + change >= Decimal::ZERO {
            return Ok(());
        }
        Err(FuelError::SaldoInsuficiente {
            bomba_id: record.bomba_id,
            disponible: self.saldo.normalize(),
            requerido: (-change).normalize(),
        })
    }

    /// The events `command` would append, or why it is refused; `handle` writes them.
    pub fn decide(&self, command: FuelCommand) -> Result<Vec<FuelEvent>, FuelError> {
        match command {
            FuelCommand::Record {
                record,
                registered_policy,
            } => {
                self.check_balance(record.effect(), &record, registered_policy)?;
                Ok(vec![match record.tipo_operacion {
                    TipoOperacion::Tanqueo => FuelEvent::TanqueoRecorded { record },
                    TipoOperacion::Anticipo => FuelEvent::AnticipoPaid { record },
                }])
            }
            FuelCommand::RecordAll {
                records,
                registered_policy,
            } => {
                let mut projected = self.clone();
                let mut events = Vec::with_capacity(records.len());
                for (index, record) in records.into_iter().enumerate() {
                    let command = FuelCommand::Record {
                        record,
                        registered_policy,
                    };
                    let decided =
                        projected
                            .decide(command)
                            .map_err(|reason| FuelError::InBatch {
                                index,
                                reason: Box::new(reason),
                            })?;
                    for event in decided {
                        projected.apply(event.clone());
                        events.push(event);
                    }
                }
                Ok(events)
            }
            FuelCommand::Correct {
                antes,
                corrected,
                registered_policy,
            } => {
                let id = corrected.id;
                let current = self.current(&antes)?;
                if current.voided {
                    return Err(FuelError::Voided { id });
                }
                if !current.is(&antes.record) {
                    return Err(FuelError::Stale { id });
                }
                let antes = antes.record;
                if antes == corrected {
                    return Ok(Vec::new());
                }
                let change = corrected.effect() - current.effect;
                self.check_balance(change, &corrected, registered_policy)?;
                Ok(vec![FuelEvent::TanqueoCorrected {
                    id,
                    antes,
                    despues: corrected,
                }])
            }
            FuelCommand::Void {
                antes,
                motivo,
                registered_policy,
            } => {
                let id = antes.record.id;
                let current = self.current(&antes)?;
                if current.voided {
                    return Err(FuelError::AlreadyVoided { id });
                }
                if !current.is(&antes.record) {
                    return Err(FuelError::Stale { id });
                }
                let antes = antes.record;
                // Voiding an anticipo takes its money back out of the station.
                self.check_balance(-current.effect, &antes, registered_policy)?;
                Ok(vec![FuelEvent::TanqueoVoided {
                    id,
                    motivo,
                    efecto_saldo: antes.effect_of_void(),
                    record: antes,
                }])
            }
            FuelCommand::ChangeOverdraftPolicy {
                bomba_id,
                permitir_saldo_negativo,
            } => {
                // Repeating the policy the stream already holds records nothing; the first
                // change is always recorded, since the registered policy is not in this stream.
                if self.permitir_saldo_negativo == Some(permitir_saldo_negativo) {
                    return Ok(Vec::new());
                }
                Ok(vec![FuelEvent::OverdraftPolicyChanged {
                    bomba_id,
                    permitir_saldo_negativo,
                }])
            }
        }
    }
}

impl Aggregate for FuelStation {
    const TYPE: &'static str = "fuel-station";
    type Command = FuelCommand;
    type Event = FuelEvent;
    type Error = FuelError;
    type Services = ();

    async fn handle(
        &mut self,
        command: FuelCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), FuelError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: FuelEvent) {
        self.version += 1;
        match event {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                self.saldo += record.effect();
                self.remember(record.id, StationRecord::of(&record));
            }
            FuelEvent::TanqueoCorrected { id, antes, despues } => {
                self.saldo += despues.effect() - antes.effect();
                self.remember(id, StationRecord::of(&despues));
            }
            FuelEvent::TanqueoVoided {
                id,
                efecto_saldo,
                record,
                ..
            } => {
                self.saldo += efecto_saldo;
                self.remember(id, StationRecord::voided(&record));
            }
            FuelEvent::OverdraftPolicyChanged {
                permitir_saldo_negativo,
                ..
            } => {
                self.permitir_saldo_negativo = Some(permitir_saldo_negativo);
            }
        }
    }
}

/// Hands out the integer ids of fuel records. One stream for every station, so ids are unique
/// across the ledger; an id whose record is then refused stays unused, as a database sequence's
/// would.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FuelRecordIds {
    last_id: i64,
}

#[derive(Debug, Clone)]
pub struct ReserveFuelRecordIds {
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FuelRecordIdEvent {
    FuelRecordIdsReserved { first: i64, last: i64 },
}

impl DomainEvent for FuelRecordIdEvent {
    fn event_type(&self) -> String {
        "FuelRecordIdsReserved".to_string()
    }

    fn event_version(&self) -> String {
        crate::upcast::REGISTRY
            .current_version(&self.event_type())
            .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreachable")]
pub struct NeverRefused;

impl Aggregate for FuelRecordIds {
    const TYPE: &'static str = "fuel-record-ids";
    type Command = ReserveFuelRecordIds;
    type Event = FuelRecordIdEvent;
    type Error = NeverRefused;
    type Services = ();

    async fn handle(
        &mut self,
        command: ReserveFuelRecordIds,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), NeverRefused> {
        let first = self.last_id + 1;
        let last = self.last_id + command.count.max(1);
        sink.write(
            FuelRecordIdEvent::FuelRecordIdsReserved { first, last },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: FuelRecordIdEvent) {
        let FuelRecordIdEvent::FuelRecordIdsReserved { last, .. } = event;
        self.last_id = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn tanqueo(id: i64, valor: &str) -> FuelRecord {
        FuelRecord {
            id,
            fecha: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            bomba_id: 7,
            area_operacion_id: 1,
            concepto: Concepto::Operativo,
            tipo_operacion: TipoOperacion::Tanqueo,
            observacion: None,
            saldo_disponible: None,
            conductor_id: None,
            placa_id: None,
            tipo_combustible: None,
            valor_tanqueo: Some(d(valor)),
            cantidad_galones: None,
            costo_por_galon: None,
            horometro: None,
            valor_anticipo: None,
        }
    }

    fn record_on(station: &mut FuelStation, id: i64, registered_policy: bool) -> bool {
        let command = FuelCommand::Record {
            record: tanqueo(id, "10"),
            registered_policy,
        };
        match station.decide(command) {
            Ok(events) => {
                events.into_iter().for_each(|e| station.apply(e));
                true
            }
            Err(FuelError::SaldoInsuficiente { .. }) => false,
            Err(other) => panic!("{other}"),
        }
    }

    fn change_policy(station: &mut FuelStation, permitir: bool) -> usize {
        let events = station
            .decide(FuelCommand::ChangeOverdraftPolicy {
                bomba_id: 7,
                permitir_saldo_negativo: permitir,
            })
            .unwrap();
        let count = events.len();
        events.into_iter().for_each(|e| station.apply(e));
        count
    }

    #[test]
    fn the_registered_policy_applies_until_the_stream_records_a_change() {
        let mut station = FuelStation::default();
        assert!(
            !record_on(&mut station, 1, false),
            "registered: no overdraft"
        );
        assert!(
            record_on(&mut station, 2, true),
            "registered: overdraft allowed"
        );
        assert_eq!(station.saldo(), d("-10"));

        assert_eq!(change_policy(&mut station, false), 1);
        assert_eq!(station.overdraft_policy(), Some(false));
        // From now on the stream's policy wins over whatever the registry said.
        assert!(!record_on(&mut station, 3, true));
        assert_eq!(change_policy(&mut station, true), 1);
        assert!(record_on(&mut station, 4, false));
        assert_eq!(station.saldo(), d("-20"));
    }

    #[test]
    fn repeating_the_streams_policy_records_nothing_but_a_first_change_always_counts() {
        let mut station = FuelStation::default();
        // The registered policy may already be `true`; the stream cannot know, so it records.
        assert_eq!(change_policy(&mut station, true), 1);
        assert_eq!(change_policy(&mut station, true), 0);
        assert_eq!(change_policy(&mut station, false), 1);
        assert_eq!(station.saldo(), Decimal::ZERO, "a policy moves no money");
    }

    #[test]
    fn a_record_s_fingerprint_is_the_same_in_every_release() {
        // Saved in snapshots: a new value here would refuse every correction and void of a
        // record older than the newest snapshot as stale.
        assert_eq!(
            StationRecord::of(&tanqueo(1, "10")).fingerprint,
            13_709_543_455_976_443_362
        );
    }

    #[test]
    fn a_void_records_what_it_gives_back_at_the_current_version() {
        let mut station = FuelStation::default();
        assert!(record_on(&mut station, 1, true));
        let events = station
            .decide(FuelCommand::Void {
                antes: read(tanqueo(1, "10"), false, None),
                motivo: "Duplicado".into(),
                registered_policy: true,
            })
            .unwrap();
        let FuelEvent::TanqueoVoided { efecto_saldo, .. } = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(*efecto_saldo, d("10"));
        assert_eq!(events[0].event_version(), "2");
        station.apply(events[0].clone());
        assert_eq!(station.saldo(), Decimal::ZERO);
    }

    fn read(record: FuelRecord, voided: bool, folded_through: Option<u64>) -> RecordAsRead {
        RecordAsRead {
            record,
            voided,
            folded_through,
        }
    }

    fn void(station: &FuelStation, antes: RecordAsRead) -> Result<Vec<FuelEvent>, FuelError> {
        station.decide(FuelCommand::Void {
            antes,
            motivo: "Duplicado".into(),
            registered_policy: true,
        })
    }

    /// A station with `count` refuels of 1 each, ids 1 to `count`.
    fn station_with(count: i64) -> FuelStation {
        let mut station = FuelStation::default();
        for id in 1..=count {
            let record = tanqueo(id, "1");
            station.apply(FuelEvent::TanqueoRecorded { record });
        }
        station
    }

    #[test]
    fn a_recent_change_is_decided_on_what_the_station_remembers_whatever_the_read_says() {
        let mut station = station_with(3);
        station.apply(FuelEvent::TanqueoVoided {
            id: 2,
            motivo: "Duplicado".into(),
            record: tanqueo(2, "1"),
            efecto_saldo: d("1"),
        });
        // A read that missed the void, however far it claims to have folded.
        let missed = read(tanqueo(2, "1"), false, Some(station.version()));
        assert_eq!(
            void(&station, missed),
            Err(FuelError::AlreadyVoided { id: 2 })
        );
        // A read of another value than the station's.
        let other = read(tanqueo(3, "7"), false, Some(station.version()));
        assert_eq!(void(&station, other), Err(FuelError::Stale { id: 3 }));
        assert!(void(&station, read(tanqueo(3, "1"), false, None)).is_ok());
    }

    #[test]
    fn an_older_record_is_decided_on_a_read_that_folded_past_the_remembered_changes() {
        let remembered = RECENT_CHANGES_REMEMBERED as i64;
        let station = station_with(remembered * 3);
        let head = station.version();
        assert_eq!(head, 3 * RECENT_CHANGES_REMEMBERED as u64);
        let oldest_remembered = head - RECENT_CHANGES_REMEMBERED as u64;
        let forgotten = tanqueo(1, "1");
        // The read folded every event the station no longer remembers: it is the truth.
        let events = void(
            &station,
            read(forgotten.clone(), false, Some(oldest_remembered)),
        )
        .expect("decided on the read");
        assert_eq!(events.len(), 1);
        assert_eq!(
            void(&station, read(forgotten.clone(), true, Some(head))),
            Err(FuelError::AlreadyVoided { id: 1 })
        );
        // A read that may have missed a change the station forgot, or whose reach is unknown.
        assert_eq!(
            void(
                &station,
                read(forgotten.clone(), false, Some(oldest_remembered - 1))
            ),
            Err(FuelError::Stale { id: 1 })
        );
        assert_eq!(
            void(&station, read(forgotten, false, None)),
            Err(FuelError::Stale { id: 1 })
        );
    }

    #[test]
    fn the_state_stays_the_same_size_however_long_the_history() {
        let size = |station: &FuelStation| serde_json::to_string(station).unwrap().len();
        let remembered = RECENT_CHANGES_REMEMBERED as i64;
        let full = size(&station_with(remembered));
        let station = station_with(remembered * 20);
        assert_eq!(station.recent.len(), RECENT_CHANGES_REMEMBERED);
        assert_eq!(station.saldo(), Decimal::from(-remembered * 20));
        // Longer ids and versions only.
        assert!(size(&station) < full * 2, "{} vs {full}", size(&station));
    }

    #[test]
    fn cost_per_gallon_rounds_half_even_to_cents() {
        assert_eq!(costo_por_galon(d("150000"), d("12.5")), Some(d("12000")));
        assert_eq!(costo_por_galon(d("10"), d("3")), Some(d("3.33")));
        assert_eq!(costo_por_galon(d("0.125"), d("1")), Some(d("0.12")));
        assert_eq!(costo_por_galon(d("0.135"), d("1")), Some(d("0.14")));
        assert_eq!(costo_por_galon(d("100"), d("0")), None);
    }
}
