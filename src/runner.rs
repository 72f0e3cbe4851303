//! The projection runner: keeps every read model caught up with the log.
//!
//! Each projection has its own checkpoint and its own task. A task reads the log in batches after
//! its checkpoint and writes the batch's row changes **and** the new checkpoint in one
//! transaction, so every event takes effect exactly once whatever crashes in between. A
//! projection without a checkpoint (new in a release) starts from position 0: backfilling needs
//! no manual step. Between batches a task sleeps until the log's head moves; it never polls.
//!
//! A projection that cannot fold an event (a bug, or an event written behind the service's back)
//! commits everything before it and **stalls** at that position: it reports the position and the
//! error ([`ProjectionStatus`]), retries with a growing pause, and never holds up anything else.
//! Readers waiting for a stalled projection are told at once that it lags, instead of after a
//! timeout. A code fix and a restart resume it from its checkpoint.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::{Change, FoldError, Projection, Recorded};
use serde::Serialize;
use sqlx::{Any, Transaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::lease::{Lease, LEASE_RENEWAL};
use crate::read_store::{
    advance_checkpoint, apply_change, apply_changes, ReadStore, ReadStoreError,
};
use crate::store::{SharedLog, StoreError, StoredEvent};

/// Events folded per transaction by a projection followed alone.
pub const BATCH_EVENTS_MAX: i64 = 1000;
/// Events read, folded by every projection and committed per transaction when they go
/// together: larger batches make a rebuild fewer, bigger statements.
pub const GROUP_BATCH_EVENTS_MAX: i64 = 5000;
/// A projection whose batches change no rows (most events are not its business) stores its
/// checkpoint only this often, or when it is idle: on SQLite every read-model transaction
/// takes the one write lock, and five projections committing each batch queued behind each
/// other. Folding a few no-op events again after a crash changes nothing.
const UNCHANGED_EVENTS_PER_CHECKPOINT: i64 = 10_000;
/// First pause before retrying a failed batch (an outage, or an event a projection cannot fold);
/// it doubles with each failure up to [`RETRY_DELAY_MAX`].
const RETRY_DELAY: Duration = Duration::from_secs(1);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);
/// Longest pause between retries while the store itself is out of reach.
const OUTAGE_RETRY_DELAY_MAX: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Log(#[from] StoreError),
    #[error(transparent)]
    ReadStore(#[from] ReadStoreError),
    #[error("read model database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// Another instance moved the checkpoint since this one read it: it holds the lease now.
    #[error("projection {0}: another instance moved its checkpoint")]
    Fenced(&'static str),
    /// Only [`ProjectionRunner::step_then_crash`] raises it, to stand for a process dying mid-batch.
    #[error("batch abandoned after {0} events")]
    Abandoned(usize),
}

/// Why a projection stopped short of the log's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Stall {
    /// The event it cannot get past.
    pub position: i64,
    pub error: String,
    /// When it first failed there.
    #[schema(value_type = String, format = DateTime)]
    pub since: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u64,
}

/// How far one projection has got, and whether it is stuck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub checkpoint: i64,
    pub stalled: Option<Stall>,
}

/// One projection as `/readyz` and the admin endpoint report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// The last position whose changes are in its tables.
    pub position: i64,
    /// `ready`, `catching_up` or `stalled`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub stalled: Option<Stall>,
}

struct Running {
    projection: Arc<dyn Projection>,
    progress: watch::Receiver<Progress>,
}

/// Every projection of the service, each followed by its own task.
pub struct ProjectionRunner {
    log: SharedLog,
    store: ReadStore,
    running: Vec<Running>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    /// Whether this instance holds the lease and folds the log (see [`crate::lease`]).
    leading: Arc<std::sync::atomic::AtomicBool>,
}

impl ProjectionRunner {
    /// Loads each projection's checkpoint and starts following the log: every projection in one
    /// task that reads each batch once and commits all their rows in one transaction.
    pub async fn start(
        log: SharedLog,
        store: ReadStore,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, RunnerError> {
        let (stop, _) = watch::channel(false);
        let mut running = Vec::new();
        let mut followed = Vec::new();
        for projection in projections {
            let checkpoint = store.checkpoint(projection.name()).await?;
            let (progress, observed) = watch::channel(Progress {
                checkpoint,
                stalled: None,
            });
            followed.push(Followed {
                projection: projection.clone(),
                progress: Arc::new(progress),
            });
            running.push(Running {
                projection,
                progress: observed,
            });
        }
        let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = vec![tokio::spawn(run_projections(
            log.clone(),
            store.clone(),
            followed,
            leading.clone(),
            stop.subscribe(),
        ))];
        Ok(Self {
            log,
            store,
            running,
            tasks: std::sync::Mutex::new(tasks),
            stop,
            leading,
        })
    }

    /// Waits (at most `timeout`) until every projection has folded `position` or is stalled, and
    /// answers whether those named in `touched` show it. A stalled projection is not waited for:
    /// it will not get there by waiting, and holding every write for it would wedge them all.
    /// Projections the events do not touch are waited for too, so that right after a write the
    /// whole service is as current as before it, but they never make the answer "lagging".
    pub async fn wait_for_touched(
        &self,
        position: i64,
        touched: &[&str],
        timeout: Duration,
    ) -> bool {
        let settled = async {
            for running in &self.running {
                let mut progress = running.progress.clone();
                let _ = progress
                    .wait_for(|p| p.checkpoint >= position || p.stalled.is_some())
                    .await;
            }
        };
        let _ = tokio::time::timeout(timeout, settled).await;
        self.running
            .iter()
            .filter(|r| touched.contains(&r.projection.name()))
            .all(|r| r.progress.borrow().checkpoint >= position)
    }

    /// Waits until every projection has folded `position`; `false` if `timeout` came first or
    /// one of them is stalled.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let names: Vec<&str> = self.running.iter().map(|r| r.projection.name()).collect();
        self.wait_for_touched(position, &names, timeout).await
    }

    /// Whether the projection named `name` has folded (and committed) every event up to
    /// `position`, stalled or not.
    pub fn has_folded(&self, name: &str, position: i64) -> bool {
        self.running
            .iter()
            .find(|r| r.projection.name() == name)
            .is_some_and(|r| r.progress.borrow().checkpoint >= position)
    }

    /// Follows the projection named `name`: its checkpoint as this process knows it (what it
    /// folds, or what the leading instance stored).
    pub fn progress_of(&self, name: &str) -> Option<watch::Receiver<Progress>> {
        self.running
            .iter()
            .find(|r| r.projection.name() == name)
            .map(|r| r.progress.clone())
    }

    /// The projection named `name`, if this runner follows it.
    pub fn projection(&self, name: &str) -> Option<Arc<dyn Projection>> {
        self.running
            .iter()
            .find(|r| r.projection.name() == name)
            .map(|r| r.projection.clone())
    }

    /// Every projection this runner follows.
    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        self.running.iter().map(|r| r.projection.clone()).collect()
    }

    /// Whether any projection named in `names` is stalled.
    pub fn any_stalled(&self, names: &[&str]) -> bool {
        self.running
            .iter()
            .filter(|r| names.contains(&r.projection.name()))
            .any(|r| r.progress.borrow().stalled.is_some())
    }

    /// `(name, checkpoint)` of every projection, as this process last committed them.
    pub fn checkpoints(&self) -> Vec<(&'static str, i64)> {
        self.running
            .iter()
            .map(|r| (r.projection.name(), r.progress.borrow().checkpoint))
            .collect()
    }

    /// Every projection's position and state against the log's `head`.
    pub fn statuses(&self, head: i64) -> Vec<ProjectionStatus> {
        self.running
            .iter()
            .map(|r| {
                let progress = r.progress.borrow().clone();
                let status = if progress.stalled.is_some() {
                    "stalled"
                } else if progress.checkpoint < head {
                    "catching_up"
                } else {
                    "ready"
                };
                ProjectionStatus {
                    name: r.projection.name(),
                    position: progress.checkpoint,
                    status,
                    stalled: progress.stalled,
                }
            })
            .collect()
    }

    /// True when every projection has folded everything the log has committed.
    pub async fn caught_up(&self) -> Result<bool, StoreError> {
        let head = self.log.head().await?;
        Ok(self
            .running
            .iter()
            .all(|r| r.progress.borrow().checkpoint >= head))
    }

    pub fn store(&self) -> &ReadStore {
        &self.store
    }

    /// Whether this instance folds the log into the read models now (it holds the lease).
    pub fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops folding at once, mid-batch, without giving the lease up: what a killed process
    /// leaves behind. Exists so tests can prove another instance takes over.
    pub fn abandon(&self) {
        for task in self.tasks.lock().expect("never poisoned").drain(..) {
            task.abort();
        }
        self.leading
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops every task after its current batch.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        join_all(&self.tasks).await;
    }

    /// Folds one batch for `projection` but dies after `events_before_crash` events, before the
    /// commit, as a killed process would. Exists so tests can prove a restart loses nothing.
    pub async fn step_then_crash(
        log: &SharedLog,
        store: &ReadStore,
        projection: &dyn Projection,
        events_before_crash: usize,
    ) -> Result<i64, RunnerError> {
        let checkpoint = store.checkpoint(projection.name()).await?;
        step(
            log,
            store,
            projection,
            checkpoint,
            checkpoint,
            Some(events_before_crash),
        )
        .await
        .map(|stepped| stepped.reached)
    }
}

/// Waits for every task in `tasks` to end (they have been told to stop), emptying the list.
pub(crate) async fn join_all(tasks: &std::sync::Mutex<Vec<JoinHandle<()>>>) {
    let tasks: Vec<_> = tasks.lock().expect("never poisoned").drain(..).collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// A projection folded by [`follow_together`], and how far it has got.
struct Member {
    projection: Arc<dyn Projection>,
    progress: Arc<watch::Sender<Progress>>,
    /// The last position it has folded (committed, or one its batches left unchanged).
    checkpoint: i64,
    /// Its checkpoint as stored.
    persisted: i64,
}

/// One projection's fold of a batch.
pub(crate) struct Folded {
    pub changes: Vec<Change>,
    /// The last position folded.
    pub reached: i64,
    /// The event that stopped it short, if one did.
    pub blocked: Option<Blocked>,
}

/// Folds the events of `events` past the member's checkpoint, stopping at one it cannot fold.
fn fold_member(member: &Member, events: &[Recorded]) -> Folded {
    fold_after(member.projection.as_ref(), member.checkpoint, events)
}

/// Folds the events of `events` after position `after` through `projection`, stopping at one it
/// cannot fold.
pub(crate) fn fold_after(projection: &dyn Projection, after: i64, events: &[Recorded]) -> Folded {
    let mut folded = Folded {
        changes: Vec::new(),
        reached: after,
        blocked: None,
    };
    for event in events.iter().filter(|e| e.position > after) {
        match projection.apply(event) {
            Ok(changes) => folded.changes.extend(changes),
            Err(FoldError { position, reason }) => {
                folded.blocked = Some(Blocked {
                    position,
                    error: format!("cannot fold {}: {reason}", event.event_type),
                });
                break;
            }
        }
        folded.reached = event.position;
    }
    folded
}

/// A projection and where its progress is published, whoever folds it.
struct Followed {
    projection: Arc<dyn Projection>,
    progress: Arc<watch::Sender<Progress>>,
}

/// How often an instance without the lease reads the checkpoints the holder stores, so that its
/// reads wait for what the holder folded (read-your-writes on every instance).
const STORED_CHECKPOINTS_POLL: Duration = Duration::from_millis(50);

/// Runs the projections while this instance holds the lease; otherwise follows the checkpoints
/// the holder stores, and takes the lease over when the holder stops renewing it.
async fn run_projections(
    log: SharedLog,
    store: ReadStore,
    followed: Vec<Followed>,
    leading: Arc<std::sync::atomic::AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let lease = Lease::new(store.clone(), "projections");
    let mut next_attempt = tokio::time::Instant::now();
    while !*stop.borrow() {
        if tokio::time::Instant::now() >= next_attempt {
            next_attempt = tokio::time::Instant::now() + LEASE_RENEWAL;
            match lease.hold().await {
                Ok(true) => match members_from_store(&store, &followed).await {
                    Ok(members) => {
                        tracing::info!("this instance runs the projections");
                        leading.store(true, std::sync::atomic::Ordering::Relaxed);
                        follow_together(&log, &store, members, &lease, stop.clone()).await;
                        leading.store(false, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    Err(error) => tracing::warn!(%error, "checkpoints unreadable; will retry"),
                },
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "projection lease unreachable; will retry"),
            }
        }
        match store.checkpoints().await {
            Ok(stored) => {
                for followed in &followed {
                    if let Some(&position) = stored.get(followed.projection.name()) {
                        followed.progress.send_if_modified(|current| {
                            let moved = position > current.checkpoint;
                            current.checkpoint = current.checkpoint.max(position);
                            moved
                        });
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "stored checkpoints unreadable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(STORED_CHECKPOINTS_POLL) => {}
            _ = stop.changed() => {}
        }
    }
    lease.release().await;
}

/// The projections as the lease holder starts them: each from its stored checkpoint (another
/// holder may have moved it since this instance last looked).
async fn members_from_store(
    store: &ReadStore,
    followed: &[Followed],
) -> Result<Vec<Member>, ReadStoreError> {
    let mut members = Vec::with_capacity(followed.len());
    for followed in followed {
        let checkpoint = store.checkpoint(followed.projection.name()).await?;
        followed.progress.send_if_modified(|current| {
            let moved = checkpoint != current.checkpoint;
            current.checkpoint = checkpoint;
            moved
        });
        members.push(Member {
            projection: followed.projection.clone(),
            progress: followed.progress.clone(),
            checkpoint,
            persisted: checkpoint,
        });
    }
    Ok(members)
}

/// Follows the log for every healthy projection at once, while this instance holds `lease`.
///
/// Each batch is read and decoded once, folded by every member, and committed as one
/// transaction (all their rows and checkpoints). With one task per projection, each read and
/// decoded the whole log again and committed on its own; on SQLite their commits queued for the
/// one write lock, and a write's answer waited for the slowest of five. Together, the read
/// models move in step: one commit makes a write visible in all of them.
///
/// A member that cannot fold (or store) an event leaves the group with what came before it
/// committed, and is followed alone by [`follow`], which reports it and retries; the others go
/// on without it. Returns on shutdown, or when the lease is lost (it could not be renewed, or
/// another instance moved a checkpoint).
async fn follow_together(
    log: &SharedLog,
    store: &ReadStore,
    mut members: Vec<Member>,
    lease: &Lease,
    mut stop: watch::Receiver<bool>,
) {
    let mut head = log.watch_head();
    let mut detached: Vec<JoinHandle<()>> = Vec::new();
    let mut retry_delay = RETRY_DELAY;
    let mut renewed = tokio::time::Instant::now();
    let lost = loop {
        if *stop.borrow() {
            break false;
        }
        if renewed.elapsed() >= LEASE_RENEWAL {
            match lease.hold().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => break true,
                // Unreachable: keep going; the checkpoints fence any batch that lost the lease.
                Err(error) => tracing::warn!(%error, "projection lease not renewed"),
            }
        }
        if members.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(LEASE_RENEWAL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let from = members.iter().map(|m| m.checkpoint).min().unwrap_or(0);
        let stepped = match log.read_all(from, GROUP_BATCH_EVENTS_MAX).await {
            Ok(events) if events.is_empty() => {
                if members.iter().any(|m| m.persisted < m.checkpoint) {
                    // Idle: store how far the unchanged batches got.
                    match persist_checkpoints(store, &members).await {
                        Ok(()) => members.iter_mut().for_each(|m| m.persisted = m.checkpoint),
                        Err(RunnerError::Fenced(projection)) => {
                            if !resume_after_fence(store, lease, &mut members, projection).await {
                                break true;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "checkpoints not stored; will retry")
                        }
                    }
                }
                tokio::select! {
                    _ = head.wait_for(|h| *h > from) => {}
                    _ = tokio::time::sleep(LEASE_RENEWAL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Ok(events) => {
                let events: Vec<Recorded> =
                    events.into_iter().map(StoredEvent::into_recorded).collect();
                let folded: Vec<Folded> = members.iter().map(|m| fold_member(m, &events)).collect();
                store_together(store, &members, folded, &events).await
            }
            Err(error) => Err(error.into()),
        };
        let stepped = match stepped {
            Ok(stepped) => stepped,
            Err(RunnerError::Fenced(projection)) => {
                if resume_after_fence(store, lease, &mut members, projection).await {
                    continue;
                }
                tracing::warn!(projection, "another instance folds the projections now");
                break true;
            }
            Err(error) => {
                // The batch as a whole failed (the store is unreachable, say): every member is
                // stuck at its next position until a retry succeeds.
                let error = error.to_string();
                for member in &members {
                    report_stall(
                        member.projection.name(),
                        &member.progress,
                        member.checkpoint,
                        member.checkpoint + 1,
                        &error,
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(retry_delay) => {}
                    _ = stop.changed() => {}
                }
                // An outage ends by itself: keep checking often enough that the read models
                // resume within seconds of the store coming back.
                retry_delay = (retry_delay * 2).min(OUTAGE_RETRY_DELAY_MAX);
                continue;
            }
        };
        retry_delay = RETRY_DELAY;
        let mut healthy = Vec::with_capacity(members.len());
        for (mut member, stepped) in members.drain(..).zip(stepped) {
            member.checkpoint = member.checkpoint.max(stepped.reached);
            member.persisted = stepped.persisted;
            let checkpoint = member.checkpoint;
            match stepped.blocked {
                None => {
                    member.progress.send_if_modified(|current| {
                        let changed = current.checkpoint != checkpoint || current.stalled.is_some();
                        current.checkpoint = checkpoint;
                        current.stalled = None;
                        changed
                    });
                    healthy.push(member);
                }
                Some(blocked) => {
                    report_stall(
                        member.projection.name(),
                        &member.progress,
                        checkpoint,
                        blocked.position,
                        &blocked.error,
                    );
                    detached.push(tokio::spawn(follow(
                        log.clone(),
                        store.clone(),
                        member.projection,
                        member.progress,
                        member.persisted,
                        stop.clone(),
                    )));
                }
            }
        }
        members = healthy;
    };
    for task in detached {
        if lost {
            // The projections belong to the new holder now, the stalled ones included.
            task.abort();
        }
        let _ = task.await;
    }
}

/// After a checkpoint's compare-and-set failed, whether this instance may go on folding. A
/// checkpoint moves behind the runner's back in two ways: another instance took the lease over
/// (this one must stop), or a rebuild swapped its shadow tables in with the checkpoint they were
/// folded to (`crate::rebuild`) while this instance still holds the lease. Then every member
/// starts again from its stored checkpoint: the failed batch rolled back whole, so none of it
/// counted, and the swapped-in tables hold everything up to their checkpoint.
async fn resume_after_fence(
    store: &ReadStore,
    lease: &Lease,
    members: &mut [Member],
    fenced: &'static str,
) -> bool {
    if !matches!(lease.hold().await, Ok(true)) {
        return false;
    }
    for member in members.iter_mut() {
        let stored = match store.checkpoint(member.projection.name()).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "checkpoints unreadable after a swap; will retry");
                return false;
            }
        };
        member.checkpoint = stored;
        member.persisted = stored;
        member.progress.send_if_modified(|current| {
            let moved = current.checkpoint != stored;
            current.checkpoint = stored;
            moved
        });
    }
    tracing::info!(
        projection = fenced,
        "checkpoint moved by a rebuild; folding on from the swapped-in tables"
    );
    true
}

/// Commits every member's changes and checkpoint in one transaction. Should some row not store,
/// each member goes again on its own, event by event, so the event at fault is the one named.
async fn store_together(
    store: &ReadStore,
    members: &[Member],
    folded: Vec<Folded>,
    events: &[Recorded],
) -> Result<Vec<Stepped>, RunnerError> {
    let due = folded.iter().zip(members).any(|(f, m)| {
        !f.changes.is_empty() || f.reached - m.persisted >= UNCHANGED_EVENTS_PER_CHECKPOINT
    });
    if !due {
        // Nothing to write: the checkpoints move in memory, and are stored when idle.
        return Ok(folded
            .into_iter()
            .zip(members)
            .map(|(f, m)| Stepped {
                reached: f.reached,
                persisted: m.persisted,
                blocked: f.blocked,
            })
            .collect());
    }
    let turn = store.write_turn().await;
    let mut tx = store.begin_write().await?;
    let mut stepped = Vec::with_capacity(members.len());
    for (f, m) in folded.into_iter().zip(members) {
        if f.reached > m.persisted {
            start_from_empty(&mut tx, m.projection.as_ref(), m.persisted).await?;
        }
        if apply_changes(&mut tx, f.changes).await.is_err() {
            drop(tx);
            drop(turn);
            let mut alone = Vec::with_capacity(members.len());
            for member in members {
                alone.push(
                    step_event_by_event(
                        store,
                        member.projection.as_ref(),
                        member.checkpoint,
                        member.persisted,
                        events,
                    )
                    .await?,
                );
            }
            return Ok(alone);
        }
        if f.reached > m.persisted {
            let name = m.projection.name();
            if !advance_checkpoint(&mut tx, name, m.persisted, f.reached).await? {
                return Err(RunnerError::Fenced(name));
            }
        }
        stepped.push(Stepped {
            reached: f.reached,
            persisted: f.reached.max(m.persisted),
            blocked: f.blocked,
        });
    }
    tx.commit().await?;
    Ok(stepped)
}

async fn persist_checkpoints(store: &ReadStore, members: &[Member]) -> Result<(), RunnerError> {
    let _turn = store.write_turn().await;
    let mut tx = store.begin_write().await?;
    for member in members.iter().filter(|m| m.persisted < m.checkpoint) {
        let name = member.projection.name();
        start_from_empty(&mut tx, member.projection.as_ref(), member.persisted).await?;
        if !advance_checkpoint(&mut tx, name, member.persisted, member.checkpoint).await? {
            return Err(RunnerError::Fenced(name));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Empties the projection's tables when its checkpoint is still 0, in the transaction that moves
/// it: a projection at 0 folds from the first event, so what its tables hold (rows left behind
/// when the checkpoint was deleted to rebuild it) must go. Running totals would otherwise count
/// the history twice, and rows of entities the history no longer has would linger. Should
/// another instance have moved the checkpoint meanwhile, the compare-and-set that follows fails
/// and the transaction, this deletion with it, rolls back.
async fn start_from_empty(
    tx: &mut Transaction<'_, Any>,
    projection: &dyn Projection,
    persisted: i64,
) -> Result<(), sqlx::Error> {
    if persisted != 0 {
        return Ok(());
    }
    for table in projection.tables() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Marks a projection stalled at `position` (counting the attempts while it stays there with
/// the same error) and logs it.
fn report_stall(
    name: &'static str,
    progress: &watch::Sender<Progress>,
    checkpoint: i64,
    position: i64,
    error: &str,
) {
    let previous = progress.borrow().stalled.clone();
    let stall = match previous {
        Some(stall) if stall.position == position && stall.error == error => Stall {
            attempts: stall.attempts + 1,
            ..stall
        },
        _ => Stall {
            position,
            error: error.to_string(),
            since: Utc::now(),
            attempts: 1,
        },
    };
    tracing::error!(
        projection = name,
        position,
        attempts = stall.attempts,
        %error,
        "projection is stalled; retrying"
    );
    progress.send_replace(Progress {
        checkpoint,
        stalled: Some(stall),
    });
}

/// Follows the log for one projection on its own: one that left [`follow_together`] because it
/// cannot get past an event. It retries with a growing pause until a batch goes through.
async fn follow(
    log: SharedLog,
    store: ReadStore,
    projection: Arc<dyn Projection>,
    progress: Arc<watch::Sender<Progress>>,
    mut persisted: i64,
    mut stop: watch::Receiver<bool>,
) {
    let mut head = log.watch_head();
    let mut checkpoint = progress.borrow().checkpoint;
    // It arrives here stalled: pause before the first retry.
    let mut retry_delay = RETRY_DELAY;
    tokio::select! {
        _ = tokio::time::sleep(retry_delay) => {}
        _ = stop.changed() => return,
    }
    loop {
        if *stop.borrow() {
            return;
        }
        let stepped = step(
            &log,
            &store,
            projection.as_ref(),
            checkpoint,
            persisted,
            None,
        )
        .await;
        let (reached, failure) = match stepped {
            Ok(Stepped {
                reached,
                persisted: stored,
                blocked,
            }) => {
                persisted = stored;
                (reached, blocked.map(|b| (b.position, b.error)))
            }
            // A rebuild swapped this projection's tables in (see `resume_after_fence`): go on
            // from the checkpoint they were folded to. (Had another instance taken the lease
            // instead, `follow_together` aborts this task as soon as it notices.)
            Err(RunnerError::Fenced(_)) => match store.checkpoint(projection.name()).await {
                Ok(stored) => {
                    checkpoint = stored;
                    persisted = stored;
                    continue;
                }
                Err(error) => (checkpoint, Some((checkpoint + 1, error.to_string()))),
            },
            // The batch as a whole failed (the store is unreachable, say): it is stuck at the
            // next position until the retry succeeds.
            Err(error) => (checkpoint, Some((checkpoint + 1, error.to_string()))),
        };
        let advanced = reached > checkpoint;
        if advanced {
            checkpoint = reached;
            retry_delay = RETRY_DELAY;
        }
        match failure {
            None => {
                progress.send_if_modified(|current| {
                    let changed = current.checkpoint != checkpoint || current.stalled.is_some();
                    current.checkpoint = checkpoint;
                    current.stalled = None;
                    changed
                });
                if !advanced {
                    if persisted < checkpoint {
                        // Idle: store how far the unchanged batches got.
                        match persist_checkpoint(&store, projection.as_ref(), persisted, checkpoint)
                            .await
                        {
                            Ok(()) => persisted = checkpoint,
                            Err(error) => {
                                tracing::warn!(projection = projection.name(), %error, "checkpoint not stored; will retry")
                            }
                        }
                    }
                    tokio::select! {
                        _ = head.wait_for(|h| *h > checkpoint) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
            Some((position, error)) => {
                report_stall(projection.name(), &progress, checkpoint, position, &error);
                tokio::select! {
                    _ = tokio::time::sleep(retry_delay) => {}
                    _ = stop.changed() => return,
                }
                retry_delay = (retry_delay * 2).min(RETRY_DELAY_MAX);
            }
        }
    }
}

/// The event a projection could not get past.
pub(crate) struct Blocked {
    pub position: i64,
    pub error: String,
}

/// What one batch did: how far it got, how far is stored, and the event that stopped it short.
struct Stepped {
    reached: i64,
    /// The checkpoint as stored (behind `reached` after unchanged batches).
    persisted: i64,
    blocked: Option<Blocked>,
}

async fn persist_checkpoint(
    store: &ReadStore,
    projection: &dyn Projection,
    from: i64,
    to: i64,
) -> Result<(), RunnerError> {
    let _turn = store.write_turn().await;
    let mut tx = store.begin_write().await?;
    start_from_empty(&mut tx, projection, from).await?;
    if !advance_checkpoint(&mut tx, projection.name(), from, to).await? {
        return Err(RunnerError::Fenced(projection.name()));
    }
    tx.commit().await?;
    Ok(())
}

/// Folds the next batch after `checkpoint` and commits it with its new checkpoint. An event the
/// projection cannot fold ends the batch: what came before it is committed, and it is reported.
async fn step(
    log: &SharedLog,
    store: &ReadStore,
    projection: &dyn Projection,
    checkpoint: i64,
    persisted: i64,
    crash_after: Option<usize>,
) -> Result<Stepped, RunnerError> {
    let events: Vec<Recorded> = log
        .read_all(checkpoint, BATCH_EVENTS_MAX)
        .await?
        .into_iter()
        .map(StoredEvent::into_recorded)
        .collect();
    let mut reached = checkpoint;
    let mut blocked = None;
    let mut changes = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if crash_after == Some(index) {
            // Nothing is written before the commit below, as if the process died here.
            return Err(RunnerError::Abandoned(index));
        }
        match projection.apply(event) {
            Ok(folded) => changes.extend(folded),
            Err(FoldError { position, reason }) => {
                blocked = Some(Blocked {
                    position,
                    error: format!("cannot fold {}: {reason}", event.event_type),
                });
                break;
            }
        }
        reached = event.position;
    }
    if reached == checkpoint {
        return Ok(Stepped {
            reached,
            persisted,
            blocked,
        });
    }
    if changes.is_empty() && reached - persisted < UNCHANGED_EVENTS_PER_CHECKPOINT {
        return Ok(Stepped {
            reached,
            persisted,
            blocked,
        });
    }
    let turn = store.write_turn().await;
    let mut tx = store.begin_write().await?;
    start_from_empty(&mut tx, projection, persisted).await?;
    if apply_changes(&mut tx, changes).await.is_err() {
        // Some row cannot be stored. Roll back and go event by event, to name the one.
        drop(tx);
        drop(turn);
        return step_event_by_event(store, projection, checkpoint, persisted, &events).await;
    }
    if !advance_checkpoint(&mut tx, projection.name(), persisted, reached).await? {
        return Err(RunnerError::Fenced(projection.name()));
    }
    tx.commit().await?;
    Ok(Stepped {
        reached,
        persisted: reached,
        blocked,
    })
}

/// The slow path after a batch failed to store: the same events one change at a time, so the
/// event whose row the read store refuses is the one reported, and what precedes it still counts.
async fn step_event_by_event(
    store: &ReadStore,
    projection: &dyn Projection,
    checkpoint: i64,
    persisted: i64,
    events: &[Recorded],
) -> Result<Stepped, RunnerError> {
    let _turn = store.write_turn().await;
    let mut tx = store.begin_write().await?;
    start_from_empty(&mut tx, projection, persisted).await?;
    let mut reached = checkpoint;
    let mut blocked = None;
    'events: for event in events.iter().filter(|e| e.position > checkpoint) {
        let changes = match projection.apply(event) {
            Ok(changes) => changes,
            Err(FoldError { position, reason }) => {
                blocked = Some(Blocked {
                    position,
                    error: format!("cannot fold {}: {reason}", event.event_type),
                });
                break;
            }
        };
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
        for change in changes {
            if let Err(error) = apply_change(&mut savepoint, change).await {
                blocked = Some(Blocked {
                    position: event.position,
                    error: format!("cannot store {}: {error}", event.event_type),
                });
                // Rolls back to before this event; what came before it stays.
                drop(savepoint);
                break 'events;
            }
        }
        savepoint.commit().await?;
        reached = event.position;
    }
    if reached > checkpoint {
        if !advance_checkpoint(&mut tx, projection.name(), persisted, reached).await? {
            return Err(RunnerError::Fenced(projection.name()));
        }
        tx.commit().await?;
    }
    Ok(Stepped {
        reached,
        persisted: if reached > checkpoint {
            reached
        } else {
            persisted
        },
        blocked,
    })
}
