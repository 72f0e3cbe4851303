//! Online rebuilds of read models through shadow tables (blue/green).
//!
//! `fleet-ledger replay` and `POST /api/admin/proyecciones/{name}/reconstruir` fold the log from
//! position 0 again while the service keeps answering from, and folding into, the live tables:
//!
//! 1. [`ShadowRebuild::start`] takes each projection's rebuild lease (one rebuild of a projection
//!    at a time, whichever process runs it) and creates an empty shadow of every live table.
//! 2. [`ShadowRebuild::catch_up`] folds the log into the shadows in batches, each committed with
//!    the shadow's position (`projection_rebuilds`), until it has reached the head.
//! 3. [`ShadowRebuild::swap`], in ONE transaction: locks out the live runner, folds what arrived
//!    since, drops the live tables, renames the shadows in and sets each checkpoint to the
//!    position the shadow was folded to.
//!
//! The live runner needs no signal. Its next batch moves the checkpoint by compare-and-set from
//! the value it last stored; the swap changed it, so that batch rolls back whole and the runner
//! goes on from the swapped-in checkpoint (`runner::resume_after_fence`). No event is folded
//! twice or skipped: the swapped-in tables hold exactly the events up to their checkpoint, and
//! the swap sets it at or past the live one (it folds up to the head read under its lock).

mod command;
mod shadow;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use projections::{Projection, Recorded};
use sqlx::{Any, Transaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use command::replay;
pub use status::{records, RebuildRecord};

use crate::lease::{Lease, LEASE_RENEWAL};
use crate::read_store::{apply_changes_to, ReadStore, ReadStoreError, TableSet};
use crate::runner::{fold_after, Folded, GROUP_BATCH_EVENTS_MAX};
use crate::store::{SharedLog, StoreError, StoredEvent};

/// The lease a rebuild of projection `name` holds is named this plus the name.
pub const LEASE_PREFIX: &str = "rebuild:";

/// How long the swap waits for the live tables at a time (PostgreSQL). A reader that holds one
/// of them while it waits for another the swap has already locked would deadlock with it; the
/// swap gives way instead, well before PostgreSQL's deadlock check (1 s) would cancel the reader.
const SWAP_LOCK_WAIT: &str = "100ms";
/// Attempts at locking the live tables before the swap gives up (about 15 s in all).
const SWAP_LOCK_ATTEMPTS: u32 = 100;
const SWAP_LOCK_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("unknown projection {name:?}; the projections are: {}", .valid.join(", "))]
    UnknownProjection {
        name: String,
        valid: Vec<&'static str>,
    },
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(&'static str),
    #[error("projection {projection} cannot fold the event at position {position}: {error}")]
    Fold {
        projection: &'static str,
        position: i64,
        error: String,
    },
    #[error("the rebuild of {0} lost its lease: it stalled longer than the lease lasts")]
    LeaseLost(&'static str),
    #[error("stopped before the swap (the service is shutting down)")]
    Stopped,
    #[error(
        "the live tables stayed in use for {SWAP_LOCK_ATTEMPTS} attempts; nothing was swapped"
    )]
    LiveTablesBusy,
    #[error("shadow table: {0}")]
    Shadow(String),
    #[error("event log: {0}")]
    Log(#[from] StoreError),
    #[error("read models: {0}")]
    ReadStore(#[from] ReadStoreError),
    #[error("read models: {0}")]
    Database(#[from] sqlx::Error),
}

/// How far a rebuild has got: the shadows' position (the slowest one's) and the log's head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    pub position: i64,
    pub target: i64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildSummary {
    /// The checkpoint the swap set.
    pub position: i64,
    /// From the start to the swap's commit.
    pub elapsed: Duration,
    /// How long the swap's transaction held the live tables (from taking their lock to its
    /// commit): what the live runner, and on PostgreSQL the readers of those tables, waited.
    pub swap: Duration,
    pub projections: Vec<ProjectionSummary>,
}

#[derive(Debug, Clone)]
pub struct ProjectionSummary {
    pub name: &'static str,
    /// Events folded into its shadow.
    pub events: u64,
    /// Rows its tables hold after the swap.
    pub rows: i64,
    /// Time spent folding its events and writing its rows (reading the log, shared by all the
    /// projections rebuilt together, is not in it).
    pub busy: Duration,
}

/// The projections named in `names` among `available` (all of them when `names` is empty).
pub fn select(
    available: &[Arc<dyn Projection>],
    names: &[String],
) -> Result<Vec<Arc<dyn Projection>>, RebuildError> {
    if names.is_empty() {
        return Ok(available.to_vec());
    }
    let mut selected: Vec<Arc<dyn Projection>> = Vec::with_capacity(names.len());
    for name in names {
        let Some(projection) = available.iter().find(|p| p.name() == name) else {
            return Err(RebuildError::UnknownProjection {
                name: name.clone(),
                valid: available.iter().map(|p| p.name()).collect(),
            });
        };
        if !selected.iter().any(|p| p.name() == name) {
            selected.push(projection.clone());
        }
    }
    Ok(selected)
}

/// One projection being rebuilt.
struct Member {
    projection: Arc<dyn Projection>,
    /// The last position folded into its shadow.
    reached: i64,
    events: u64,
    busy: Duration,
}

/// A rebuild between its start and its swap.
pub struct ShadowRebuild {
    log: SharedLog,
    store: ReadStore,
    members: Vec<Member>,
    leases: LeaseKeeper,
    progress: watch::Sender<RebuildProgress>,
    started: Instant,
}

impl ShadowRebuild {
    /// Takes the projections' rebuild leases and creates their empty shadow tables.
    pub async fn start(
        log: SharedLog,
        store: ReadStore,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, RebuildError> {
        let started = Instant::now();
        let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
        let leases = LeaseKeeper::take(&store, &names).await?;
        let created = async {
            let head = log.head().await?;
            let _turn = store.write_turn().await;
            let mut tx = store.begin_write().await?;
            for projection in &projections {
                for table in projection.tables() {
                    shadow::create(&mut tx, table).await?;
                }
            }
            status::record_start(&mut tx, &names, head).await?;
            tx.commit().await?;
            Ok::<i64, RebuildError>(head)
        }
        .await;
        let head = match created {
            Ok(head) => head,
            Err(error) => {
                leases.release().await;
                return Err(error);
            }
        };
        let members = projections
            .into_iter()
            .map(|projection| Member {
                projection,
                reached: 0,
                events: 0,
                busy: Duration::ZERO,
            })
            .collect();
        let (progress, _) = watch::channel(RebuildProgress {
            position: 0,
            target: head,
        });
        Ok(Self {
            log,
            store,
            members,
            leases,
            progress,
            started,
        })
    }

    /// Follows how far the rebuild has got.
    pub fn progress(&self) -> watch::Receiver<RebuildProgress> {
        self.progress.subscribe()
    }

    /// The names of the projections being rebuilt.
    pub fn names(&self) -> Vec<&'static str> {
        self.members.iter().map(|m| m.projection.name()).collect()
    }

    /// Folds the log into the shadows, a batch per transaction, until a batch reaches the head.
    /// Returns early with [`RebuildError::Stopped`] once `stop` says so.
    pub async fn catch_up(&mut self, stop: &watch::Receiver<bool>) -> Result<(), RebuildError> {
        loop {
            if *stop.borrow() {
                return Err(RebuildError::Stopped);
            }
            self.leases.check()?;
            let events = self.read_batch().await?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Ok(());
            };
            let head = self.log.head().await?.max(last);
            let folded = self.fold(&events)?;
            let _turn = self.store.write_turn().await;
            let mut tx = self.store.begin_write().await?;
            self.write(&mut tx, folded).await?;
            status::record_progress(&mut tx, &self.positions(), head).await?;
            tx.commit().await?;
            self.publish(head);
            if last >= head {
                return Ok(());
            }
        }
    }

    /// Swaps the shadows in, in one transaction: see the module's documentation. A rebuild that
    /// cannot swap (or fails later) is recorded as failed and its shadows are dropped.
    pub async fn swap(mut self) -> Result<RebuildSummary, RebuildError> {
        let swap = match self.swap_in().await {
            Ok(held) => held,
            Err(error) => return Err(self.abandon(error).await),
        };
        let elapsed = self.started.elapsed();
        let position = self.position();
        self.leases.release().await;
        let mut projections = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let mut rows = 0;
            for table in member.projection.tables() {
                let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(self.store.pool())
                    .await?;
                rows += count;
            }
            projections.push(ProjectionSummary {
                name: member.projection.name(),
                events: member.events,
                rows,
                busy: member.busy,
            });
        }
        Ok(RebuildSummary {
            position,
            elapsed,
            swap,
            projections,
        })
    }

    /// [`Self::catch_up`], then [`Self::swap`]; a failure is recorded and the shadows dropped.
    pub async fn complete(
        mut self,
        stop: &watch::Receiver<bool>,
    ) -> Result<RebuildSummary, RebuildError> {
        match self.catch_up(stop).await {
            Ok(()) => self.swap().await,
            Err(error) => Err(self.abandon(error).await),
        }
    }

    /// Answers how long it held the live tables.
    async fn swap_in(&mut self) -> Result<Duration, RebuildError> {
        self.leases.check()?;
        let _turn = self.store.write_turn().await;
        let mut tx = self.lock_live().await?;
        let locked = Instant::now();
        let mut stored = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let position: Option<i64> =
                sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                    .bind(member.projection.name())
                    .fetch_optional(&mut *tx)
                    .await?;
            stored.push(position.unwrap_or(0));
        }
        // No batch of the live runner is under way now, and none can start before the commit:
        // what the log holds up to this head is all the live tables can have folded.
        let head = self.log.head().await?;
        while self.position() < head {
            let events = self.read_batch().await?;
            if events.is_empty() {
                break;
            }
            let folded = self.fold(&events)?;
            self.write(&mut tx, folded).await?;
        }
        for (member, stored) in self.members.iter().zip(stored) {
            let name = member.projection.name();
            if member.reached < stored {
                return Err(RebuildError::Shadow(format!(
                    "{name}: the shadow reached {} but the live checkpoint is {stored}",
                    member.reached
                )));
            }
            for table in member.projection.tables() {
                shadow::swap(&mut tx, table).await?;
            }
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            )
            .bind(name)
            .bind(member.reached)
            .execute(&mut *tx)
            .await?;
        }
        status::record_swapped(&mut tx, &self.positions()).await?;
        tx.commit().await?;
        let held = locked.elapsed();
        self.publish(self.position());
        Ok(held)
    }

    /// The swap's transaction, once nothing else writes the live tables of the projections.
    ///
    /// SQLite: the file's write lock (the live runner waits for it, in this process or another).
    /// PostgreSQL: every live table locked exclusively, then the checkpoint rows; a batch of the
    /// live runner that already touched one of them finishes first, and the next one waits at
    /// its first read or write of them. Both lock attempts give way after [`SWAP_LOCK_WAIT`]
    /// and are tried again, so that neither a reader nor the runner's batch (which may hold
    /// another projection's checkpoint row) ever deadlocks with the swap.
    async fn lock_live(&self) -> Result<Transaction<'static, Any>, RebuildError> {
        if !self.store.is_postgres() {
            return Ok(self.store.begin_write().await?);
        }
        let tables: Vec<&str> = self
            .members
            .iter()
            .flat_map(|m| m.projection.tables().iter().copied())
            .collect();
        let names = self.names();
        let placeholders: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
        let lock_tables = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", tables.join(", "));
        let lock_checkpoints = format!(
            "SELECT position FROM projection_checkpoints WHERE name IN ({}) FOR UPDATE",
            placeholders.join(", ")
        );
        for _ in 0..SWAP_LOCK_ATTEMPTS {
            let mut tx = self.store.begin_write().await?;
            sqlx::query(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_WAIT}'"))
                .execute(&mut *tx)
                .await?;
            let locked = async {
                sqlx::query(&lock_tables).execute(&mut *tx).await?;
                let mut query = sqlx::query(&lock_checkpoints);
                for name in &names {
                    query = query.bind(*name);
                }
                query.fetch_all(&mut *tx).await?;
                sqlx::query("SET LOCAL lock_timeout = 0")
                    .execute(&mut *tx)
                    .await
            }
            .await;
            match locked {
                Ok(_) => return Ok(tx),
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55P03") => {
                    tx.rollback().await?;
                    tokio::time::sleep(SWAP_LOCK_PAUSE).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(RebuildError::LiveTablesBusy)
    }

    /// The next batch of events after the slowest shadow's position.
    async fn read_batch(&self) -> Result<Vec<Recorded>, RebuildError> {
        Ok(self
            .log
            .read_all(self.position(), GROUP_BATCH_EVENTS_MAX)
            .await?
            .into_iter()
            .map(StoredEvent::into_recorded)
            .collect())
    }

    /// Folds `events` through every member (no I/O); an event one cannot fold ends the rebuild.
    fn fold(&mut self, events: &[Recorded]) -> Result<Vec<Folded>, RebuildError> {
        let mut all = Vec::with_capacity(self.members.len());
        for member in &mut self.members {
            let began = Instant::now();
            let folded = fold_after(member.projection.as_ref(), member.reached, events);
            member.busy += began.elapsed();
            if let Some(blocked) = folded.blocked {
                return Err(RebuildError::Fold {
                    projection: member.projection.name(),
                    position: blocked.position,
                    error: blocked.error,
                });
            }
            all.push(folded);
        }
        Ok(all)
    }

    /// Writes each member's folded changes into its shadow, in `tx`.
    async fn write(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        folded: Vec<Folded>,
    ) -> Result<(), RebuildError> {
        for (member, folded) in self.members.iter_mut().zip(folded) {
            let began = Instant::now();
            apply_changes_to(tx, folded.changes, TableSet::Shadow).await?;
            member.busy += began.elapsed();
            member.events += u64::try_from(folded.reached - member.reached).unwrap_or(0);
            member.reached = folded.reached;
        }
        Ok(())
    }

    fn positions(&self) -> Vec<(&'static str, i64)> {
        self.members
            .iter()
            .map(|m| (m.projection.name(), m.reached))
            .collect()
    }

    /// The slowest shadow's position.
    fn position(&self) -> i64 {
        self.members.iter().map(|m| m.reached).min().unwrap_or(0)
    }

    fn publish(&self, target: i64) {
        let position = self.position();
        self.progress.send_replace(RebuildProgress {
            position,
            target: target.max(position),
        });
    }

    /// Records the failure, drops the shadows and gives the leases up; answers the error.
    async fn abandon(self, error: RebuildError) -> RebuildError {
        let recorded = async {
            let _turn = self.store.write_turn().await;
            let mut tx = self.store.begin_write().await?;
            for member in &self.members {
                for table in member.projection.tables() {
                    shadow::discard(&mut tx, table).await?;
                }
            }
            status::record_failure(&mut tx, &self.names(), &error.to_string()).await?;
            tx.commit().await
        }
        .await;
        if let Err(cleanup) = recorded {
            tracing::warn!(%cleanup, %error, "failed rebuild not recorded; the next one drops its shadow tables");
        }
        self.leases.release().await;
        error
    }
}

/// Holds the rebuild leases of a set of projections, renewing them in the background until
/// released (or dropped: a rebuild task that is aborted gives them up too).
struct LeaseKeeper {
    lost: Arc<AtomicBool>,
    names: Vec<&'static str>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    async fn take(store: &ReadStore, names: &[&'static str]) -> Result<Self, RebuildError> {
        let mut leases: Vec<Lease> = Vec::with_capacity(names.len());
        for name in names {
            let lease = Lease::new(store.clone(), format!("{LEASE_PREFIX}{name}"));
            let held = lease.hold().await;
            if !matches!(held, Ok(true)) {
                for taken in &leases {
                    taken.release().await;
                }
                return Err(match held {
                    Err(error) => error.into(),
                    _ => RebuildError::AlreadyRunning(name),
                });
            }
            leases.push(lease);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn({
            let lost = lost.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(LEASE_RENEWAL) => {}
                        // Released, or the keeper dropped.
                        _ = stopped.changed() => break,
                    }
                    for lease in &leases {
                        match lease.hold().await {
                            Ok(true) => {}
                            Ok(false) => lost.store(true, Ordering::Relaxed),
                            Err(error) => tracing::warn!(%error, "rebuild lease not renewed"),
                        }
                    }
                }
                for lease in &leases {
                    lease.release().await;
                }
            }
        });
        Ok(Self {
            lost,
            names: names.to_vec(),
            stop,
            task: Some(task),
        })
    }

    /// An error once another rebuild has taken a lease over (this one stalled past its expiry).
    fn check(&self) -> Result<(), RebuildError> {
        if self.lost.load(Ordering::Relaxed) {
            return Err(RebuildError::LeaseLost(self.names[0]));
        }
        Ok(())
    }

    async fn release(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Rebuilds started from the API, running in the background of this process.
pub struct Rebuilds {
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Rebuilds {
    fn default() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: std::sync::Mutex::default(),
        }
    }
}

impl Rebuilds {
    /// Starts a rebuild of `projection` (its lease and shadow tables, before answering) and
    /// finishes it in the background.
    pub async fn launch(
        &self,
        log: SharedLog,
        store: ReadStore,
        projection: Arc<dyn Projection>,
    ) -> Result<(), RebuildError> {
        let rebuild = ShadowRebuild::start(log, store, vec![projection]).await?;
        let stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            let names = rebuild.names();
            match rebuild.complete(&stop).await {
                Ok(summary) => tracing::info!(
                    projections = ?names,
                    position = summary.position,
                    seconds = summary.elapsed.as_secs_f64(),
                    swap_ms = summary.swap.as_millis() as u64,
                    "rebuilt and swapped in"
                ),
                Err(error) => tracing::warn!(projections = ?names, %error, "rebuild failed"),
            }
        });
        let mut tasks = self.tasks.lock().expect("never poisoned");
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
        Ok(())
    }

    /// Stops the rebuilds under way before their swap (each is recorded as failed) and waits.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        crate::runner::join_all(&self.tasks).await;
    }
}
