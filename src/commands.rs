//! Runs commands against aggregates kept hot in memory.
//!
//! Replaying a whole stream for every command (what stock cqrs-es does) gets slower as a station's
//! history grows. Instead each stream's aggregate stays cached at its version, bounded by an LRU,
//! and is refreshed from the log only on a miss or a conflict. Commands for one stream run one
//! after another through that stream's lock, so a busy station does not turn into a storm of
//! optimistic-concurrency conflicts inside one process; conflicts with other processes are still
//! retried a bounded number of times.
//!
//! Nothing is appended that the service cannot read back: before an append, each decided event is
//! encoded, read back from the text the log would store and folded by every read model
//! ([`prepare_events`]). An event that fails is refused as the caller's bad input, instead of
//! being committed and then wedging a projection forever.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aggregates::codec::{self, Unrepresentable};
use aggregates::snapshot::Snapshotted;
use chrono::Utc;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use lru::LruCache;
use projections::{Cell, Change, Projection, Recorded};
use tokio::sync::watch;
use uuid::Uuid;

use crate::idempotency::IdempotencyScope;
use crate::store::snapshots::{SnapshotMark, Snapshots, SNAPSHOT_EVERY_EVENTS_DEFAULT};
use crate::store::{AppendRequest, Appended, EventMetadata, NewEvent, SharedLog, StoreError};

/// Attempts per command before a conflict is reported to the caller. Several instances writing
/// to one hot station collide often; with the growing random pause this rides that out.
pub const ATTEMPTS_MAX: usize = 32;
/// Streams kept in memory per aggregate type.
pub const CACHED_STREAMS_MAX: usize = 10_000;
/// Events read at a time when a resumed keyed request collects what it appended before.
const RESUME_PAGE_EVENTS: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command: a business rule, reported to the user as such.
    #[error(transparent)]
    Rejected(E),
    #[error("the stream kept changing underneath the command ({attempts} attempts)")]
    Conflict { attempts: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event could not be encoded or decoded: {0}")]
    Codec(#[from] codec::CodecError),
    /// A decided event would not read back as itself, or a read model could not fold it: the
    /// input got past validation with a value the system cannot hold. Nothing was appended.
    #[error("{0}")]
    Unrepresentable(Unrepresentable),
}

/// What a successful command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    pub events: Vec<A::Event>,
    /// Where the events landed; `None` when the command decided nothing needed to change.
    pub appended: Option<Appended>,
    /// The read models whose rows these events change: the ones a reader must wait for.
    pub touched: Vec<&'static str>,
}

impl<A: Aggregate> Executed<A> {
    /// The log position a reader must reach to see this command's effects.
    pub fn position(&self) -> Option<i64> {
        self.appended.map(|a| a.last_position)
    }
}

/// A stream's aggregate at a version, possibly one its last append has not committed yet.
struct Cached<A> {
    aggregate: A,
    version: i64,
    /// The append this state is waiting on, if it is not known to be committed.
    tail: Option<Tail>,
    /// The stream's newest snapshot, as far as this process knows.
    snapshot: SnapshotMark,
}

/// The last append a cached state includes, and whether it committed.
#[derive(Clone)]
struct Tail {
    last_event_id: Uuid,
    /// `Some(true)` once committed, `Some(false)` once it failed.
    confirmed: watch::Receiver<Option<bool>>,
}

impl Tail {
    /// Waits for the append's outcome: did it commit?
    async fn committed(mut self) -> bool {
        match self.confirmed.wait_for(Option::is_some).await {
            Ok(outcome) => *outcome == Some(true),
            // The appender went away without saying: treat as failed, and decide again.
            Err(_) => false,
        }
    }
}

impl<A> Cached<A> {
    /// Whether this state is known to be committed: nothing of this process is pending on it.
    fn is_settled(&self) -> bool {
        self.tail
            .as_ref()
            .is_none_or(|tail| *tail.confirmed.borrow() == Some(true))
    }
}

impl<A: Default> Cached<A> {
    fn empty() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
            tail: None,
            snapshot: SnapshotMark::default(),
        }
    }
}

/// How a reactor's step names each event it decides (see [`CommandBus::execute_derived`]).
pub type DeriveId<A> = dyn Fn(&<A as Aggregate>::Event) -> Uuid + Send + Sync;

type Slot<A> = Arc<tokio::sync::Mutex<Option<Cached<A>>>>;

pub struct CommandBus<A: Aggregate> {
    log: SharedLog,
    services: A::Services,
    slots: Mutex<LruCache<String, Slot<A>>>,
    /// Every read model, to prove each decided event folds before it is appended.
    projections: Vec<Arc<dyn Projection>>,
    /// Where a stream not in memory is loaded from, and where long ones are saved.
    snapshots: Snapshots,
    /// Stored events folded into aggregates so far: what loading streams has cost.
    events_folded: AtomicU64,
}

impl<A> CommandBus<A>
where
    A: Snapshotted + Clone + 'static,
    A::Command: Clone,
{
    pub fn new(log: SharedLog, services: A::Services) -> Self {
        Self::with_capacity(log, services, CACHED_STREAMS_MAX)
    }

    pub fn with_capacity(log: SharedLog, services: A::Services, streams_max: usize) -> Self {
        let capacity = NonZeroUsize::new(streams_max).unwrap_or(NonZeroUsize::MIN);
        Self {
            snapshots: Snapshots::new(log.clone(), SNAPSHOT_EVERY_EVENTS_DEFAULT),
            log,
            services,
            slots: Mutex::new(LruCache::new(capacity)),
            projections: Vec::new(),
            events_folded: AtomicU64::new(0),
        }
    }

    /// Saves a stream's aggregate every `every` events (see [`snapshot_due`]) and loads streams
    /// from their newest snapshot; 0 turns snapshots off (every load folds the whole stream).
    ///
    /// [`snapshot_due`]: crate::store::snapshots::snapshot_due
    pub fn snapshot_every(mut self, every: u64) -> Self {
        self.snapshots = Snapshots::new(self.log.clone(), every);
        self
    }

    /// Stored events folded into aggregates since the bus started.
    pub fn events_folded(&self) -> u64 {
        self.events_folded.load(Ordering::Relaxed)
    }

    /// Proves every decided event against these read models before appending it.
    pub fn folded_by(mut self, projections: Vec<Arc<dyn Projection>>) -> Self {
        self.projections = projections;
        self
    }

    fn slot(&self, stream_id: &str) -> Slot<A> {
        let mut slots = self
            .slots
            .lock()
            .expect("the slot map lock is never poisoned");
        if let Some(slot) = slots.get(stream_id) {
            return slot.clone();
        }
        let slot: Slot<A> = Arc::new(tokio::sync::Mutex::new(None));
        // Evicting a slot another command still holds is harmless: that command keeps its Arc,
        // and the next command for the stream reloads from the log.
        slots.put(stream_id.to_string(), slot.clone());
        slot
    }

    /// Decides `command` on the current state of `stream_id` and appends what it decided.
    ///
    /// The stream's lock is held while deciding and queueing the append, not while it commits:
    /// the next command of the stream is decided on the state this append will leave and queued
    /// right behind it, so a busy station's commands share group commits instead of each waiting
    /// out one. Should an append fail, whatever was decided after it fails with it (the writer
    /// knows the dependency) and is decided again; a refusal decided on a state not yet committed
    /// is only given once that state is.
    pub async fn execute(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let (executed, ()) = self
            .execute_viewing(stream_id, command, metadata, |_| ())
            .await?;
        Ok(executed)
    }

    /// [`execute`](Self::execute), also answering `view` of the aggregate as the command left
    /// it (the state it decided on, with its own events applied).
    ///
    /// The aggregate is not cloned per command: `handle` decides everything before it applies
    /// anything (the aggregates' contract), so it runs on the cached state itself, and a refusal
    /// leaves that state as it was. Cloning would cost a station's whole history per refuel.
    pub async fn execute_viewing<R>(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        view: impl FnMut(&A) -> R,
    ) -> Result<(Executed<A>, R), CommandError<A::Error>> {
        self.execute_keyed(stream_id, command, metadata, None, view)
            .await
    }

    /// [`execute_viewing`](Self::execute_viewing) for a request with an Idempotency-Key: the
    /// events' ids derive from the key ([`IdempotencyScope::event_id`]), and the append claims
    /// the key in the transaction of its events. When an earlier run of the request committed
    /// and died before answering, the command answers the events that run appended instead of
    /// deciding again (see [`crate::idempotency`]).
    pub async fn execute_keyed<R>(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        scope: Option<&IdempotencyScope>,
        view: impl FnMut(&A) -> R,
    ) -> Result<(Executed<A>, R), CommandError<A::Error>> {
        self.execute_inner(stream_id, command, metadata, scope, None, view)
            .await
    }

    /// [`execute`](Self::execute) for a reactor's step ([`crate::reactor`]): each decided
    /// event's id is `id_of(event)`, derived from what the reactor answers, so a step replayed
    /// after a crash appends nothing twice. When the log already holds those ids (an earlier run
    /// of the step committed them, on this instance or another), the command answers where they
    /// are instead of failing.
    pub async fn execute_derived(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        id_of: &DeriveId<A>,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let (executed, ()) = self
            .execute_inner(stream_id, command, metadata, None, Some(id_of), |_| ())
            .await?;
        Ok(executed)
    }

    async fn execute_inner<R>(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        scope: Option<&IdempotencyScope>,
        derived: Option<&DeriveId<A>>,
        mut view: impl FnMut(&A) -> R,
    ) -> Result<(Executed<A>, R), CommandError<A::Error>> {
        let keyed = scope.map(|scope| (scope, scope.next_append()));
        let slot = self.slot(stream_id);
        for attempt in 0..ATTEMPTS_MAX {
            // Asked again on every attempt: a conflict may come from another process resuming
            // the same request, whose append is then the answer.
            if let Some((scope, append)) = keyed.filter(|(scope, _)| scope.is_resuming()) {
                if let Some(answer) = self
                    .resumed(&slot, stream_id, scope, append, &mut view)
                    .await?
                {
                    return Ok(answer);
                }
            }
            let mut cached = slot.lock().await;
            let mut current = match cached.take() {
                Some(current) => current,
                None => self.refresh(stream_id, Cached::empty()).await?,
            };
            let sink = EventSink::default();
            let decided = current
                .aggregate
                .handle(command.clone(), &self.services, &sink)
                .await;
            let events = sink.collect().await;
            if decided.is_err() || events.is_empty() {
                debug_assert!(
                    events.is_empty(),
                    "a refusing handle must not have applied events"
                );
                if decided.is_err() && current.is_settled() {
                    // The cached state may miss what another instance wrote (the record a void
                    // names, an advance that covers a refuel): before refusing, read the
                    // stream's tail (one indexed read, usually empty) and decide again on it.
                    let version = current.version;
                    let refreshed = self.refresh(stream_id, current).await?;
                    let moved = refreshed.version > version;
                    current = refreshed;
                    if moved {
                        *cached = Some(current);
                        continue;
                    }
                }
                let tail = current.tail.clone();
                let viewed = view(&current.aggregate);
                *cached = Some(current);
                drop(cached);
                if let Some(tail) = tail {
                    if !tail.committed().await {
                        // Decided on a state that never came to be: decide again.
                        continue;
                    }
                }
                return match decided {
                    Err(refusal) => Err(CommandError::Rejected(refusal)),
                    Ok(()) => Ok((
                        Executed {
                            events,
                            appended: None,
                            touched: Vec::new(),
                        },
                        viewed,
                    )),
                };
            }
            // From here `current.aggregate` has the command's events applied; `version` and
            // `tail` are still the state's before it.
            let prepared = match prepare_events::<A>(
                &events,
                stream_id,
                current.version,
                metadata,
                &self.projections,
            ) {
                Ok(prepared) => prepared,
                Err(refusal) => {
                    // The applied events will not be appended: forget the state.
                    *cached = None;
                    return Err(refusal);
                }
            };
            let mut events_to_append = prepared.events;
            if let Some((scope, append)) = keyed {
                // The same ids on every attempt: only one attempt ever commits. An append decided
                // after a failed attempt may be refused once more for naming its (reused) last
                // id, and is then decided again like any other.
                for (index, event) in events_to_append.iter_mut().enumerate() {
                    event.event_id = scope.event_id(append, index);
                }
            }
            if let Some(id_of) = derived {
                for (new, event) in events_to_append.iter_mut().zip(&events) {
                    new.event_id = id_of(event);
                }
            }
            let appended_events = events_to_append.len() as i64;
            let last_event_id = events_to_append.last().map(|e| e.event_id);
            let request = AppendRequest {
                stream_type: A::TYPE.to_string(),
                stream_id: stream_id.to_string(),
                expected_version: current.version,
                events: events_to_append,
                idempotency: keyed.map(|(scope, _)| scope.claim().clone()),
            };
            let after = current.tail.as_ref().map(|tail| tail.last_event_id);
            let base_version = current.version;
            let pending = match self.log.submit(request, after).await {
                Ok(pending) => pending,
                Err(error) => {
                    *cached = None;
                    return Err(error.into());
                }
            };
            let viewed = view(&current.aggregate);
            let (confirm, confirmed) = watch::channel(None);
            let mut next = Cached {
                aggregate: current.aggregate,
                version: base_version + appended_events,
                tail: last_event_id.map(|last_event_id| Tail {
                    last_event_id,
                    confirmed: confirmed.clone(),
                }),
                snapshot: current.snapshot,
            };
            self.snapshots.save_if_due(
                stream_id,
                &next.aggregate,
                next.version,
                &mut next.snapshot,
                Some(confirmed),
            );
            *cached = Some(next);
            drop(cached);
            match pending.outcome().await {
                Ok(appended)
                    if derived.is_some() && appended.version != base_version + appended_events =>
                {
                    // The log already held these derived ids: an earlier run of the step
                    // committed them. Our cached state lacks that run's view: reload it.
                    confirm.send_replace(Some(false));
                    *slot.lock().await = None;
                    return Ok((
                        Executed {
                            events,
                            appended: Some(appended),
                            touched: prepared.touched,
                        },
                        viewed,
                    ));
                }
                Ok(appended) if appended.version != base_version + appended_events => {
                    // Only a keyed append can land elsewhere than decided: the log recognised its
                    // ids as stored by another run of the request (another process resuming
                    // it), and stored nothing of ours. That run's events are the answer.
                    confirm.send_replace(Some(false));
                    *slot.lock().await = None;
                    let (scope, append) = keyed.ok_or_else(|| {
                        StoreError::Unavailable("an append landed elsewhere than decided".into())
                    })?;
                    return match self
                        .resumed(&slot, stream_id, scope, append, &mut view)
                        .await?
                    {
                        Some(answer) => Ok(answer),
                        None => Err(StoreError::EventIdReused(scope.event_id(append, 0)).into()),
                    };
                }
                Ok(appended) => {
                    confirm.send_replace(Some(true));
                    return Ok((
                        Executed {
                            events,
                            appended: Some(appended),
                            touched: prepared.touched,
                        },
                        viewed,
                    ));
                }
                Err(StoreError::Conflict { .. }) => {
                    confirm.send_replace(Some(false));
                    // Another process wrote to this stream (or an append we were decided after
                    // failed): catch up and decide again, after a random pause so two processes
                    // do not keep colliding in step.
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                    // The cached state holds our failed events: reload it. (Rare: only another
                    // process, or an outage, makes an append fail.)
                    *slot.lock().await = Some(self.refresh(stream_id, Cached::empty()).await?);
                }
                Err(other) => {
                    // The outcome is unknown (the commit may have happened): forget the state.
                    confirm.send_replace(Some(false));
                    *slot.lock().await = None;
                    return Err(other.into());
                }
            }
        }
        Err(CommandError::Conflict {
            attempts: ATTEMPTS_MAX,
        })
    }

    /// What an earlier run of a keyed request answered for its `append`-th append, if that run
    /// committed it: its events, and `view` of the aggregate as it is now.
    async fn resumed<R>(
        &self,
        slot: &Slot<A>,
        stream_id: &str,
        scope: &IdempotencyScope,
        append: u32,
        view: &mut impl FnMut(&A) -> R,
    ) -> Result<Option<(Executed<A>, R)>, CommandError<A::Error>> {
        let Some(found) = self.appended_before(stream_id, scope, append).await? else {
            return Ok(None);
        };
        let mut cached = slot.lock().await;
        let current = self
            .refresh(stream_id, cached.take().unwrap_or_else(Cached::empty))
            .await?;
        let viewed = view(&current.aggregate);
        *cached = Some(current);
        Ok(Some((found, viewed)))
    }

    /// The events an earlier run of a keyed request appended as its `append`-th append, if it
    /// committed any.
    async fn appended_before(
        &self,
        stream_id: &str,
        scope: &IdempotencyScope,
        append: u32,
    ) -> Result<Option<Executed<A>>, CommandError<A::Error>> {
        let Some(first) = self.log.read_event(scope.event_id(append, 0)).await? else {
            return Ok(None);
        };
        if first.stream_type != A::TYPE || first.stream_id != stream_id {
            // The same request, routed to another stream than the first time: not a retry the
            // log can answer.
            return Err(StoreError::EventIdReused(first.event_id).into());
        }
        // One append's events hold consecutive positions, in order.
        let mut stored = vec![first];
        loop {
            let after = stored[stored.len() - 1].position;
            let page = self.log.read_all(after, RESUME_PAGE_EVENTS).await?;
            let mut more = page.len() == RESUME_PAGE_EVENTS as usize;
            for event in page {
                if event.event_id != scope.event_id(append, stored.len()) {
                    more = false;
                    break;
                }
                stored.push(event);
            }
            if !more {
                break;
            }
        }
        let first = &stored[0];
        let last = &stored[stored.len() - 1];
        let appended = Appended {
            first_position: first.position,
            last_position: last.position,
            version: last.version,
        };
        let events = stored
            .iter()
            .map(|event| codec::decode(&event.event_type, &event.payload))
            .collect::<Result<Vec<A::Event>, _>>()?;
        Ok(Some(Executed {
            events,
            appended: Some(appended),
            // Not proven again here: waiting for every read model is right, if slower.
            touched: self.projections.iter().map(|p| p.name()).collect(),
        }))
    }

    /// The aggregate as the log knows it now, without running a command.
    pub async fn load(&self, stream_id: &str) -> Result<(A, i64), CommandError<A::Error>> {
        let slot = self.slot(stream_id);
        let mut cached = slot.lock().await;
        let current = self
            .refresh(stream_id, cached.take().unwrap_or_else(Cached::empty))
            .await?;
        let answer = (current.aggregate.clone(), current.version);
        *cached = Some(current);
        Ok(answer)
    }

    /// `current` brought up to the log's head. A stream not loaded yet starts from its newest
    /// snapshot, and is saved again once a snapshot is due.
    async fn refresh(
        &self,
        stream_id: &str,
        mut current: Cached<A>,
    ) -> Result<Cached<A>, CommandError<A::Error>> {
        if current.version == 0 {
            if let Some((aggregate, snapshot)) = self.snapshots.load::<A>(stream_id).await? {
                current = Cached {
                    aggregate,
                    version: snapshot.version,
                    tail: None,
                    snapshot,
                };
            }
        }
        let after_version = current.version;
        crate::store::fold_stream(
            self.log.as_ref(),
            A::TYPE,
            stream_id,
            after_version,
            crate::store::STREAM_PAGE_EVENTS,
            |stored| -> Result<(), CommandError<A::Error>> {
                let event: A::Event = codec::decode(&stored.event_type, &stored.payload)?;
                current.aggregate.apply(event);
                current.version = stored.version;
                self.events_folded.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        )
        .await?;
        if current.is_settled() {
            self.snapshots.save_if_due(
                stream_id,
                &current.aggregate,
                current.version,
                &mut current.snapshot,
                None,
            );
        }
        Ok(current)
    }
}

/// Up to 1, 2, 4 … ms of random delay, growing with each attempt.
fn conflict_backoff(attempt: usize) -> std::time::Duration {
    use rand::Rng;
    let ceiling_us = 1_000u64 << attempt.min(6);
    std::time::Duration::from_micros(rand::thread_rng().gen_range(0..=ceiling_us))
}

/// A command's events, proven readable and ready to append.
struct Prepared {
    events: Vec<NewEvent>,
    touched: Vec<&'static str>,
}

/// Encodes `events` and proves each one can be read back: decoded from the text the log stores
/// into the same value, and folded by every projection into rows the read store can hold. The
/// first event that fails refuses the whole command, naming the field.
fn prepare_events<A: Aggregate>(
    events: &[A::Event],
    stream_id: &str,
    version: i64,
    metadata: &EventMetadata,
    projections: &[Arc<dyn Projection>],
) -> Result<Prepared, CommandError<A::Error>> {
    let mut prepared = Prepared {
        events: Vec::with_capacity(events.len()),
        touched: Vec::new(),
    };
    let recorded_at = Utc::now();
    for (offset, event) in events.iter().enumerate() {
        let (event_type, payload) =
            codec::round_trip(event).map_err(CommandError::Unrepresentable)?;
        debug_assert_eq!(event_type, event.event_type());
        let schema_version = event.event_version().parse().unwrap_or(1);
        debug_assert_eq!(
            schema_version,
            aggregates::upcast::REGISTRY.current_version(&event_type),
            "writers write the version readers are upcast to"
        );
        if !projections.is_empty() {
            // Position 0 stands for "not yet appended": folds are pure and take it as any other.
            let recorded = Recorded {
                position: 0,
                stream_type: A::TYPE.to_string(),
                stream_id: stream_id.to_string(),
                version: version + offset as i64 + 1,
                event_type: event_type.clone(),
                schema_version,
                payload: payload.clone(),
                actor: metadata.actor.clone(),
                recorded_at,
            };
            for projection in projections {
                let changes = projection.apply(&recorded).map_err(|e| {
                    CommandError::Unrepresentable(Unrepresentable {
                        path: String::new(),
                        reason: format!(
                            "read model {} cannot fold it: {}",
                            projection.name(),
                            e.reason
                        ),
                    })
                })?;
                if let Some(column) = changes.iter().find_map(unstorable_column) {
                    return Err(CommandError::Unrepresentable(Unrepresentable {
                        path: column.to_string(),
                        reason: "text with a NUL character cannot be stored".to_string(),
                    }));
                }
                if !changes.is_empty() && !prepared.touched.contains(&projection.name()) {
                    prepared.touched.push(projection.name());
                }
            }
        }
        let mut new = NewEvent::new(event_type, payload, metadata.clone());
        new.schema_version = schema_version;
        prepared.events.push(new);
    }
    Ok(prepared)
}

/// A column whose text PostgreSQL's `TEXT` refuses (a NUL character), if the change has one.
fn unstorable_column(change: &Change) -> Option<&'static str> {
    let cells: Box<dyn Iterator<Item = &(&'static str, Cell)>> = match change {
        Change::Upsert { key, values, .. } | Change::Update { key, values, .. } => {
            Box::new(key.iter().chain(values))
        }
        Change::Delete { key, .. } => Box::new(key.iter()),
        // What a derived row holds is computed from stored totals when it is written; what the
        // event itself names is its key.
        Change::Derive(derive) => Box::new(derive.key.iter()),
    };
    cells
        .filter(|(_, cell)| matches!(cell, Cell::Text(Some(text)) if text.contains('\0')))
        .map(|(column, _)| *column)
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventLog, StoredEvent};
    use aggregates::{OperationAreaCommand, OperationAreas};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::watch;

    /// A log that another process always beats to the stream.
    struct AlwaysBehind {
        appends: AtomicUsize,
        head: watch::Sender<i64>,
    }

    #[async_trait::async_trait]
    impl EventLog for AlwaysBehind {
        async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
            self.appends.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::Conflict {
                stream_type: request.stream_type,
                stream_id: request.stream_id,
                expected: request.expected_version,
                actual: request.expected_version + 1,
            })
        }
        async fn read_stream(
            &self,
            _: &str,
            _: &str,
            _: i64,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn read_all(&self, _: i64, _: i64) -> Result<Vec<StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn read_type(&self, _: &str, _: i64, _: i64) -> Result<Vec<StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn head(&self) -> Result<i64, StoreError> {
            Ok(0)
        }
        fn watch_head(&self) -> watch::Receiver<i64> {
            self.head.subscribe()
        }
        async fn shutdown(&self) {}
        fn backend(&self) -> &'static str {
            "test"
        }
    }

    #[async_trait::async_trait]
    impl crate::store::IdempotencyStore for AlwaysBehind {
        async fn idempotency_key(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<crate::store::idempotency::StoredKey>, StoreError> {
            Ok(None)
        }
        async fn save_idempotency_response(
            &self,
            _: &crate::store::IdempotencyClaim,
            _: &crate::store::idempotency::SavedResponse,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn forget_idempotency_key(
            &self,
            _: &crate::store::IdempotencyClaim,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn expire_idempotency_keys(
            &self,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn read_event(&self, _: Uuid) -> Result<Option<StoredEvent>, StoreError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_conflict_that_outlives_every_retry_is_reported_not_looped() {
        let log = Arc::new(AlwaysBehind {
            appends: AtomicUsize::new(0),
            head: watch::channel(0).0,
        });
        let bus = CommandBus::<OperationAreas>::new(log.clone(), ());
        let command = OperationAreaCommand::Register {
            nombres: vec!["Norte".into()],
        };
        let outcome = bus.execute("all", command, &EventMetadata::default()).await;
        assert!(matches!(
            outcome,
            Err(CommandError::Conflict {
                attempts: ATTEMPTS_MAX
            })
        ));
        assert_eq!(log.appends.load(Ordering::Relaxed), ATTEMPTS_MAX);
        let answer = crate::http::error::command_error(outcome.unwrap_err(), |_| unreachable!());
        assert_eq!(answer.status(), axum::http::StatusCode::CONFLICT);
    }
}
