//! `lookup` (issue 11): seed 001's batch lookup of 500 vehicles against a store holding
//! [`super::LookupSize::results`] recorded vehicle check results.
//!
//! The results are written straight to the log, one append per vehicle, as the service itself
//! writes them (`VehicleCheckRecorded` on the vehicle's `vehicle-checks` stream), then the
//! projection folds them before anything is timed: the scenario measures the lookup, not how the
//! results got there. Every answer timed is also checked against what was recorded, and a last
//! pass asks for every vehicle, so a fast answer that is wrong is a failure, not a figure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::codec;
use aggregates::vehicle_check::{
    CheckTime, CheckedVehicle, VehicleCheck, VehicleCheckEvent, VehicleChecks, VehiclePlate, Vin,
};
use cqrs_es::Aggregate;
use futures_util::future::try_join_all;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::load::Outcome;
use super::memory::PeakRss;
use super::progress::Ticker;
use super::service::{fresh_keys, FreshStore, InProcessService};
use super::verify::Verification;
use super::{BenchConfig, BenchError, Scenario, Target};
use crate::http::scraping::LOOKUP_VEHICLES_MAX;
use crate::settings::LedgerSettings;
use crate::store::{self, AppendRequest, EventMetadata, NewEvent, SharedLog};
use crate::AppState;

/// Path of the lookup, as seed 001 writes it.
const LOOKUP_PATH: &str = "/api/batch/scraping/";
/// Results per vehicle on average: each vehicle is processed by some of [`RESOURCES`] resources,
/// a few of them more than once (the later result supersedes the earlier).
const RESULTS_PER_VEHICLE: usize = 4;
const RESOURCES: i64 = 3;
/// One vehicle in this many asked for was never processed: the answer leaves it out.
const UNKNOWN_ONE_IN: usize = 10;
/// Appends in flight together while seeding: enough for the group-commit writer to fill its
/// transactions, few enough to bound memory.
const SEED_APPENDS_IN_FLIGHT: usize = 2_000;

/// What the store holds: each vehicle's latest status per resource.
struct Recorded {
    vehicles: Vec<CheckedVehicle>,
    /// (vehicle index, resource id) → the status of its latest result.
    latest: BTreeMap<(usize, i64), String>,
    events: usize,
    elapsed: Duration,
}

fn vehicle(index: usize) -> Result<CheckedVehicle, BenchError> {
    let invalid = |e: aggregates::vehicle_check::VehicleIdError| BenchError::Config(e.to_string());
    Ok(CheckedVehicle {
        vin: Vin::parse(&format!("LKP{index:014}")).map_err(invalid)?,
        plate: VehiclePlate::parse(&format!("P{index:09}")).map_err(invalid)?,
    })
}

/// Appends `results` results over `results / RESULTS_PER_VEHICLE` vehicles to a log that only
/// this bench writes to.
async fn record(log: &SharedLog, results: usize, progress: bool) -> Result<Recorded, BenchError> {
    let started = Instant::now();
    let vehicle_count = (results / RESULTS_PER_VEHICLE).max(1);
    let vehicles = (0..vehicle_count)
        .map(vehicle)
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = StdRng::seed_from_u64(1);
    let mut by_vehicle: Vec<Vec<(i64, String)>> = vec![Vec::new(); vehicle_count];
    let mut latest = BTreeMap::new();
    for n in 0..results {
        let index = rng.gen_range(0..vehicle_count);
        let resource_id = rng.gen_range(1..=RESOURCES);
        let status = format!("S{n}");
        latest.insert((index, resource_id), status.clone());
        by_vehicle[index].push((resource_id, status));
    }
    let creation = CheckTime::parse("2024-03-01T10:00:00.000Z")
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let metadata = EventMetadata {
        actor: Some("bench".to_string()),
        ..Default::default()
    };
    let appended = Arc::new(AtomicU64::new(0));
    let ticker = {
        let appended = appended.clone();
        Ticker::start("seed", progress, move |elapsed| {
            format!(
                "{:6.1} s  {:>9} of {results} results appended",
                elapsed.as_secs_f64(),
                appended.load(Ordering::Relaxed)
            )
        })
    };
    let indices: Vec<usize> = (0..vehicle_count).collect();
    for chunk in indices.chunks(SEED_APPENDS_IN_FLIGHT) {
        let mut requests = Vec::with_capacity(chunk.len());
        for &index in chunk {
            let mut events = Vec::with_capacity(by_vehicle[index].len());
            for (resource_id, status) in &by_vehicle[index] {
                let event = VehicleCheckEvent::VehicleCheckRecorded {
                    check: VehicleCheck {
                        resource_id: *resource_id,
                        vehicle: vehicles[index].clone(),
                        status: Some(Value::from(status.as_str())),
                        result: json!([{ "concepto": "Multa", "monto": 1250.50, "folio": status }]),
                        creation_date_time: creation.clone(),
                        finished_date_time: Some(creation.clone()),
                    },
                };
                let (event_type, payload) = codec::encode(&event)?;
                events.push(NewEvent::new(event_type, payload, metadata.clone()));
            }
            if events.is_empty() {
                continue;
            }
            requests.push(AppendRequest {
                stream_type: VehicleChecks::TYPE.to_string(),
                stream_id: vehicles[index].key(),
                expected_version: 0,
                events,
                idempotency: None,
            });
        }
        let count: usize = requests.iter().map(|r| r.events.len()).sum();
        try_join_all(requests.into_iter().map(|request| log.append(request))).await?;
        appended.fetch_add(count as u64, Ordering::Relaxed);
    }
    ticker.finish().await;
    Ok(Recorded {
        vehicles,
        latest,
        events: results,
        elapsed: started.elapsed(),
    })
}

/// The vehicles of one lookup: [`LOOKUP_VEHICLES_MAX`] distinct ones, one in
/// [`UNKNOWN_ONE_IN`] never processed. Answers the body and the indices of the known ones.
fn lookup_body(rng: &mut StdRng, recorded: &Recorded) -> (Bytes, Vec<Option<usize>>) {
    let count = recorded.vehicles.len();
    let known = LOOKUP_VEHICLES_MAX - LOOKUP_VEHICLES_MAX / UNKNOWN_ONE_IN;
    let mut asked: Vec<Option<usize>> = rand::seq::index::sample(rng, count, known.min(count))
        .into_iter()
        .map(Some)
        .collect();
    asked.resize(
        LOOKUP_VEHICLES_MAX.min(asked.len() + LOOKUP_VEHICLES_MAX / UNKNOWN_ONE_IN),
        None,
    );
    asked.shuffle(rng);
    let vehicles: Vec<Value> = asked
        .iter()
        .enumerate()
        .map(|(position, index)| match index {
            Some(index) => json!({
                "vin": recorded.vehicles[*index].vin.as_str(),
                "plate": recorded.vehicles[*index].plate.as_str(),
            }),
            None => json!({ "vin": format!("NONE{position}"), "plate": "NEVER" }),
        })
        .collect();
    let body = json!({ "vehicles": vehicles }).to_string();
    (Bytes::from(body), asked)
}

/// Compares a lookup's answer with what was recorded for the vehicles `asked`.
fn check_answer(
    answer: &Value,
    asked: &[Option<usize>],
    recorded: &Recorded,
    differences: &mut Verification,
) {
    let expected: Vec<(usize, Vec<(i64, &str)>)> = asked
        .iter()
        .flatten()
        .map(|&index| {
            let latest = recorded
                .latest
                .range((index, i64::MIN)..=(index, i64::MAX))
                .map(|((_, resource), status)| (*resource, status.as_str()))
                .collect();
            (index, latest)
        })
        .filter(|(_, latest): &(usize, Vec<_>)| !latest.is_empty())
        .collect();
    let got: Vec<(String, Vec<(i64, String)>)> = answer["vehicleData"]
        .as_array()
        .map(|data| {
            data.iter()
                .map(|vehicle| {
                    let info = vehicle["info"]
                        .as_array()
                        .map(|info| {
                            info.iter()
                                .map(|entry| {
                                    (
                                        entry["resourceId"].as_i64().unwrap_or_default(),
                                        entry["status"].as_str().unwrap_or_default().to_string(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        vehicle["vin"].as_str().unwrap_or_default().to_string(),
                        info,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<(String, Vec<(i64, String)>)> = expected
        .into_iter()
        .map(|(index, latest)| {
            (
                recorded.vehicles[index].vin.as_str().to_string(),
                latest
                    .into_iter()
                    .map(|(resource, status)| (resource, status.to_string()))
                    .collect(),
            )
        })
        .collect();
    if got != wanted {
        let first = got.iter().zip(&wanted).find(|(g, w)| g != w).map_or_else(
            || format!("{} vehicles answered, {} expected", got.len(), wanted.len()),
            |(g, w)| format!("answered {g:?}, recorded {w:?}"),
        );
        differences.add(format!("GET {LOOKUP_PATH}: {first}"));
    }
}

/// `lookup`: `config.lookup.connections` callers asking for 500 vehicles back to back for
/// `config.duration`, against `config.lookup.results` recorded results.
pub(crate) async fn lookup(config: &BenchConfig) -> Result<super::ScenarioReport, BenchError> {
    let Target::InProcess { database_url } = &config.target else {
        return Err(BenchError::NeedsInProcess("lookup"));
    };
    let store = FreshStore::create(database_url.as_deref()).await?;
    let measured = measure(config, &store).await;
    store.discard().await?;
    measured
}

async fn measure(
    config: &BenchConfig,
    store: &FreshStore,
) -> Result<super::ScenarioReport, BenchError> {
    let (keys, token) = fresh_keys();
    // The log is written while no service runs, as the other seeded scenarios do.
    let log = store::open(&store.location.log_url).await?;
    let recorded = record(&log, config.lookup.results, config.progress).await;
    log.shutdown().await;
    let recorded = Arc::new(recorded?);
    let state = AppState::open_with(&store.location, keys, LedgerSettings::default()).await?;
    super::scenarios::catch_up(&state, "catch-up", config.progress).await?;
    let service = InProcessService::serve(state).await?;
    let api = service.api(&token, config.lookup.connections);

    let completed = Arc::new(AtomicU64::new(0));
    let ticker = {
        let completed = completed.clone();
        Ticker::start("lookup", config.progress, move |elapsed| {
            format!(
                "{:6.1} s  {:>7} lookups",
                elapsed.as_secs_f64(),
                completed.load(Ordering::Relaxed)
            )
        })
    };
    let peak = PeakRss::start();
    let started = Instant::now();
    let deadline = started + config.duration;
    let callers = (0..config.lookup.connections).map(|caller| {
        let api = api.clone();
        let recorded = recorded.clone();
        let completed = completed.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + caller as u64);
            let mut outcome = Outcome::default();
            let mut differences = Verification::default();
            while outcome.requests() == 0 || Instant::now() < deadline {
                let (body, asked) = lookup_body(&mut rng, &recorded);
                let sent = Instant::now();
                let answer = api.send(Method::GET, LOOKUP_PATH, Some(body)).await;
                outcome.latencies.push(sent.elapsed());
                completed.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok(answer) if answer.status == StatusCode::OK => match answer.json() {
                        Some(json) => check_answer(&json, &asked, &recorded, &mut differences),
                        None => differences.add(format!("GET {LOOKUP_PATH}: not JSON")),
                    },
                    Ok(answer) => outcome.refused(&answer),
                    Err(error) => outcome.transport_error(error.to_string()),
                }
            }
            (outcome, differences)
        })
    });
    let mut outcome = Outcome::default();
    let mut verification = Verification::default();
    for finished in try_join_all(callers).await? {
        outcome.merge(finished.0);
        verification.absorb(finished.1);
    }
    let elapsed = started.elapsed();
    let peak_rss = peak.peak(ticker.finish().await);
    let timed = outcome.requests();

    // Every vehicle once, in lookups of 500: the whole read model against what was recorded.
    let all: Vec<Option<usize>> = (0..recorded.vehicles.len()).map(Some).collect();
    for asked in all.chunks(LOOKUP_VEHICLES_MAX) {
        let vehicles: Vec<Value> = asked
            .iter()
            .flatten()
            .map(|&index| {
                json!({
                    "vin": recorded.vehicles[index].vin.as_str(),
                    "plate": recorded.vehicles[index].plate.as_str(),
                })
            })
            .collect();
        let body = json!({ "vehicles": vehicles }).to_string();
        let answer = api
            .expect(Method::POST, LOOKUP_PATH, Some(body), StatusCode::OK)
            .await?;
        check_answer(&answer, asked, &recorded, &mut verification);
    }
    verification.records_acknowledged = recorded.events;
    verification.records_read_back = recorded.latest.len();
    drop(api);
    service.stop().await;

    let mut report = super::scenarios::blank_report(
        Scenario::Lookup,
        store.backend(),
        config.lookup.connections,
    );
    super::scenarios::with_outcome(&mut report, outcome, elapsed);
    report.events = recorded.events as i64;
    report.peak_rss_bytes = peak_rss;
    report.verification = Some(verification);
    report.notes.push(format!(
        "{} results of {} resources for {} vehicles appended straight to the log in {:.1} s; {} latest results to answer from",
        recorded.events,
        RESOURCES,
        recorded.vehicles.len(),
        recorded.elapsed.as_secs_f64(),
        recorded.latest.len()
    ));
    report.notes.push(format!(
        "{timed} lookups of {LOOKUP_VEHICLES_MAX} vehicles (1 in {UNKNOWN_ONE_IN} never processed) as GET with a body; every answer checked, then every vehicle asked once more"
    ));
    Ok(super::scenarios::finished(report))
}
