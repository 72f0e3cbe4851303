//! Group commit: one writer task per process owns the write connection. It takes every append that
//! is waiting, commits them in one transaction (one fsync for all of them) and answers each caller
//! on its own. How a batch is written is the backend's business ([`BatchWriter`]); which append
//! wins, loses or repeats itself is decided here, once, by [`plan_batch`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{AppendRequest, Appended, NewEvent, StoreError};

/// Appends taken into one transaction at most; more wait for the next one.
const BATCH_APPENDS_MAX: usize = 2048;
/// Times the writer yields to other tasks to gather a fuller batch before committing.
const GATHER_YIELDS: usize = 4;
/// Appends queued before callers wait for room.
const QUEUE_DEPTH: usize = 16 * 1024;

/// Where one stored event sits, as far as idempotency needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownEvent {
    pub stream_type: String,
    pub stream_id: String,
    pub version: i64,
    pub position: i64,
}

/// What the writer must know from the database before it can plan a batch.
#[derive(Debug, Default)]
pub struct BatchContext {
    /// The highest committed position.
    pub head: i64,
    /// Current version of each stream the batch touches (absent = 0).
    pub versions: HashMap<(String, String), i64>,
    /// Already-stored events among the batch's event ids.
    pub known: HashMap<Uuid, KnownEvent>,
    /// The epoch each Idempotency-Key the batch claims is already claimed with (actor, key).
    pub claims: HashMap<(String, String), Uuid>,
}

/// A row the batch will insert.
#[derive(Debug)]
pub struct PlannedRow<'a> {
    pub position: i64,
    pub version: i64,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub event: &'a NewEvent,
}

#[derive(Debug)]
pub struct Plan<'a> {
    pub rows: Vec<PlannedRow<'a>>,
    pub outcomes: Vec<Result<Appended, StoreError>>,
}

/// Which appends were decided on the outcome of an earlier one that was not committed yet.
///
/// A command bus decides the next command of a stream on the state its previous append will
/// leave, before that append commits (pipelining: the stream's commands do not each wait out a
/// commit). Such an append is valid only if its predecessor committed; the version check alone
/// could let it through when another process happened to write exactly as many events.
#[derive(Debug, Default)]
pub struct Dependencies {
    /// For each append of the batch, the last event of the append it was decided after.
    pub after: Vec<Option<Uuid>>,
    /// Last events of recent appends that failed: whatever was decided after them fails too.
    pub failed: HashSet<Uuid>,
}

/// Decides every append of a batch in order, as if each ran alone after the ones before it.
pub fn plan_batch<'a>(batch: &'a [AppendRequest], context: BatchContext) -> Plan<'a> {
    plan_batch_after(batch, context, &Dependencies::default())
}

/// [`plan_batch`], failing every append decided after one that failed, in an earlier batch or
/// earlier in this one.
pub fn plan_batch_after<'a>(
    batch: &'a [AppendRequest],
    mut context: BatchContext,
    dependencies: &Dependencies,
) -> Plan<'a> {
    let mut rows = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut head = context.head;
    let mut failed_here: HashSet<Uuid> = HashSet::new();
    for (index, request) in batch.iter().enumerate() {
        let predecessor = dependencies.after.get(index).copied().flatten();
        let orphaned = predecessor
            .is_some_and(|id| dependencies.failed.contains(&id) || failed_here.contains(&id));
        let outcome = if orphaned {
            let key = (request.stream_type.clone(), request.stream_id.clone());
            Err(StoreError::Conflict {
                stream_type: request.stream_type.clone(),
                stream_id: request.stream_id.clone(),
                expected: request.expected_version,
                actual: context.versions.get(&key).copied().unwrap_or(0),
            })
        } else {
            plan_one(request, &mut context, &mut head, &mut rows)
        };
        if outcome.is_err() {
            if let Some(last) = request.events.last() {
                failed_here.insert(last.event_id);
            }
        }
        outcomes.push(outcome);
    }
    debug_assert!(rows.windows(2).all(|w| w[1].position == w[0].position + 1));
    Plan { rows, outcomes }
}

fn plan_one<'a>(
    request: &'a AppendRequest,
    context: &mut BatchContext,
    head: &mut i64,
    rows: &mut Vec<PlannedRow<'a>>,
) -> Result<Appended, StoreError> {
    if request.events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if let Some(original) = already_appended(request, &context.known)? {
        return Ok(original);
    }
    check_claim(request, &context.claims)?;
    let key = (request.stream_type.clone(), request.stream_id.clone());
    let actual = context.versions.get(&key).copied().unwrap_or(0);
    if actual != request.expected_version {
        return Err(StoreError::Conflict {
            stream_type: request.stream_type.clone(),
            stream_id: request.stream_id.clone(),
            expected: request.expected_version,
            actual,
        });
    }
    let first_position = *head + 1;
    let mut version = actual;
    for event in &request.events {
        *head += 1;
        version += 1;
        context.known.insert(
            event.event_id,
            KnownEvent {
                stream_type: request.stream_type.clone(),
                stream_id: request.stream_id.clone(),
                version,
                position: *head,
            },
        );
        rows.push(PlannedRow {
            position: *head,
            version,
            stream_type: &request.stream_type,
            stream_id: &request.stream_id,
            event,
        });
    }
    context.versions.insert(key, version);
    if let Some(claim) = &request.idempotency {
        // Later appends of this batch see the claim as if it were stored.
        context
            .claims
            .insert((claim.actor.clone(), claim.key.clone()), claim.epoch);
    }
    Ok(Appended {
        first_position,
        last_position: *head,
        version,
    })
}

/// An append that claims an Idempotency-Key another use of it (another epoch) claimed first is
/// refused: two processes that each took a retry of one request cannot both commit it.
fn check_claim(
    request: &AppendRequest,
    claims: &HashMap<(String, String), Uuid>,
) -> Result<(), StoreError> {
    let Some(claim) = &request.idempotency else {
        return Ok(());
    };
    match claims.get(&(claim.actor.clone(), claim.key.clone())) {
        Some(epoch) if *epoch != claim.epoch => Err(StoreError::KeyClaimed {
            actor: claim.actor.clone(),
            key: claim.key.clone(),
        }),
        _ => Ok(()),
    }
}

/// An append whose events are all stored already, in its stream and in its order, is a retry of
/// an acknowledged append: answer what was answered then. Any partial overlap is a caller bug.
fn already_appended(
    request: &AppendRequest,
    known: &HashMap<Uuid, KnownEvent>,
) -> Result<Option<Appended>, StoreError> {
    let found: Vec<Option<&KnownEvent>> = request
        .events
        .iter()
        .map(|e| known.get(&e.event_id))
        .collect();
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    let reused = || {
        let id = request
            .events
            .iter()
            .zip(&found)
            .find(|(_, stored)| stored.is_some());
        StoreError::EventIdReused(id.map(|(event, _)| event.event_id).unwrap_or_default())
    };
    let Some(first) = found[0] else {
        return Err(reused());
    };
    for (index, stored) in found.iter().enumerate() {
        let in_place = stored.is_some_and(|stored| {
            stored.stream_type == request.stream_type
                && stored.stream_id == request.stream_id
                && stored.version == first.version + index as i64
        });
        if !in_place {
            return Err(reused());
        }
    }
    let last = found[found.len() - 1].expect("all events are known here");
    Ok(Some(Appended {
        first_position: first.position,
        last_position: last.position,
        version: last.version,
    }))
}

/// A backend's way of committing one planned batch durably.
pub trait BatchWriter: Send + 'static {
    /// Commits `batch` in one transaction. `Ok` carries each append's own outcome and the new
    /// head; `Err` means nothing of the batch was written.
    fn write_batch(
        &mut self,
        batch: &[AppendRequest],
        dependencies: &Dependencies,
    ) -> impl Future<Output = Result<(Vec<Result<Appended, StoreError>>, i64), StoreError>> + Send;

    /// Whether the writer holds a connection it believes usable.
    fn is_connected(&self) -> bool {
        true
    }

    /// Drops the connection after a failure: its state is unknown (a transaction half-way, a
    /// server that restarted), so the next batch starts on a fresh one.
    fn discard_connection(&mut self) {}

    /// Opens a fresh connection.
    fn reconnect(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Longest the writer waits to connect before it answers the waiting appends "unavailable".
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Pauses between reconnection attempts while the store is out of reach: from the first up to
/// the last, doubling. Appends that arrive meanwhile are refused at once, not queued.
const RECONNECT_DELAY_MIN: std::time::Duration = std::time::Duration::from_millis(100);
const RECONNECT_DELAY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

struct Pending {
    request: AppendRequest,
    after: Option<Uuid>,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// An append handed to the writer; await [`PendingAppend::outcome`] for its answer.
pub struct PendingAppend(PendingState);

enum PendingState {
    Queued(oneshot::Receiver<Result<Appended, StoreError>>),
    Done(Result<Appended, StoreError>),
}

impl PendingAppend {
    /// An append whose answer is already known (a log without a queue).
    pub fn done(outcome: Result<Appended, StoreError>) -> Self {
        Self(PendingState::Done(outcome))
    }

    pub async fn outcome(self) -> Result<Appended, StoreError> {
        match self.0 {
            PendingState::Queued(answer) => answer.await.map_err(|_| StoreError::Closed)?,
            PendingState::Done(outcome) => outcome,
        }
    }
}

/// Failed appends remembered so that what was decided after them fails too; dependants are
/// queued right behind their predecessor, so a short memory is enough.
const FAILED_REMEMBERED_MAX: usize = 16 * 1024;

/// The handle appends go through; the writer task behind it owns the connection.
pub struct GroupCommit {
    sender: Mutex<Option<mpsc::Sender<Pending>>>,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// `None` while the writer can commit; otherwise why it cannot (for `/readyz`).
    health: watch::Receiver<Option<String>>,
}

impl GroupCommit {
    pub fn start<W: BatchWriter>(writer: W, head: watch::Sender<i64>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let (health_sender, health) = watch::channel(None);
        let task = tokio::spawn(run_writer(writer, receiver, head, health_sender));
        Self {
            sender: Mutex::new(Some(sender)),
            writer: tokio::sync::Mutex::new(Some(task)),
            health,
        }
    }

    /// `None` while the writer commits; otherwise why it cannot (the store is out of reach, or
    /// its task ended).
    pub fn unhealthy(&self) -> Option<String> {
        if self
            .sender
            .lock()
            .expect("the sender lock is never poisoned")
            .as_ref()
            .is_some_and(|sender| sender.is_closed())
        {
            return Some("the event log writer stopped".to_string());
        }
        self.health.borrow().clone()
    }

    pub async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        self.submit(request, None).await?.outcome().await
    }

    /// Queues `request` and answers as soon as it is queued; appends are committed in the order
    /// they were queued. `after` names the last event of an earlier, not yet answered append
    /// this one was decided after: if that one fails, so does this one.
    pub async fn submit(
        &self,
        request: AppendRequest,
        after: Option<Uuid>,
    ) -> Result<PendingAppend, StoreError> {
        let sender = self
            .sender
            .lock()
            .expect("the sender lock is never poisoned")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Pending {
                request,
                after,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(PendingAppend(PendingState::Queued(answer)))
    }

    /// Stops taking appends and waits until every queued one is committed and answered.
    pub async fn shutdown(&self) {
        self.sender
            .lock()
            .expect("the sender lock is never poisoned")
            .take();
        if let Some(task) = self.writer.lock().await.take() {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "event log writer task failed");
            }
        }
    }
}

/// Answers every append in `pending` "unavailable": the store cannot take them now.
fn refuse_all(pending: &mut Vec<Pending>, reason: &str) {
    for queued in pending.drain(..) {
        let _ = queued
            .reply
            .send(Err(StoreError::Unavailable(reason.to_string())));
    }
}

/// Gets the writer a connection, retrying with a growing pause; appends that arrive meanwhile
/// are answered "unavailable" at once (a caller must not wait out an outage). `false` when the
/// queue closed (shutdown) first.
async fn reconnect<W: BatchWriter>(
    writer: &mut W,
    receiver: &mut mpsc::Receiver<Pending>,
    health: &watch::Sender<Option<String>>,
) -> bool {
    let mut delay = RECONNECT_DELAY_MIN;
    loop {
        let reason = match tokio::time::timeout(CONNECT_TIMEOUT, writer.reconnect()).await {
            Ok(Ok(())) => {
                if health.borrow().is_some() {
                    tracing::info!("event log writer reconnected");
                }
                health.send_replace(None);
                return true;
            }
            Ok(Err(error)) => format!("the event log is unreachable: {error}"),
            Err(_) => "the event log is unreachable: connecting timed out".to_string(),
        };
        tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "event log writer cannot connect");
        health.send_replace(Some(reason.clone()));
        let mut refused = Vec::new();
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                received = receiver.recv_many(&mut refused, BATCH_APPENDS_MAX) => {
                    if received == 0 {
                        return false;
                    }
                    refuse_all(&mut refused, &reason);
                }
            }
        }
        delay = (delay * 2).min(RECONNECT_DELAY_MAX);
    }
}

async fn run_writer<W: BatchWriter>(
    mut writer: W,
    mut receiver: mpsc::Receiver<Pending>,
    head: watch::Sender<i64>,
    health: watch::Sender<Option<String>>,
) {
    let mut pending = Vec::new();
    let mut dependencies = Dependencies::default();
    let mut failed_order: VecDeque<Uuid> = VecDeque::new();
    loop {
        if !writer.is_connected() && !reconnect(&mut writer, &mut receiver, &health).await {
            return;
        }
        if receiver.recv_many(&mut pending, BATCH_APPENDS_MAX).await == 0 {
            return;
        }
        // Callers answered by the previous batch are usually about to append again. Letting them
        // run first puts them in this batch instead of the next: without it, batches alternate
        // between a few appends and many, and each caller waits through two commits.
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
            if pending.len() >= BATCH_APPENDS_MAX || receiver.is_empty() && pending.len() > 1 {
                break;
            }
        }
        let room = BATCH_APPENDS_MAX - pending.len();
        if room > 0 {
            while let Ok(next) = receiver.try_recv() {
                pending.push(next);
                if pending.len() >= BATCH_APPENDS_MAX {
                    break;
                }
            }
        }
        let mut requests = Vec::with_capacity(pending.len());
        let mut replies = Vec::with_capacity(pending.len());
        dependencies.after.clear();
        for queued in pending.drain(..) {
            requests.push(queued.request);
            dependencies.after.push(queued.after);
            replies.push(queued.reply);
        }
        let started = std::time::Instant::now();
        // Read before writing: on PostgreSQL the head also follows other writers' commits, and a
        // tailer that sees this batch's own commit first would make its appends look repeated
        // (uncounted in the metrics) if the head were read after the write.
        let previous_head = *head.borrow();
        // A panic while writing (a bug on a stored row, say) must not end the only writer: the
        // batch fails like any other failure, and the next one starts on a fresh connection.
        let written =
            match std::panic::AssertUnwindSafe(writer.write_batch(&requests, &dependencies))
                .catch_unwind()
                .await
            {
                Ok(written) => written,
                Err(panic) => {
                    let cause = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".to_string());
                    Err(StoreError::Unavailable(format!(
                        "the event log writer failed: {cause}"
                    )))
                }
            };
        if written.is_err() {
            writer.discard_connection();
        }
        // Remember what failed, so that appends decided after it (queued behind) fail too.
        let failed_now: Vec<Uuid> = match &written {
            Ok((outcomes, _)) => requests
                .iter()
                .zip(outcomes)
                .filter(|(_, outcome)| outcome.is_err())
                .filter_map(|(request, _)| request.events.last().map(|e| e.event_id))
                .collect(),
            Err(_) => requests
                .iter()
                .filter_map(|request| request.events.last().map(|e| e.event_id))
                .collect(),
        };
        for id in failed_now {
            dependencies.failed.insert(id);
            failed_order.push_back(id);
            if failed_order.len() > FAILED_REMEMBERED_MAX {
                if let Some(oldest) = failed_order.pop_front() {
                    dependencies.failed.remove(&oldest);
                }
            }
        }
        tracing::debug!(
            appends = requests.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        match written {
            Ok((outcomes, new_head)) => {
                crate::telemetry::record_batch(
                    requests.len(),
                    started.elapsed(),
                    requests
                        .iter()
                        .zip(&outcomes)
                        .filter_map(|(request, outcome)| match outcome {
                            // A repeated append answers its first positions: nothing new.
                            Ok(appended) if appended.first_position > previous_head => {
                                Some(request)
                            }
                            _ => None,
                        })
                        .flat_map(|request| &request.events)
                        .map(|event| event.event_type.as_str()),
                );
                head.send_if_modified(|current| {
                    let moved = new_head > *current;
                    *current = (*current).max(new_head);
                    moved
                });
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, appends = requests.len(), "event log batch failed");
                let reason = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventMetadata;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A writer that panics on chosen batches, or cannot connect a number of times.
    struct Flaky {
        batches: Arc<AtomicUsize>,
        panic_on_batch: Option<usize>,
        connected: bool,
        refusals_left: Arc<AtomicUsize>,
    }

    impl BatchWriter for Flaky {
        async fn write_batch(
            &mut self,
            batch: &[AppendRequest],
            _: &Dependencies,
        ) -> Result<(Vec<Result<Appended, StoreError>>, i64), StoreError> {
            let number = self.batches.fetch_add(1, Ordering::SeqCst);
            if Some(number) == self.panic_on_batch {
                panic!("a stored row could not be read");
            }
            let outcomes = batch
                .iter()
                .map(|_| {
                    Ok(Appended {
                        first_position: 1,
                        last_position: 1,
                        version: 1,
                    })
                })
                .collect();
            Ok((outcomes, 1))
        }

        fn is_connected(&self) -> bool {
            self.connected
        }

        fn discard_connection(&mut self) {
            self.connected = false;
        }

        async fn reconnect(&mut self) -> Result<(), StoreError> {
            let left = self.refusals_left.load(Ordering::SeqCst);
            if left > 0 {
                self.refusals_left.store(left - 1, Ordering::SeqCst);
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            self.connected = true;
            Ok(())
        }
    }

    fn flaky(panic_on_batch: Option<usize>, connected: bool, refusals: usize) -> Flaky {
        Flaky {
            batches: Arc::new(AtomicUsize::new(0)),
            panic_on_batch,
            connected,
            refusals_left: Arc::new(AtomicUsize::new(refusals)),
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_writer_fails_its_batch_and_the_next_append_commits() {
        let log = GroupCommit::start(flaky(Some(0), true, 0), watch::channel(0).0);
        let failed = log.append(request("a", 0, &[Uuid::now_v7()])).await;
        match failed {
            Err(StoreError::Unavailable(reason)) => {
                assert!(
                    reason.contains("a stored row could not be read"),
                    "{reason}"
                )
            }
            other => panic!("expected the batch to fail, got {other:?}"),
        }
        let next = log.append(request("a", 0, &[Uuid::now_v7()])).await;
        assert!(next.is_ok(), "{next:?}");
        assert_eq!(log.unhealthy(), None);
    }

    #[tokio::test]
    async fn while_the_store_is_unreachable_appends_fail_fast_and_resume_after_it_returns() {
        let writer = flaky(None, false, 3);
        let refusals_left = writer.refusals_left.clone();
        let log = GroupCommit::start(writer, watch::channel(0).0);
        let started = std::time::Instant::now();
        let refused = log.append(request("a", 0, &[Uuid::now_v7()])).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(log.unhealthy().is_some_and(|r| r.contains("unreachable")));
        // The writer keeps trying on its own; once the store answers, appends commit again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if log.append(request("a", 0, &[Uuid::now_v7()])).await.is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never reconnected");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(refusals_left.load(Ordering::SeqCst), 0);
        assert_eq!(log.unhealthy(), None);
    }

    fn request(stream: &str, expected: i64, ids: &[Uuid]) -> AppendRequest {
        AppendRequest {
            stream_type: "test".into(),
            stream_id: stream.into(),
            expected_version: expected,
            events: ids
                .iter()
                .map(|id| NewEvent {
                    event_id: *id,
                    event_type: "Happened".into(),
                    schema_version: 1,
                    payload: serde_json::json!({}),
                    metadata: EventMetadata::default(),
                })
                .collect(),
            idempotency: None,
        }
    }

    proptest::proptest! {
        /// Whatever a batch holds, the rows it writes take contiguous positions after the head,
        /// each stream's versions continue contiguously from where the stream was, and each
        /// accepted append is answered with exactly the rows written for it.
        #[test]
        fn planned_batches_keep_positions_and_versions_contiguous(
            head in 0i64..1000,
            appends in proptest::collection::vec((0usize..4, 0i64..4, 1usize..4), 1..40),
            stored_versions in proptest::collection::vec(0i64..3, 4),
        ) {
            let batch: Vec<AppendRequest> = appends
                .iter()
                .map(|(stream, expected, events)| {
                    let ids: Vec<Uuid> = (0..*events).map(|_| Uuid::now_v7()).collect();
                    request(&format!("s{stream}"), *expected, &ids)
                })
                .collect();
            let mut context = BatchContext { head, ..Default::default() };
            for (stream, version) in stored_versions.iter().enumerate() {
                if *version > 0 {
                    context.versions.insert(("test".into(), format!("s{stream}")), *version);
                }
            }
            let plan = plan_batch(&batch, context);
            let positions: Vec<i64> = plan.rows.iter().map(|r| r.position).collect();
            proptest::prop_assert_eq!(positions, (head + 1..=head + plan.rows.len() as i64).collect::<Vec<_>>());
            for (stream, before) in stored_versions.iter().enumerate() {
                let id = format!("s{stream}");
                let versions: Vec<i64> =
                    plan.rows.iter().filter(|r| r.stream_id == id).map(|r| r.version).collect();
                proptest::prop_assert_eq!(versions.clone(), (before + 1..=before + versions.len() as i64).collect::<Vec<_>>());
            }
            let mut row = 0;
            for (request, outcome) in batch.iter().zip(&plan.outcomes) {
                if let Ok(appended) = outcome {
                    let written = &plan.rows[row..row + request.events.len()];
                    proptest::prop_assert_eq!(appended.first_position, written[0].position);
                    proptest::prop_assert_eq!(appended.last_position, written[written.len() - 1].position);
                    proptest::prop_assert_eq!(appended.version, written[written.len() - 1].version);
                    row += request.events.len();
                }
            }
            proptest::prop_assert_eq!(row, plan.rows.len());
        }
    }

    #[test]
    fn a_stale_append_in_a_batch_does_not_fail_the_others() {
        let batch = vec![
            request("a", 0, &[Uuid::now_v7()]),
            request("a", 0, &[Uuid::now_v7()]),
            request("b", 0, &[Uuid::now_v7(), Uuid::now_v7()]),
        ];
        let plan = plan_batch(
            &batch,
            BatchContext {
                head: 10,
                ..Default::default()
            },
        );
        assert_eq!(
            plan.outcomes[0].as_ref().unwrap(),
            &Appended {
                first_position: 11,
                last_position: 11,
                version: 1
            }
        );
        assert!(matches!(
            plan.outcomes[1],
            Err(StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        assert_eq!(
            plan.outcomes[2].as_ref().unwrap(),
            &Appended {
                first_position: 12,
                last_position: 13,
                version: 2
            }
        );
        assert_eq!(plan.rows.len(), 3);
    }

    #[test]
    fn repeating_an_append_in_the_same_batch_answers_the_first_result() {
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let batch = vec![request("a", 0, &ids), request("a", 0, &ids)];
        let plan = plan_batch(&batch, BatchContext::default());
        assert_eq!(
            plan.outcomes[0].as_ref().unwrap(),
            plan.outcomes[1].as_ref().unwrap()
        );
        assert_eq!(plan.rows.len(), 2);
    }

    #[test]
    fn reusing_one_stored_id_in_a_new_append_is_refused() {
        let stored = Uuid::now_v7();
        let mut context = BatchContext::default();
        context.known.insert(
            stored,
            KnownEvent {
                stream_type: "test".into(),
                stream_id: "a".into(),
                version: 1,
                position: 1,
            },
        );
        let batch = vec![request("a", 1, &[stored, Uuid::now_v7()])];
        let plan = plan_batch(&batch, context);
        assert!(matches!(plan.outcomes[0], Err(StoreError::EventIdReused(id)) if id == stored));
        assert!(plan.rows.is_empty());
    }

    /// Two processes that each took a retry of one keyed request: whichever commits first
    /// claims the key, and the other use of it (another epoch) is refused, in the same batch or
    /// a later one. A later append of the same use goes through.
    #[test]
    fn an_append_claiming_a_key_another_use_claimed_is_refused() {
        let claim = |epoch| crate::store::IdempotencyClaim {
            actor: "ana".into(),
            key: "k".into(),
            fingerprint: String::new(),
            epoch,
            created_at: chrono::Utc::now(),
        };
        let (ours, theirs) = (Uuid::now_v7(), Uuid::now_v7());
        let keyed = |stream: &str, epoch| AppendRequest {
            idempotency: Some(claim(epoch)),
            ..request(stream, 0, &[Uuid::now_v7()])
        };
        let batch = vec![keyed("a", ours), keyed("b", theirs), keyed("c", ours)];
        let plan = plan_batch(&batch, BatchContext::default());
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(StoreError::KeyClaimed { .. })
        ));
        assert!(plan.outcomes[2].is_ok());
        assert_eq!(plan.rows.len(), 2);

        let mut context = BatchContext::default();
        context.claims.insert(("ana".into(), "k".into()), theirs);
        let batch = vec![keyed("a", ours), keyed("b", theirs)];
        let plan = plan_batch(&batch, context);
        assert!(matches!(
            plan.outcomes[0],
            Err(StoreError::KeyClaimed { .. })
        ));
        assert!(plan.outcomes[1].is_ok());
    }

    /// Another process wrote exactly one event to the stream, so the version an append decided
    /// after our failed one expects is the stream's real version: it must fail all the same.
    #[test]
    fn an_append_decided_after_a_failed_one_fails_even_when_the_versions_line_up() {
        let first = Uuid::now_v7();
        let second = Uuid::now_v7();
        let batch = vec![request("a", 0, &[first]), request("a", 1, &[second])];
        let mut context = BatchContext::default();
        context.versions.insert(("test".into(), "a".into()), 1);
        let dependencies = Dependencies {
            after: vec![None, Some(first)],
            failed: HashSet::new(),
        };
        let plan = plan_batch_after(&batch, context, &dependencies);
        assert!(matches!(plan.outcomes[0], Err(StoreError::Conflict { .. })));
        assert!(matches!(plan.outcomes[1], Err(StoreError::Conflict { .. })));
        assert!(plan.rows.is_empty());

        // The same when the failure was in an earlier batch.
        let batch = vec![request("a", 1, &[second])];
        let mut context = BatchContext::default();
        context.versions.insert(("test".into(), "a".into()), 1);
        let dependencies = Dependencies {
            after: vec![Some(first)],
            failed: HashSet::from([first]),
        };
        let plan = plan_batch_after(&batch, context, &dependencies);
        assert!(matches!(plan.outcomes[0], Err(StoreError::Conflict { .. })));

        // And an append decided after one that committed goes through.
        let batch = vec![request("a", 0, &[first]), request("a", 1, &[second])];
        let dependencies = Dependencies {
            after: vec![None, Some(first)],
            failed: HashSet::new(),
        };
        let plan = plan_batch_after(&batch, BatchContext::default(), &dependencies);
        assert!(plan.outcomes.iter().all(Result::is_ok));
        assert_eq!(plan.rows.len(), 2);
    }
}
