//! The self-inspections' processor (seed 003: "cada auto inspeção enviada será inserida numa
//! fila para processamento"): a consumer of the `auto-inspecao` stream ([`crate::reactor`]) that
//! turns each queued inspection (`InspectionRequested`) into an open one (`InspectionCreated`,
//! status `ABERTA`, with its link).
//!
//! Each batch of queued inspections becomes one `Open` command on the inspections' stream. The
//! aggregate leaves alone what is no longer pending, and every `InspectionCreated` takes its id
//! from its `InspectionRequested` ([`derived_event_id`]): a batch replayed after a crash opens
//! nothing twice, whether this instance's state already shows it or not.

use std::collections::HashMap;
use std::sync::Arc;

use aggregates::inspection::{
    InspectionCommand, InspectionEvent, InspectionHash, Inspections, INSPECTIONS_STREAM_ID,
};
use cqrs_es::Aggregate;
use projections::Change;
use uuid::Uuid;

use crate::commands::CommandBus;
use crate::reactor::{derived_event_id, Reactor, ReactorError};
use crate::store::{EventMetadata, StoredEvent};

/// The consumer's name (its checkpoint and lease).
pub const PROCESSOR: &str = "auto_inspecao";
/// Who the events it appends say acted.
const ACTOR: &str = "processador-auto-inspecao";

pub struct InspectionProcessor {
    inspections: Arc<CommandBus<Inspections>>,
}

impl InspectionProcessor {
    pub fn new(inspections: Arc<CommandBus<Inspections>>) -> Self {
        Self { inspections }
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
        event_type == "InspectionRequested"
    }

    async fn react(&self, events: &[StoredEvent]) -> Result<Vec<Change>, ReactorError> {
        self.open(events).await?;
        Ok(Vec::new())
    }
}
