//! The self-inspections' processor (seed 003: "cada auto inspeção enviada será inserida numa
//! fila para processamento"): a consumer of the `auto-inspecao` stream ([`crate::reactor`]) that
//! turns each queued inspection (`InspectionRequested`) into an open one (`InspectionCreated`,
//! status `ABERTA`, with its link).
//!
//! Each batch of queued inspections becomes one `Open` command on the inspections' stream. The
//! aggregate leaves alone what is no longer pending, and every `InspectionCreated` takes its id
//! from its `InspectionRequested` ([`derived_event_id`]): a batch replayed after a crash opens
//! nothing twice, whether this instance's state already shows it or not.
//!
//! It also schedules the companies' webhooks: for each inspection opened (`InspectionCreated`),
//! concluded or cancelled, one delivery per webhook of its company that subscribed to that event
//! and was registered before it ([`crate::webhooks::schedule`]). The rows are answered to the
//! consumer, which commits them with its checkpoint: each delivery is scheduled exactly once.
//! The body each carries shows the inspection as `GET /auto-inspecao/{hash}` would right after
//! the event, read from the inspections' read model once it has folded the event (and so every
//! webhook registered before it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::inspection::{
    InspectionCommand, InspectionEvent, InspectionHash, InspectionStatus, Inspections,
    WebhookEvento, INSPECTIONS_STREAM_ID,
};
use chrono::SecondsFormat;
use cqrs_es::Aggregate;
use projections::Change;
use tokio::sync::watch;
use uuid::Uuid;

use crate::commands::CommandBus;
use crate::queries;
use crate::reactor::{derived_event_id, Reactor, ReactorError};
use crate::read_store::ReadStore;
use crate::runner::Progress;
use crate::store::{EventMetadata, StoredEvent};
use crate::webhooks::schedule::{self, Notice};

/// The consumer's name (its checkpoint and lease).
pub const PROCESSOR: &str = "auto_inspecao";
/// Who the events it appends say acted.
const ACTOR: &str = "processador-auto-inspecao";

/// Longest a batch waits for the inspections' read model to fold it before it is retried (and
/// the consumer reported stalled).
const READ_MODEL_WAIT: Duration = Duration::from_secs(10);

pub struct InspectionProcessor {
    inspections: Arc<CommandBus<Inspections>>,
    read_models: ReadStore,
    /// How far the inspections' read model (`rm_auto_inspecoes`, `rm_webhooks`) has folded.
    folded: watch::Receiver<Progress>,
}

fn failed(error: impl std::fmt::Display) -> ReactorError {
    ReactorError::Failed(error.to_string())
}

impl InspectionProcessor {
    /// `folded` follows the projection that keeps the inspections and their webhooks.
    pub fn new(
        inspections: Arc<CommandBus<Inspections>>,
        read_models: ReadStore,
        folded: watch::Receiver<Progress>,
    ) -> Self {
        Self {
            inspections,
            read_models,
            folded,
        }
    }

    /// Waits until the read model has folded `position`.
    async fn folded(&self, position: i64) -> Result<(), ReactorError> {
        let mut folded = self.folded.clone();
        let reached = tokio::time::timeout(
            READ_MODEL_WAIT,
            folded.wait_for(|p| p.checkpoint >= position),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(failed(format!(
                "the inspections' read model has not folded position {position} yet"
            ))),
        }
    }

    /// The deliveries the events of `events` that webhooks hear of make.
    async fn schedule(&self, events: &[StoredEvent]) -> Result<Vec<Change>, ReactorError> {
        let mut heard = Vec::new();
        for event in events {
            let Some(evento) = WebhookEvento::of_event_type(&event.event_type) else {
                continue;
            };
            let decoded: InspectionEvent =
                projections::decode_parts(event.position, &event.event_type, &event.payload)
                    .map_err(failed)?;
            let (hash, link) = match decoded {
                InspectionEvent::InspectionCreated { hash, link, .. } => (hash, Some(link)),
                InspectionEvent::InspectionConcluded { hash, .. }
                | InspectionEvent::InspectionCancelled { hash, .. } => (hash, None),
                _ => continue,
            };
            heard.push((event, evento, hash, link));
        }
        let Some(last) = heard.last().map(|(event, ..)| event.position) else {
            return Ok(Vec::new());
        };
        self.folded(last).await?;
        let subscriptions = queries::webhooks::subscriptions(&self.read_models)
            .await
            .map_err(failed)?;
        if subscriptions.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<&str> = heard.iter().map(|(_, _, hash, _)| hash.as_str()).collect();
        let views = queries::inspections::inspections(&self.read_models, &hashes)
            .await
            .map_err(failed)?;
        let mut notices = Vec::with_capacity(heard.len());
        for (event, evento, hash, link) in heard {
            let mut dados = views.get(hash.as_str()).cloned().ok_or_else(|| {
                failed(format!(
                    "inspection {} is not in the read model",
                    hash.as_str()
                ))
            })?;
            // The inspection as it stood right after the event, not as it stands now.
            dados.status = match evento {
                WebhookEvento::Criada => InspectionStatus::Aberta,
                WebhookEvento::Concluida => InspectionStatus::Concluida,
                WebhookEvento::Cancelada => InspectionStatus::Cancelada,
                // Told by the fuel checks' detector, never of an inspection.
                WebhookEvento::TanqueoAnomalia => continue,
            }
            .as_str()
            .to_string();
            if link.is_some() {
                dados.link = link;
            }
            dados.atualizado_em = event.recorded_at.to_rfc3339_opts(SecondsFormat::Secs, true);
            notices.push(Notice {
                event_id: event.event_id,
                position: event.position,
                recorded_at: event.recorded_at,
                evento,
                empresa_id: dados.empresa_id,
                dados: serde_json::to_value(&dados).map_err(failed)?,
            });
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        Ok(schedule::deliveries(&notices, &subscriptions, now_ms))
    }

    /// Opens every queued inspection of `events`, in one append.
    async fn open(&self, events: &[StoredEvent]) -> Result<(), ReactorError> {
        let mut sources: HashMap<InspectionHash, Uuid> = HashMap::new();
        let mut hashes = Vec::new();
        let mut metadata = None;
        for event in events
            .iter()
            .filter(|e| e.event_type == "InspectionRequested")
        {
            let decoded: InspectionEvent =
                projections::decode_parts(event.position, &event.event_type, &event.payload)
                    .map_err(|e| ReactorError::Failed(e.to_string()))?;
            if let InspectionEvent::InspectionRequested { inspection } = decoded {
                sources.insert(inspection.hash.clone(), event.event_id);
                hashes.push(inspection.hash);
                metadata.get_or_insert_with(|| EventMetadata {
                    actor: Some(ACTOR.to_string()),
                    request_id: None,
                    correlation_id: event.metadata.correlation_id.clone(),
                    causation_id: Some(event.event_id.to_string()),
                });
            }
        }
        let Some(metadata) = metadata else {
            return Ok(());
        };
        let id_of = move |event: &InspectionEvent| match event {
            InspectionEvent::InspectionCreated { hash, .. } => {
                derived_event_id(sources.get(hash).copied().unwrap_or_default(), "criada")
            }
            // `Open` decides nothing else.
            _ => Uuid::now_v7(),
        };
        self.inspections
            .execute_derived(
                INSPECTIONS_STREAM_ID,
                InspectionCommand::Open { hashes },
                &metadata,
                &id_of,
            )
            .await
            .map_err(|e| ReactorError::Failed(format!("opening inspections: {e}")))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Reactor for InspectionProcessor {
    fn name(&self) -> &'static str {
        PROCESSOR
    }

    fn stream_type(&self) -> &'static str {
        Inspections::TYPE
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "InspectionRequested" || WebhookEvento::of_event_type(event_type).is_some()
    }

    async fn react(&self, events: &[StoredEvent]) -> Result<Vec<Change>, ReactorError> {
        self.open(events).await?;
        self.schedule(events).await
    }
}
