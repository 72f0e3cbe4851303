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
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::load::Outcome;
use super::progress::Ticker;
use super::service::{fresh_keys, FreshStore, InProcessService};
use super::verify::Verification;
use super::{BenchConfig, BenchError, Scenario};
use crate::http::scraping::LOOKUP_VEHICLES_MAX;
use crate::memory::PeakRss;
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

/// What the store holds, as each lookup must answer it.
struct Recorded {
    vehicles: Vec<CheckedVehicle>,
    /// By vehicle index, the `info` a lookup answers for it (the latest result of each resource,
    /// by resource id), or `None` when no result was recorded for it. Rendered here from the
    /// results as a `Value` in the seed's field order, independently of how the service renders
    /// them: answers are checked byte for byte against it.
    info: Vec<Option<Box<RawValue>>>,
    /// Latest results in all: rows the read model must hold.
    latest_count: usize,
    events: usize,
    elapsed: Duration,
}

/// Seed 001's stored entry of `check`, field by field in the seed's order.
fn expected_entry(check: &VehicleCheck) -> Value {
    json!({
        "_id": format!("{}-{}", check.resource_id, check.vehicle.key()),
        "plate": check.vehicle.plate.as_str(),
        "vin": check.vehicle.vin.as_str(),
        "resourceId": check.resource_id,
        "status": check.status.clone().unwrap_or(Value::Null),
        "result": check.result.clone(),
        "creationDateTime": check.creation_date_time.as_str(),
        "finishedDateTime": check.finished_date_time.as_ref().map(CheckTime::as_str),
    })
}

/// By vehicle index, the `info` of the latest results in `latest` ((vehicle index, resource id)
/// → status), rendered one vehicle at a time: a `Value` of every entry at once would outweigh
/// the service being measured.
fn expected_info(
    vehicles: &[CheckedVehicle],
    latest: &BTreeMap<(usize, i64), &str>,
) -> Result<Vec<Option<Box<RawValue>>>, BenchError> {
    let mut info = Vec::with_capacity(vehicles.len());
    for (index, vehicle) in vehicles.iter().enumerate() {
        let entries = latest
            .range((index, i64::MIN)..=(index, i64::MAX))
            .map(|(&(_, resource_id), status)| {
                check(vehicle, resource_id, status).map(|check| expected_entry(&check))
            })
            .collect::<Result<Vec<Value>, _>>()?;
        info.push(if entries.is_empty() {
            None
        } else {
            Some(RawValue::from_string(Value::Array(entries).to_string())?)
        });
    }
    Ok(info)
}

/// The result the bench records: what a resource reporting one fine sends.
fn check(
    vehicle: &CheckedVehicle,
    resource_id: i64,
    status: &str,
) -> Result<VehicleCheck, BenchError> {
    let time = CheckTime::parse("2024-03-01T10:00:00.000Z")
        .map_err(|e| BenchError::Config(e.to_string()))?;
    Ok(VehicleCheck {
        resource_id,
        vehicle: vehicle.clone(),
        status: Some(Value::from(status)),
        result: json!([{ "concepto": "Multa", "monto": 1250.50, "folio": status }]),
        creation_date_time: time.clone(),
        finished_date_time: Some(time),
    })
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
    for n in 0..results {
        let index = rng.gen_range(0..vehicle_count);
        let resource_id = rng.gen_range(1..=RESOURCES);
        by_vehicle[index].push((resource_id, format!("S{n}")));
    }
    let mut latest: BTreeMap<(usize, i64), &str> = BTreeMap::new();
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
                latest.insert((index, *resource_id), status);
                let event = VehicleCheckEvent::VehicleCheckRecorded {
                    check: check(&vehicles[index], *resource_id, status)?,
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
        info: expected_info(&vehicles, &latest)?,
        vehicles,
        latest_count: latest.len(),
        events: results,
        elapsed: started.elapsed(),
    })
}

/// A lookup's body asking for `asked` (indices into the recorded vehicles; `None` for one never
/// processed, made up from its position), written as text: the client shares the two cores with
/// the service, so it builds no JSON tree.
fn lookup_body(asked: &[Option<usize>], recorded: &Recorded) -> Bytes {
    let mut body = String::with_capacity(16 + asked.len() * 48);
    body.push_str(r#"{"vehicles":["#);
    for (position, index) in asked.iter().enumerate() {
        if position > 0 {
            body.push(',');
        }
        // VINs and plates are uppercase letters and digits: nothing to escape.
        match index {
            Some(index) => {
                let vehicle = &recorded.vehicles[*index];
                body.push_str(r#"{"vin":""#);
                body.push_str(vehicle.vin.as_str());
                body.push_str(r#"","plate":""#);
                body.push_str(vehicle.plate.as_str());
                body.push_str(r#""}"#);
            }
            None => {
                body.push_str(&format!(r#"{{"vin":"NONE{position}","plate":"NEVER"}}"#));
            }
        }
    }
    body.push_str("]}");
    Bytes::from(body)
}

/// The vehicles of one lookup: [`LOOKUP_VEHICLES_MAX`] distinct ones, one in [`UNKNOWN_ONE_IN`]
/// never processed (`None`).
fn lookup_vehicles(rng: &mut StdRng, recorded: &Recorded) -> Vec<Option<usize>> {
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
    asked
}

/// The answer a lookup must give, built with serde around the expected `info` texts.
#[derive(Serialize)]
struct ExpectedAnswer<'a> {
    #[serde(rename = "vehicleData")]
    vehicle_data: Vec<ExpectedVehicle<'a>>,
}

#[derive(Serialize)]
struct ExpectedVehicle<'a> {
    vin: &'a str,
    plate: &'a str,
    info: &'a RawValue,
}

/// A writer that checks what is written against `rest`, the bytes still unmatched.
struct SameAs<'a> {
    rest: &'a [u8],
    differs: bool,
}

impl std::io::Write for SameAs<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if !self.differs {
            match self.rest.strip_prefix(bytes) {
                Some(rest) => self.rest = rest,
                None => self.differs = true,
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compares a lookup's answer, byte for byte, with the one expected for the vehicles `asked`:
/// those some resource processed, in the order asked, each with the latest result of every
/// resource. Building the expected bytes and comparing them costs the client far less than
/// parsing each answer would, on the cores the service needs.
fn check_answer(
    answer: &[u8],
    asked: &[Option<usize>],
    recorded: &Recorded,
    differences: &mut Verification,
) {
    let vehicle_data = asked
        .iter()
        .flatten()
        .filter_map(|&index| {
            let info = recorded.info[index].as_deref()?;
            let vehicle = &recorded.vehicles[index];
            Some(ExpectedVehicle {
                vin: vehicle.vin.as_str(),
                plate: vehicle.plate.as_str(),
                info,
            })
        })
        .collect();
    let expected_answer = ExpectedAnswer { vehicle_data };
    // A right answer is compared piece by piece as serde prints the expected one: no copy of
    // its ~300 KB. Only a wrong one is printed whole, to say where it differs.
    let mut same = SameAs {
        rest: answer,
        differs: false,
    };
    if serde_json::to_writer(&mut same, &expected_answer).is_ok()
        && !same.differs
        && same.rest.is_empty()
    {
        return;
    }
    let mut expected = Vec::with_capacity(answer.len() + 64);
    if let Err(error) = serde_json::to_writer(&mut expected, &expected_answer) {
        differences.add(format!("{LOOKUP_PATH}: the expected answer: {error}"));
        return;
    }
    if answer != expected.as_slice() {
        const CONTEXT: usize = 120;
        let at = answer
            .iter()
            .zip(&expected)
            .position(|(a, e)| a != e)
            .unwrap_or(answer.len().min(expected.len()));
        let around = |bytes: &[u8]| {
            let from = at.saturating_sub(CONTEXT / 2);
            String::from_utf8_lossy(&bytes[from.min(bytes.len())..(at + CONTEXT).min(bytes.len())])
                .into_owned()
        };
        differences.add(format!(
            "{LOOKUP_PATH}: the answer ({} bytes) differs from the expected one ({} bytes) at byte {at}: answered …{}…, expected …{}…",
            answer.len(),
            expected.len(),
            around(answer),
            around(&expected)
        ));
    }
}

/// `lookup`: `config.lookup.connections` callers asking for 500 vehicles back to back for
/// `config.duration`, against `config.lookup.results` recorded results.
pub(crate) async fn lookup(config: &BenchConfig) -> Result<super::ScenarioReport, BenchError> {
    let store = FreshStore::for_scenario(config, "lookup").await?;
    let measured = measure(config, &store).await;
    store.discard_after(measured).await
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
                let asked = lookup_vehicles(&mut rng, &recorded);
                let body = lookup_body(&asked, &recorded);
                let sent = Instant::now();
                let answer = api.send(Method::GET, LOOKUP_PATH, Some(body)).await;
                outcome.latencies.push(sent.elapsed());
                completed.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok(answer) if answer.status == StatusCode::OK => {
                        check_answer(&answer.body, &asked, &recorded, &mut differences)
                    }
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
        let answer = api
            .send(
                Method::POST,
                LOOKUP_PATH,
                Some(lookup_body(asked, &recorded)),
            )
            .await
            .map_err(|e| BenchError::Http {
                request: format!("POST {LOOKUP_PATH}"),
                reason: e.to_string(),
            })?;
        if answer.status == StatusCode::OK {
            check_answer(&answer.body, asked, &recorded, &mut verification);
        } else {
            verification.add(format!("POST {LOOKUP_PATH} answered {}", answer.status));
        }
    }
    verification.records_acknowledged = recorded.events;
    verification.records_read_back = recorded.latest_count;
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
        recorded.latest_count
    ));
    report.notes.push(format!(
        "{timed} lookups of {LOOKUP_VEHICLES_MAX} vehicles (1 in {UNKNOWN_ONE_IN} never processed) as GET with a body; every answer checked, then every vehicle asked once more"
    ));
    Ok(super::scenarios::finished(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two vehicles: the first processed by resources 1 and 3, the second by none.
    fn recorded() -> Recorded {
        let vehicles = vec![vehicle(0).unwrap(), vehicle(1).unwrap()];
        let latest = BTreeMap::from([((0, 1), "S7"), ((0, 3), "S9")]);
        Recorded {
            info: expected_info(&vehicles, &latest).unwrap(),
            vehicles,
            latest_count: 2,
            events: 3,
            elapsed: Duration::ZERO,
        }
    }

    fn differences(answer: &str) -> usize {
        let mut verification = Verification::default();
        let asked = [Some(1), None, Some(0)];
        check_answer(answer.as_bytes(), &asked, &recorded(), &mut verification);
        verification.differences
    }

    #[test]
    fn the_check_passes_the_right_answer_and_catches_every_wrong_one() {
        let entry = |resource: i64, status: &str| {
            format!(
                r#"{{"_id":"{resource}-LKP00000000000000-P000000000","plate":"P000000000","vin":"LKP00000000000000","resourceId":{resource},"status":"{status}","result":[{{"concepto":"Multa","monto":1250.5,"folio":"{status}"}}],"creationDateTime":"2024-03-01T10:00:00.000Z","finishedDateTime":"2024-03-01T10:00:00.000Z"}}"#
            )
        };
        let answer = |info: &[String]| {
            format!(
                r#"{{"vehicleData":[{{"vin":"LKP00000000000000","plate":"P000000000","info":[{}]}}]}}"#,
                info.join(",")
            )
        };
        let right = answer(&[entry(1, "S7"), entry(3, "S9")]);
        assert_eq!(differences(&right), 0);
        // A superseded status, a resource missing, one too many, the wrong order.
        assert_eq!(differences(&answer(&[entry(1, "S6"), entry(3, "S9")])), 1);
        assert_eq!(differences(&answer(&[entry(1, "S7")])), 1);
        assert_eq!(
            differences(&answer(&[entry(1, "S7"), entry(3, "S9"), entry(2, "S1")])),
            1
        );
        assert_eq!(differences(&answer(&[entry(3, "S9"), entry(1, "S7")])), 1);
        // The vehicle left out, a vehicle nobody processed answered, not the answer at all.
        assert_eq!(differences(r#"{"vehicleData":[]}"#), 1);
        let unprocessed = r#"{"vin":"LKP00000000000001","plate":"P000000001","info":[]}"#;
        let with_unprocessed = right.replacen("[{", &format!("[{unprocessed},{{"), 1);
        assert_eq!(differences(&with_unprocessed), 1);
        assert_eq!(differences(r#"{"error":"Servicio no disponible"}"#), 1);
        // Cut short, or with more after it.
        assert_eq!(differences(&right[..right.len() - 1]), 1);
        assert_eq!(differences(&format!("{right} ")), 1);
        // The same answer in another field order or spacing is not the same bytes.
        assert_eq!(
            differences(&right.replace(r#""resourceId":1,"#, r#""resourceId": 1,"#)),
            1
        );
        let reordered = right.replace(
            r#""plate":"P000000000","vin":"LKP00000000000000","resourceId""#,
            r#""vin":"LKP00000000000000","plate":"P000000000","resourceId""#,
        );
        assert_ne!(reordered, right);
        assert_eq!(differences(&reordered), 1);
    }
}
