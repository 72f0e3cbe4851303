//! The fuel ledger (seed 004): refuels (TANQUEO) and advance payments (ANTICIPO) on the stream of
//! the station they concern. The station aggregate owns the balance — Σ anticipos − Σ tanqueos of
//! its live records — so the overdraft rule is decided on one consistent state and concurrent
//! refuels can never overdraw a station together. The station's overdraft policy lives in the
//! same stream ([`FuelEvent::OverdraftPolicyChanged`]), so the rule and the balance it is applied
//! to are one state: a policy change and a refuel can never be decided on different versions.

use std::collections::BTreeMap;

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
/// voided, and a fingerprint of the record as it stands. Not the record itself, so a station's
/// state stays small however long its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FuelStation {
    saldo: Decimal,
    records: BTreeMap<i64, StationRecord>,
    /// May the balance go below zero, as the stream last said; `None` until a policy change is
    /// recorded here (the policy the station was registered with applies until then).
    permitir_saldo_negativo: Option<bool>,
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
        antes: FuelRecord,
        corrected: FuelRecord,
        registered_policy: bool,
    },
    /// Voids `antes` (the record as the caller read it).
    Void {
        antes: FuelRecord,
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

    pub fn record(&self, id: i64) -> Option<&StationRecord> {
        self.records.get(&id)
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
                let current = self.records.get(&id).ok_or(FuelError::NotFound { id })?;
                if current.voided {
                    return Err(FuelError::Voided { id });
                }
                if !current.is(&antes) {
                    return Err(FuelError::Stale { id });
                }
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
                let id = antes.id;
                let current = self.records.get(&id).ok_or(FuelError::NotFound { id })?;
                if current.voided {
                    return Err(FuelError::AlreadyVoided { id });
                }
                if !current.is(&antes) {
                    return Err(FuelError::Stale { id });
                }
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
        match event {
            FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
                self.saldo += record.effect();
                self.records.insert(record.id, StationRecord::of(&record));
            }
            FuelEvent::TanqueoCorrected { id, antes, despues } => {
                self.saldo += despues.effect() - antes.effect();
                self.records.insert(id, StationRecord::of(&despues));
            }
            FuelEvent::TanqueoVoided {
                id, efecto_saldo, ..
            } => {
                self.saldo += efecto_saldo;
                if let Some(stored) = self.records.get_mut(&id) {
                    stored.voided = true;
                }
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
                antes: tanqueo(1, "10"),
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

    #[test]
    fn cost_per_gallon_rounds_half_even_to_cents() {
        assert_eq!(costo_por_galon(d("150000"), d("12.5")), Some(d("12000")));
        assert_eq!(costo_por_galon(d("10"), d("3")), Some(d("3.33")));
        assert_eq!(costo_por_galon(d("0.125"), d("1")), Some(d("0.12")));
        assert_eq!(costo_por_galon(d("0.135"), d("1")), Some(d("0.14")));
        assert_eq!(costo_por_galon(d("100"), d("0")), None);
    }
}
