//! The running ledger: the log, the read models, the projection runner and the command buses,
//! opened together and shut down together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aggregates::alert::Alert;
use aggregates::fleet::Fleet;
use aggregates::fuel::FuelStation;
use aggregates::inspection::Inspections;
use aggregates::registry::{Catalog, CatalogCommand, CatalogKind, Drivers, Stations};
use aggregates::vehicle_check::VehicleChecks;
use aggregates::OperationAreas;
use projections::Projection;
use tokio::sync::watch;

use crate::alert_detector::AlertDetector;
use crate::auth::JwtKeys;
use crate::commands::CommandBus;
use crate::idempotency::{Idempotency, KEY_TTL};
use crate::ids::FuelRecordIdBlocks;
use crate::inspection_processor::InspectionProcessor;
use crate::reactor::Consumers;
use crate::read_store::{ReadStore, ReadStoreError};
use crate::rebuild::Rebuilds;
use crate::references::References;
use crate::runner::{ProjectionRunner, RunnerError};
use crate::settings::LedgerSettings;
use crate::store::{self, SharedLog, StoreError};
use crate::webhooks::worker::DeliveryWorker;

/// How long a command's response waits for the read models to show it.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the log and the read models live.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    pub log_url: String,
    pub read_models_url: String,
}

impl StoreLocation {
    /// PostgreSQL when `database_url` names it; otherwise SQLite files under `data_dir` (or at the
    /// SQLite path `database_url` names, with the read models in a sibling file).
    pub fn resolve(data_dir: &Path, database_url: Option<&str>) -> Self {
        Self::resolve_with_read_models(data_dir, database_url, None)
    }

    /// [`Self::resolve`], with the read models at `read_models_url` when given. A KurrentDB log
    /// (`esdb://…`, `kurrentdb://…`) keeps no read models: they go to `read_models_url`, or to
    /// SQLite under `data_dir` without it.
    pub fn resolve_with_read_models(
        data_dir: &Path,
        database_url: Option<&str>,
        read_models_url: Option<&str>,
    ) -> Self {
        let mut location = Self::resolve_log(data_dir, database_url);
        if let Some(url) = read_models_url.filter(|url| !url.trim().is_empty()) {
            location.read_models_url = url.to_string();
        }
        location
    }

    fn resolve_log(data_dir: &Path, database_url: Option<&str>) -> Self {
        match database_url.filter(|url| !url.trim().is_empty()) {
            Some(url) if store::is_kurrentdb(url) => Self {
                log_url: url.to_string(),
                read_models_url: format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.join("read_models.db").display()
                ),
            },
            Some(url) if store::is_postgres(url) => Self {
                log_url: url.to_string(),
                read_models_url: url.to_string(),
            },
            Some(url) => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Self::sqlite_files(PathBuf::from(&path), sibling_read_models_path(&path))
            }
            None => Self::sqlite_files(data_dir.join("ledger.db"), data_dir.join("read_models.db")),
        }
    }

    fn sqlite_files(log: PathBuf, read_models: PathBuf) -> Self {
        Self {
            log_url: format!("sqlite://{}", log.display()),
            read_models_url: format!("sqlite://{}?mode=rwc", read_models.display()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        store::is_postgres(&self.log_url)
    }

    /// Whether the log is a SQLite file (whose directory is made when missing).
    pub fn is_sqlite(&self) -> bool {
        !self.is_postgres() && !store::is_kurrentdb(&self.log_url)
    }
}

/// Where the read models of the SQLite log at `log_path` live.
pub(crate) fn sibling_read_models_path(log_path: &str) -> PathBuf {
    match log_path.strip_suffix(".db") {
        Some(stem) => PathBuf::from(format!("{stem}.read_models.db")),
        None => PathBuf::from(format!("{log_path}.read_models")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("event log: {0}")]
    Log(#[from] StoreError),
    #[error("read models: {0}")]
    ReadModels(#[from] ReadStoreError),
    #[error("projections: {0}")]
    Runner(#[from] RunnerError),
    #[error("seeding the catalogues: {0}")]
    Seed(String),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every read model the service keeps.
pub fn all_projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(projections::operation_areas::OperationAreasProjection),
        Arc::new(projections::registry::RegistryProjection),
        Arc::new(projections::fleet::FleetProjection),
        Arc::new(projections::ledger::FuelLedgerProjection),
        Arc::new(projections::journal::JournalProjection),
        Arc::new(projections::balances::StationBalancesProjection),
        Arc::new(projections::vehicle_checks::VehicleChecksProjection),
        Arc::new(projections::inspections::InspectionsProjection),
        Arc::new(projections::periods::PeriodsProjection),
        Arc::new(projections::alerts::AlertsProjection),
    ]
}

pub struct Ledger {
    pub log: SharedLog,
    pub read_models: ReadStore,
    pub runner: ProjectionRunner,
    pub keys: JwtKeys,
    pub settings: LedgerSettings,
    pub operation_areas: CommandBus<OperationAreas>,
    pub drivers: CommandBus<Drivers>,
    pub stations: CommandBus<Stations>,
    pub catalogs: CommandBus<Catalog>,
    pub fleet: CommandBus<Fleet>,
    pub fuel_stations: CommandBus<FuelStation>,
    pub vehicle_checks: CommandBus<VehicleChecks>,
    /// Self-inspections and their reference data (one stream); shared with their processor.
    pub inspections: Arc<CommandBus<Inspections>>,
    /// Alerts of the fuel checks: flagged and cleared by their detector, reviewed over HTTP.
    pub alerts: Arc<CommandBus<Alert>>,
    /// Reference bands of cost per gallon, set by an admin; the detector reads their events.
    pub bands: CommandBus<aggregates::band::ReferenceBands>,
    /// The log's checkpointed consumers: the inspections' processor and the fuel checks'
    /// detector.
    pub consumers: Consumers,
    /// Delivers the webhooks the inspections' processor schedules.
    pub deliveries: DeliveryWorker,
    pub fuel_record_ids: FuelRecordIdBlocks,
    pub references: References,
    pub idempotency: Idempotency,
    /// Rebuilds started from the API (`POST /api/admin/proyecciones/{name}/reconstruir`).
    pub rebuilds: Rebuilds,
}

/// Where a read stands against the log: the head when it arrived, and whether every read model
/// (but a stalled one) had folded it before the wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBarrier {
    pub head: i64,
    pub settled: bool,
}

/// What handlers hold: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct AppState(Arc<Ledger>);

impl std::ops::Deref for AppState {
    type Target = Ledger;

    fn deref(&self) -> &Ledger {
        &self.0
    }
}

impl AppState {
    pub async fn open(location: &StoreLocation, keys: JwtKeys) -> Result<Self, StartupError> {
        Self::open_with(location, keys, LedgerSettings::default()).await
    }

    pub async fn open_with(
        location: &StoreLocation,
        keys: JwtKeys,
        settings: LedgerSettings,
    ) -> Result<Self, StartupError> {
        Self::open_with_projections(location, keys, settings, all_projections()).await
    }

    /// Opens the ledger with these read models instead of [`all_projections`]: how a release
    /// with a fixed projection resumes it, and how tests stand for one.
    pub async fn open_with_projections(
        location: &StoreLocation,
        keys: JwtKeys,
        settings: LedgerSettings,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, StartupError> {
        // Installed before the first append is counted.
        crate::telemetry::handle();
        if location.is_sqlite() {
            if let Some(dir) = location
                .log_url
                .trim_start_matches("sqlite://")
                .rsplit_once('/')
                .map(|(dir, _)| dir)
                .filter(|dir| !dir.is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StartupError::DataDir {
                    path: PathBuf::from(dir),
                    source,
                })?;
            }
        }
        let log = store::open(&location.log_url).await?;
        let read_models = ReadStore::open(&location.read_models_url).await?;
        let runner =
            ProjectionRunner::start(log.clone(), read_models.clone(), projections.clone()).await?;
        let inspections = Arc::new(
            CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
        );
        // Without the inspections' read model (a test standing for another set) there is
        // nothing to wait for: its tables stay as they are.
        let inspections_folded = runner
            .progress_of(projections::inspections::InspectionsProjection.name())
            .unwrap_or_else(|| {
                watch::channel(crate::runner::Progress {
                    checkpoint: i64::MAX,
                    stalled: None,
                })
                .1
            });
        let alerts = Arc::new(
            CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
        );
        // The vehicles' registered facts the checks compare with, and the webhooks told of
        // what they find; without those read models
        // (a test standing for another set) there is nothing to wait for.
        let fleet_folded: Vec<watch::Receiver<crate::runner::Progress>> = [
            projections::fleet::FleetProjection.name(),
            projections::registry::RegistryProjection.name(),
            // The webhooks told of alerts.
            projections::inspections::InspectionsProjection.name(),
        ]
        .into_iter()
        .filter_map(|name| runner.progress_of(name))
        .collect();
        let consumers = Consumers::start(
            log.clone(),
            read_models.clone(),
            vec![
                Arc::new(InspectionProcessor::new(
                    inspections.clone(),
                    read_models.clone(),
                    inspections_folded,
                )),
                Arc::new(AlertDetector::new(
                    log.clone(),
                    alerts.clone(),
                    read_models.clone(),
                    fleet_folded,
                    settings.anomalies.clone(),
                )),
            ],
        );
        let deliveries = DeliveryWorker::start(read_models.clone(), settings.webhooks.clone());
        let state = Self(Arc::new(Ledger {
            operation_areas: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            drivers: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            stations: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            catalogs: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            fleet: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            fuel_stations: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            vehicle_checks: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            inspections,
            alerts,
            bands: CommandBus::new(log.clone(), ())
                .folded_by(projections.clone())
                .snapshot_every(settings.snapshot_every_events),
            consumers,
            deliveries,
            fuel_record_ids: FuelRecordIdBlocks::new(log.clone(), settings.snapshot_every_events),
            references: References::new(log.clone()),
            idempotency: Idempotency::start(log.clone(), KEY_TTL),
            rebuilds: Rebuilds::default(),
            log,
            read_models,
            runner,
            keys,
            settings,
        }));
        state.seed_catalogs().await?;
        Ok(state)
    }

    /// Gives each catalogue its defaults the first time the service starts on a store. They are
    /// events like any other entry, so a rebuild from the log reproduces them.
    async fn seed_catalogs(&self) -> Result<(), StartupError> {
        let metadata = crate::store::EventMetadata {
            actor: Some("system".to_string()),
            ..Default::default()
        };
        let mut last = None;
        for kind in CatalogKind::ALL {
            let command = CatalogCommand::Seed {
                catalogo: kind.slug().to_string(),
                defaults: kind.defaults().iter().map(|d| d.to_string()).collect(),
            };
            let executed = self
                .catalogs
                .execute(kind.slug(), command, &metadata)
                .await
                .map_err(|e| StartupError::Seed(e.to_string()))?;
            last = executed.position().or(last);
        }
        if let Some(last) = last {
            self.runner.wait_for(last, READ_YOUR_WRITES_TIMEOUT).await;
        }
        Ok(())
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.0.keys
    }

    /// Read-your-writes: returns once the read models in `touched` show `position`; `false` when
    /// one of them is stalled or the timeout passed (the write is durable either way; only its
    /// visibility in reads lags).
    pub async fn settle(&self, position: Option<i64>, touched: &[&'static str]) -> bool {
        let Some(position) = position else {
            return true;
        };
        let reached = self
            .runner
            .wait_for_touched(position, touched, READ_YOUR_WRITES_TIMEOUT)
            .await;
        if !reached {
            tracing::warn!(position, ?touched, "read models do not show the write yet");
        }
        reached
    }

    /// Read-your-writes on the read side: waits (at most `timeout`) until every projection that
    /// is not stalled has folded what the log had committed when the read arrived, so a read
    /// sees every write acknowledged before it. `false` when one is stalled or the time ran out
    /// (the read then answers from read models that lag).
    ///
    /// The head is read from the database, not from this process's view of it: a write
    /// acknowledged by another instance counts too. Should the database not answer, the read
    /// goes on with what this process last saw (and fails on its own if the outage persists).
    pub async fn read_barrier(&self, timeout: Duration) -> bool {
        self.read_barrier_at(timeout).await.settled
    }

    /// [`Self::read_barrier`], also answering the head it waited for: a read model at or past
    /// it shows every write acknowledged before the read.
    pub async fn read_barrier_at(&self, timeout: Duration) -> ReadBarrier {
        let head = match self.log.head().await {
            Ok(head) => head,
            Err(_) => *self.log.watch_head().borrow(),
        };
        ReadBarrier {
            head,
            settled: self.runner.wait_for(head, timeout).await,
        }
    }

    /// Whether every read model in `touched` can show a write: none of them is stalled.
    pub fn can_show(&self, touched: &[&'static str]) -> bool {
        !self.runner.any_stalled(touched)
    }

    /// Finishes the writer's queue, stops the projections and closes every connection.
    pub async fn shutdown(&self) {
        self.idempotency.stop();
        self.rebuilds.shutdown().await;
        self.consumers.shutdown().await;
        self.deliveries.shutdown().await;
        self.runner.shutdown().await;
        self.log.shutdown().await;
        self.read_models.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kurrentdb_log_keeps_its_read_models_where_told_or_under_the_data_dir() {
        let url = "esdb://127.0.0.1:2113?tls=false";
        let beside =
            StoreLocation::resolve_with_read_models(Path::new("/srv/fleet"), Some(url), None);
        assert_eq!(beside.log_url, url);
        assert_eq!(
            beside.read_models_url,
            "sqlite:///srv/fleet/read_models.db?mode=rwc"
        );
        assert!(!beside.is_sqlite() && !beside.is_postgres());

        let apart = StoreLocation::resolve_with_read_models(
            Path::new("/srv/fleet"),
            Some(url),
            Some("postgres://fleet@db/read_models"),
        );
        assert_eq!(apart.log_url, url);
        assert_eq!(apart.read_models_url, "postgres://fleet@db/read_models");
    }

    #[test]
    fn without_read_models_url_the_sql_stores_resolve_as_before() {
        let pg = "postgres://fleet@db/fleet";
        let location = StoreLocation::resolve_with_read_models(Path::new("d"), Some(pg), Some(" "));
        assert_eq!(
            (location.log_url.as_str(), location.read_models_url.as_str()),
            (pg, pg)
        );
        let sqlite = StoreLocation::resolve(Path::new("d"), None);
        assert!(sqlite.is_sqlite());
        assert_eq!(sqlite.log_url, "sqlite://d/ledger.db");
    }
}
