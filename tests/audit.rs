//! Audit queries: a subject's history and its state at any past instant, what one user did,
//! the feed's filters and the live feed (Server-Sent Events) with resumption.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use common::{Backend, TestApp};
use fleet_ledger::auth::Role;
use fleet_ledger::store::StoredEvent;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use tower::ServiceExt;

on_both_stores!(
    a_subject_s_events_are_its_stream_s_events_about_it_in_order,
    a_subject_s_events_page_like_the_feed,
    a_subject_s_state_is_folded_from_its_events,
    a_subject_has_no_state_before_its_first_event,
    an_unknown_subject_is_a_clear_4xx,
    an_operador_cannot_audit,
    an_actor_s_events_are_everything_they_did_in_order,
    the_feed_filters_by_event_type_and_stream,
    the_feed_refuses_unknown_types_and_streams,
    the_live_feed_catches_up_then_follows,
    the_live_feed_resumes_after_last_event_id_losing_and_repeating_nothing,
    as_of_equals_the_state_answered_live_at_that_instant,
    the_actor_query_reads_the_actor_index,
    registries_and_check_results_are_subjects_too,
);

fn auditor(app: &TestApp) -> String {
    app.token(Role::Auditor)
}

async fn audit(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let token = auditor(app);
    app.call(Method::GET, path, Some(&token), None).await
}

/// Every event of the log, as the store holds it.
async fn log(app: &TestApp) -> Vec<StoredEvent> {
    app.state.log.read_all(0, 100_000).await.unwrap()
}

fn as_json(events: &[&StoredEvent]) -> Value {
    serde_json::to_value(events).unwrap()
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Vehicle 1 registered, updated, given a mission, deleted; vehicle 2 on another plate.
async fn vehicle_history(app: &TestApp) {
    app.seed_fleet().await;
    for (method, path, body) in [
        (
            Method::PUT,
            "/vehiculo/1",
            r#"{"marca":"Toyota","color":"Rojo"}"#,
        ),
        (
            Method::POST,
            "/api/misiones/1/cancelar",
            r#"{"motivo":"Lluvia"}"#,
        ),
        (
            Method::POST,
            "/vehiculo",
            r#"{"placa":"XYZ987","idClaseVehiculo":1,"idEstadoVehiculo":1}"#,
        ),
        (Method::DELETE, "/vehiculo/1", ""),
    ] {
        let token = app.operador();
        let body = (!body.is_empty()).then_some(body);
        let (status, answer) = app.call(method.clone(), path, Some(&token), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
}

async fn a_subject_s_events_are_its_stream_s_events_about_it_in_order(app: TestApp) {
    vehicle_history(&app).await;
    let events = log(&app).await;
    let head = events.last().unwrap().position;
    let about_vehicle_1: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.stream_type == "fleet" && e.payload["vehicle_id"] == 1)
        .collect();
    let types: Vec<&str> = about_vehicle_1
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "VehicleSynced",
            "MissionScheduled",
            "VehicleUpdated",
            "MissionCancelled",
            "VehicleDeleted"
        ]
    );
    let (status, body) = audit(&app, "/api/auditoria/vehiculo/1/eventos").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "tipo": "vehiculo",
            "id": "1",
            "data": as_json(&about_vehicle_1),
            "desde_posicion": 1,
            "limite": 100,
            "siguiente_posicion": head + 1,
            "ultima_posicion": head,
        })
    );
    // Each event says who caused it and in answer to what.
    let deleted = &body["data"][4];
    assert_eq!(deleted["metadata"]["actor"], "ana@flota.co");
    assert!(deleted["metadata"]["request_id"].is_string(), "{deleted}");
    assert_eq!(deleted["schema_version"], 1);
    assert_eq!(
        deleted["payload"],
        json!({ "vehicle_id": 1, "placa": "ABC123" })
    );

    // A station's subject is its whole stream.
    let station: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.stream_type == "fuel-station" && e.stream_id == "1")
        .collect();
    let (_, body) = audit(&app, "/api/auditoria/bomba/1/eventos").await;
    assert_eq!(body["data"], as_json(&station));
    assert_eq!(body["data"][0]["event_type"], "AnticipoPaid");
}

async fn a_subject_s_events_page_like_the_feed(app: TestApp) {
    vehicle_history(&app).await;
    let events = log(&app).await;
    let head = events.last().unwrap().position;
    let positions: Vec<i64> = events
        .iter()
        .filter(|e| e.stream_type == "fleet" && e.payload["vehicle_id"] == 1)
        .map(|e| e.position)
        .collect();
    let mut seen = Vec::new();
    let mut desde = 1;
    loop {
        let (status, page) = audit(
            &app,
            &format!("/api/auditoria/vehiculo/1/eventos?desde_posicion={desde}&limite=2"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let got: Vec<i64> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect();
        let next = page["siguiente_posicion"].as_i64().unwrap();
        if got.len() == 2 {
            assert_eq!(next, got[1] + 1);
        } else {
            assert_eq!(next, head + 1, "a short page has read up to the head");
        }
        seen.extend(got);
        if next > head {
            break;
        }
        desde = next;
    }
    assert_eq!(seen, positions);
    let (status, body) = audit(&app, "/api/auditoria/vehiculo/1/eventos?limite=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "limite debe ser un entero entre 1 y 1000" })
    );
}

async fn a_subject_s_state_is_folded_from_its_events(app: TestApp) {
    vehicle_history(&app).await;
    let events = log(&app).await;
    let last_about_1 = events
        .iter()
        .rfind(|e| e.stream_type == "fleet" && e.payload["vehicle_id"] == 1)
        .unwrap();
    let fleet_version = events
        .iter()
        .filter(|e| e.stream_type == "fleet")
        .map(|e| e.version)
        .max()
        .unwrap();
    let (status, body) = audit(&app, "/api/auditoria/vehiculo/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "tipo": "vehiculo",
            "id": "1",
            "as_of": null,
            "version": fleet_version,
            "ultimo_evento": {
                "position": last_about_1.position,
                "version": last_about_1.version,
                "event_type": "VehicleDeleted",
                "recorded_at": last_about_1.recorded_at,
            },
            "estado": {
                "plate_id": 1,
                "placa": "ABC123",
                "deleted": true,
                "fields": { "marca": "Toyota", "color": "Rojo" },
            },
        })
    );
    // Just before the deletion, it was live.
    let before = instant(last_about_1.recorded_at - chrono::Duration::nanoseconds(1));
    let (status, body) = audit(&app, &format!("/api/auditoria/vehiculo/1?as_of={before}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["estado"]["deleted"], false);
    assert_eq!(body["ultimo_evento"]["event_type"], "MissionCancelled");
    assert_eq!(
        body["as_of"],
        (last_about_1.recorded_at - chrono::Duration::nanoseconds(1))
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    );

    let (status, body) = audit(&app, "/api/auditoria/mision/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["estado"],
        json!({
            "vehicle_id": 1,
            "estado": "CANCELADA",
            "kilometraje_inicial": null,
            "combustible_inicial_galones": null,
        })
    );
    let (_, body) = audit(&app, "/api/auditoria/placa/2").await;
    assert_eq!(
        body["estado"],
        json!({ "placa": "XYZ987", "estado": "ACTIVADA", "vehicle_id": 2 })
    );
    let (_, body) = audit(&app, "/api/auditoria/bomba/1").await;
    assert_eq!(body["estado"]["saldo"], 500000);
    assert_eq!(body["estado"]["permitir_saldo_negativo"], Value::Null);
    let (_, body) = audit(&app, "/api/auditoria/catalogo/clases-vehiculo").await;
    assert_eq!(
        body["estado"],
        json!({ "names": ["Pick-up", "Sedán", "Camión", "Bus", "Motocicleta", "Camioneta"] })
    );
}

async fn a_subject_has_no_state_before_its_first_event(app: TestApp) {
    vehicle_history(&app).await;
    let events = log(&app).await;
    let synced = events
        .iter()
        .find(|e| e.event_type == "VehicleSynced")
        .unwrap();
    let before = synced.recorded_at - chrono::Duration::nanoseconds(1);
    let (status, body) = audit(
        &app,
        &format!("/api/auditoria/vehiculo/1?as_of={}", instant(before)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({ "error": format!(
            "No hay eventos de vehiculo/1 hasta {}",
            before.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ) })
    );
    let (status, body) = audit(&app, "/api/auditoria/vehiculo/9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "error": "No hay eventos de vehiculo/9" }));
    // A date is the end of that day in the service's zone.
    let (status, body) = audit(&app, "/api/auditoria/bomba/1?as_of=2000-01-01").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({ "error": "No hay eventos de bomba/1 hasta 2000-01-02T04:59:59.999999999Z" })
    );
}

async fn an_unknown_subject_is_a_clear_4xx(app: TestApp) {
    app.seed_fleet().await;
    for (path, status, error) in [
        (
            "/api/auditoria/camion/1",
            StatusCode::NOT_FOUND,
            "Invalid value for tipo: camion; accepted values: bomba, placa, vehiculo, mision, catalogo, area, conductor, registro-bomba, verificacion",
        ),
        (
            "/api/auditoria/camion/1/eventos",
            StatusCode::NOT_FOUND,
            "Invalid value for tipo: camion; accepted values: bomba, placa, vehiculo, mision, catalogo, area, conductor, registro-bomba, verificacion",
        ),
        (
            "/api/auditoria/vehiculo/abc",
            StatusCode::BAD_REQUEST,
            "Invalid value for id: abc (expected a positive integer)",
        ),
        (
            "/api/auditoria/verificacion/abc-123",
            StatusCode::BAD_REQUEST,
            "Invalid value for id: abc-123 (expected VIN-PLATE, uppercase letters and digits)",
        ),
        (
            "/api/auditoria/verificacion/3VWFE21C04M000001/eventos",
            StatusCode::BAD_REQUEST,
            "Invalid value for id: 3VWFE21C04M000001 (expected VIN-PLATE, uppercase letters and digits)",
        ),
        (
            "/api/auditoria/catalogo/colores/eventos",
            StatusCode::NOT_FOUND,
            "Invalid value for id: colores (expected a catalogue)",
        ),
        (
            "/api/auditoria/vehiculo/1?as_of=ayer",
            StatusCode::BAD_REQUEST,
            "Invalid value for as_of: ayer (expected an RFC 3339 instant or YYYY-MM-DD)",
        ),
    ] {
        let (got, body) = audit(&app, path).await;
        assert_eq!((got, body), (status, json!({ "error": error })), "{path}");
    }
}

async fn an_operador_cannot_audit(app: TestApp) {
    app.seed_fleet().await;
    let head = app.state.log.head().await.unwrap();
    for path in [
        "/api/auditoria/vehiculo/1/eventos",
        "/api/auditoria/vehiculo/1",
        "/api/auditoria/actores/ana@flota.co/eventos",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body, json!({ "error": "Permiso denegado" }), "{path}");
        let token = app.token(Role::Admin);
        let (status, _) = app.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{path} as admin");
    }
    assert_eq!(app.state.log.head().await.unwrap(), head);
}

async fn an_actor_s_events_are_everything_they_did_in_order(app: TestApp) {
    app.seed_fleet().await;
    let luis = app
        .keys
        .issue("luis@flota.co", &[Role::Admin], Duration::from_secs(600));
    let mut luis_did = Vec::new();
    for (path, body) in [
        ("/api/placas", r#"{"placa":"LUI001"}"#),
        ("/api/areas-operacion", r#"{"nombre":"Sur"}"#),
        ("/api/placas", r#"{"placa":"LUI002"}"#),
    ] {
        let (status, answer) = app.call(Method::POST, path, Some(&luis), Some(body)).await;
        assert!(status.is_success(), "{path}: {answer}");
        luis_did.push(app.state.log.head().await.unwrap());
        // Ana writes in between.
        app.post("/api/conductores", r#"{"conductor":"Otro"}"#)
            .await;
    }
    let events = log(&app).await;
    let head = events.last().unwrap().position;
    let by_luis: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.metadata.actor.as_deref() == Some("luis@flota.co"))
        .collect();
    assert_eq!(
        by_luis.iter().map(|e| e.position).collect::<Vec<_>>(),
        luis_did
    );
    let (status, body) = audit(&app, "/api/auditoria/actores/luis@flota.co/eventos").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "actor": "luis@flota.co",
            "desde": null,
            "hasta": null,
            "data": as_json(&by_luis),
            "desde_posicion": 1,
            "limite": 100,
            "siguiente_posicion": head + 1,
            "ultima_posicion": head,
        })
    );

    // A type, and a time range (both ends included).
    let (_, body) = audit(
        &app,
        "/api/auditoria/actores/luis@flota.co/eventos?tipos=plateregistered",
    )
    .await;
    assert_eq!(body["data"], as_json(&[by_luis[0], by_luis[2]]));
    let desde = instant(by_luis[1].recorded_at);
    let hasta = instant(by_luis[2].recorded_at);
    let (_, body) = audit(
        &app,
        &format!("/api/auditoria/actores/luis@flota.co/eventos?desde={desde}&hasta={hasta}"),
    )
    .await;
    assert_eq!(body["data"], as_json(&[by_luis[1], by_luis[2]]));
    assert_eq!(
        body["desde"],
        by_luis[1]
            .recorded_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    );
    let (_, body) = audit(
        &app,
        &format!("/api/auditoria/actores/luis@flota.co/eventos?hasta={desde}&limite=1"),
    )
    .await;
    assert_eq!(body["data"], as_json(&[by_luis[0]]));
    assert_eq!(body["siguiente_posicion"], by_luis[0].position + 1);

    let (_, body) = audit(&app, "/api/auditoria/actores/nadie/eventos").await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = audit(
        &app,
        "/api/auditoria/actores/luis@flota.co/eventos?desde=2024-03-02&hasta=2024-03-01",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "Invalid range: desde is after hasta" })
    );
}

async fn the_feed_filters_by_event_type_and_stream(app: TestApp) {
    vehicle_history(&app).await;
    let events = log(&app).await;
    let head = events.last().unwrap().position;
    let select = |keep: &dyn Fn(&StoredEvent) -> bool| -> Value {
        as_json(&events.iter().filter(|e| keep(e)).collect::<Vec<_>>())
    };
    let (status, body) = app
        .get("/api/eventos?tipos=VehicleDeleted,vehicleupdated")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "data": select(&|e| e.event_type == "VehicleDeleted" || e.event_type == "VehicleUpdated"),
            "desde_posicion": 1,
            "limite": 100,
            "siguiente_posicion": head + 1,
            "ultima_posicion": head,
        })
    );
    let (_, body) = app.get("/api/eventos?stream=fuel-station/1").await;
    assert_eq!(
        body["data"],
        select(&|e| e.stream_type == "fuel-station" && e.stream_id == "1")
    );
    let (_, body) = app.get("/api/eventos?stream=catalog&limite=1000").await;
    assert_eq!(body["data"], select(&|e| e.stream_type == "catalog"));
    let (_, body) = app
        .get("/api/eventos?stream=fleet/main&tipos=PlateRegistered")
        .await;
    assert_eq!(
        body["data"],
        select(&|e| e.stream_type == "fleet" && e.event_type == "PlateRegistered")
    );
}

async fn the_feed_refuses_unknown_types_and_streams(app: TestApp) {
    let (status, body) = app.get("/api/eventos?tipos=VehicleDeleted,Tanqueo").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Invalid value for tipos: Tanqueo; accepted values: PlateRegistered, "),
        "{error}"
    );
    let (status, body) = app.get("/api/eventos?tipos=,,").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "Invalid value for tipos: expected a comma-separated list of values" })
    );
    let (status, body) = app.get("/api/eventos?stream=vehiculos/1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "Invalid value for stream: vehiculos/1; accepted stream types: fleet, \
            fuel-station, fuel-record-ids, auto-inspecao, operation-areas, drivers, stations, \
            catalog, vehicle-checks, alerta" })
    );
    let (status, body) = app.get("/api/eventos?stream=fleet/").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "Invalid value for stream: fleet/ (expected TYPE or TYPE/ID, the id at \
            most 128 characters without control characters)" })
    );
    // A NUL (which PostgreSQL refuses in text) is bad input, not a server error.
    let (status, body) = app.get("/api/eventos?stream=fleet/ma%00in").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = audit(&app, "/api/auditoria/actores/ana%00/eventos").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({ "error": "Invalid value for sub: expected 1 to 256 characters without control \
            characters" })
    );
    let (status, body) = app.get("/api/eventos/stream?tipos=Nada").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let request = Request::builder()
        .uri("/api/eventos/stream")
        .header("authorization", format!("Bearer {}", app.operador()))
        .header("last-event-id", "siete")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "Last-Event-ID debe ser una posición: un entero mayor o igual a 0" })
    );
}

/// A client of the live feed: reads the body frame by frame, as a browser's EventSource does.
struct Subscriber {
    body: Body,
    pending: String,
}

/// One event of the live feed: `id:`, `event:` and the parsed `data:`.
#[derive(Debug)]
struct Received {
    id: i64,
    event: String,
    data: Value,
}

impl Subscriber {
    async fn connect(app: &TestApp, query: &str, last_event_id: Option<i64>) -> Self {
        let mut request = Request::builder()
            .uri(format!("/api/eventos/stream{query}"))
            .header("authorization", format!("Bearer {}", auditor(app)));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.into_body(),
            pending: String::new(),
        }
    }

    /// The next event, or `None` if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Received> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut received = Received {
                    id: 0,
                    event: String::new(),
                    data: Value::Null,
                };
                let mut is_event = false;
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        received.id = id.parse().unwrap();
                        is_event = true;
                    } else if let Some(event) = line.strip_prefix("event: ") {
                        received.event = event.to_string();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        received.data = serde_json::from_str(data).unwrap();
                    }
                }
                if is_event {
                    return Some(received);
                }
                continue;
            }
            let frame = tokio::time::timeout(wait, self.body.frame()).await.ok()??;
            let frame = frame.unwrap();
            if let Some(bytes) = frame.data_ref() {
                self.pending.push_str(std::str::from_utf8(bytes).unwrap());
            }
        }
    }
}

async fn the_live_feed_catches_up_then_follows(app: TestApp) {
    app.seed_fleet().await;
    let events = log(&app).await;
    let mut subscriber = Subscriber::connect(&app, "?desde_posicion=1", None).await;
    for expected in &events {
        let received = subscriber.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(received.id, expected.position);
        assert_eq!(received.event, expected.event_type);
        assert_eq!(received.data, serde_json::to_value(expected).unwrap());
    }
    assert!(subscriber.next(Duration::from_millis(200)).await.is_none());
    // Then each new event as it commits, filtered like the feed.
    let mut stations = Subscriber::connect(&app, "?stream=fuel-station", None).await;
    let first = stations.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.event, "AnticipoPaid");
    app.post(
        "/api/tanqueos",
        r#"{"fecha":"2024-03-16","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":1000}"#,
    )
    .await;
    let live = subscriber.next(Duration::from_secs(10)).await.unwrap();
    let last = log(&app).await.pop().unwrap();
    assert_eq!(live.id, last.position);
    assert_eq!(live.data, serde_json::to_value(&last).unwrap());
    let live_station = stations.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(live_station.id, last.position);
}

async fn the_live_feed_resumes_after_last_event_id_losing_and_repeating_nothing(app: TestApp) {
    app.seed_fleet().await;
    let mut seen = Vec::new();
    let mut subscriber = Subscriber::connect(&app, "", None).await;
    for _ in 0..5 {
        seen.push(subscriber.next(Duration::from_secs(10)).await.unwrap().id);
    }
    drop(subscriber);
    // Written while the client is away.
    for n in 0..3 {
        app.post("/api/placas", &format!(r#"{{"placa":"RES{n:03}"}}"#))
            .await;
    }
    let last = *seen.last().unwrap();
    // `desde_posicion` is ignored when a Last-Event-ID says where the client is.
    let mut subscriber = Subscriber::connect(&app, "?desde_posicion=1", Some(last)).await;
    let head = app.state.log.head().await.unwrap();
    while seen.last() != Some(&head) {
        seen.push(subscriber.next(Duration::from_secs(10)).await.unwrap().id);
    }
    assert_eq!(seen, (1..=head).collect::<Vec<_>>());
    assert!(subscriber.next(Duration::from_millis(200)).await.is_none());
}

/// One step of a random history of station 1 and vehicle 1, as a user would send it.
#[derive(Debug, Clone)]
enum Op {
    Anticipo(u32),
    Tanqueo(u32),
    Correct { id: i64, valor: u32 },
    Void { id: i64 },
    Policy(bool),
    UpdateVehicle { kilometraje: u32 },
    DeleteVehicle,
    RecreateVehicle,
    Mission,
    StartMission { id: i64 },
    CompleteMission { id: i64, kilometraje: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..1_000_000).prop_map(Op::Anticipo),
        3 => (1u32..1_000_000).prop_map(Op::Tanqueo),
        1 => (1i64..8, 1u32..1_000_000).prop_map(|(id, valor)| Op::Correct { id, valor }),
        1 => (1i64..8).prop_map(|id| Op::Void { id }),
        1 => any::<bool>().prop_map(Op::Policy),
        2 => (1u32..100_000).prop_map(|kilometraje| Op::UpdateVehicle { kilometraje }),
        1 => Just(Op::DeleteVehicle),
        1 => Just(Op::RecreateVehicle),
        1 => Just(Op::Mission),
        1 => (1i64..4).prop_map(|id| Op::StartMission { id }),
        1 => (1i64..4, 1u32..100_000)
            .prop_map(|(id, kilometraje)| Op::CompleteMission { id, kilometraje }),
    ]
}

fn request(op: &Op) -> (Method, String, Option<String>) {
    let post = |path: &str, body: String| (Method::POST, path.to_string(), Some(body));
    match op {
        Op::Anticipo(valor) => post(
            "/api/tanqueos",
            format!(
                r#"{{"fecha":"2024-03-15","bomba_id":2,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{valor}}}"#
            ),
        ),
        Op::Tanqueo(valor) => post(
            "/api/tanqueos",
            format!(
                r#"{{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":2,"area_operacion_id":1,"valor_tanqueo":{valor},"cantidad_galones":10}}"#
            ),
        ),
        Op::Correct { id, valor } => (
            Method::PUT,
            format!("/api/tanqueos/{id}"),
            Some(format!(r#"{{"valor_anticipo":{valor}}}"#)),
        ),
        Op::Void { id } => post(
            &format!("/api/tanqueos/{id}/anular"),
            r#"{"motivo":"x"}"#.to_string(),
        ),
        Op::Policy(permitir) => (
            Method::PATCH,
            "/api/bombas/2".to_string(),
            Some(format!(r#"{{"permitir_saldo_negativo":{permitir}}}"#)),
        ),
        Op::UpdateVehicle { kilometraje } => (
            Method::PUT,
            "/vehiculo/1".to_string(),
            Some(format!(r#"{{"kilometrajeActual":{kilometraje}}}"#)),
        ),
        Op::DeleteVehicle => (Method::DELETE, "/vehiculo/1".to_string(), None),
        Op::RecreateVehicle => post(
            "/vehiculo",
            r#"{"placa":"ABC123","idClaseVehiculo":2,"idEstadoVehiculo":1}"#.to_string(),
        ),
        Op::Mission => post(
            "/api/misiones",
            r#"{"vehiculo_id":1,"conductor_id":1,"descripcion":"Ruta","fecha_programada":"2026-03-01"}"#
                .to_string(),
        ),
        Op::StartMission { id } => post(
            &format!("/api/misiones/{id}/iniciar"),
            r#"{"kilometraje_inicial":10,"combustible_inicial_galones":5}"#.to_string(),
        ),
        Op::CompleteMission { id, kilometraje } => post(
            &format!("/api/misiones/{id}/finalizar"),
            format!(r#"{{"kilometraje_final":{kilometraje},"combustible_final_galones":1}}"#),
        ),
    }
}

const SUBJECTS: [&str; 2] = ["/api/auditoria/bomba/2", "/api/auditoria/vehiculo/1"];

/// `(the state now, or None before the first event)` of each of [`SUBJECTS`].
async fn states_now(app: &TestApp, as_of: Option<&str>) -> Vec<Option<Value>> {
    let mut states = Vec::new();
    for subject in SUBJECTS {
        let path = match as_of {
            Some(as_of) => format!("{subject}?as_of={as_of}"),
            None => subject.to_string(),
        };
        let (status, body) = audit(app, &path).await;
        match status {
            StatusCode::OK => states.push(Some(body["estado"].clone())),
            StatusCode::NOT_FOUND => states.push(None),
            other => panic!("{path}: {other} {body}"),
        }
    }
    states
}

async fn check_history(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let app = TestApp::start(backend).await.expect("a fresh store");
    app.seed_fleet().await;
    // (an instant, the states answered live just before it)
    let mut checkpoints = vec![(Utc::now(), states_now(&app, None).await)];
    for op in &ops {
        let (method, path, body) = request(op);
        // Refusals (an unknown id, an overdraft of the strict station, a deleted vehicle's
        // mission) are part of a realistic history too.
        let token = app.operador();
        app.call(method, &path, Some(&token), body.as_deref()).await;
        let states = states_now(&app, None).await;
        checkpoints.push((Utc::now(), states));
    }
    for (at, live) in &checkpoints {
        let then = states_now(&app, Some(&instant(*at))).await;
        prop_assert_eq!(&then, live, "as_of {}", instant(*at));
    }
    app.state.shutdown().await;
    Ok(())
}

async fn as_of_equals_the_state_answered_live_at_that_instant(app: TestApp) {
    let backend = app.backend;
    app.state.shutdown().await;
    let outcome = common::run_property(6, &proptest::collection::vec(op(), 1..16), async |ops| {
        check_history(backend, ops).await
    });
    outcome.unwrap();
}

/// The plan of the actor query, on the store the test runs on, names the actor index.
async fn the_actor_query_reads_the_actor_index(app: TestApp) {
    app.seed_fleet().await;
    let plan = fleet_ledger::audit::explain_actor_query(app.state.log.as_ref())
        .await
        .unwrap();
    assert!(plan.contains("events_by_actor"), "{plan}");
}

/// Areas, drivers, registered stations and a vehicle's check results have their history and
/// their state at any instant like every other subject.
async fn registries_and_check_results_are_subjects_too(app: TestApp) {
    app.seed_fleet().await;
    let admin = app.token(Role::Admin);
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/bombas/2",
            Some(&admin),
            Some(r#"{"bomba":"Estricta Norte"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = audit(&app, "/api/auditoria/registro-bomba/2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["estado"],
        json!({ "id": 2, "bomba": "Estricta Norte", "area_operacion_id": 1, "permitir_saldo_negativo": false })
    );
    assert_eq!(body["ultimo_evento"]["event_type"], "StationUpdated");
    // Before the PATCH, the registration as it was.
    let updated = body["ultimo_evento"]["recorded_at"]
        .as_str()
        .unwrap()
        .to_string();
    let before =
        DateTime::parse_from_rfc3339(&updated).unwrap().to_utc() - chrono::Duration::nanoseconds(1);
    let (_, earlier) = audit(
        &app,
        &format!("/api/auditoria/registro-bomba/2?as_of={}", instant(before)),
    )
    .await;
    assert_eq!(earlier["estado"]["bomba"], "Estricta");
    let (_, events) = audit(&app, "/api/auditoria/registro-bomba/2/eventos").await;
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["StationRegistered", "StationUpdated"]);

    let (_, area) = audit(&app, "/api/auditoria/area/1").await;
    assert_eq!(area["estado"], json!({ "id": 1, "nombre": "Logística" }));
    let (_, driver) = audit(&app, "/api/auditoria/conductor/1").await;
    assert_eq!(driver["estado"]["id"], 1);
    assert_eq!(driver["estado"]["area_principal"], 1);
    let (status, _) = audit(&app, "/api/auditoria/conductor/9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Two results of resource 12, one of resource 7: the latest of each, in resource order.
    for (resource, status) in [(12, "Pending"), (7, "Completed"), (12, "Completed")] {
        let body = format!(
            r#"{{"vin":"3VWFE21C04M000001","plate":"JAL1234","resourceId":{resource},"status":"{status}","result":[],"creationDateTime":"2024-03-01T10:00:00.000Z"}}"#
        );
        let (got, answer) = app.post("/api/scraping/resultados", &body).await;
        assert_eq!(got, StatusCode::CREATED, "{answer}");
    }
    let (status, checks) = audit(
        &app,
        "/api/auditoria/verificacion/3VWFE21C04M000001-JAL1234",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{checks}");
    assert_eq!(checks["version"], 3);
    let latest: Vec<(i64, &str)> = checks["estado"]["resultados"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resource_id"].as_i64().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(latest, [(7, "Completed"), (12, "Completed")]);
    let (status, _) = audit(&app, "/api/auditoria/verificacion/3VWFE21C04M000001-OTHER1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
