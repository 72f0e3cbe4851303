//! Checkpointed consumers of the log: process managers (reactors) that, unlike projections,
//! may append events and make outbound calls in answer to what the log records.
//!
//! A consumer reads the events of its stream type after its checkpoint, hands them to its
//! [`Reactor`] a batch at a time, and commits the rows the reactor answers (say, webhook
//! deliveries to make) **together with** the new checkpoint, in one read-store transaction, the
//! way projections commit theirs. So those rows are written exactly once. What the reactor does
//! outside that transaction (appending events, calling out) happens before the commit and is
//! done again if the process dies in between: delivery is **at least once**. Appends stay
//! exactly once all the same: a reactor gives its events ids derived from the source event and
//! the step ([`derived_event_id`]), and the log answers a re-append of stored ids with their
//! original positions instead of storing them twice.
//!
//! One instance at a time runs each consumer: the holder of the lease `consumer:<name>` (the
//! projections' lease mechanism, [`crate::lease`]), and the checkpoint moves only from the value
//! it read, so even a holder that lost its lease unawares cannot commit a batch twice. A batch the
//! reactor cannot handle is retried from the same checkpoint with a growing pause; the consumer
//! reports it stalled, with the position and the error, until it goes through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use projections::Change;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::lease::{Lease, LEASE_RENEWAL};
use crate::read_store::{apply_changes, ReadStore, ReadStoreError};
use crate::runner::{Progress, Stall};
use crate::store::{SharedLog, StoreError, StoredEvent};

/// Events of the consumer's stream type read and handed over per batch.
pub const CONSUMER_BATCH_EVENTS_MAX: i64 = 1_000;
/// A consumer whose stream type is quiet still stores how far the log has moved, this often.
const IDLE_POSITIONS_PER_CHECKPOINT: i64 = 10_000;
const RETRY_DELAY: Duration = Duration::from_secs(1);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    #[error(transparent)]
    Log(#[from] StoreError),
    #[error(transparent)]
    ReadStore(#[from] ReadStoreError),
    #[error("read store: {0}")]
    Database(#[from] sqlx::Error),
    /// What the reactor could not do; the batch is retried.
    #[error("{0}")]
    Failed(String),
}

/// What a consumer hands its events to.
#[async_trait::async_trait]
pub trait Reactor: Send + Sync + 'static {
    /// The consumer's name: its checkpoint's and its lease's.
    fn name(&self) -> &'static str;

    /// The stream type whose events it follows (read with one indexed range read).
    fn stream_type(&self) -> &'static str;

    /// Whether an event of that type concerns it, by its type alone.
    fn wants(&self, event_type: &str) -> bool;

    /// Handles a batch of wanted events, in log order, and answers the rows to commit with the
    /// checkpoint after them. It may be handed the same events again after a crash or an error:
    /// what it does outside the answered rows must be idempotent (derive event ids with
    /// [`derived_event_id`]).
    async fn react(&self, events: &[StoredEvent]) -> Result<Vec<Change>, ReactorError>;
}

/// The id of the `step`-th thing a reactor appends in answer to the event `source`: the same on
/// every replay, so a re-append is recognised by the log. A UUID v8 from sha256.
pub fn derived_event_id(source: Uuid, step: &str) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"fleet-ledger reactor step\0");
    hash.update(source.as_bytes());
    hash.update(step.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// One consumer as `/readyz` and the admin endpoint report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsumerStatus {
    pub name: &'static str,
    /// The last log position it has handled (everything of its type up to here).
    pub position: i64,
    /// How many positions the log's head is ahead of it.
    pub lag: i64,
    /// `ready`, `catching_up` or `stalled`.
    pub status: &'static str,
    /// Whether this instance runs it (holds its lease).
    pub leading: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub stalled: Option<Stall>,
}

struct Running {
    name: &'static str,
    progress: watch::Receiver<Progress>,
    leading: Arc<AtomicBool>,
}

/// Every consumer of the service, each in its own task.
pub struct Consumers {
    running: Vec<Running>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl Consumers {
    /// Starts following the log for each reactor (on the instance that takes its lease).
    pub fn start(log: SharedLog, store: ReadStore, reactors: Vec<Arc<dyn Reactor>>) -> Self {
        let (stop, _) = watch::channel(false);
        let mut running = Vec::with_capacity(reactors.len());
        let mut tasks = Vec::with_capacity(reactors.len());
        for reactor in reactors {
            let (progress, observed) = watch::channel(Progress::default());
            let leading = Arc::new(AtomicBool::new(false));
            running.push(Running {
                name: reactor.name(),
                progress: observed,
                leading: leading.clone(),
            });
            let consumer = Consumer {
                log: log.clone(),
                store: store.clone(),
                reactor,
                progress,
                leading,
            };
            tasks.push(tokio::spawn(consumer.run(stop.subscribe())));
        }
        Self {
            running,
            tasks: std::sync::Mutex::new(tasks),
            stop,
        }
    }

    /// Every consumer's position, lag and state against the log's `head`.
    pub fn statuses(&self, head: i64) -> Vec<ConsumerStatus> {
        self.running
            .iter()
            .map(|r| {
                let progress = r.progress.borrow().clone();
                let lag = (head - progress.checkpoint).max(0);
                let status = match (&progress.stalled, lag) {
                    (Some(_), _) => "stalled",
                    (None, 0) => "ready",
                    (None, _) => "catching_up",
                };
                ConsumerStatus {
                    name: r.name,
                    position: progress.checkpoint,
                    lag,
                    status,
                    leading: r.leading.load(Ordering::Relaxed),
                    stalled: progress.stalled,
                }
            })
            .collect()
    }

    /// Waits (at most `timeout`) until the consumer `name` has handled `position`.
    pub async fn wait_for(&self, name: &str, position: i64, timeout: Duration) -> bool {
        let Some(running) = self.running.iter().find(|r| r.name == name) else {
            return false;
        };
        let mut progress = running.progress.clone();
        tokio::time::timeout(timeout, progress.wait_for(|p| p.checkpoint >= position))
            .await
            .is_ok_and(|reached| reached.is_ok())
    }

    /// Stops at once, mid-batch, without giving the leases up: what a killed process leaves
    /// behind. Exists so tests can prove a restart loses nothing and repeats nothing.
    pub fn abandon(&self) {
        for task in self.tasks.lock().expect("never poisoned").drain(..) {
            task.abort();
        }
        for running in &self.running {
            running.leading.store(false, Ordering::Relaxed);
        }
    }

    /// Stops every consumer after its current batch and gives its lease up.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        crate::runner::join_all(&self.tasks).await;
    }
}

struct Consumer {
    log: SharedLog,
    store: ReadStore,
    reactor: Arc<dyn Reactor>,
    progress: watch::Sender<Progress>,
    leading: Arc<AtomicBool>,
}

/// How [`Consumer::lead`] ended.
enum Ended {
    Stopped,
    /// Another instance holds the lease or moved the checkpoint.
    LostLease,
}

impl Consumer {
    /// Runs the reactor while this instance holds its lease; otherwise follows the checkpoint
    /// the holder stores, and takes the lease over when the holder stops renewing it.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let lease = Lease::new(
            self.store.clone(),
            format!("consumer:{}", self.reactor.name()),
        );
        while !*stop.borrow() {
            match lease.hold().await {
                Ok(true) => {
                    self.leading.store(true, Ordering::Relaxed);
                    tracing::info!(
                        consumer = self.reactor.name(),
                        "this instance runs the consumer"
                    );
                    let ended = self.lead(&lease, stop.clone()).await;
                    self.leading.store(false, Ordering::Relaxed);
                    if matches!(ended, Ended::Stopped) {
                        break;
                    }
                }
                Ok(false) => match stored_checkpoint(&self.store, self.reactor.name()).await {
                    Ok(position) => {
                        self.progress.send_if_modified(|current| {
                            let moved = position > current.checkpoint;
                            current.checkpoint = current.checkpoint.max(position);
                            moved
                        });
                    }
                    Err(error) => tracing::debug!(%error, "consumer checkpoint unreadable"),
                },
                Err(error) => tracing::warn!(%error, "consumer lease unreachable; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(LEASE_RENEWAL) => {}
                _ = stop.changed() => {}
            }
        }
        lease.release().await;
    }

    fn report_stall(&self, checkpoint: i64, position: i64, error: &str) {
        let previous = self.progress.borrow().stalled.clone();
        let stall = match previous {
            Some(stall) if stall.position == position && stall.error == error => Stall {
                attempts: stall.attempts + 1,
                ..stall
            },
            _ => Stall {
                position,
                error: error.to_string(),
                since: chrono::Utc::now(),
                attempts: 1,
            },
        };
        tracing::error!(
            consumer = self.reactor.name(),
            position,
            attempts = stall.attempts,
            %error,
            "consumer is stalled; retrying"
        );
        self.progress.send_replace(Progress {
            checkpoint,
            stalled: Some(stall),
        });
    }

    /// Follows the log from the stored checkpoint while the lease holds.
    async fn lead(&self, lease: &Lease, mut stop: watch::Receiver<bool>) -> Ended {
        let name = self.reactor.name();
        let mut head_watch = self.log.watch_head();
        let mut retry_delay = RETRY_DELAY;
        let mut renewed = tokio::time::Instant::now();
        let mut persisted = None;
        loop {
            if *stop.borrow() {
                return Ended::Stopped;
            }
            if renewed.elapsed() >= LEASE_RENEWAL {
                match lease.hold().await {
                    Ok(true) => renewed = tokio::time::Instant::now(),
                    Ok(false) => return Ended::LostLease,
                    // Unreachable: keep going; the checkpoint fences a batch that lost the lease.
                    Err(error) => tracing::warn!(%error, consumer = name, "lease not renewed"),
                }
            }
            let stored = match persisted {
                Some(stored) => stored,
                None => match stored_checkpoint(&self.store, name).await {
                    Ok(stored) => {
                        persisted = Some(stored);
                        self.progress.send_modify(|p| p.checkpoint = stored);
                        stored
                    }
                    Err(error) => {
                        self.report_stall(0, 1, &error.to_string());
                        if pause(&mut stop, &mut retry_delay).await {
                            return Ended::Stopped;
                        }
                        continue;
                    }
                },
            };
            let reached = self.progress.borrow().checkpoint;
            match self.step(stored, reached).await {
                Ok(Stepped::Idle) => {
                    retry_delay = RETRY_DELAY;
                    tokio::select! {
                        _ = head_watch.wait_for(|h| *h > reached) => {}
                        _ = tokio::time::sleep(LEASE_RENEWAL) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(Stepped::Moved { to, stored }) => {
                    retry_delay = RETRY_DELAY;
                    persisted = Some(stored);
                    self.progress.send_replace(Progress {
                        checkpoint: to,
                        stalled: None,
                    });
                }
                Ok(Stepped::Fenced) => {
                    tracing::warn!(consumer = name, "another instance runs the consumer now");
                    return Ended::LostLease;
                }
                Err((position, error)) => {
                    self.report_stall(reached, position, &error.to_string());
                    if pause(&mut stop, &mut retry_delay).await {
                        return Ended::Stopped;
                    }
                }
            }
        }
    }

    /// Reads the next batch after `reached`, hands what it wants to the reactor, and commits
    /// the reactor's rows with the new checkpoint (stored at `stored`).
    async fn step(&self, stored: i64, reached: i64) -> Result<Stepped, (i64, ReactorError)> {
        let at_next = |error: ReactorError| (reached + 1, error);
        // The head first: every position up to it is committed, so once the read below comes
        // back short, every event of the type up to the head has been seen.
        let head = self.log.head().await.map_err(|e| at_next(e.into()))?;
        let events = self
            .log
            .read_type(
                self.reactor.stream_type(),
                reached,
                CONSUMER_BATCH_EVENTS_MAX,
            )
            .await
            .map_err(|e| at_next(e.into()))?;
        let full = events.len() as i64 == CONSUMER_BATCH_EVENTS_MAX;
        let last_read = events.last().map_or(reached, |e| e.position);
        let to = if full { last_read } else { last_read.max(head) };
        let wanted: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| self.reactor.wants(&e.event_type))
            .collect();
        if to <= reached {
            return Ok(Stepped::Idle);
        }
        let changes = match wanted.first() {
            Some(first) => self
                .reactor
                .react(&wanted)
                .await
                .map_err(|e| (first.position, e))?,
            None => Vec::new(),
        };
        if wanted.is_empty() && to - stored < IDLE_POSITIONS_PER_CHECKPOINT {
            // Nothing of ours: the position moves in memory, stored with the next batch.
            return Ok(Stepped::Moved { to, stored });
        }
        let committed = commit(&self.store, self.reactor.name(), stored, to, changes)
            .await
            .map_err(at_next)?;
        Ok(if committed {
            Stepped::Moved { to, stored: to }
        } else {
            Stepped::Fenced
        })
    }
}

enum Stepped {
    /// Nothing new in the log.
    Idle,
    /// Handled up to `to`; the checkpoint is stored at `stored`.
    Moved { to: i64, stored: i64 },
    /// Another instance moved the checkpoint: it runs the consumer now.
    Fenced,
}

/// Sleeps `retry_delay` (doubling it for next time); `true` when stopped meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, retry_delay: &mut Duration) -> bool {
    let delay = *retry_delay;
    *retry_delay = (*retry_delay * 2).min(RETRY_DELAY_MAX);
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop.changed() => true,
    }
}

/// The consumer's stored checkpoint; a consumer seen for the first time gets a row at 0, so
/// every later move is a compare-and-set.
pub async fn stored_checkpoint(store: &ReadStore, name: &str) -> Result<i64, ReactorError> {
    sqlx::query(
        "INSERT INTO consumer_checkpoints (name, position) VALUES ($1, 0) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(store.pool())
    .await?;
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM consumer_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await?;
    Ok(position.unwrap_or(0))
}

/// Writes `changes` and moves the checkpoint from `from` to `to` in one transaction; `false`
/// (and nothing written) when the checkpoint is no longer at `from`.
async fn commit(
    store: &ReadStore,
    name: &str,
    from: i64,
    to: i64,
    changes: Vec<Change>,
) -> Result<bool, ReactorError> {
    debug_assert!(to > from, "a checkpoint only moves forward");
    let _turn = store.write_turn().await;
    let mut tx = store.pool().begin().await?;
    apply_changes(&mut tx, changes).await?;
    let moved = sqlx::query(
        "UPDATE consumer_checkpoints SET position = $1 \
         WHERE name = $2 AND position = $3 AND position < $1",
    )
    .bind(to)
    .bind(name)
    .bind(from)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_the_same_for_the_same_step_and_differ_otherwise() {
        let source = Uuid::now_v7();
        assert_eq!(
            derived_event_id(source, "criada"),
            derived_event_id(source, "criada")
        );
        assert_ne!(
            derived_event_id(source, "criada"),
            derived_event_id(source, "concluida")
        );
        assert_ne!(
            derived_event_id(source, "criada"),
            derived_event_id(Uuid::now_v7(), "criada")
        );
    }
}
