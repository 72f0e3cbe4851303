//! Each scenario from a fresh store to its [`ScenarioReport`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use hyper::{Method, StatusCode};

use super::client::Api;
use super::fleet::{self, Fleet};
use super::history::{self, Layout, Seeded};
use super::load::{self, LoadOptions, Outcome, Workload};
use super::progress::Ticker;
use super::report::{target_for, ScenarioReport, TargetVerdict};
use super::service::{fresh_keys, FreshStore, InProcessService};
use super::stats::LatencySummary;
use super::verify::{self, decimal_field, Expected, Verification};
use super::{BenchConfig, BenchError, Scenario, Target};
use crate::auth::JwtKeys;
use crate::memory::{self, PeakRss};
use crate::read_store::ReadStore;
use crate::rebuild::{RebuildSummary, ShadowRebuild};
use crate::settings::LedgerSettings;
use crate::state::all_projections;
use crate::{store, AppState};

/// Longest wait for the projections to fold a seeded history: far beyond any healthy run, short
/// of hanging forever on a stalled projection that keeps retrying.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest wait for `/readyz` after a restart.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How often startup asks `/readyz`: fine enough to time a sub-second start.
const READY_POLL: Duration = Duration::from_millis(5);
/// Connections the verification's reads use.
const VERIFY_CONNECTIONS: usize = 16;

pub(super) fn blank_report(scenario: Scenario, store: &str, connections: usize) -> ScenarioReport {
    ScenarioReport {
        scenario,
        store: store.to_string(),
        connections,
        elapsed_s: 0.0,
        requests: 0,
        requests_per_s: 0.0,
        latency_ms: None,
        non_2xx: BTreeMap::new(),
        non_2xx_samples: BTreeMap::new(),
        transport_errors: 0,
        conflicts_retried: 0,
        lagged_answers: 0,
        events: 0,
        events_per_s: 0.0,
        peak_rss_bytes: None,
        first_request_ms: None,
        verification: None,
        target: TargetVerdict {
            description: String::new(),
            met: false,
            checks: Vec::new(),
        },
        notes: Vec::new(),
    }
}

/// Fills the HTTP figures of `report` from what the requests of a phase answered.
pub(super) fn with_outcome(report: &mut ScenarioReport, mut outcome: Outcome, elapsed: Duration) {
    report.elapsed_s = elapsed.as_secs_f64();
    report.requests = outcome.requests();
    report.requests_per_s = outcome.requests() as f64 / elapsed.as_secs_f64().max(1e-9);
    report.latency_ms = LatencySummary::of(&mut outcome.latencies);
    report.non_2xx = outcome.non_2xx;
    report.non_2xx_samples = outcome.non_2xx_samples;
    report.transport_errors = outcome.transport_errors;
    report.conflicts_retried = outcome.conflicts_retried;
    report.lagged_answers = outcome.lagged;
    if let Some(error) = outcome.first_transport_error {
        report
            .notes
            .push(format!("first request without an answer: {error}"));
    }
}

pub(super) fn finished(mut report: ScenarioReport) -> ScenarioReport {
    report.target = target_for(&report);
    report
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".to_string(), |b| (b >> 20).to_string())
}

/// The service a load scenario drives, and what to tear down after it.
struct Session {
    api: Api,
    store_name: &'static str,
    local: Option<(InProcessService, FreshStore)>,
}

impl Session {
    async fn start(config: &BenchConfig) -> Result<Self, BenchError> {
        match &config.target {
            Target::Remote { url, token } => Ok(Self {
                api: Api::new(url, token, config.connections),
                store_name: "remote",
                local: None,
            }),
            Target::InProcess { database_url } => {
                let store = FreshStore::create(database_url.as_deref()).await?;
                let (keys, token) = fresh_keys();
                let service = match InProcessService::open(&store, &keys).await {
                    Ok(service) => service,
                    Err(error) => {
                        store.discard().await?;
                        return Err(error);
                    }
                };
                Ok(Self {
                    api: service.api(&token, config.connections),
                    store_name: store.backend(),
                    local: Some((service, store)),
                })
            }
        }
    }

    async fn finish(self) -> Result<(), BenchError> {
        drop(self.api);
        if let Some((service, store)) = self.local {
            service.stop().await;
            store.discard().await?;
        }
        Ok(())
    }
}

/// `tanqueos` or `mixed`: a fleet, `duration` of load, then the verification.
pub(crate) async fn load(
    config: &BenchConfig,
    workload: Workload,
) -> Result<ScenarioReport, BenchError> {
    let session = Session::start(config).await?;
    let measured = measure_load(config, workload, &session).await;
    session.finish().await?;
    measured
}

async fn measure_load(
    config: &BenchConfig,
    workload: Workload,
    session: &Session,
) -> Result<ScenarioReport, BenchError> {
    let scenario = match workload {
        Workload::Tanqueos => Scenario::Tanqueos,
        Workload::Mixed => Scenario::Mixed,
    };
    let fleet = Arc::new(fleet::create(&session.api, config.fleet).await?);
    let head_before = session.api.head().await?;
    let peak = PeakRss::start();
    let options = LoadOptions {
        connections: config.connections,
        duration: config.duration,
        skew: config.skew,
        label: scenario.name(),
        progress: config.progress,
    };
    let run = load::drive(&session.api, &fleet, workload, &options).await?;
    let peak_rss = peak.peak(run.highest_rss_sample);
    let head_after = session.api.head().await?;

    if config.progress {
        eprintln!(
            "[{scenario}] verifying {} station balances and up to {} of {} acknowledged records",
            fleet.stations.len(),
            verify::READ_BACK_MAX,
            run.outcome.acknowledged.len()
        );
    }
    let expected = Expected::from_acknowledged(&run.outcome.acknowledged);
    let verification = verify::verify(&session.api, &fleet.station_ids(), &expected).await;

    let mut report = blank_report(scenario, session.store_name, config.connections);
    with_outcome(&mut report, run.outcome, run.elapsed);
    report.events = head_after - head_before;
    report.events_per_s = report.events as f64 / run.elapsed.as_secs_f64().max(1e-9);
    report.peak_rss_bytes = peak_rss;
    report.verification = Some(verification);
    report.notes.push(format!(
        "{} stations (the hottest gets {:.1}% of the traffic), {} plates, {} drivers",
        fleet.stations.len(),
        super::zipf::Zipf::new(fleet.stations.len(), config.skew).hottest_share() * 100.0,
        fleet.plates.len(),
        fleet.drivers.len()
    ));
    Ok(finished(report))
}

/// A store holding a seeded history, with the service that registered its fleet stopped.
pub(crate) struct History {
    store: FreshStore,
    keys: JwtKeys,
    token: String,
    fleet: Fleet,
    seeded: Seeded,
}

impl History {
    /// A fresh store, a fleet registered through the API, then `config.events` fuel events
    /// appended straight to the log while no service runs (so no projection folds them yet).
    async fn seed(config: &BenchConfig, layout: Layout) -> Result<Self, BenchError> {
        let Target::InProcess { database_url } = &config.target else {
            return Err(BenchError::NeedsInProcess("rebuild, as-of and startup"));
        };
        let store = FreshStore::create(database_url.as_deref()).await?;
        match Self::seed_into(config, layout, &store).await {
            Ok((keys, token, fleet, seeded)) => Ok(Self {
                store,
                keys,
                token,
                fleet,
                seeded,
            }),
            Err(error) => {
                store.discard().await?;
                Err(error)
            }
        }
    }

    async fn seed_into(
        config: &BenchConfig,
        layout: Layout,
        store: &FreshStore,
    ) -> Result<(JwtKeys, String, Fleet, Seeded), BenchError> {
        let (keys, token) = fresh_keys();
        let service = InProcessService::open(store, &keys).await?;
        let fleet = fleet::create(&service.api(&token, 1), config.fleet).await;
        service.stop().await;
        let fleet = fleet?;
        let log = store::open(&store.location.log_url).await?;
        let seeded = history::seed(&log, &fleet, config.events, layout, config.progress).await;
        log.shutdown().await;
        let seeded = seeded?;
        if config.progress {
            eprintln!(
                "[seed] {} events in {:.1} s ({:.0} events/s)",
                seeded.events,
                seeded.elapsed.as_secs_f64(),
                seeded.events as f64 / seeded.elapsed.as_secs_f64().max(1e-9)
            );
        }
        Ok((keys, token, fleet, seeded))
    }

    async fn open(&self) -> Result<AppState, BenchError> {
        Ok(AppState::open_with(
            &self.store.location,
            self.keys.clone(),
            LedgerSettings::default(),
        )
        .await?)
    }

    pub async fn discard(self) -> Result<(), BenchError> {
        self.store.discard().await
    }

    fn seeded_note(&self) -> String {
        format!(
            "{} fuel events seeded straight into the log in {:.1} s ({:.0} events/s)",
            self.seeded.events,
            self.seeded.elapsed.as_secs_f64(),
            self.seeded.events as f64 / self.seeded.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

/// Waits until every projection has folded the log's head; answers the head and the highest
/// resident set sampled. On failure the state is shut down.
pub(super) async fn catch_up(
    state: &AppState,
    label: &'static str,
    progress: bool,
) -> Result<(i64, Option<u64>), BenchError> {
    let head = match state.log.head().await {
        Ok(head) => head,
        Err(error) => {
            state.shutdown().await;
            return Err(error.into());
        }
    };
    let ticker = {
        let state = state.clone();
        let mut last = (Duration::ZERO, 0i64);
        Ticker::start(label, progress, move |elapsed| {
            let checkpoints = state.runner.checkpoints();
            let slowest = checkpoints
                .iter()
                .map(|(_, checkpoint)| *checkpoint)
                .min()
                .unwrap_or(head);
            let rate = (slowest - last.1) as f64 / (elapsed - last.0).as_secs_f64().max(1e-9);
            last = (elapsed, slowest);
            let each: Vec<String> = checkpoints
                .iter()
                .map(|(name, checkpoint)| format!("{name} {checkpoint}"))
                .collect();
            format!(
                "{:6.1} s  slowest projection at {slowest} of {head}  {rate:>8.0} events/s  ({})",
                elapsed.as_secs_f64(),
                each.join(", ")
            )
        })
    };
    let reached = state.runner.wait_for(head, CATCH_UP_TIMEOUT).await;
    let highest_rss = ticker.finish().await;
    if !reached {
        let statuses = serde_json::to_string(&state.runner.statuses(head))?;
        state.shutdown().await;
        return Err(BenchError::NotCaughtUp(statuses));
    }
    Ok((head, highest_rss))
}

/// Serves `state`, checks it against `expected`, stops it.
async fn verify_served(
    state: AppState,
    token: &str,
    fleet: &Fleet,
    expected: &Expected,
) -> Result<Verification, BenchError> {
    let service = InProcessService::serve(state).await?;
    let api = service.api(token, VERIFY_CONNECTIONS);
    let verification = verify::verify(&api, &fleet.station_ids(), expected).await;
    drop(api);
    service.stop().await;
    Ok(verification)
}

/// `rebuild`: every projection from position 0 over the seeded history, through shadow tables
/// swapped in at the end (`fleet-ledger replay`'s path). Answers the report and the store,
/// caught up, for a startup that follows.
pub(crate) async fn rebuild(config: &BenchConfig) -> Result<(ScenarioReport, History), BenchError> {
    let history = History::seed(config, Layout::Spread { skew: config.skew }).await?;
    match measure_rebuild(config, &history).await {
        Ok(report) => Ok((report, history)),
        Err(error) => {
            history.discard().await?;
            Err(error)
        }
    }
}

async fn measure_rebuild(
    config: &BenchConfig,
    history: &History,
) -> Result<ScenarioReport, BenchError> {
    // The service is not running: its runner would fold the seeded history into the live
    // tables at the same time, on the same cores, and the figure would be of both.
    let location = &history.store.location;
    let log = store::open(&location.log_url).await?;
    let read_models = ReadStore::open(&location.read_models_url).await?;
    let peak = PeakRss::start();
    let started = Instant::now();
    let rebuilt = rebuild_through_shadows(&log, &read_models, config.progress).await;
    let elapsed = started.elapsed();
    read_models.close().await;
    log.shutdown().await;
    let (summary, highest_rss) = rebuilt?;
    let peak_rss = peak.peak(highest_rss);
    // The service opens on the swapped-in tables and checkpoints: nothing is left to fold.
    let state = history.open().await?;
    catch_up(&state, "rebuild", false).await?;
    let head = summary.position;
    if config.progress {
        eprintln!("[rebuild] verifying the rebuilt read models");
    }
    let verification = verify_served(
        state,
        &history.token,
        &history.fleet,
        &history.seeded.expected,
    )
    .await?;

    let mut report = blank_report(Scenario::Rebuild, history.store.backend(), 0);
    report.elapsed_s = elapsed.as_secs_f64();
    report.events = head;
    report.events_per_s = head as f64 / elapsed.as_secs_f64().max(1e-9);
    report.peak_rss_bytes = peak_rss;
    report.verification = Some(verification);
    report.notes.push(history.seeded_note());
    let slowest = summary
        .projections
        .iter()
        .max_by_key(|p| p.busy)
        .map_or_else(String::new, |p| {
            format!(
                "; the slowest, {}, spent {:.1} s folding and writing",
                p.name,
                p.busy.as_secs_f64()
            )
        });
    report.notes.push(format!(
        "all {} projections from position 0 into shadow tables, swapped in at {head} in one \
         transaction that held the live tables {} ms{slowest}",
        summary.projections.len(),
        summary.swap.as_millis()
    ));
    Ok(finished(report))
}

/// Rebuilds every projection through shadow tables, with the progress line; answers the
/// summary and the highest resident set sampled.
async fn rebuild_through_shadows(
    log: &store::SharedLog,
    read_models: &ReadStore,
    progress: bool,
) -> Result<(RebuildSummary, Option<u64>), BenchError> {
    let rebuild = ShadowRebuild::start(log.clone(), read_models.clone(), all_projections()).await?;
    let ticker = {
        let watched = rebuild.progress();
        let mut last = (Duration::ZERO, 0i64);
        Ticker::start("rebuild", progress, move |elapsed| {
            let now = *watched.borrow();
            let rate = (now.position - last.1) as f64 / (elapsed - last.0).as_secs_f64().max(1e-9);
            last = (elapsed, now.position);
            format!(
                "{:6.1} s  shadows at {} of {}  {rate:>8.0} events/s",
                elapsed.as_secs_f64(),
                now.position,
                now.target
            )
        })
    };
    let (_never, stop) = tokio::sync::watch::channel(false);
    let summary = rebuild.complete(&stop).await;
    let highest_rss = ticker.finish().await;
    Ok((summary?, highest_rss))
}

/// `startup`: from `AppState::open` to `/readyz` 200 on a store whose projections are caught up.
pub(crate) async fn startup(
    config: &BenchConfig,
    caught_up: Option<History>,
) -> Result<ScenarioReport, BenchError> {
    let (history, reused) = match caught_up {
        Some(history) => (history, true),
        None => {
            let history = History::seed(config, Layout::Spread { skew: config.skew }).await?;
            let folded = match history.open().await {
                Ok(state) => {
                    let folded = catch_up(&state, "catch-up", config.progress).await;
                    if folded.is_ok() {
                        state.shutdown().await;
                    }
                    folded.map(|_| ())
                }
                Err(error) => Err(error),
            };
            if let Err(error) = folded {
                history.discard().await?;
                return Err(error);
            }
            (history, false)
        }
    };
    let measured = measure_startup(&history, reused).await;
    history.discard().await?;
    measured
}

async fn measure_startup(history: &History, reused: bool) -> Result<ScenarioReport, BenchError> {
    let peak = PeakRss::start();
    let started = Instant::now();
    let state = history.open().await?;
    let opened = started.elapsed();
    let head = state.log.head().await;
    let service = InProcessService::serve(state).await?;
    let api = service.api(&history.token, 1);
    let ready = wait_ready(&api).await;
    let elapsed = started.elapsed();
    let peak_rss = peak.peak(None);
    let rss_after = memory::current_bytes();
    drop(api);
    service.stop().await;
    ready?;

    let mut report = blank_report(Scenario::Startup, history.store.backend(), 0);
    report.elapsed_s = elapsed.as_secs_f64();
    report.events = head?;
    report.peak_rss_bytes = peak_rss;
    if reused {
        report
            .notes
            .push("on the store the rebuild left (caught up)".to_string());
    } else {
        report.notes.push(history.seeded_note());
    }
    report.notes.push(format!(
        "AppState::open took {:.0} ms; /readyz answered 200 at {:.0} ms; RSS then {} MB",
        opened.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64() * 1000.0,
        megabytes(rss_after)
    ));
    Ok(finished(report))
}

async fn wait_ready(api: &Api) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let answer = api.send(Method::GET, "/readyz", None).await;
        match answer {
            Ok(answer) if answer.status == StatusCode::OK => return Ok(()),
            Ok(answer) if started.elapsed() > READY_TIMEOUT => {
                return Err(BenchError::NotCaughtUp(format!(
                    "/readyz still answers {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                )))
            }
            Err(error) if started.elapsed() > READY_TIMEOUT => {
                return Err(BenchError::Http {
                    request: "GET /readyz".to_string(),
                    reason: error.to_string(),
                })
            }
            _ => tokio::time::sleep(READY_POLL).await,
        }
    }
}

/// `as-of`: one station with the whole history; its balance `as_of` the instant of the middle
/// event, asked one request at a time.
pub(crate) async fn as_of(config: &BenchConfig) -> Result<ScenarioReport, BenchError> {
    let history = History::seed(config, Layout::OneStation).await?;
    let measured = measure_as_of(config, &history).await;
    history.discard().await?;
    measured
}

async fn measure_as_of(
    config: &BenchConfig,
    history: &History,
) -> Result<ScenarioReport, BenchError> {
    let midpoint = history.seeded.midpoint.ok_or_else(|| {
        BenchError::Config("the as-of history has no middle (no events were seeded)".to_string())
    })?;
    let state = history.open().await?;
    // Timed only once the projections are idle: a rebuild in the background would be measured
    // instead of the as-of answer.
    catch_up(&state, "catch-up", config.progress).await?;
    let log = state.log.clone();
    let service = InProcessService::serve(state).await?;
    let api = service.api(&history.token, 1);
    let path = format!(
        "/api/bombas/{}/saldo?as_of={}",
        midpoint.bomba_id,
        midpoint.instant.to_rfc3339_opts(SecondsFormat::Nanos, true)
    );

    let completed = Arc::new(AtomicU64::new(0));
    let ticker = {
        let completed = completed.clone();
        Ticker::start("as-of", config.progress, move |elapsed| {
            format!(
                "{:6.1} s  {:>5} requests",
                elapsed.as_secs_f64(),
                completed.load(Ordering::Relaxed)
            )
        })
    };
    let peak = PeakRss::start();
    let mut as_of_differences = Verification::default();
    // The first answer meets cold caches (pages of the balance index, prepared statements):
    // it is timed on its own, and the figures are the answers after it.
    let mut first = Outcome::default();
    ask_as_of(
        &api,
        &path,
        midpoint.saldo,
        &mut first,
        &mut as_of_differences,
    )
    .await;
    completed.fetch_add(1, Ordering::Relaxed);
    let mut outcome = Outcome::default();
    let started = Instant::now();
    let deadline = started + config.duration;
    // Sequential: the figure is one answer's latency, not throughput; at least one request even
    // when a single answer outlasts the duration.
    while (outcome.requests() as usize) < config.as_of_requests
        && (outcome.requests() == 0 || Instant::now() < deadline)
    {
        ask_as_of(
            &api,
            &path,
            midpoint.saldo,
            &mut outcome,
            &mut as_of_differences,
        )
        .await;
        completed.fetch_add(1, Ordering::Relaxed);
    }
    let elapsed = started.elapsed();
    let peak_rss = peak.peak(ticker.finish().await);
    let asked = outcome.requests();

    if config.progress {
        eprintln!("[as-of] verifying balances and records");
    }
    let mut verification =
        verify::verify(&api, &history.fleet.station_ids(), &history.seeded.expected).await;
    verification.absorb(as_of_differences);
    // After the verification: these refuels change the station's balance.
    if config.progress {
        eprintln!("[as-of] timing cold refuels on the station: folded, then from a snapshot");
    }
    let cold = super::cold_commands::measure(&log, history.fleet.stations[0]).await;
    drop(api);
    service.stop().await;
    let cold = cold?;

    let first_ms = first.latencies.first().map(|d| d.as_secs_f64() * 1000.0);
    let first_failed = first.non_2xx.values().sum::<u64>() + first.transport_errors;
    let mut report = blank_report(Scenario::AsOf, history.store.backend(), 1);
    with_outcome(&mut report, outcome, elapsed);
    report.first_request_ms = first_ms;
    for (status, count) in first.non_2xx {
        *report.non_2xx.entry(status).or_default() += count;
    }
    for (status, body) in first.non_2xx_samples {
        report.non_2xx_samples.entry(status).or_insert(body);
    }
    report.transport_errors += first.transport_errors;
    report.notes.push(format!(
        "the first answer (cold caches) took {} ms{}; the figures are the {} answers after it",
        first_ms.map_or_else(|| "?".to_string(), |ms| format!("{ms:.0}")),
        if first_failed > 0 { " and failed" } else { "" },
        report.requests
    ));
    report.peak_rss_bytes = peak_rss;
    report.verification = Some(verification);
    report.notes.push(history.seeded_note());
    report.notes.push(format!(
        "station {} holds all {} events; as_of {} (the middle of its history)",
        midpoint.bomba_id, history.seeded.events, midpoint.instant
    ));
    report.notes.extend(cold);
    if (asked as usize) < config.as_of_requests {
        report.notes.push(format!(
            "{asked} of {} requests fit in the {:.0} s duration",
            config.as_of_requests,
            config.duration.as_secs_f64()
        ));
    }
    Ok(finished(report))
}

/// One timed as-of request; a `saldo` other than `want` is a difference.
async fn ask_as_of(
    api: &Api,
    path: &str,
    want: rust_decimal::Decimal,
    outcome: &mut Outcome,
    differences: &mut Verification,
) {
    let sent = Instant::now();
    let answer = api.send(Method::GET, path, None).await;
    outcome.latencies.push(sent.elapsed());
    match answer {
        Ok(answer) if answer.status == StatusCode::OK => {
            let saldo = answer.json().and_then(|body| decimal_field(&body, "saldo"));
            if saldo != Some(want) {
                differences.add(format!(
                    "GET {path}: saldo {saldo:?}, but the events up to that instant add up to {want}"
                ));
            }
        }
        Ok(answer) => outcome.refused(&answer),
        Err(error) => outcome.transport_error(error.to_string()),
    }
}
