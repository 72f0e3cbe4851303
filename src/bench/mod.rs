//! `fleet-ledger bench`: measurements of the service as its clients and operators see it.
//!
//! [`run`] starts the real service in this process (the same [`crate::app`] over the same
//! [`AppState`] that `serve` runs, behind a real TCP listener) on a fresh store, or points at one
//! already running, creates a fleet through the HTTP API and runs each [`Scenario`] against it.
//! Every write scenario ends by checking that the service agrees with what it acknowledged, so a
//! fast answer that loses or invents money shows up as a failure, not as a good figure.
//!
//! [`append`] (`bench append`) measures the event log alone.

mod append;
mod client;
mod cold_commands;
mod fleet;
mod history;
mod inspections;
mod load;
mod lookup;
mod progress;
mod report;
mod scenarios;
mod service;
mod stats;
mod verify;
mod zipf;

use std::time::Duration;

use serde::Serialize;

pub use append::{append, open_log, AppendReport};
pub use inspections::InspectionSize;
pub(crate) use report::thousands;
pub use report::{BenchReport, Check, ScenarioReport, TargetVerdict};
pub use stats::LatencySummary;
pub use verify::Verification;

use crate::read_store::ReadStoreError;
use crate::state::StartupError;
use crate::store::StoreError;

/// What one run of the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `POST /api/tanqueos` only: refuels at stations chosen by Zipf.
    Tanqueos,
    /// 80% refuels, 10% advance payments, 10% balance, statement and list reads.
    Mixed,
    /// Every projection rebuilt from position 0 over `events` stored events.
    Rebuild,
    /// A station's balance `as_of` an instant in the middle of a long history.
    AsOf,
    /// From opening the ledger on `events` stored events to `/readyz` answering 200.
    Startup,
    /// Seed 001's batch lookup of 500 vehicles against [`LookupSize::results`] recorded check
    /// results.
    Lookup,
    /// Seed 003's batches of self-inspections (1,000 entries each), then their webhooks
    /// delivered to a local receiver ([`InspectionSize`]).
    Inspecciones,
}

impl Scenario {
    /// The fuel ledger's scenarios, in the order [`run`] runs them: startup right after rebuild
    /// (it reuses the store the rebuild leaves, and its memory figure is not inflated by
    /// as-of's), as-of last of them (one station's whole history is the most memory any of them
    /// takes). [`Self::EVERY`] adds the vehicle checks' lookup.
    pub const ALL: [Scenario; 5] = [
        Scenario::Tanqueos,
        Scenario::Mixed,
        Scenario::Rebuild,
        Scenario::Startup,
        Scenario::AsOf,
    ];

    /// [`Self::ALL`], the vehicle checks' lookup and the self-inspections, last: what
    /// `--scenario all` runs.
    pub const EVERY: [Scenario; 7] = [
        Scenario::Tanqueos,
        Scenario::Mixed,
        Scenario::Rebuild,
        Scenario::Startup,
        Scenario::AsOf,
        Scenario::Lookup,
        Scenario::Inspecciones,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tanqueos => "tanqueos",
            Self::Mixed => "mixed",
            Self::Rebuild => "rebuild",
            Self::AsOf => "as-of",
            Self::Startup => "startup",
            Self::Lookup => "lookup",
            Self::Inspecciones => "inspecciones",
        }
    }

    /// Scenarios that write to the log directly or restart the service, which only an
    /// in-process service allows.
    pub fn needs_in_process(self) -> bool {
        matches!(
            self,
            Self::Rebuild | Self::AsOf | Self::Startup | Self::Lookup | Self::Inspecciones
        )
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which service the bench drives.
#[derive(Debug, Clone)]
pub enum Target {
    /// The service started in this process on a fresh store per scenario: a temporary SQLite
    /// directory, or a new schema in the PostgreSQL database `database_url` names.
    InProcess { database_url: Option<String> },
    /// A running service at `url` (`http://host:port`), called with `token`, which must carry
    /// the admin role (the fleet is created through the API).
    Remote { url: String, token: String },
}

/// How large a fleet the bench registers before each scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSize {
    pub areas: usize,
    pub stations: usize,
    pub plates: usize,
    pub drivers: usize,
}

impl Default for FleetSize {
    fn default() -> Self {
        Self {
            areas: 10,
            stations: 300,
            plates: 5000,
            drivers: 2000,
        }
    }
}

/// The lookup scenario's own sizes. They are issue 11's (500-vehicle lookups against 100,000
/// recorded results over 16 connections) whatever `--events` and `--connections` say, so the
/// lookup's figure is the scenario inside `--scenario all` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupSize {
    /// Vehicle check results recorded before the lookups.
    pub results: usize,
    /// Concurrent keep-alive connections asking back to back.
    pub connections: usize,
}

impl Default for LookupSize {
    fn default() -> Self {
        Self {
            results: 100_000,
            connections: 16,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Run in [`Scenario::EVERY`]'s order, each once however often it is named.
    pub scenarios: Vec<Scenario>,
    pub target: Target,
    /// Concurrent keep-alive connections of the load scenarios, each issuing requests back to back.
    pub connections: usize,
    /// How long each load scenario runs (and the longest the as-of scenario keeps asking).
    pub duration: Duration,
    /// Zipf exponent of the station each request picks: 1.0 gives the hottest of 300 stations
    /// about 16% of the traffic, as a fleet concentrated on a few highway stations does.
    pub skew: f64,
    pub fleet: FleetSize,
    /// Events stored for the rebuild, as-of and startup scenarios.
    pub events: usize,
    pub lookup: LookupSize,
    pub inspections: InspectionSize,
    /// As-of requests to time (fewer when `duration` runs out first).
    pub as_of_requests: usize,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            scenarios: vec![Scenario::Tanqueos],
            target: Target::InProcess { database_url: None },
            connections: 64,
            duration: Duration::from_secs(15),
            skew: 1.0,
            fleet: FleetSize::default(),
            events: 1_000_000,
            lookup: LookupSize::default(),
            inspections: InspectionSize::default(),
            as_of_requests: 200,
            progress: true,
        }
    }
}

impl BenchConfig {
    fn validate(&self) -> Result<(), BenchError> {
        let refuse = |reason: &str| Err(BenchError::Config(reason.to_string()));
        if self.scenarios.is_empty() {
            return refuse("name at least one scenario");
        }
        if self.connections == 0 {
            return refuse("--connections must be at least 1");
        }
        if self.duration.is_zero() {
            return refuse("--duration must be more than 0 s");
        }
        if !self.skew.is_finite() || self.skew < 0.0 {
            return refuse("--skew must be a finite number ≥ 0");
        }
        let FleetSize {
            areas,
            stations,
            plates,
            drivers,
        } = self.fleet;
        if areas == 0 || stations == 0 || plates == 0 || drivers == 0 {
            return refuse("the fleet needs at least one area, station, plate and driver");
        }
        let uses_events = [Scenario::Rebuild, Scenario::AsOf, Scenario::Startup];
        if self.events == 0 && self.scenarios.iter().any(|s| uses_events.contains(s)) {
            return refuse("--events must be at least 1 for rebuild, as-of and startup");
        }
        if self.scenarios.contains(&Scenario::Lookup) {
            if self.lookup.results == 0 {
                return refuse("--lookup-results must be at least 1");
            }
            if self.lookup.connections == 0 {
                return refuse("--lookup-connections must be at least 1");
            }
        }
        if self.scenarios.contains(&Scenario::Inspecciones) {
            let InspectionSize {
                entries,
                batches,
                deliveries,
            } = self.inspections;
            if !(1..=aggregates::inspection::BATCH_ENTRIES_MAX).contains(&entries) {
                return refuse("--inspection-entries must be from 1 to 1000 (one batch's limit)");
            }
            if batches == 0 || deliveries == 0 {
                return refuse("--inspection-batches and --webhook-deliveries must be at least 1");
            }
        }
        if self.as_of_requests == 0 && self.scenarios.contains(&Scenario::AsOf) {
            return refuse("--as-of-requests must be at least 1");
        }
        if let Target::Remote { url, .. } = &self.target {
            if !url.starts_with("http://") {
                return refuse("--url must be an http:// URL (the bench speaks plain HTTP/1.1)");
            }
            if let Some(scenario) = self.scenarios.iter().find(|s| s.needs_in_process()) {
                return Err(BenchError::NeedsInProcess(scenario.name()));
            }
        }
        Ok(())
    }
}

/// Why the bench could not produce its figures. A verification that finds differences is not
/// an error: it is in the report ([`BenchReport::verified`]).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "scenario {0} writes to the event log directly or restarts the service, so it needs the \
         service in this process: drop --url"
    )]
    NeedsInProcess(&'static str),
    #[error("the ledger did not open: {0}")]
    Startup(#[from] StartupError),
    #[error("event log: {0}")]
    Store(#[from] StoreError),
    #[error("read models: {0}")]
    ReadStore(#[from] ReadStoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{request}: {reason}")]
    Http { request: String, reason: String },
    #[error("{request} answered {status}: {body}")]
    Unexpected {
        request: String,
        status: u16,
        body: String,
    },
    #[error("encoding a seeded event: {0}")]
    Codec(#[from] aggregates::codec::CodecError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the projections did not catch up: {0}")]
    NotCaughtUp(String),
    #[error("rebuild: {0}")]
    Rebuild(#[from] crate::rebuild::RebuildError),
    #[error("a benchmark task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl BenchError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Runs every scenario of `config` and reports their figures.
pub async fn run(config: BenchConfig) -> Result<BenchReport, BenchError> {
    config.validate()?;
    let scenarios: Vec<Scenario> = Scenario::EVERY
        .into_iter()
        .filter(|scenario| config.scenarios.contains(scenario))
        .collect();

    let mut reports = Vec::with_capacity(scenarios.len());
    // The rebuild leaves a caught-up store with `events` events: exactly what startup needs, so
    // when both run, startup reuses it instead of seeding and folding the same history again.
    let mut caught_up_history = None;
    for (index, &scenario) in scenarios.iter().enumerate() {
        let startup_follows = scenarios[index + 1..].contains(&Scenario::Startup);
        if config.progress {
            eprintln!("[{scenario}] starting");
        }
        let report = match scenario {
            Scenario::Tanqueos => scenarios::load(&config, load::Workload::Tanqueos).await?,
            Scenario::Mixed => scenarios::load(&config, load::Workload::Mixed).await?,
            Scenario::Rebuild => {
                let (report, history) = scenarios::rebuild(&config).await?;
                if startup_follows {
                    caught_up_history = Some(history);
                } else {
                    history.discard().await?;
                }
                report
            }
            Scenario::AsOf => scenarios::as_of(&config).await?,
            Scenario::Startup => scenarios::startup(&config, caught_up_history.take()).await?,
            Scenario::Lookup => lookup::lookup(&config).await?,
            Scenario::Inspecciones => inspections::inspections(&config).await?,
        };
        if config.progress {
            eprintln!("[{scenario}] {}", report.summary());
        }
        reports.push(report);
    }
    if let Some(history) = caught_up_history {
        history.discard().await?;
    }
    Ok(BenchReport { scenarios: reports })
}
