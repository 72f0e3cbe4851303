//! Our log as a `cqrs_es` persistence backend, so any `cqrs_es::Aggregate` can also run through
//! the stock `CqrsFramework` + `PersistedEventStore` on the same global, ordered log.
//!
//! cqrs-es keeps serde's tagged form of an event as its payload; the log stores the variant name
//! as `event_type` and only its fields as the payload. [`aggregates::codec`] converts between them.

use aggregates::codec;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use serde_json::Value;

use super::{AppendRequest, EventMetadata, NewEvent, SharedLog, StoreError, StoredEvent};

/// Events streamed per read when cqrs-es replays an aggregate type.
const REPLAY_PAGE: i64 = 1000;

pub struct LogRepository {
    log: SharedLog,
}

impl LogRepository {
    pub fn new(log: SharedLog) -> Self {
        Self { log }
    }
}

fn to_serialized(event: StoredEvent) -> Result<SerializedEvent, PersistenceError> {
    // cqrs-es reads metadata as a map of strings, so absent values are left out, not null.
    let known = [
        ("actor", &event.metadata.actor),
        ("request_id", &event.metadata.request_id),
        ("correlation_id", &event.metadata.correlation_id),
        ("causation_id", &event.metadata.causation_id),
    ];
    let metadata = Value::Object(
        known
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_string(), Value::String(value.clone()?))))
            .collect(),
    );
    Ok(SerializedEvent {
        aggregate_id: event.stream_id,
        sequence: usize::try_from(event.version).unwrap_or_default(),
        aggregate_type: event.stream_type,
        payload: codec::tagged(&event.event_type, &event.payload),
        event_type: event.event_type,
        event_version: event.schema_version.to_string(),
        metadata,
    })
}

fn persistence_error(error: StoreError) -> PersistenceError {
    match error {
        StoreError::Conflict { .. } => PersistenceError::OptimisticLockError,
        StoreError::Database(e) => PersistenceError::ConnectionError(Box::new(e)),
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

/// cqrs-es hands metadata over as a string map; keep the keys we know, drop the rest.
fn metadata_from(value: &Value) -> EventMetadata {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    EventMetadata {
        actor: field("actor"),
        request_id: field("request_id"),
        correlation_id: field("correlation_id"),
        causation_id: field("causation_id"),
    }
}

impl PersistedEventRepository for LogRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.get_last_events::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let after = i64::try_from(last_sequence).unwrap_or(i64::MAX);
        self.log
            .read_stream(A::TYPE, aggregate_id, after)
            .await
            .map_err(persistence_error)?
            .into_iter()
            .map(to_serialized)
            .collect()
    }

    /// The log keeps no snapshots: hot aggregates are cached by the command bus instead.
    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let new_events = events
            .iter()
            .map(|event| {
                let (event_type, payload) = match &event.payload {
                    Value::Object(map) if map.len() == 1 => {
                        let (key, value) = map.iter().next().expect("one entry");
                        (key.clone(), value.clone())
                    }
                    other => (event.event_type.clone(), other.clone()),
                };
                let mut new = NewEvent::new(event_type, payload, metadata_from(&event.metadata));
                new.schema_version = event.event_version.parse().unwrap_or(1);
                new
            })
            .collect();
        let request = AppendRequest {
            stream_type: first.aggregate_type.clone(),
            stream_id: first.aggregate_id.clone(),
            expected_version: i64::try_from(first.sequence).unwrap_or(i64::MAX) - 1,
            events: new_events,
            idempotency: None,
        };
        self.log.append(request).await.map_err(persistence_error)?;
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        for event in events {
            feed.push(Ok(event)).await?;
        }
        Ok(stream)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let (mut feed, stream) = ReplayStream::new(REPLAY_PAGE as usize);
        let log = self.log.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = match log.read_type(A::TYPE, after, REPLAY_PAGE).await {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = feed.push(Err(persistence_error(error))).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = last.position;
                for event in page {
                    if feed.push(to_serialized(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}
