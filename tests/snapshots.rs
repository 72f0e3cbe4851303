//! Snapshots: a long stream is loaded from its newest snapshot, for a command after a restart or
//! for an `as_of`, folding only the events after it, into the state a fold of its whole history
//! gives. A snapshot of another schema, or one that does not read back, is ignored.

mod common;

use std::time::{Duration, Instant};

use aggregates::audit::Subject;
use aggregates::codec;
use aggregates::fleet::Fleet;
use aggregates::fuel::{FuelStation, RECENT_CHANGES_REMEMBERED};
use aggregates::snapshot::Snapshotted;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use common::TestApp;
use cqrs_es::Aggregate;
use fleet_ledger::auth::Role;
use fleet_ledger::commands::CommandBus;
use fleet_ledger::settings::LedgerSettings;
use fleet_ledger::store::{SnapshotBound, StoredEvent};
use serde_json::{json, Value};

fn every(events: u64) -> LedgerSettings {
    LedgerSettings {
        snapshot_every_events: events,
        ..LedgerSettings::default()
    }
}

on_both_stores_with!(super::every(5);
    a_long_stream_loads_from_its_newest_snapshot,
    every_aggregate_reads_back_from_its_snapshot_as_its_full_fold,
    a_snapshot_of_another_schema_or_unreadable_is_ignored_and_replaced,
    as_of_starts_from_the_newest_snapshot_by_then_and_is_exact,
    a_record_older_than_the_station_remembers_is_corrected_and_voided,
);

/// `count` advances of 1000 to station 1, one request each.
async fn advances(app: &TestApp, count: usize) {
    for n in 0..count {
        let body = format!(
            r#"{{"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{}}}"#,
            1000 + n
        );
        let (status, answer) = app.post("/api/tanqueos", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
}

async fn stream(app: &TestApp, stream_type: &str, stream_id: &str) -> Vec<StoredEvent> {
    app.state
        .log
        .read_stream(stream_type, stream_id, 0)
        .await
        .unwrap()
}

/// The aggregate folded from every event of its stream, as JSON.
fn full_fold<A: Aggregate>(events: &[StoredEvent]) -> Value {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(codec::decode(&event.event_type, &event.payload).unwrap());
    }
    serde_json::to_value(aggregate).unwrap()
}

/// Waits (the save runs in the background) until the stream's newest snapshot covers `version`.
async fn snapshot_reaches(app: &TestApp, stream_type: &str, stream_id: &str, version: i64) {
    let snapshot_version = match stream_type {
        "fuel-station" => FuelStation::SNAPSHOT_VERSION,
        "fleet" => Fleet::SNAPSHOT_VERSION,
        other => panic!("no snapshot schema known here for {other}"),
    };
    let started = Instant::now();
    loop {
        let newest = app
            .state
            .log
            .load_snapshot(
                stream_type,
                stream_id,
                snapshot_version,
                SnapshotBound::Latest,
            )
            .await
            .unwrap();
        if newest.as_ref().is_some_and(|s| s.version >= version) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no snapshot of {stream_type}/{stream_id} at {version}: {newest:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_long_stream_loads_from_its_newest_snapshot(app: TestApp) {
    app.seed_fleet().await;
    advances(&app, 22).await;
    // 23 events: snapshots at 5, 10, 15 and 20.
    snapshot_reaches(&app, "fuel-station", "1", 20).await;
    let app = app.restart().await;

    let (station, version) = app.state.fuel_stations.load("1").await.unwrap();
    assert_eq!(version, 23);
    assert_eq!(
        app.state.fuel_stations.events_folded(),
        3,
        "only the events after the snapshot at 20 are folded"
    );
    let events = stream(&app, "fuel-station", "1").await;
    assert_eq!(
        serde_json::to_value(&station).unwrap(),
        full_fold::<FuelStation>(&events)
    );
    // A command on it decides on that state.
    advances(&app, 1).await;
    let (status, saldo) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        saldo["saldo"].to_string(),
        (station.saldo() + rust_decimal::Decimal::from(1000)).to_string()
    );
}

/// Loads `stream_id` through `bus` after a restart and compares it with the full fold.
async fn reads_back<A>(app: &TestApp, bus: &CommandBus<A>, stream_id: &str)
where
    A: Snapshotted + Clone + 'static,
    A::Command: Clone,
{
    let events = stream(app, A::TYPE, stream_id).await;
    let before = bus.events_folded();
    let (aggregate, version) = bus.load(stream_id).await.unwrap();
    assert_eq!(version, events.len() as i64, "{}/{stream_id}", A::TYPE);
    assert_eq!(
        serde_json::to_value(aggregate).unwrap(),
        full_fold::<A>(&events),
        "{}/{stream_id}",
        A::TYPE
    );
    let folded = bus.events_folded() - before;
    assert!(folded < 5, "{}/{stream_id} folded {folded} events", A::TYPE);
}

async fn every_aggregate_reads_back_from_its_snapshot_as_its_full_fold(app: TestApp) {
    app.seed_fleet().await;
    let admin = app.token(Role::Admin);
    // Each stream past one snapshot: areas, drivers, stations, a catalogue, plates and
    // vehicles (the fleet), station 1, self-inspections' reference data.
    for n in 0..6 {
        for (path, body) in [
            (
                "/api/areas-operacion",
                json!({ "nombre": format!("Área {n}") }),
            ),
            (
                "/api/conductores",
                json!({ "conductor": format!("Conductor {n}") }),
            ),
            (
                "/api/bombas",
                json!({ "bomba": format!("Bomba {n}"), "area_operacion_id": 1 }),
            ),
            (
                "/api/catalogos/combustibles",
                json!({ "nombre": format!("Combustible {n}") }),
            ),
            ("/api/placas", json!({ "placa": format!("SNP{n:03}") })),
            (
                "/api/tanqueos",
                json!({ "fecha": "2024-03-15", "bomba_id": 1, "area_operacion_id": 1,
                        "conductor_id": 1, "placa_id": 1, "tipo_operacion": "TANQUEO",
                        "valor_tanqueo": 10 + n, "cantidad_galones": 3 }),
            ),
            ("/api/usuarios", json!({ "nome": format!("Usuário {n}") })),
        ] {
            let (status, answer) = app
                .call(Method::POST, path, Some(&admin), Some(&body.to_string()))
                .await;
            assert!(status.is_success(), "{path}: {status} {answer}");
        }
    }
    let (status, answer) = app
        .call(Method::POST, "/api/flota/sync", Some(&admin), None)
        .await;
    assert!(status.is_success(), "{answer}");
    let head = app.state.log.head().await.unwrap();
    let last = app
        .state
        .log
        .read_all(head - 1, 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    // The last snapshot saved is the fleet's after the sync: wait for it, and a little for the
    // others (saved before it, two at a time).
    snapshot_reaches(&app, "fleet", "main", last.version - 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let app = app.restart().await;

    reads_back(&app, &app.state.operation_areas, "all").await;
    reads_back(&app, &app.state.drivers, "all").await;
    reads_back(&app, &app.state.stations, "all").await;
    reads_back(&app, &app.state.catalogs, "combustibles").await;
    reads_back(&app, &app.state.fleet, "main").await;
    reads_back(&app, &app.state.fuel_stations, "1").await;
    reads_back(&app, &app.state.inspections, "all").await;
}

async fn a_snapshot_of_another_schema_or_unreadable_is_ignored_and_replaced(app: TestApp) {
    app.seed_fleet().await;
    advances(&app, 6).await;
    snapshot_reaches(&app, "fuel-station", "1", 5).await;
    let log = app.state.log.clone();
    // A snapshot from a release whose station state had another schema: saving it drops ours.
    log.save_snapshot("fuel-station", "1", 7, 99, r#"{"saldo":"mucho"}"#)
        .await
        .unwrap();
    let app = app.restart().await;
    let log = app.state.log.clone();
    let (_, version) = app.state.fuel_stations.load("1").await.unwrap();
    assert_eq!(version, 7);
    assert_eq!(
        app.state.fuel_stations.events_folded(),
        7,
        "the whole stream"
    );
    // The fold is saved in our schema, and the other one is gone.
    snapshot_reaches(&app, "fuel-station", "1", 7).await;
    let other = log
        .load_snapshot("fuel-station", "1", 99, SnapshotBound::Latest)
        .await
        .unwrap();
    assert_eq!(other, None);

    // A snapshot in our schema that does not read back is ignored too, by commands and as_of.
    advances(&app, 1).await;
    let version = FuelStation::SNAPSHOT_VERSION;
    log.save_snapshot("fuel-station", "1", 8, version, "{")
        .await
        .unwrap();
    let app = app.restart().await;
    let log = app.state.log.clone();
    let subject = Subject::parse("bomba", "1").unwrap();
    let found = fleet_ledger::audit::subject_state(app.state.log.as_ref(), &subject, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.events_folded, 8);
    let (station, _) = app.state.fuel_stations.load("1").await.unwrap();
    let events = stream(&app, "fuel-station", "1").await;
    assert_eq!(app.state.fuel_stations.events_folded(), 8);
    assert_eq!(
        serde_json::to_value(station).unwrap(),
        full_fold::<FuelStation>(&events)
    );
    // Saved again over the one that did not read.
    let started = Instant::now();
    while log
        .load_snapshot("fuel-station", "1", version, SnapshotBound::Latest)
        .await
        .unwrap()
        .is_some_and(|s| s.state == "{")
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The subject's state folded from scratch over the events recorded by `as_of` (stopping at the
/// first one after it), with the stream's version and the last event about the subject.
fn from_scratch(
    subject: &Subject,
    events: &[StoredEvent],
    as_of: DateTime<Utc>,
) -> Option<(Value, i64, i64)> {
    let mut fold = subject.fold();
    let mut version = 0;
    let mut last = None;
    for event in events.iter().take_while(|e| e.recorded_at <= as_of) {
        fold.apply(&event.event_type, &event.payload).unwrap();
        version = event.version;
        if subject.concerns(&event.payload) {
            last = Some(event.position);
        }
    }
    fold.state()
        .zip(last)
        .map(|(state, last)| (state, version, last))
}

async fn as_of_starts_from_the_newest_snapshot_by_then_and_is_exact(app: TestApp) {
    app.seed_fleet().await;
    advances(&app, 12).await;
    for marca in ["Toyota", "Mazda", "Renault"] {
        let token = app.operador();
        let body = json!({ "marca": marca }).to_string();
        let (status, answer) = app
            .call(Method::PUT, "/vehiculo/1", Some(&token), Some(&body))
            .await;
        assert!(status.is_success(), "{answer}");
    }
    snapshot_reaches(&app, "fuel-station", "1", 10).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = app.state.log.as_ref();

    for (subject, stream_type, stream_id) in [
        (Subject::parse("bomba", "1").unwrap(), "fuel-station", "1"),
        (Subject::parse("vehiculo", "1").unwrap(), "fleet", "main"),
        (Subject::parse("placa", "1").unwrap(), "fleet", "main"),
    ] {
        let events = stream(&app, stream_type, stream_id).await;
        let first = events[0].recorded_at;
        let mut instants = vec![first - chrono::Duration::seconds(1)];
        for event in &events {
            // At each event, and between it and the next.
            instants.push(event.recorded_at);
            instants.push(event.recorded_at + chrono::Duration::nanoseconds(500));
        }
        for at in instants {
            let want = from_scratch(&subject, &events, at);
            let found = fleet_ledger::audit::subject_state(log, &subject, Some(at))
                .await
                .unwrap();
            let label = format!("{subject:?} as of {at}");
            match (want, found) {
                (None, None) => {}
                (Some((state, version, last)), Some(found)) => {
                    assert_eq!(found.state, state, "{label}");
                    assert_eq!(found.version, version, "{label}");
                    assert_eq!(found.last_event.position, last, "{label}");
                    assert!(found.events_folded < 5, "{label}: {}", found.events_folded);
                }
                (want, found) => panic!("{label}: want {want:?}, found {found:?}"),
            }
        }
    }

    // The endpoint answers the same.
    let events = stream(&app, "fuel-station", "1").await;
    let at = events[11]
        .recorded_at
        .to_rfc3339_opts(SecondsFormat::Nanos, true);
    let token = app.token(Role::Auditor);
    let (status, answer) = app
        .call(
            Method::GET,
            &format!("/api/auditoria/bomba/1?as_of={at}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["version"], 12);
    assert_eq!(answer["ultimo_evento"]["position"], events[11].position);
}

async fn saldo(app: &TestApp) -> Value {
    let (status, answer) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["saldo"].clone()
}

/// The station's state holds only its latest changes (its snapshot stays small however long
/// the history): a record changed before them is corrected and voided on the record as the read
/// models show it, before and after a restart, and the rules still hold for it.
async fn a_record_older_than_the_station_remembers_is_corrected_and_voided(app: TestApp) {
    app.seed_fleet().await;
    let (status, first) = app
        .post(
            "/api/tanqueos",
            r#"{"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":777}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let oldest = first["id"].as_i64().unwrap();
    advances(&app, RECENT_CHANGES_REMEMBERED + 2).await;
    let (station, _) = app.state.fuel_stations.load("1").await.unwrap();
    // The seeded ANTICIPO of 500000, ours, and the advances.
    assert_eq!(station.version(), RECENT_CHANGES_REMEMBERED as u64 + 4);
    let before: i64 = (0..RECENT_CHANGES_REMEMBERED as i64 + 2)
        .map(|n| 1000 + n)
        .sum::<i64>()
        + 777
        + 500_000;
    assert_eq!(saldo(&app).await, before);

    // Forgotten by the station: decided on the read model's record.
    let operador = app.operador();
    let (status, corrected) = app
        .call(
            Method::PUT,
            &format!("/api/tanqueos/{oldest}"),
            Some(&operador),
            Some(r#"{"valor_anticipo":700}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{corrected}");
    assert_eq!(corrected["valor_anticipo"], 700);
    assert_eq!(saldo(&app).await, before - 77);
    let (status, voided) = app
        .post(
            &format!("/api/tanqueos/{oldest}/anular"),
            r#"{"motivo":"Duplicado"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{voided}");
    assert_eq!(saldo(&app).await, before - 777);
    let (status, again) = app
        .post(
            &format!("/api/tanqueos/{oldest}/anular"),
            r#"{"motivo":"Duplicado"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // After a restart the station loads from its small snapshot, and the next oldest record is
    // voided the same way.
    let app = app.restart().await;
    let snapshot = app
        .state
        .log
        .load_snapshot(
            "fuel-station",
            "1",
            FuelStation::SNAPSHOT_VERSION,
            SnapshotBound::Latest,
        )
        .await
        .unwrap()
        .expect("a snapshot of the long station");
    assert!(
        snapshot.state.len() < 100_000,
        "{} bytes",
        snapshot.state.len()
    );
    let (status, voided) = app
        .post(
            &format!("/api/tanqueos/{}/anular", oldest + 1),
            r#"{"motivo":"Error"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{voided}");
    assert_eq!(saldo(&app).await, before - 777 - 1000);
    reads_back(&app, &app.state.fuel_stations, "1").await;
}
