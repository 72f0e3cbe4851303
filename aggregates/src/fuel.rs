//! The fuel ledger (seed 004): refuels (TANQUEO) and advance payments (ANTICIPO) on the stream of
//! the station they concern. The station aggregate owns the balance — Σ anticipos − Σ tanqueos of
//! its live records — so the overdraft rule is decided on one consistent state and concurrent
//! refuels can never overdraw a station together. The station's overdraft policy lives in the
//! same stream ([`FuelEvent::OverdraftPolicyChanged`]), so the rule and the balance it is applied
//! to are one state: a policy change and a refuel can never be decided on different versions.

use std::collections::{BTreeMap, VecDeque};

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::period::{InheritedClosures, Periodo};

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
    /// Each month that has records or was closed or reopened here: its live records' totals and
    /// whether this stream closed it. It grows with the calendar (twelve entries a year), not
    /// with the number of events, and it is what a close's balance and the period lock are
    /// decided on.
    #[serde(with = "months_as_list")]
    months: BTreeMap<Periodo, MonthStanding>,
}

/// What a station holds of one month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonthStanding {
    /// Live (not voided) records dated in the month.
    pub registros: i64,
    pub total_tanqueos: Decimal,
    pub total_anticipos: Decimal,
    /// What this stream last said of the month: `Some(true)` closed, `Some(false)` reopened,
    /// `None` nothing (then what the station inherited from the registry applies).
    pub cerrado: Option<bool>,
}

impl MonthStanding {
    /// Adds a live record dated in this month (`sign` 1), or takes one away (`sign` -1).
    fn count(&mut self, record: &FuelRecord, sign: i64) {
        let signed = |amount: Option<Decimal>| amount.unwrap_or_default() * Decimal::from(sign);
        self.registros += sign;
        match record.tipo_operacion {
            TipoOperacion::Tanqueo => self.total_tanqueos += signed(record.valor_tanqueo),
            TipoOperacion::Anticipo => self.total_anticipos += signed(record.valor_anticipo),
        }
    }

    /// What the month's records did to the balance.
    fn net(&self) -> Decimal {
        self.total_anticipos - self.total_tanqueos
    }
}

/// JSON object keys must be text: the months are saved in a snapshot as a list of pairs.
mod months_as_list {
    use super::{BTreeMap, MonthStanding, Periodo};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        months: &BTreeMap<Periodo, MonthStanding>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(months.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<Periodo, MonthStanding>, D::Error> {
        let pairs = Vec::<(Periodo, MonthStanding)>::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
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
// `inherited` likewise: the months closed for every station when it was registered, closed on
// it until its own stream reopens them (see `crate::period`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum FuelCommand {
    Record {
        record: FuelRecord,
        registered_policy: bool,
        inherited: InheritedClosures,
    },
    /// Records every one or none (an atomic spreadsheet import).
    RecordAll {
        records: Vec<FuelRecord>,
        registered_policy: bool,
        inherited: InheritedClosures,
    },
    /// Replaces `antes` (the record as the caller read it) with `corrected`.
    Correct {
        antes: RecordAsRead,
        corrected: FuelRecord,
        registered_policy: bool,
        inherited: InheritedClosures,
    },
    /// Voids `antes` (the record as the caller read it).
    Void {
        antes: RecordAsRead,
        motivo: String,
        registered_policy: bool,
        inherited: InheritedClosures,
    },
    /// Closes `periodo` on this station, with its closing balance; nothing when it is already
    /// closed here (a close sent again completes the stations it had not reached).
    ClosePeriod {
        bomba_id: i64,
        periodo: Periodo,
        inherited: InheritedClosures,
    },
    /// Reopens `periodo` on this station; nothing when it is not closed here.
    ReopenPeriod {
        bomba_id: i64,
        periodo: Periodo,
        motivo: String,
        inherited: InheritedClosures,
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
    /// The month `anio`/`mes` is closed on this station: no record dated in it may be added,
    /// corrected or voided here until it is reopened. It carries what an auditor checks the
    /// close against: the balance at the end of the month (every live record dated in it or
    /// before) and the month's own live records and totals.
    PeriodClosed {
        bomba_id: i64,
        anio: i32,
        mes: u32,
        saldo_cierre: Decimal,
        registros: i64,
        total_tanqueos: Decimal,
        total_anticipos: Decimal,
    },
    /// The month is open again on this station, for `motivo`.
    PeriodReopened {
        bomba_id: i64,
        anio: i32,
        mes: u32,
        motivo: String,
    },
}

impl FuelEvent {
    /// Whether an event of this type moves the station's money (every type but a policy
    /// change), read from the stored type so a fold can tell without decoding.
    pub fn moves_balance(event_type: &str) -> bool {
        matches!(
            event_type,
            "TanqueoRecorded" | "AnticipoPaid" | "TanqueoCorrected" | "TanqueoVoided"
        )
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
            Self::PeriodClosed { .. } => "PeriodClosed",
            Self::PeriodReopened { .. } => "PeriodReopened",
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
    /// A new record dated in a month closed on the station (the origin system's words).
    #[error("No se pueden agregar registros en un mes que se encuentra cerrado contablemente.")]
    PeriodoCerrado { periodo: Periodo },
    /// A correction would move record `id` into a closed month.
    #[error("No se puede asignar una fecha perteneciente a un periodo contable cerrado.")]
    FechaEnPeriodoCerrado { id: i64, periodo: Periodo },
    /// Record `id` is dated in a closed month: it can be neither corrected nor voided. An
    /// adjustment is a new record in an open month.
    #[error("No se puede modificar/eliminar este registro porque pertenece a un periodo cerrado.")]
    RegistroEnPeriodoCerrado { id: i64, periodo: Periodo },
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

    /// Whether `periodo` is closed on this station: as its own stream last said, or else as it
    /// inherited from the registry.
    pub fn is_closed(&self, periodo: Periodo, inherited: &InheritedClosures) -> bool {
        self.months
            .get(&periodo)
            .and_then(|month| month.cerrado)
            .unwrap_or_else(|| inherited.contains(&periodo))
    }

    /// What the station holds of `periodo` (zero records when it has none).
    pub fn month(&self, periodo: Periodo) -> MonthStanding {
        self.months.get(&periodo).cloned().unwrap_or_default()
    }

    /// The balance at the end of `periodo`: what every live record dated in it or before left.
    pub fn balance_at_end_of(&self, periodo: Periodo) -> Decimal {
        self.months
            .range(..=periodo)
            .map(|(_, month)| month.net())
            .sum()
    }

    fn month_mut(&mut self, periodo: Periodo) -> &mut MonthStanding {
        self.months.entry(periodo).or_default()
    }

    /// Refuses a change to record `id` (dated `fecha`) when its month is closed, and a new date
    /// `moved_to` in a closed month.
    fn check_periods(
        &self,
        id: i64,
        fecha: NaiveDate,
        moved_to: NaiveDate,
        inherited: &InheritedClosures,
    ) -> Result<(), FuelError> {
        let periodo = Periodo::of(fecha);
        if self.is_closed(periodo, inherited) {
            return Err(FuelError::RegistroEnPeriodoCerrado { id, periodo });
        }
        let periodo = Periodo::of(moved_to);
        if self.is_closed(periodo, inherited) {
            return Err(FuelError::FechaEnPeriodoCerrado { id, periodo });
        }
        Ok(())
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
                inherited,
            } => {
                let periodo = Periodo::of(record.fecha);
                if self.is_closed(periodo, &inherited) {
                    return Err(FuelError::PeriodoCerrado { periodo });
                }
                self.check_balance(record.effect(), &record, registered_policy)?;
                Ok(vec![match record.tipo_operacion {
                    TipoOperacion::Tanqueo => FuelEvent::TanqueoRecorded { record },
                    TipoOperacion::Anticipo => FuelEvent::AnticipoPaid { record },
                }])
            }
            FuelCommand::RecordAll {
                records,
                registered_policy,
                inherited,
            } => {
                let mut projected = self.clone();
                let mut events = Vec::with_capacity(records.len());
                for (index, record) in records.into_iter().enumerate() {
                    let command = FuelCommand::Record {
                        record,
                        registered_policy,
                        inherited: inherited.clone(),
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
                inherited,
            } => {
                let id = corrected.id;
                let current = self.current(&antes)?;
                if current.voided {
                    return Err(FuelError::Voided { id });
                }
                if !current.is(&antes.record) {
                    return Err(FuelError::Stale { id });
                }
                // Decided on the record as it stands (its fingerprint matched), so its date is
                // the one the ledger holds.
                self.check_periods(id, antes.record.fecha, corrected.fecha, &inherited)?;
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
                inherited,
            } => {
                let id = antes.record.id;
                let current = self.current(&antes)?;
                if current.voided {
                    return Err(FuelError::AlreadyVoided { id });
                }
                if !current.is(&antes.record) {
                    return Err(FuelError::Stale { id });
                }
                let fecha = antes.record.fecha;
                self.check_periods(id, fecha, fecha, &inherited)?;
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
            FuelCommand::ClosePeriod {
                bomba_id,
                periodo,
                inherited,
            } => {
                if self.is_closed(periodo, &inherited) {
                    return Ok(Vec::new());
                }
                let month = self.month(periodo);
                Ok(vec![FuelEvent::PeriodClosed {
                    bomba_id,
                    anio: periodo.anio,
                    mes: periodo.mes,
                    saldo_cierre: self.balance_at_end_of(periodo).normalize(),
                    registros: month.registros,
                    total_tanqueos: month.total_tanqueos.normalize(),
                    total_anticipos: month.total_anticipos.normalize(),
                }])
            }
            FuelCommand::ReopenPeriod {
                bomba_id,
                periodo,
                motivo,
                inherited,
            } => {
                if !self.is_closed(periodo, &inherited) {
                    return Ok(Vec::new());
                }
                Ok(vec![FuelEvent::PeriodReopened {
                    bomba_id,
                    anio: periodo.anio,
                    mes: periodo.mes,
                    motivo,
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
                self.month_mut(Periodo::of(record.fecha)).count(&record, 1);
                self.remember(record.id, StationRecord::of(&record));
            }
            FuelEvent::TanqueoCorrected { id, antes, despues } => {
                self.saldo += despues.effect() - antes.effect();
                self.month_mut(Periodo::of(antes.fecha)).count(&antes, -1);
                self.month_mut(Periodo::of(despues.fecha))
                    .count(&despues, 1);
                self.remember(id, StationRecord::of(&despues));
            }
            FuelEvent::TanqueoVoided {
                id,
                efecto_saldo,
                record,
                ..
            } => {
                self.saldo += efecto_saldo;
                self.month_mut(Periodo::of(record.fecha)).count(&record, -1);
                self.remember(id, StationRecord::voided(&record));
            }
            FuelEvent::PeriodClosed { anio, mes, .. } => {
                self.month_mut(Periodo { anio, mes }).cerrado = Some(true);
            }
            FuelEvent::PeriodReopened { anio, mes, .. } => {
                self.month_mut(Periodo { anio, mes }).cerrado = Some(false);
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
            inherited: Default::default(),
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
                inherited: Default::default(),
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
            inherited: Default::default(),
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

    // ---- Monthly closes (issue 16) ----

    fn dated(mut record: FuelRecord, fecha: (i32, u32, u32)) -> FuelRecord {
        record.fecha = NaiveDate::from_ymd_opt(fecha.0, fecha.1, fecha.2).unwrap();
        record
    }

    fn anticipo(id: i64, valor: &str, fecha: (i32, u32, u32)) -> FuelRecord {
        let mut record = dated(tanqueo(id, "0"), fecha);
        record.tipo_operacion = TipoOperacion::Anticipo;
        record.valor_tanqueo = None;
        record.valor_anticipo = Some(d(valor));
        record
    }

    const JAN: Periodo = Periodo { anio: 2026, mes: 1 };
    const FEB: Periodo = Periodo { anio: 2026, mes: 2 };

    fn run(station: &mut FuelStation, command: FuelCommand) -> Result<Vec<FuelEvent>, FuelError> {
        let events = station.decide(command)?;
        for event in &events {
            station.apply(event.clone());
        }
        Ok(events)
    }

    fn record(station: &mut FuelStation, record: FuelRecord) -> Result<Vec<FuelEvent>, FuelError> {
        run(
            station,
            FuelCommand::Record {
                record,
                registered_policy: true,
                inherited: Default::default(),
            },
        )
    }

    fn close(station: &mut FuelStation, periodo: Periodo) -> Vec<FuelEvent> {
        run(
            station,
            FuelCommand::ClosePeriod {
                bomba_id: 7,
                periodo,
                inherited: Default::default(),
            },
        )
        .unwrap()
    }

    fn current(record: FuelRecord) -> RecordAsRead {
        read(record, false, None)
    }

    #[test]
    fn a_close_carries_the_balance_at_the_end_of_the_month_and_the_months_own_figures() {
        let mut station = FuelStation::default();
        record(&mut station, anticipo(1, "100.50", (2025, 12, 31))).unwrap();
        record(&mut station, anticipo(2, "50", (2026, 1, 1))).unwrap();
        record(&mut station, dated(tanqueo(3, "30.25"), (2026, 1, 31))).unwrap();
        // Dated after the month: recorded before the close, but not in its balance.
        record(&mut station, dated(tanqueo(4, "1000"), (2026, 2, 1))).unwrap();
        let events = close(&mut station, JAN);
        assert_eq!(
            events,
            vec![FuelEvent::PeriodClosed {
                bomba_id: 7,
                anio: 2026,
                mes: 1,
                saldo_cierre: d("120.25"),
                registros: 2,
                total_tanqueos: d("30.25"),
                total_anticipos: d("50"),
            }]
        );
        assert_eq!(
            station.saldo(),
            d("-879.75"),
            "the live balance is untouched"
        );
        assert!(
            close(&mut station, JAN).is_empty(),
            "closing again records nothing"
        );
    }

    #[test]
    fn a_record_dated_in_a_closed_month_is_refused_and_the_next_month_is_not() {
        let mut station = FuelStation::default();
        close(&mut station, JAN);
        for fecha in [(2026, 1, 1), (2026, 1, 31)] {
            assert_eq!(
                record(&mut station, anticipo(1, "10", fecha)),
                Err(FuelError::PeriodoCerrado { periodo: JAN })
            );
        }
        assert!(record(&mut station, anticipo(1, "10", (2026, 2, 1))).is_ok());
        assert!(record(&mut station, anticipo(2, "10", (2025, 12, 31))).is_ok());
        assert_eq!(
            FuelError::PeriodoCerrado { periodo: JAN }.to_string(),
            "No se pueden agregar registros en un mes que se encuentra cerrado contablemente."
        );
    }

    #[test]
    fn a_batch_with_one_record_in_a_closed_month_records_nothing() {
        let mut station = FuelStation::default();
        close(&mut station, JAN);
        let refused = run(
            &mut station,
            FuelCommand::RecordAll {
                records: vec![
                    anticipo(1, "10", (2026, 2, 1)),
                    anticipo(2, "10", (2026, 1, 15)),
                ],
                registered_policy: true,
                inherited: Default::default(),
            },
        );
        assert_eq!(
            refused,
            Err(FuelError::InBatch {
                index: 1,
                reason: Box::new(FuelError::PeriodoCerrado { periodo: JAN })
            })
        );
        assert_eq!(station.saldo(), Decimal::ZERO);
    }

    #[test]
    fn a_record_in_a_closed_month_can_be_neither_corrected_nor_voided() {
        let mut station = FuelStation::default();
        let january = anticipo(1, "10", (2026, 1, 10));
        record(&mut station, january.clone()).unwrap();
        close(&mut station, JAN);
        let moved_out = dated(january.clone(), (2026, 2, 1));
        let refused = FuelError::RegistroEnPeriodoCerrado {
            id: 1,
            periodo: JAN,
        };
        let correct = FuelCommand::Correct {
            antes: current(january.clone()),
            corrected: moved_out,
            registered_policy: true,
            inherited: Default::default(),
        };
        assert_eq!(station.decide(correct), Err(refused.clone()));
        assert_eq!(void(&station, current(january)), Err(refused.clone()));
        assert_eq!(
            refused.to_string(),
            "No se puede modificar/eliminar este registro porque pertenece a un periodo cerrado."
        );
    }

    #[test]
    fn a_correction_may_not_move_a_record_into_a_closed_month() {
        let mut station = FuelStation::default();
        let february = anticipo(1, "10", (2026, 2, 10));
        record(&mut station, february.clone()).unwrap();
        close(&mut station, JAN);
        let into_january = dated(february.clone(), (2026, 1, 31));
        let refused = FuelError::FechaEnPeriodoCerrado {
            id: 1,
            periodo: JAN,
        };
        let correct = |corrected| FuelCommand::Correct {
            antes: current(february.clone()),
            corrected,
            registered_policy: true,
            inherited: Default::default(),
        };
        assert_eq!(station.decide(correct(into_january)), Err(refused.clone()));
        assert_eq!(
            refused.to_string(),
            "No se puede asignar una fecha perteneciente a un periodo contable cerrado."
        );
        // Within the open month it is an ordinary correction, and the month's totals follow.
        let mut later = dated(february.clone(), (2026, 2, 28));
        later.valor_anticipo = Some(d("12"));
        run(&mut station, correct(later)).unwrap();
        assert_eq!(station.month(FEB).total_anticipos, d("12"));
        assert_eq!(station.month(FEB).registros, 1);
    }

    #[test]
    fn a_reopened_month_takes_records_again_and_closes_with_them() {
        let mut station = FuelStation::default();
        close(&mut station, JAN);
        let reopen = |motivo: &str| FuelCommand::ReopenPeriod {
            bomba_id: 7,
            periodo: JAN,
            motivo: motivo.into(),
            inherited: Default::default(),
        };
        assert_eq!(
            run(&mut station, reopen("Factura tardía")).unwrap().len(),
            1
        );
        assert!(run(&mut station, reopen("otra vez")).unwrap().is_empty());
        record(&mut station, anticipo(1, "10", (2026, 1, 5))).unwrap();
        let closed = close(&mut station, JAN);
        let [FuelEvent::PeriodClosed { registros, .. }] = closed.as_slice() else {
            panic!("not one close: {closed:?}");
        };
        assert_eq!(*registros, 1);
    }

    #[test]
    fn a_month_inherited_closed_is_closed_until_the_stations_own_stream_reopens_it() {
        let mut station = FuelStation::default();
        let inherited: InheritedClosures = [JAN].into();
        let record_jan = |station: &FuelStation| {
            station.decide(FuelCommand::Record {
                record: anticipo(1, "10", (2026, 1, 5)),
                registered_policy: true,
                inherited: inherited.clone(),
            })
        };
        assert_eq!(
            record_jan(&station),
            Err(FuelError::PeriodoCerrado { periodo: JAN })
        );
        // Closing it here again is nothing new.
        let closed = station
            .decide(FuelCommand::ClosePeriod {
                bomba_id: 7,
                periodo: JAN,
                inherited: inherited.clone(),
            })
            .unwrap();
        assert!(closed.is_empty());
        let reopened = run(
            &mut station,
            FuelCommand::ReopenPeriod {
                bomba_id: 7,
                periodo: JAN,
                motivo: "Ajuste".into(),
                inherited: inherited.clone(),
            },
        )
        .unwrap();
        assert_eq!(reopened.len(), 1);
        assert!(record_jan(&station).is_ok());
    }

    #[test]
    fn the_months_and_the_closed_flags_survive_a_snapshot() {
        let mut station = FuelStation::default();
        record(&mut station, anticipo(1, "10.10", (2026, 1, 5))).unwrap();
        close(&mut station, JAN);
        let saved = serde_json::to_string(&station).unwrap();
        let restored: FuelStation = serde_json::from_str(&saved).unwrap();
        assert_eq!(restored, station);
        assert!(restored.is_closed(JAN, &Default::default()));
    }

    proptest::proptest! {
        /// Whatever is recorded, corrected and voided, the months' figures add up to the
        /// station's balance, and the balance at the end of the last month is all of it.
        #[test]
        fn the_months_add_up_to_the_balance(
            ops in proptest::collection::vec((0u8..3, 1i64..10_000, 1u32..4, 0usize..20), 1..60)
        ) {
            let mut station = FuelStation::default();
            let mut live: Vec<FuelRecord> = Vec::new();
            for (id, (op, cents, month, pick)) in ops.into_iter().enumerate() {
                let amount = Decimal::new(cents, 2);
                match op {
                    0 => {
                        let mut new = anticipo(id as i64 + 1, "0", (2026, month, 1));
                        if cents % 2 == 0 {
                            new.tipo_operacion = TipoOperacion::Tanqueo;
                            new.valor_anticipo = None;
                            new.valor_tanqueo = Some(amount);
                        } else {
                            new.valor_anticipo = Some(amount);
                        }
                        record(&mut station, new.clone()).unwrap();
                        live.push(new);
                    }
                    1 if !live.is_empty() => {
                        let index = pick % live.len();
                        let before = live[index].clone();
                        let after = dated(before.clone(), (2026, month, 2));
                        run(&mut station, FuelCommand::Correct {
                            antes: current(before),
                            corrected: after.clone(),
                            registered_policy: true,
                            inherited: Default::default(),
                        }).unwrap();
                        live[index] = after;
                    }
                    2 if !live.is_empty() => {
                        let gone = live.remove(pick % live.len());
                        run(&mut station, FuelCommand::Void {
                            antes: current(gone),
                            motivo: "x".into(),
                            registered_policy: true,
                            inherited: Default::default(),
                        }).unwrap();
                    }
                    _ => {}
                }
            }
            let last = Periodo { anio: 2026, mes: 12 };
            proptest::prop_assert_eq!(station.balance_at_end_of(last), station.saldo());
            let count: i64 = (1..=12).map(|mes| station.month(Periodo { anio: 2026, mes }).registros).sum();
            proptest::prop_assert_eq!(count, live.len() as i64);
        }
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
