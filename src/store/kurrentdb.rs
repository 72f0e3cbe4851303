//! The event log kept in KurrentDB (EventStoreDB), behind the cargo feature `kurrentdb`.
//!
//! `DATABASE_URL=esdb://…` or `kurrentdb://…` selects it; the read models, their checkpoints,
//! the consumers' checkpoints and the webhooks stay in the SQLite or PostgreSQL database that
//! `--read-models-url` names (changes and checkpoint still commit in one transaction there).
//!
//! # Streams, revisions and ids
//! Each of our streams is the KurrentDB stream `{tipo}-{id}`. The URL may add
//! `streamPrefix=…` (read here, not by the client): every name then begins with it and only
//! streams with it are read, so several ledgers (or test runs) can share one server. A type may itself hold a `-`
//! (`registro-bomba`), so the name is only an address: the type and id are read back from the
//! event's metadata. Our versions count from 1 and KurrentDB's revisions from 0, so version
//! `v` is revision `v - 1`. An append says exactly what it expects: `NoStream` for version 0,
//! `StreamRevision(v - 1)` otherwise, never the client's default `Any`, because the server
//! deduplicates a retried append (same event ids at the same expected revision) only when it
//! names a revision. The event ids are ours (UUID v7, or derived from an Idempotency-Key's
//! epoch), so a retry sends the same ids. An idempotent retry may be answered with no position:
//! the position is then read back from the stream.
//!
//! # Positions
//! The global order is `$all`'s. Our [`StoredEvent::position`] is the event's **commit
//! position**, as an `i64` (a commit position past `i64::MAX` is refused as
//! [`StoreError::Corrupt`]; it is a byte offset in the transaction log, 8 EiB away). Unlike
//! SQLite's and PostgreSQL's positions, these are:
//! - **not contiguous**: they are byte offsets, so `head - after` is not a count of events, and
//!   a reader never expects `after + 1` to exist;
//! - **shared within one append**: the events of one append are one transaction and share its
//!   commit position (their prepare positions differ). [`EventLog::read_all`] therefore never
//!   ends a page inside a transaction ([`Page`]), so "everything with `position <= p` is read"
//!   stays true at every page boundary, which is all the projection runner and the consumers
//!   assume: they keep the position of the last event they folded as their checkpoint and ask
//!   for `position > checkpoint` next.
//!
//! Reading resumes at `Position { commit: p, prepare: p }` and skips what is at or before `p`.
//! For a position the log handed out (a checkpoint, a feed's `siguiente_posicion` or
//! `Last-Event-ID`) that is a record's own position: an append's events carry the position of
//! its first record as their commit position. A number in between (a client's own
//! `desde_posicion`, or `first_position - 1` after an append, as the refuel handler reads its
//! own events back) leaves the server to find the next record from there; that is untested
//! here, where no server runs. Lag figures (`/readyz`, consumers) are `head - checkpoint`:
//! bytes of log on KurrentDB, not events; zero still means caught up.
//! The checkpoints stay in the read-models database, in the same transaction as the changes.
//! The head is the newest non-system event of `$all`, followed by a subscription to `$all`
//! from its end, so appends by other processes move [`EventLog::watch_head`] too.
//!
//! # What KurrentDB has no home for
//! These parts of [`EventLog`] are answered honestly instead of imitated:
//! - **Idempotency keys** and **reading an event by id** ([`IdempotencyStore`]): KurrentDB has
//!   no index by event id and no place to keep an answer next to the events. A request with an
//!   `Idempotency-Key` is refused with [`StoreError::NotSupported`]; retries without one are
//!   still safe at the store level, through the server's own deduplication of event ids.
//! - **Event ids reused elsewhere** ([`StoreError::EventIdReused`]): the server only
//!   deduplicates ids within the stream and revision an append names; an id stored in another
//!   stream is not detected.
//! - **Snapshots**: none are kept (the trait's defaults: loading answers `None`, saving drops
//!   the state); aggregates fold from their streams.
//! - **The hash chain, the actor index, `verify`/`export`/`import`/`backup`**: they read the
//!   SQL log's own tables; KurrentDB's own scavenging and ACLs are its integrity story. The
//!   filtered feed is served by reading `$all` and filtering here (the trait's default).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, Position,
    ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamPosition, StreamState,
    SubscribeToAllOptions, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::idempotency::{SavedResponse, StoredKey};
use super::{
    AppendRequest, Appended, EventLog, EventMetadata, IdempotencyClaim, IdempotencyStore, NewEvent,
    StoreError, StoredEvent,
};

const BACKEND: &str = "kurrentdb";

/// Streams whose names begin with `$` are KurrentDB's own (`$settings`, `$stats-…`, metadata
/// streams): never ours.
const NOT_A_SYSTEM_STREAM: &str = "^[^$].*";

/// The KurrentDB stream that holds our stream `stream_type`/`stream_id`, under `prefix` (empty
/// unless the URL names one).
pub fn stream_name(prefix: &str, stream_type: &str, stream_id: &str) -> String {
    format!("{prefix}{stream_type}-{stream_id}")
}

/// Our `streamPrefix=…` taken out of a connection URL: the URL for the client, and the prefix
/// (empty without one).
pub fn split_stream_prefix(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), String::new());
    };
    let mut prefix = String::new();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("streamPrefix=") {
            Some(value) => {
                prefix = value.to_string();
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), prefix)
    } else {
        (format!("{base}?{}", kept.join("&")), prefix)
    }
}

/// The streams of `$all` a log under `prefix` reads: its own, or without a prefix every stream
/// but KurrentDB's own.
fn our_streams(prefix: &str) -> SubscriptionFilter {
    if prefix.is_empty() {
        SubscriptionFilter::on_stream_name().regex(NOT_A_SYSTEM_STREAM)
    } else {
        SubscriptionFilter::on_stream_name().add_prefix(prefix)
    }
}

/// What an append expects, for a stream that our log says is at `expected_version`: never
/// `Any` (see the module doc).
pub fn expected_state(expected_version: i64) -> StreamState {
    debug_assert!(expected_version >= 0, "versions start at 0 (no stream)");
    match u64::try_from(expected_version) {
        Ok(0) | Err(_) => StreamState::NoStream,
        Ok(version) => StreamState::StreamRevision(version - 1),
    }
}

/// Our version of the event at KurrentDB `revision`.
pub fn version_of_revision(revision: u64) -> i64 {
    i64::try_from(revision).map_or(i64::MAX, |revision| revision + 1)
}

/// The stream's version that a wrong-expected-version answer reports.
pub fn version_of_current(current: CurrentRevision) -> i64 {
    match current {
        CurrentRevision::NoStream => 0,
        CurrentRevision::Current(revision) => version_of_revision(revision),
    }
}

/// Our position of an event at `position` in `$all`: its commit position.
pub fn position_of(position: Position) -> Result<i64, StoreError> {
    i64::try_from(position.commit).map_err(|_| StoreError::Corrupt {
        position: i64::MAX,
        reason: format!("commit position {} does not fit an i64", position.commit),
    })
}

/// Where a forward read of `$all` for events after our position `after` starts (inclusive: the
/// reader skips what is at or before `after`).
pub fn read_from(after_position: i64) -> StreamPosition<Position> {
    match u64::try_from(after_position) {
        Ok(0) | Err(_) => StreamPosition::Start,
        Ok(p) => StreamPosition::Position(Position {
            commit: p,
            prepare: p,
        }),
    }
}

/// Our error for a client error on an append to `stream_type`/`stream_id` that expected
/// `expected_version`.
pub fn store_error(
    error: kurrentdb::Error,
    stream_type: &str,
    stream_id: &str,
    expected_version: i64,
) -> StoreError {
    match error {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => StoreError::Conflict {
            stream_type: stream_type.to_string(),
            stream_id: stream_id.to_string(),
            expected: expected_version,
            actual: version_of_current(current),
        },
        other => read_error(other),
    }
}

/// Our error for a client error outside an append: an outage when the server is out of reach
/// (the same request may succeed once it is back), a server error otherwise.
pub fn read_error(error: kurrentdb::Error) -> StoreError {
    use kurrentdb::Error as E;
    match error {
        E::ConnectionClosed
        | E::GrpcConnectionError(_)
        | E::DeadlineExceeded
        | E::NotLeaderException(_)
        | E::Grpc {
            code: tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled,
            ..
        } => StoreError::Unavailable(format!("kurrentdb: {error}")),
        other => StoreError::Backend(format!("kurrentdb: {other}")),
    }
}

/// The custom metadata of each of our events: who caused it, its schema version, and which of
/// our streams it belongs to (the stream name alone is ambiguous, see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMetadata {
    pub stream_type: String,
    pub stream_id: String,
    pub schema_version: i32,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

impl LogMetadata {
    pub fn of(stream_type: &str, stream_id: &str, event: &NewEvent) -> Self {
        let EventMetadata {
            actor,
            request_id,
            correlation_id,
            causation_id,
        } = event.metadata.clone();
        Self {
            stream_type: stream_type.to_string(),
            stream_id: stream_id.to_string(),
            schema_version: event.schema_version,
            actor,
            request_id,
            correlation_id,
            causation_id,
        }
    }
}

/// `event` as KurrentDB stores it: JSON payload, our id, our metadata.
pub fn event_data(
    stream_type: &str,
    stream_id: &str,
    event: &NewEvent,
) -> Result<EventData, StoreError> {
    let encode = |e: serde_json::Error| StoreError::Backend(format!("encoding an event: {e}"));
    EventData::json(&event.event_type, &event.payload)
        .map_err(encode)?
        .id(event.event_id)
        .metadata_as_json(&LogMetadata::of(stream_type, stream_id, event))
        .map_err(encode)
}

/// The parts of a KurrentDB event our log reads, apart from the client's type so that the
/// decoding is tested without a server.
#[derive(Debug, Clone)]
pub struct RecordedParts<'a> {
    pub position: Position,
    pub revision: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub custom_metadata: &'a [u8],
    pub created: DateTime<Utc>,
}

impl<'a> From<&'a RecordedEvent> for RecordedParts<'a> {
    fn from(event: &'a RecordedEvent) -> Self {
        Self {
            position: event.position,
            revision: event.revision,
            event_id: event.id,
            event_type: &event.event_type,
            data: &event.data,
            custom_metadata: &event.custom_metadata,
            created: event.created,
        }
    }
}

/// Whether a recorded event is one of ours: written by [`event_data`], with our metadata. An
/// event another program wrote to the same server is not part of our log.
pub fn is_ours(parts: &RecordedParts<'_>) -> bool {
    serde_json::from_slice::<LogMetadata>(parts.custom_metadata).is_ok()
}

/// Decodes one of our events, upcast to the current version of its type (as the SQL logs do).
pub fn stored_event(parts: RecordedParts<'_>) -> Result<StoredEvent, StoreError> {
    let position = position_of(parts.position)?;
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let metadata: LogMetadata = serde_json::from_slice(parts.custom_metadata)
        .map_err(|e| corrupt(format!("metadata: {e}")))?;
    let payload = std::str::from_utf8(parts.data).map_err(|e| corrupt(format!("payload: {e}")))?;
    let event_metadata = serde_json::to_string(&EventMetadata {
        actor: metadata.actor,
        request_id: metadata.request_id,
        correlation_id: metadata.correlation_id,
        causation_id: metadata.causation_id,
    })
    .map_err(|e| corrupt(e.to_string()))?;
    super::stored_event_from_columns(
        position,
        &parts.event_id.to_string(),
        metadata.stream_type,
        metadata.stream_id,
        version_of_revision(parts.revision),
        parts.event_type.to_string(),
        metadata.schema_version,
        payload,
        &event_metadata,
        parts.created,
    )
}

/// One page of [`EventLog::read_all`]: events after `after`, up to `limit`, but never ending
/// inside a transaction (the events of one append share a commit position, see the module doc).
#[derive(Debug)]
pub struct Page {
    after: i64,
    limit: usize,
    events: Vec<StoredEvent>,
}

/// What [`Page::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// At or before `after`: already read.
    Skipped,
    Taken,
    /// The page is full and this event begins another transaction: stop reading.
    Full,
}

impl Page {
    pub fn new(after: i64, limit: i64) -> Self {
        Self {
            after,
            limit: usize::try_from(limit).unwrap_or(0),
            events: Vec::new(),
        }
    }

    pub fn offer(&mut self, event: StoredEvent) -> Offered {
        if event.position <= self.after {
            return Offered::Skipped;
        }
        if let Some(last) = self.events.last() {
            debug_assert!(last.position <= event.position, "$all is read in order");
            if self.events.len() >= self.limit && last.position != event.position {
                return Offered::Full;
            }
        } else if self.limit == 0 {
            return Offered::Full;
        }
        self.events.push(event);
        Offered::Taken
    }

    pub fn into_events(self) -> Vec<StoredEvent> {
        self.events
    }
}

/// The event log in KurrentDB.
pub struct KurrentDbLog {
    client: Client,
    prefix: String,
    head: watch::Sender<i64>,
    following: tokio::task::JoinHandle<()>,
}

impl KurrentDbLog {
    /// Connects to the server `url` names (`esdb://host:2113?tls=false`, …) and starts following
    /// its head.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (url, prefix) = split_stream_prefix(url);
        let settings: ClientSettings =
            url.parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    StoreError::Backend(format!("kurrentdb URL: {}", e.message()))
                })?;
        let client = Client::new(settings)
            .map_err(|e| StoreError::Unavailable(format!("kurrentdb: {e}")))?;
        let initial = read_head(&client, &prefix).await?;
        let (head, _) = watch::channel(initial);
        let following = tokio::spawn(follow_head(client.clone(), prefix.clone(), head.clone()));
        Ok(Self {
            client,
            prefix,
            head,
            following,
        })
    }

    async fn read_stream_events(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let from = u64::try_from(after_version.max(0)).unwrap_or(0);
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from))
            .max_count(limit);
        let name = stream_name(&self.prefix, stream_type, stream_id);
        let mut stream = self
            .client
            .read_stream(name.as_str(), &options)
            .await
            .map_err(read_error)?;
        let mut events = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(resolved)) => {
                    let recorded = resolved.get_original_event();
                    let parts = RecordedParts::from(recorded);
                    if is_ours(&parts) {
                        events.push(stored_event(parts)?);
                    }
                }
                Ok(None) => return Ok(events),
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(error) => return Err(read_error(error)),
            }
        }
    }

    /// `$all` after `after_position`, whole transactions, up to `limit` events; only events of
    /// ours for which `keep` holds.
    async fn read_all_where(
        &self,
        after_position: i64,
        limit: i64,
        filter: SubscriptionFilter,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let options = ReadAllOptions::default()
            .forwards()
            .position(read_from(after_position))
            .filter(filter);
        let mut stream = self.client.read_all(&options).await.map_err(read_error)?;
        let mut page = Page::new(after_position, limit);
        while let Some(resolved) = stream.next().await.map_err(read_error)? {
            let parts = RecordedParts::from(resolved.get_original_event());
            if !is_ours(&parts) {
                continue;
            }
            let event = stored_event(parts)?;
            if !keep(&event) {
                continue;
            }
            if page.offer(event) == Offered::Full {
                break;
            }
        }
        // Dropping the stream cancels the rest of the server's read.
        Ok(page.into_events())
    }

    /// The position of the event at `revision` of a stream: for an idempotent retry, which the
    /// server may answer without one.
    async fn position_at(
        &self,
        stream_type: &str,
        stream_id: &str,
        revision: u64,
    ) -> Result<i64, StoreError> {
        let version = version_of_revision(revision);
        let events = self
            .read_stream_events(stream_type, stream_id, version - 1, 1)
            .await?;
        events
            .first()
            .filter(|e| e.version == version)
            .map(|e| e.position)
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "kurrentdb acknowledged {} at revision {revision} but does not return it",
                    stream_name(&self.prefix, stream_type, stream_id)
                ))
            })
    }
}

/// The newest event's position on the server (system streams aside), 0 for an empty one.
async fn read_head(client: &Client, prefix: &str) -> Result<i64, StoreError> {
    let options = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .filter(our_streams(prefix))
        .max_count(1);
    let mut stream = client.read_all(&options).await.map_err(read_error)?;
    match stream.next().await.map_err(read_error)? {
        Some(resolved) => position_of(resolved.get_original_event().position),
        None => Ok(0),
    }
}

/// Moves `head` forward with every event appended to the server, by anyone; resubscribes after
/// a lost connection. Ends when the log is dropped.
async fn follow_head(client: Client, prefix: String, head: watch::Sender<i64>) {
    loop {
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(our_streams(&prefix));
        let mut subscription = client.subscribe_to_all(&options).await;
        // An append in between is found by reading the head again.
        if let Ok(position) = read_head(&client, &prefix).await {
            head.send_if_modified(|h| advance(h, position));
        }
        loop {
            match subscription.next().await {
                Ok(resolved) => {
                    if let Ok(position) = position_of(resolved.get_original_event().position) {
                        head.send_if_modified(|h| advance(h, position));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "kurrentdb: lost the subscription to $all; resubscribing");
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn advance(head: &mut i64, position: i64) -> bool {
    if position > *head {
        *head = position;
        true
    } else {
        false
    }
}

fn not_supported(what: &'static str) -> StoreError {
    StoreError::NotSupported {
        backend: BACKEND,
        what,
    }
}

#[async_trait]
impl IdempotencyStore for KurrentDbLog {
    async fn idempotency_key(
        &self,
        _actor: &str,
        _key: &str,
    ) -> Result<Option<StoredKey>, StoreError> {
        Err(not_supported("Idempotency-Key records"))
    }

    async fn save_idempotency_response(
        &self,
        _claim: &IdempotencyClaim,
        _response: &SavedResponse,
    ) -> Result<(), StoreError> {
        Err(not_supported("Idempotency-Key records"))
    }

    async fn forget_idempotency_key(&self, _claim: &IdempotencyClaim) -> Result<(), StoreError> {
        Err(not_supported("Idempotency-Key records"))
    }

    async fn expire_idempotency_keys(
        &self,
        _created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // Nothing is ever kept, so nothing expires: the service's periodic sweep stays quiet.
        Ok(0)
    }

    async fn read_event(&self, _event_id: Uuid) -> Result<Option<StoredEvent>, StoreError> {
        Err(not_supported("an index of events by id"))
    }
}

#[async_trait]
impl EventLog for KurrentDbLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        if request.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if request.idempotency.is_some() {
            return Err(not_supported("Idempotency-Key records"));
        }
        let AppendRequest {
            stream_type,
            stream_id,
            expected_version,
            events,
            ..
        } = request;
        let data = events
            .iter()
            .map(|event| event_data(&stream_type, &stream_id, event))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            AppendToStreamOptions::default().stream_state(expected_state(expected_version));
        let name = stream_name(&self.prefix, &stream_type, &stream_id);
        let written = self
            .client
            .append_to_stream(name.as_str(), &options, data)
            .await
            .map_err(|e| store_error(e, &stream_type, &stream_id, expected_version))?;
        let version = version_of_revision(written.next_expected_version);
        // An idempotent retry may come back without a position (the client reads it as the
        // start of the log): find where the original landed.
        let position = match position_of(written.position)? {
            0 => {
                self.position_at(&stream_type, &stream_id, written.next_expected_version)
                    .await?
            }
            position => position,
        };
        self.head.send_if_modified(|h| advance(h, position));
        Ok(Appended {
            first_position: position,
            last_position: position,
            version,
        })
    }

    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_stream_events(stream_type, stream_id, after_version, usize::MAX)
            .await
    }

    async fn read_stream_page(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read_stream_events(stream_type, stream_id, after_version, limit)
            .await
    }

    async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_all_where(after_position, limit, our_streams(&self.prefix), |_| true)
            .await
    }

    async fn read_type(
        &self,
        stream_type: &str,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // The prefix narrows the read on the server; the metadata decides (`fuel-` is also a
        // prefix of `fuel-station-7`).
        let filter = SubscriptionFilter::on_stream_name()
            .add_prefix(format!("{}{stream_type}-", self.prefix));
        self.read_all_where(after_position, limit, filter, |e| {
            e.stream_type == stream_type
        })
        .await
    }

    async fn head(&self) -> Result<i64, StoreError> {
        let position = read_head(&self.client, &self.prefix).await?;
        self.head.send_if_modified(|h| advance(h, position));
        Ok(position)
    }

    fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    async fn shutdown(&self) {
        // Appends are answered only once the server has them: there is nothing to flush.
        self.following.abort();
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

impl Drop for KurrentDbLog {
    fn drop(&mut self) {
        self.following.abort();
    }
}

/// Opens the log, as a shared one.
pub async fn open(url: &str) -> Result<Arc<KurrentDbLog>, StoreError> {
    Ok(Arc::new(KurrentDbLog::open(url).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new_event() -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "TanqueoRecorded".into(),
            schema_version: 1,
            payload: serde_json::from_str(r#"{"galones":12.10,"valor_cop":45000}"#).unwrap(),
            metadata: EventMetadata {
                actor: Some("operador-1".into()),
                request_id: Some("req-9".into()),
                correlation_id: Some("corr-3".into()),
                causation_id: Some("cause-2".into()),
            },
        }
    }

    fn at(commit: u64) -> Position {
        Position {
            commit,
            prepare: commit,
        }
    }

    /// What the server hands back for `event`, written by [`event_data`]'s encoders.
    fn recorded(event: &NewEvent, stream_type: &str, revision: u64, commit: u64) -> StoredEvent {
        let data = serde_json::to_vec(&event.payload).unwrap();
        let metadata = serde_json::to_vec(&LogMetadata::of(stream_type, "7", event)).unwrap();
        stored_event(RecordedParts {
            position: at(commit),
            revision,
            event_id: event.event_id,
            event_type: &event.event_type,
            data: &data,
            custom_metadata: &metadata,
            created: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn streams_are_named_type_dash_id() {
        assert_eq!(stream_name("", "registro-bomba", "12"), "registro-bomba-12");
        assert_eq!(stream_name("", "fleet", "main"), "fleet-main");
        assert_eq!(stream_name("t1_", "fleet", "main"), "t1_fleet-main");
    }

    #[test]
    fn the_stream_prefix_is_taken_out_of_the_url_for_the_client() {
        let split = |url: &str| {
            let (url, prefix) = split_stream_prefix(url);
            (url, prefix)
        };
        assert_eq!(
            split("esdb://127.0.0.1:2113?tls=false"),
            ("esdb://127.0.0.1:2113?tls=false".into(), String::new())
        );
        assert_eq!(
            split("esdb://127.0.0.1:2113?tls=false&streamPrefix=t1_"),
            ("esdb://127.0.0.1:2113?tls=false".into(), "t1_".into())
        );
        assert_eq!(
            split("kurrentdb://h:2113?streamPrefix=ledger_&tlsVerifyCert=false"),
            (
                "kurrentdb://h:2113?tlsVerifyCert=false".into(),
                "ledger_".into()
            )
        );
        assert_eq!(
            split("esdb://h:2113?streamPrefix=a_"),
            ("esdb://h:2113".into(), "a_".into())
        );
        assert_eq!(
            split("esdb://h:2113"),
            ("esdb://h:2113".into(), String::new())
        );
    }

    #[test]
    fn an_append_expects_no_stream_or_the_exact_revision_never_any() {
        assert_eq!(expected_state(0), StreamState::NoStream);
        assert_eq!(expected_state(1), StreamState::StreamRevision(0));
        assert_eq!(expected_state(42), StreamState::StreamRevision(41));
        for version in 0..100 {
            assert_ne!(expected_state(version), StreamState::Any);
        }
    }

    #[test]
    fn versions_count_from_one_revisions_from_zero() {
        assert_eq!(version_of_revision(0), 1);
        assert_eq!(version_of_revision(41), 42);
        assert_eq!(version_of_current(CurrentRevision::NoStream), 0);
        assert_eq!(version_of_current(CurrentRevision::Current(4)), 5);
        for version in 1..50 {
            let StreamState::StreamRevision(revision) = expected_state(version) else {
                panic!("version {version} expects a revision");
            };
            assert_eq!(version_of_revision(revision), version);
        }
    }

    #[test]
    fn an_event_and_its_metadata_come_back_as_written() {
        let event = new_event();
        let stored = recorded(&event, "registro-bomba", 4, 9_000);
        assert_eq!(stored.position, 9_000);
        assert_eq!(stored.event_id, event.event_id);
        assert_eq!(
            stored.stream_type, "registro-bomba",
            "read from the metadata"
        );
        assert_eq!(stored.stream_id, "7");
        assert_eq!(stored.version, 5);
        assert_eq!(stored.event_type, "TanqueoRecorded");
        assert_eq!(stored.metadata, event.metadata);
        assert_eq!(
            stored.recorded_at,
            DateTime::from_timestamp(1_700_000_000, 0).unwrap()
        );
        // Money keeps its digits: no pass through f64 on the way in or out.
        assert_eq!(
            serde_json::to_string(&stored.payload).unwrap(),
            r#"{"galones":12.10,"valor_cop":45000}"#
        );
    }

    #[test]
    fn the_metadata_holds_every_field_by_name() {
        let event = new_event();
        let metadata = serde_json::to_value(LogMetadata::of("fuel", "7", &event)).unwrap();
        assert_eq!(
            metadata,
            json!({
                "stream_type": "fuel",
                "stream_id": "7",
                "schema_version": 1,
                "actor": "operador-1",
                "request_id": "req-9",
                "correlation_id": "corr-3",
                "causation_id": "cause-2",
            })
        );
    }

    #[test]
    fn events_without_our_metadata_are_not_ours_and_bad_bytes_are_corrupt() {
        let foreign = RecordedParts {
            position: at(10),
            revision: 0,
            event_id: Uuid::now_v7(),
            event_type: "SomethingElse",
            data: b"{}",
            custom_metadata: b"",
            created: Utc::now(),
        };
        assert!(!is_ours(&foreign));
        let event = new_event();
        let metadata = serde_json::to_vec(&LogMetadata::of("fuel", "7", &event)).unwrap();
        let broken = RecordedParts {
            data: b"{not json",
            custom_metadata: &metadata,
            ..foreign
        };
        assert!(is_ours(&broken));
        match stored_event(broken) {
            Err(StoreError::Corrupt { position: 10, .. }) => {}
            other => panic!("expected a corrupt event, got {other:?}"),
        }
    }

    #[test]
    fn commit_positions_map_to_i64_and_reads_resume_there() {
        assert_eq!(position_of(at(0)).unwrap(), 0);
        assert_eq!(position_of(at(123_456)).unwrap(), 123_456);
        assert_eq!(position_of(at(i64::MAX as u64)).unwrap(), i64::MAX);
        assert!(matches!(
            position_of(at(i64::MAX as u64 + 1)),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(read_from(0), StreamPosition::Start);
        assert_eq!(read_from(-1), StreamPosition::Start);
        assert_eq!(read_from(500), StreamPosition::Position(at(500)));
    }

    #[test]
    fn a_page_skips_what_was_read_and_never_splits_a_transaction() {
        let event = new_event();
        // Three appends: one event at 100, three sharing 250, one at 400.
        let log = [100, 250, 250, 250, 400].map(|commit| recorded(&event, "fuel", 0, commit));

        // After 100, a page of 2 takes the whole transaction at 250.
        let mut page = Page::new(100, 2);
        let offered: Vec<Offered> = log.iter().cloned().map(|e| page.offer(e)).collect();
        assert_eq!(
            offered,
            [
                Offered::Skipped,
                Offered::Taken,
                Offered::Taken,
                Offered::Taken,
                Offered::Full
            ]
        );
        let positions: Vec<i64> = page.into_events().iter().map(|e| e.position).collect();
        assert_eq!(positions, [250, 250, 250]);

        // Resuming after the page's last position gives the rest, once.
        let mut page = Page::new(250, 2);
        for e in log.iter().cloned() {
            page.offer(e);
        }
        let positions: Vec<i64> = page.into_events().iter().map(|e| e.position).collect();
        assert_eq!(positions, [400]);

        let mut empty = Page::new(0, 0);
        assert_eq!(empty.offer(log[0].clone()), Offered::Full);
    }

    #[test]
    fn a_wrong_expected_version_is_our_conflict() {
        let error = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(1),
            current: CurrentRevision::Current(4),
        };
        match store_error(error, "fuel", "7", 2) {
            StoreError::Conflict {
                stream_type,
                stream_id,
                expected: 2,
                actual: 5,
            } => assert_eq!((stream_type.as_str(), stream_id.as_str()), ("fuel", "7")),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let created_meanwhile = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::NoStream,
            current: CurrentRevision::Current(0),
        };
        assert!(matches!(
            store_error(created_meanwhile, "fuel", "7", 0),
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ));
    }

    #[test]
    fn an_unreachable_server_is_an_outage_and_a_refusal_is_not() {
        for outage in [
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::Grpc {
                code: tonic::Code::Unavailable,
                message: "connection refused".into(),
            },
        ] {
            let error = read_error(outage);
            assert!(error.is_outage(), "{error} is an outage");
        }
        for refusal in [
            kurrentdb::Error::AccessDenied,
            kurrentdb::Error::ResourceDeleted,
        ] {
            let error = read_error(refusal);
            assert!(!error.is_outage(), "{error} is not an outage");
            assert!(matches!(error, StoreError::Backend(_)));
        }
    }

    #[test]
    fn idempotency_keys_are_refused_by_name() {
        let error = not_supported("Idempotency-Key records");
        assert_eq!(
            error.to_string(),
            "the kurrentdb event log keeps no Idempotency-Key records"
        );
        assert!(!error.is_outage());
    }
}
