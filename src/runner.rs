//! The projection runner: keeps every read model caught up with the log.
//!
//! Each projection has its own checkpoint and its own task. A task reads the log in batches after
//! its checkpoint and writes the batch's row changes **and** the new checkpoint in one
//! transaction, so every event takes effect exactly once whatever crashes in between. A
//! projection without a checkpoint (new in a release) starts from position 0: backfilling needs
//! no manual step. Between batches a task sleeps until the log's head moves; it never polls.

use std::sync::Arc;
use std::time::Duration;

use projections::{FoldError, Projection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::read_store::{apply_change, save_checkpoint, ReadStore, ReadStoreError};
use crate::store::{SharedLog, StoreError};

/// Events folded per transaction.
pub const BATCH_EVENTS_MAX: i64 = 1000;
/// Pause before retrying after a failed batch (an outage, or an event a projection cannot fold).
const RETRY_DELAY: Duration = Duration::from_secs(1);

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
    /// Only [`ProjectionRunner::step_then_crash`] raises it, to stand for a process dying mid-batch.
    #[error("batch abandoned after {0} events")]
    Abandoned(usize),
}

struct Running {
    projection: Arc<dyn Projection>,
    checkpoint: watch::Receiver<i64>,
}

/// Every projection of the service, each followed by its own task.
pub struct ProjectionRunner {
    log: SharedLog,
    store: ReadStore,
    running: Vec<Running>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl ProjectionRunner {
    /// Loads each projection's checkpoint and starts following the log.
    pub async fn start(
        log: SharedLog,
        store: ReadStore,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, RunnerError> {
        let (stop, _) = watch::channel(false);
        let mut running = Vec::new();
        let mut tasks = Vec::new();
        for projection in projections {
            let checkpoint = store.checkpoint(projection.name()).await?;
            let (progress, observed) = watch::channel(checkpoint);
            tasks.push(tokio::spawn(follow(
                log.clone(),
                store.clone(),
                projection.clone(),
                progress,
                stop.subscribe(),
            )));
            running.push(Running {
                projection,
                checkpoint: observed,
            });
        }
        Ok(Self {
            log,
            store,
            running,
            tasks: std::sync::Mutex::new(tasks),
            stop,
        })
    }

    /// Waits until every projection has folded `position`; `false` if `timeout` came first.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let all_reached = async {
            for running in &self.running {
                let mut checkpoint = running.checkpoint.clone();
                if checkpoint.wait_for(|p| *p >= position).await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, all_reached)
            .await
            .unwrap_or(false)
    }

    /// `(name, checkpoint)` of every projection, as this process last committed them.
    pub fn checkpoints(&self) -> Vec<(&'static str, i64)> {
        self.running
            .iter()
            .map(|r| (r.projection.name(), *r.checkpoint.borrow()))
            .collect()
    }

    /// True when every projection has folded everything the log has committed.
    pub async fn caught_up(&self) -> Result<bool, StoreError> {
        let head = self.log.head().await?;
        Ok(self.running.iter().all(|r| *r.checkpoint.borrow() >= head))
    }

    pub fn store(&self) -> &ReadStore {
        &self.store
    }

    /// Stops every task after its current batch.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .expect("never poisoned")
            .drain(..)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
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
            Some(events_before_crash),
        )
        .await
    }
}

async fn follow(
    log: SharedLog,
    store: ReadStore,
    projection: Arc<dyn Projection>,
    progress: watch::Sender<i64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut head = log.watch_head();
    let mut checkpoint = *progress.borrow();
    loop {
        if *stop.borrow() {
            return;
        }
        match step(&log, &store, projection.as_ref(), checkpoint, None).await {
            Ok(reached) if reached > checkpoint => {
                checkpoint = reached;
                progress.send_replace(reached);
                continue;
            }
            Ok(_) => {
                tokio::select! {
                    _ = head.wait_for(|h| *h > checkpoint) => {}
                    _ = stop.changed() => return,
                }
            }
            Err(error) => {
                tracing::error!(projection = projection.name(), %error, "projection batch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Folds the next batch after `checkpoint` and commits it with its new checkpoint.
async fn step(
    log: &SharedLog,
    store: &ReadStore,
    projection: &dyn Projection,
    checkpoint: i64,
    crash_after: Option<usize>,
) -> Result<i64, RunnerError> {
    let events = log.read_all(checkpoint, BATCH_EVENTS_MAX).await?;
    let Some(last) = events.last() else {
        return Ok(checkpoint);
    };
    let reached = last.position;
    let mut tx = store.pool().begin().await?;
    for (index, event) in events.iter().enumerate() {
        if crash_after == Some(index) {
            // Dropping the transaction rolls back the changes folded so far, as a crash would.
            return Err(RunnerError::Abandoned(index));
        }
        for change in projection.apply(&event.to_recorded())? {
            apply_change(&mut tx, change).await?;
        }
    }
    save_checkpoint(&mut tx, projection.name(), reached).await?;
    tx.commit().await?;
    Ok(reached)
}
