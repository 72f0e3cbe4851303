//! The fuel checks' consumer (issue 16): follows the stations' ledgers (`fuel-station`), runs
//! every check ([`aggregates::anomaly`]) on each refuel recorded or corrected, and records what
//! they find as alerts (`AnomalyFlagged`, [`aggregates::alert`]); a correction that makes a
//! finding stop holding, or a void, closes its alert (`AnomalyCleared`).
//!
//! **Its context lives in memory, rebuilt from the log.** The checks look back on a bounded
//! window (a plate's latest refuels, a station's latest prices, each station's balance: the
//! [`Detector`]), all of it a fold of the stations' own events. Kept in tables, it would be a
//! second copy of `rm_tanqueos` to keep in step with the checkpoint; kept in memory, it is
//! folded again from the log before the first batch an instance handles (or after a batch
//! failed half-way), up to the position before that batch, so it is always exactly what the
//! log said before the events being handled. That costs one read of the stations' events per
//! start, the price of a projection catching up.
//!
//! **The vehicle's registered facts** (tank capacity, fuel type) come from the fleet's read
//! model once it has folded the refuel's position: the facts in force when the refuel was
//! recorded, or later ones when the consumer runs behind (a vehicle corrected meanwhile is
//! judged on its corrected registration, which is what an auditor would compare with).
//!
//! **Webhooks.** Each alert flagged on a refuel of a vehicle that belongs to a company
//! (`idEmpresa`) is told to that company's webhooks subscribed to `tanqueo.anomalia`: the
//! deliveries are the rows this consumer answers, committed with its checkpoint, so each is
//! scheduled once ([`crate::webhooks::schedule`]). Its `dados` is the alert as it was flagged.
//!
//! **Reference bands** (`bandas-referencia`, [`aggregates::band`]) are another stream the
//! consumer reads beside the stations': each band set is folded into the context at its place
//! in the log, so a refuel is judged on the bands set before it, and a replay judges it the
//! same. A band set later does not judge earlier refuels again.
//!
//! **Exactly once.** Each alert event takes its id from the fuel event it answers and the rule
//! ([`derived_event_id`]), so a batch handled again after a crash appends nothing twice; and
//! an alert is one stream per refuel and rule ([`alert_id`]), so the same finding again lands
//! on the same alert.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::alert::{
    alert_id, Alert, AlertCommand, AlertEvent, AlertStatus, ClearReason, Flagged,
};
use aggregates::anomaly::{Detector, Finding, Refuel, Rule, Thresholds, VehicleFacts};
use aggregates::band::{BandEvent, ReferenceBands};
use aggregates::fuel::{FuelEvent, FuelRecord, FuelStation, TipoOperacion};
use aggregates::inspection::WebhookEvento;
use cqrs_es::Aggregate;
use projections::Change;
use rust_decimal::Decimal;
use sqlx::Row;
use tokio::sync::{watch, Mutex};

use crate::commands::CommandBus;
use crate::reactor::{derived_event_id, Reactor, ReactorError, CONSUMER_BATCH_EVENTS_MAX};
use crate::read_store::ReadStore;
use crate::runner::Progress;
use crate::store::{EventMetadata, SharedLog, StoredEvent};
use crate::webhooks::schedule::{self, Notice};

/// The consumer's name (its checkpoint and lease).
pub const DETECTOR: &str = "alertas";
/// Who the events it appends say acted.
const ACTOR: &str = "detector-anomalias";
/// Longest a batch waits for the fleet's read model to fold it before it is retried.
const READ_MODEL_WAIT: Duration = Duration::from_secs(10);

/// A refuel as the checks see it; `None` for an advance, or a refuel without a plate, an
/// amount or gallons (nothing to compare).
pub fn refuel_of(record: &FuelRecord) -> Option<Refuel> {
    if record.tipo_operacion != TipoOperacion::Tanqueo {
        return None;
    }
    Some(Refuel {
        id: record.id,
        fecha: record.fecha,
        bomba_id: record.bomba_id,
        placa_id: record.placa_id?,
        tipo_combustible: record.tipo_combustible.clone(),
        valor_tanqueo: record.valor_tanqueo?,
        cantidad_galones: record.cantidad_galones?,
        horometro: record.horometro,
        saldo_disponible: record.saldo_disponible,
    })
}

/// The product a vehicle of the `tipos-combustible` catalogue's `nombre` burns, as refuels name
/// products (the `combustibles` catalogue): Diesel is sold as ACPM in Colombia, and a hybrid
/// burns gasoline. Any other name is compared as it is written, so a fleet whose catalogue
/// already says `ACPM` or `EXTRA` needs no translation.
pub fn product_for(nombre: &str) -> String {
    match nombre.trim().to_uppercase().as_str() {
        "DIESEL" => "ACPM".to_string(),
        "GASOLINA" | "HÍBRIDO" | "HIBRIDO" => "GASOLINA".to_string(),
        other => other.to_string(),
    }
}

/// A vehicle as the checks and the webhooks need it.
#[derive(Debug, Clone, Default)]
struct Vehicle {
    facts: VehicleFacts,
    empresa_id: Option<i64>,
}

/// The detector's context and the log position it has folded through.
struct Folded {
    detector: Detector,
    through: i64,
    /// The last band set it has folded.
    bands_through: i64,
}

pub struct AlertDetector {
    log: SharedLog,
    alerts: Arc<CommandBus<Alert>>,
    read_models: ReadStore,
    /// How far the read models it reads (the fleet's, the registries', the webhooks') have
    /// folded.
    fleet_folded: Vec<watch::Receiver<Progress>>,
    thresholds: Thresholds,
    folded: Mutex<Option<Folded>>,
}

fn failed(error: impl std::fmt::Display) -> ReactorError {
    ReactorError::Failed(error.to_string())
}

/// What happened to a refuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Happened {
    Recorded,
    Corrected,
    Voided,
}

/// What one fuel event asks of the alerts of one refuel.
enum Verdict {
    /// A new refuel: flag each finding.
    Recorded(Vec<Finding>),
    /// A corrected refuel: flag each finding, clear every other rule's alert.
    Corrected(Vec<Finding>),
    /// Every alert of the refuel closes.
    Cleared(ClearReason),
}

impl AlertDetector {
    pub fn new(
        log: SharedLog,
        alerts: Arc<CommandBus<Alert>>,
        read_models: ReadStore,
        fleet_folded: Vec<watch::Receiver<Progress>>,
        thresholds: Thresholds,
    ) -> Self {
        Self {
            log,
            alerts,
            read_models,
            fleet_folded,
            thresholds,
            folded: Mutex::new(None),
        }
    }

    /// The detector folded from the stations' events up to `through` (inclusive).
    async fn rebuild(&self, through: i64) -> Result<Folded, ReactorError> {
        let mut detector = Detector::default();
        let mut after = 0;
        loop {
            let events = self
                .log
                .read_type(FuelStation::TYPE, after, CONSUMER_BATCH_EVENTS_MAX)
                .await?;
            let full = events.len() as i64 == CONSUMER_BATCH_EVENTS_MAX;
            for event in events.iter().take_while(|e| e.position <= through) {
                fold(&mut detector, &decode(event)?);
            }
            match events.last() {
                Some(last) if full && last.position < through => after = last.position,
                _ => break,
            }
        }
        let mut folded = Folded {
            detector,
            through,
            bands_through: 0,
        };
        self.fold_bands(&mut folded, through).await?;
        Ok(folded)
    }

    /// Folds into `folded` the bands set after the last one it holds, up to `through`
    /// (inclusive).
    async fn fold_bands(&self, folded: &mut Folded, through: i64) -> Result<(), ReactorError> {
        for event in self.bands_set(folded.bands_through, through).await? {
            fold_band(folded, &event)?;
        }
        Ok(())
    }

    /// The bands set after `after`, up to `through` (inclusive), in log order.
    async fn bands_set(&self, after: i64, through: i64) -> Result<Vec<StoredEvent>, ReactorError> {
        let mut set = Vec::new();
        let mut after = after;
        loop {
            let events = self
                .log
                .read_type(ReferenceBands::TYPE, after, CONSUMER_BATCH_EVENTS_MAX)
                .await?;
            let full = events.len() as i64 == CONSUMER_BATCH_EVENTS_MAX;
            let last = events.last().map(|e| e.position);
            set.extend(events.into_iter().take_while(|e| e.position <= through));
            match last {
                Some(last) if full && last < through => after = last,
                _ => break,
            }
        }
        Ok(set)
    }

    /// Waits until the fleet's read models have folded `position`.
    async fn fleet_at(&self, position: i64) -> Result<(), ReactorError> {
        for folded in &self.fleet_folded {
            let mut folded = folded.clone();
            let reached = tokio::time::timeout(
                READ_MODEL_WAIT,
                folded.wait_for(|p| p.checkpoint >= position),
            )
            .await;
            if !matches!(reached, Ok(Ok(_))) {
                return Err(failed(format!(
                    "the fleet's read model has not folded position {position} yet"
                )));
            }
        }
        Ok(())
    }

    /// The registered facts of the live vehicle of `placa_id`, and its company.
    async fn vehicle(&self, placa_id: i64) -> Result<Vehicle, ReactorError> {
        let row = sqlx::query(
            "SELECT v.capacidad_combustible_galones, c.nombre, v.id_empresa FROM rm_vehiculos v \
             LEFT JOIN rm_catalogos c ON c.catalogo = 'tipos-combustible' \
             AND c.id = v.id_tipo_combustible \
             WHERE v.placa_id = $1 AND v.eliminado = 0 ORDER BY v.id DESC LIMIT 1",
        )
        .bind(placa_id)
        .fetch_optional(self.read_models.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Vehicle::default());
        };
        let capacity: Option<String> = row.try_get(0)?;
        let nombre: Option<String> = row.try_get(1)?;
        Ok(Vehicle {
            facts: VehicleFacts {
                capacity_galones: capacity.and_then(|c| c.parse::<Decimal>().ok()),
                tipo_combustible: nombre.as_deref().map(product_for),
            },
            empresa_id: row.try_get(2)?,
        })
    }

    /// Appends what `verdict` asks of the refuel's alerts, in answer to `event`; answers what
    /// the webhooks of `empresa_id` are to be told.
    async fn record(
        &self,
        event: &StoredEvent,
        refuel: (i64, i64, i64, chrono::NaiveDate),
        verdict: Verdict,
        empresa_id: Option<i64>,
    ) -> Result<Vec<Notice>, ReactorError> {
        let (tanqueo_id, bomba_id, placa_id, fecha) = refuel;
        let metadata = EventMetadata {
            actor: Some(ACTOR.to_string()),
            request_id: None,
            correlation_id: event.metadata.correlation_id.clone(),
            causation_id: Some(event.event_id.to_string()),
        };
        // A new refuel's findings are all new alerts, told whether or not this run appended
        // them (a run that died after its appends tells them now); a correction's, only when
        // it flagged them anew.
        let always_told = matches!(verdict, Verdict::Recorded(_));
        let (findings, clear) = match verdict {
            Verdict::Recorded(findings) => (findings, None),
            Verdict::Corrected(findings) => (findings, Some(ClearReason::TanqueoCorregido)),
            Verdict::Cleared(reason) => (Vec::new(), Some(reason)),
        };
        let mut commands: Vec<(Rule, AlertCommand)> = Vec::new();
        for rule in Rule::ALL {
            let alerta_id = alert_id(tanqueo_id, rule);
            match findings.iter().find(|f| f.rule == rule) {
                Some(finding) => commands.push((
                    rule,
                    AlertCommand::Flag {
                        alerta_id,
                        flagged: Flagged::of(finding.clone(), bomba_id, placa_id, fecha),
                    },
                )),
                None => {
                    if let Some(cierre) = clear {
                        commands.push((rule, AlertCommand::Clear { alerta_id, cierre }));
                    }
                }
            }
        }
        let mut notices = Vec::new();
        for (rule, command) in commands {
            let (alerta_id, flagged) = match &command {
                AlertCommand::Flag { alerta_id, flagged } => (*alerta_id, Some(flagged.clone())),
                AlertCommand::Clear { alerta_id, .. } | AlertCommand::Review { alerta_id, .. } => {
                    (*alerta_id, None)
                }
            };
            let id = derived_event_id(event.event_id, rule.as_str());
            let executed = self
                .alerts
                .execute_derived(
                    &alerta_id.to_string(),
                    command,
                    &metadata,
                    &move |_: &AlertEvent| id,
                )
                .await
                .map_err(|e| failed(format!("alert {alerta_id}: {e}")))?;
            let (Some(flagged), Some(empresa_id)) = (flagged, empresa_id) else {
                continue;
            };
            if always_told || !executed.events.is_empty() {
                notices.push(Notice {
                    event_id: id,
                    position: event.position,
                    recorded_at: event.recorded_at,
                    evento: WebhookEvento::TanqueoAnomalia,
                    empresa_id,
                    dados: alert_body(alerta_id, &flagged),
                });
            }
        }
        Ok(notices)
    }
}

/// The alert as a webhook tells it: as `GET /api/alertas` showed it when it was flagged.
fn alert_body(alerta_id: uuid::Uuid, flagged: &Flagged) -> serde_json::Value {
    serde_json::json!({
        "id": alerta_id.to_string(),
        "regla": flagged.regla.as_str(),
        "severidad": flagged.severidad.as_str(),
        "estado": AlertStatus::Abierta.as_str(),
        "evidencia": flagged.evidencia,
        "tanqueo_id": flagged.tanqueo_id,
        "placa_id": flagged.placa_id,
        "bomba_id": flagged.bomba_id,
        "fecha": flagged.fecha.to_string(),
    })
}

/// Decodes a station's event.
fn decode(event: &StoredEvent) -> Result<FuelEvent, ReactorError> {
    projections::decode_parts(event.position, &event.event_type, &event.payload).map_err(failed)
}

/// Takes a band set into the detector's context.
fn fold_band(folded: &mut Folded, event: &StoredEvent) -> Result<(), ReactorError> {
    let decoded: BandEvent =
        projections::decode_parts(event.position, &event.event_type, &event.payload)
            .map_err(failed)?;
    folded.detector.set_band(decoded.band());
    folded.bands_through = event.position;
    Ok(())
}

/// Takes `event` into the detector's context, without checking anything.
fn fold(detector: &mut Detector, event: &FuelEvent) {
    match event {
        FuelEvent::TanqueoRecorded { record } | FuelEvent::AnticipoPaid { record } => {
            remember(detector, record)
        }
        FuelEvent::TanqueoCorrected { antes, despues, .. } => {
            forget(detector, antes);
            remember(detector, despues);
        }
        FuelEvent::TanqueoVoided { record, .. } => forget(detector, record),
        // A policy or a month's close moves no money and changes no refuel.
        FuelEvent::OverdraftPolicyChanged { .. }
        | FuelEvent::PeriodClosed { .. }
        | FuelEvent::PeriodReopened { .. } => {}
    }
}

fn remember(detector: &mut Detector, record: &FuelRecord) {
    match refuel_of(record) {
        Some(refuel) => detector.remember(refuel),
        None => detector.pay(record.bomba_id, record.effect()),
    }
}

fn forget(detector: &mut Detector, record: &FuelRecord) {
    match refuel_of(record) {
        Some(refuel) => detector.forget(&refuel),
        None => detector.pay(record.bomba_id, record.effect_of_void()),
    }
}

#[async_trait::async_trait]
impl Reactor for AlertDetector {
    fn name(&self) -> &'static str {
        DETECTOR
    }

    fn stream_type(&self) -> &'static str {
        FuelStation::TYPE
    }

    fn wants(&self, event_type: &str) -> bool {
        FuelEvent::moves_balance(event_type)
    }

    async fn react(&self, events: &[StoredEvent]) -> Result<Vec<Change>, ReactorError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(Vec::new());
        };
        let mut folded = self.folded.lock().await;
        // First batch of this instance, or a batch again after one failed half-way: the
        // context must be exactly what the log said before this batch.
        if folded.as_ref().is_none_or(|f| f.through >= first.position) {
            *folded = None;
            *folded = Some(self.rebuild(first.position - 1).await?);
        }
        let Some(state) = folded.as_mut() else {
            return Ok(Vec::new());
        };
        self.fleet_at(last.position).await?;
        let bands = self.bands_set(state.bands_through, last.position).await?;
        let mut bands = bands.iter().peekable();
        let mut vehicles: HashMap<i64, Vehicle> = HashMap::new();
        let mut notices: Vec<Notice> = Vec::new();
        for event in events {
            while let Some(band) = bands.next_if(|b| b.position < event.position) {
                fold_band(state, band)?;
            }
            let decoded = decode(event)?;
            let (record, happened) = match &decoded {
                FuelEvent::TanqueoRecorded { record } => (record, Happened::Recorded),
                FuelEvent::TanqueoCorrected { despues, .. } => (despues, Happened::Corrected),
                FuelEvent::TanqueoVoided { record, .. } => (record, Happened::Voided),
                _ => {
                    fold(&mut state.detector, &decoded);
                    state.through = event.position;
                    continue;
                }
            };
            let place = record
                .placa_id
                .map(|placa_id| (record.id, record.bomba_id, placa_id, record.fecha));
            let mut empresa_id = None;
            let verdict = if happened == Happened::Voided {
                fold(&mut state.detector, &decoded);
                Verdict::Cleared(ClearReason::TanqueoAnulado)
            } else {
                if let FuelEvent::TanqueoCorrected { antes, .. } = &decoded {
                    forget(&mut state.detector, antes);
                }
                let findings = match refuel_of(record) {
                    Some(refuel) => {
                        let vehicle = match vehicles.get(&refuel.placa_id) {
                            Some(vehicle) => vehicle.clone(),
                            None => {
                                let facts = self.vehicle(refuel.placa_id).await?;
                                vehicles.insert(refuel.placa_id, facts.clone());
                                facts
                            }
                        };
                        empresa_id = vehicle.empresa_id;
                        state
                            .detector
                            .check(&refuel, &vehicle.facts, &self.thresholds)
                    }
                    None => Vec::new(),
                };
                remember(&mut state.detector, record);
                if happened == Happened::Corrected {
                    Verdict::Corrected(findings)
                } else {
                    Verdict::Recorded(findings)
                }
            };
            // Mark the event folded before appending: should an append fail, the next try
            // sees `through` at or past the batch and folds the context again from the log.
            state.through = event.position;
            let Some(place) = place else { continue };
            if matches!(&verdict, Verdict::Recorded(findings) if findings.is_empty()) {
                continue;
            }
            notices.extend(self.record(event, place, verdict, empresa_id).await?);
        }
        if notices.is_empty() {
            return Ok(Vec::new());
        }
        let subscriptions = crate::queries::webhooks::subscriptions(&self.read_models)
            .await
            .map_err(failed)?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        Ok(schedule::deliveries(&notices, &subscriptions, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vehicle_s_fuel_type_names_the_product_refuels_carry() {
        assert_eq!(product_for("Diesel"), "ACPM");
        assert_eq!(product_for("Gasolina"), "GASOLINA");
        assert_eq!(product_for("Híbrido"), "GASOLINA");
        assert_eq!(product_for("extra"), "EXTRA");
        assert_eq!(product_for("Eléctrico"), "ELÉCTRICO");
    }
}
