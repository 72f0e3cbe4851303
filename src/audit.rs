//! Audit reads of the log: pages of events by any filter (the feed, a subject's history, an
//! actor's), a subject's state as it stood at an instant, and the live feed's follower.

use std::collections::VecDeque;

use aggregates::audit::{Subject, SubjectFold};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use crate::store::{
    EventFilter, EventLog, SharedLog, SnapshotBound, StoreError, StoredEvent, STREAM_PAGE_EVENTS,
};

/// One page of a filtered read.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// The position to ask for next: past the last event, or past the head the page was read
    /// at when it was not full (nothing up to there is left to find).
    pub next_position: i64,
    /// The log's head when the page was read.
    pub head: i64,
}

/// Up to `limit` events `filter` selects from position `from` (inclusive) on.
pub async fn page(
    log: &dyn EventLog,
    filter: &EventFilter,
    from: i64,
    limit: i64,
) -> Result<Page, StoreError> {
    let from = from.max(1);
    let head = log.head().await?;
    let events = log.read_filtered(filter, from - 1, head, limit).await?;
    let next_position = match events.last() {
        Some(last) if events.len() as i64 >= limit => last.position + 1,
        _ => from.max(head + 1),
    };
    Ok(Page {
        events,
        next_position,
        head,
    })
}

/// A subject's state as its stream had it at an instant.
#[derive(Debug)]
pub struct SubjectState {
    pub state: Value,
    /// The stream's version folded through.
    pub version: i64,
    /// The last event folded that is about the subject.
    pub last_event: StoredEvent,
    /// Stored events folded to get here (after the snapshot it started from, if any).
    pub events_folded: u64,
}

/// The subject's state folded (by its aggregate's own `apply`) from its stream's events recorded
/// at or before `as_of` (every event without it); `None` before the subject's first event.
///
/// The fold stops at the first event recorded after `as_of`: a stream's state is always one of
/// its prefixes, even should the clock have stepped back between two of its events. It starts
/// from the newest snapshot whose events were all recorded by then, which is such a prefix too.
pub async fn subject_state(
    log: &dyn EventLog,
    subject: &Subject,
    as_of: Option<DateTime<Utc>>,
) -> Result<Option<SubjectState>, StoreError> {
    let (mut fold, mut version, mut last_event) = match resumed(log, subject, as_of).await? {
        Some(resumed) => resumed,
        None => (subject.fold(), 0, None),
    };
    let mut events_folded = 0;
    'pages: loop {
        let page = log
            .read_stream_page(
                subject.stream_type(),
                subject.stream_id(),
                version,
                STREAM_PAGE_EVENTS,
            )
            .await?;
        let complete = (page.len() as i64) < STREAM_PAGE_EVENTS;
        for event in page {
            if as_of.is_some_and(|instant| event.recorded_at > instant) {
                break 'pages;
            }
            fold.apply(&event.event_type, &event.payload)
                .map_err(|e| StoreError::Corrupt {
                    position: event.position,
                    reason: e.to_string(),
                })?;
            version = event.version;
            events_folded += 1;
            if subject.concerns(&event.payload) {
                last_event = Some(event);
            }
        }
        if complete {
            break;
        }
    }
    Ok(fold
        .state()
        .zip(last_event)
        .map(|(state, last_event)| SubjectState {
            state,
            version,
            last_event,
            events_folded,
        }))
}

/// The subject's fold resumed from the newest snapshot of its stream recorded by `as_of`, the
/// version it covers and the last of its events about the subject; `None` without a snapshot
/// that reads back (a fold from the start then).
async fn resumed(
    log: &dyn EventLog,
    subject: &Subject,
    as_of: Option<DateTime<Utc>>,
) -> Result<Option<(SubjectFold, i64, Option<StoredEvent>)>, StoreError> {
    let Some(snapshot_version) = subject.snapshot_version() else {
        return Ok(None);
    };
    let bound = as_of.map_or(SnapshotBound::Latest, SnapshotBound::RecordedBy);
    let Some(snapshot) = log
        .load_snapshot(
            subject.stream_type(),
            subject.stream_id(),
            snapshot_version,
            bound,
        )
        .await?
    else {
        return Ok(None);
    };
    let last_event = match subject.entity() {
        // Every event of the stream is about the subject: the last one is the snapshot's own.
        None => log
            .read_stream_page(
                subject.stream_type(),
                subject.stream_id(),
                snapshot.version - 1,
                1,
            )
            .await?
            .pop(),
        Some(entity) => {
            let filter = EventFilter {
                stream_type: Some(subject.stream_type().to_string()),
                stream_id: Some(subject.stream_id().to_string()),
                entity: Some(entity),
                ..EventFilter::default()
            };
            log.read_filtered_last(&filter, snapshot.position).await?
        }
    };
    match subject.resume(&snapshot.state, last_event.is_some()) {
        Ok(fold) => Ok(Some((fold, snapshot.version, last_event))),
        Err(error) => {
            tracing::warn!(
                stream_type = subject.stream_type(),
                stream_id = subject.stream_id(),
                version = snapshot.version,
                %error,
                "a snapshot does not read back: ignored, the stream is folded from its events"
            );
            Ok(None)
        }
    }
}

/// Events the live feed reads from the log at once: what it holds in memory, at most.
pub const FOLLOW_PAGE_EVENTS: i64 = 500;

/// The live feed: every event `filter` selects from a position on, in order, then each new one
/// as it commits. Holds one page at a time, never the log.
pub struct Follower {
    log: SharedLog,
    filter: EventFilter,
    next_position: i64,
    head: watch::Receiver<i64>,
    buffered: VecDeque<StoredEvent>,
}

impl Follower {
    pub fn new(log: SharedLog, filter: EventFilter, from: i64) -> Self {
        let head = log.watch_head();
        Self {
            log,
            filter,
            next_position: from.max(1),
            head,
            buffered: VecDeque::new(),
        }
    }

    /// The next event; `Ok(None)` once the log shuts down.
    pub async fn next(&mut self) -> Result<Option<StoredEvent>, StoreError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Ok(Some(event));
            }
            // Marked seen before reading: a commit after this read wakes the wait below.
            let seen = *self.head.borrow_and_update();
            let until = seen.max(self.log.head().await?);
            if self.next_position <= until {
                let events = self
                    .log
                    .read_filtered(
                        &self.filter,
                        self.next_position - 1,
                        until,
                        FOLLOW_PAGE_EVENTS,
                    )
                    .await?;
                self.next_position = match events.last() {
                    Some(last) if events.len() as i64 >= FOLLOW_PAGE_EVENTS => last.position + 1,
                    _ => until + 1,
                };
                self.buffered.extend(events);
                continue;
            }
            if self.head.changed().await.is_err() {
                return Ok(None);
            }
        }
    }
}

/// The store's plan for the actor query `GET /api/auditoria/actores/{sub}/eventos` asks with
/// every filter it takes: proof that migration 0003's index serves it.
pub async fn explain_actor_query(log: &dyn EventLog) -> Result<String, StoreError> {
    let now = Utc::now();
    let filter = EventFilter {
        actor: Some("ana@flota.co".to_string()),
        event_types: vec!["VehicleDeleted".to_string()],
        recorded_from: Some(now - chrono::Duration::days(30)),
        recorded_to: Some(now),
        ..EventFilter::default()
    };
    log.explain_filtered(&filter).await
}
