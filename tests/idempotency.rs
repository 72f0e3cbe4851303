//! Idempotency-Key (Stripe's semantics): a write retried with its key is answered what it was
//! answered the first time, byte for byte, and appends nothing, whatever died in between.

mod common;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{TimeDelta, Utc};
use common::{Backend, TestApp};
use fleet_ledger::auth::Role;
use serde_json::{json, Value};
use sqlx::Connection;

on_both_stores!(
    a_retried_refuel_replays_its_answer_and_appends_nothing,
    a_key_reused_with_another_request_is_422,
    concurrent_requests_with_one_key_append_once,
    keys_belong_to_their_actor,
    refusals_are_replayed_even_once_the_request_would_pass,
    vehiculo_answers_are_replayed_in_their_envelope_byte_for_byte,
    keys_expire_after_24_hours,
    a_crash_between_commit_and_answer_does_not_double,
    two_instances_given_one_key_commit_once,
    keys_are_only_read_on_writes_and_must_be_short_text,
);

const REUSED: &str = r#"{"error":"Idempotency-Key reutilizada con otro cuerpo"}"#;
const IN_FLIGHT: &str = r#"{"error":"Solicitud en curso con la misma Idempotency-Key"}"#;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn replayed(&self) -> bool {
        self.headers
            .get("idempotency-replayed")
            .is_some_and(|v| v == "true")
    }
}

async fn send_to(
    router: &Router,
    token: &str,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let (status, headers, body) = common::respond(router, request).await;
    Answer {
        status,
        headers,
        body,
    }
}

async fn keyed(app: &TestApp, method: Method, path: &str, key: &str, body: &str) -> Answer {
    let token = app.operador();
    send_to(&app.router, &token, method, path, Some(key), Some(body)).await
}

/// `POST /api/areas-operacion {"nombre": nombre}` under `key`.
async fn new_area(app: &TestApp, key: &str, nombre: &str) -> Answer {
    let body = json!({ "nombre": nombre }).to_string();
    keyed(app, Method::POST, "/api/areas-operacion", key, &body).await
}

async fn head(app: &TestApp) -> i64 {
    app.state.log.head().await.expect("the head")
}

/// Area 1, a station that allows overdraft (1) and one that does not (2), plate 1, driver 1.
async fn setup(app: &TestApp) {
    for (path, body) in [
        ("/api/areas-operacion", json!({ "nombre": "Logística" })),
        (
            "/api/bombas",
            json!([
                { "bomba": "Norte", "area_operacion_id": 1 },
                { "bomba": "Sur", "area_operacion_id": 1, "permitir_saldo_negativo": false }
            ]),
        ),
        ("/api/placas", json!({ "placa": "ABC123" })),
        ("/api/conductores", json!({ "conductor": "Juan Pérez" })),
    ] {
        let (status, answer) = app.post(path, &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
}

fn refuel(bomba_id: i64, valor: i64) -> String {
    json!({"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":bomba_id,
        "area_operacion_id":1,"valor_tanqueo":valor,"cantidad_galones":10})
    .to_string()
}

/// `POST /api/tanqueos` of [`refuel`] under `key`.
async fn new_refuel(app: &TestApp, key: &str, bomba_id: i64, valor: i64) -> Answer {
    refuel_via(
        app.router.clone(),
        app.operador(),
        key,
        refuel(bomba_id, valor),
    )
    .await
}

/// `POST /api/tanqueos` of `body` under `key`, through `router` (an instance of the service).
async fn refuel_via(router: Router, token: String, key: &str, body: String) -> Answer {
    let path = "/api/tanqueos";
    send_to(&router, &token, Method::POST, path, Some(key), Some(&body)).await
}

async fn records(app: &TestApp) -> Vec<Value> {
    let (status, page) = app.get("/api/tanqueos?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn a_retried_refuel_replays_its_answer_and_appends_nothing(app: TestApp) {
    setup(&app).await;
    let first = new_refuel(&app, "k-1", 1, 150000).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed());
    let head_after_first = head(&app).await;

    let retry = new_refuel(&app, "k-1", 1, 150000).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
    assert!(retry.replayed());
    assert_eq!(
        retry.headers.get("content-type"),
        first.headers.get("content-type")
    );
    assert_eq!(head(&app).await, head_after_first);
    assert_eq!(records(&app).await.len(), 1);

    // A new key is a new refuel, and a request without one behaves as it always did.
    let other = new_refuel(&app, "k-2", 1, 150000).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json()["id"], first.json()["id"]);
    let (status, _) = app.post("/api/tanqueos", &refuel(1, 150000)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(records(&app).await.len(), 3);
}

async fn a_key_reused_with_another_request_is_422(app: TestApp) {
    let first = new_area(&app, "k", "Norte").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let head_after_first = head(&app).await;

    let other_body = new_area(&app, "k", "Sur").await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(&other_body.body[..], REUSED.as_bytes());
    assert!(!other_body.replayed());

    // The same body on another endpoint is another request too.
    let other_path = keyed(
        &app,
        Method::POST,
        "/api/conductores",
        "k",
        r#"{"nombre":"Norte"}"#,
    )
    .await;
    assert_eq!(other_path.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(&other_path.body[..], REUSED.as_bytes());
    assert_eq!(head(&app).await, head_after_first);

    // On /vehiculo, in that family's envelope.
    let vehicle = r#"{"placa":"P503067","idClaseVehiculo":1,"idEstadoVehiculo":1}"#;
    let created = keyed(&app, Method::POST, "/vehiculo", "v", vehicle).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let changed = vehicle.replace("P503067", "P503068");
    let refused = keyed(&app, Method::POST, "/vehiculo", "v", &changed).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let envelope = refused.json();
    assert_eq!(envelope["success"], false);
    assert_eq!(
        envelope["message"],
        "Idempotency-Key reutilizada con otro cuerpo"
    );
    assert!(envelope["timestamp"].is_string());
    assert_eq!(envelope.as_object().map(|o| o.len()), Some(3));
}

async fn concurrent_requests_with_one_key_append_once(app: TestApp) {
    setup(&app).await;
    let head_before = head(&app).await;
    let token = app.operador();
    let answers = futures_util::future::join_all(
        (0..8).map(|_| refuel_via(app.router.clone(), token.clone(), "same", refuel(1, 99000))),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        assert_eq!(answer.body, answers[0].body);
    }
    assert_eq!(answers.iter().filter(|a| !a.replayed()).count(), 1);
    let listed = records(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], answers[0].json()["id"]);
    // The refuel, and at most the block of record ids it reserved.
    assert!(head(&app).await - head_before <= 2);
}

async fn keys_belong_to_their_actor(app: TestApp) {
    let ana = app.operador();
    let luis = app
        .keys
        .issue("luis@flota.co", &[Role::Operador], Duration::from_secs(600));
    let post_as = |token: String| {
        let router = app.router.clone();
        async move {
            let body = Some(r#"{"nombre":"Norte"}"#);
            let path = "/api/areas-operacion";
            send_to(&router, &token, Method::POST, path, Some("k"), body).await
        }
    };
    let from_ana = post_as(ana).await;
    let from_luis = post_as(luis.clone()).await;
    assert_eq!(from_ana.status, StatusCode::CREATED);
    assert_eq!(from_luis.status, StatusCode::CREATED);
    assert!(!from_luis.replayed());
    assert_eq!(from_ana.json(), json!({"id":1,"nombre":"Norte"}));
    assert_eq!(from_luis.json(), json!({"id":2,"nombre":"Norte"}));
    // Each replays their own.
    let again = post_as(luis).await;
    assert!(again.replayed());
    assert_eq!(again.body, from_luis.body);
}

async fn refusals_are_replayed_even_once_the_request_would_pass(app: TestApp) {
    setup(&app).await;
    let refused = new_refuel(&app, "k", 2, 50000).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    let advance = json!({"fecha":"2024-03-01","bomba_id":2,"area_operacion_id":1,
        "tipo_operacion":"ANTICIPO","valor_anticipo":100000});
    let (status, answer) = app.post("/api/tanqueos", &advance.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let head_before = head(&app).await;

    let retry = new_refuel(&app, "k", 2, 50000).await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    assert_eq!(retry.body, refused.body);
    assert!(retry.replayed());
    assert_eq!(head(&app).await, head_before);

    // On /vehiculo too, in its envelope.
    let missing = keyed(&app, Method::DELETE, "/vehiculo/999", "d", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = keyed(&app, Method::DELETE, "/vehiculo/999", "d", "").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.body, missing.body);
    assert!(again.replayed());
}

async fn vehiculo_answers_are_replayed_in_their_envelope_byte_for_byte(app: TestApp) {
    let vehicle = r#"{"placa":"p 503067","idClaseVehiculo":1,"idEstadoVehiculo":1}"#;
    let created = keyed(&app, Method::POST, "/vehiculo", "v", vehicle).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["message"], "Vehículo creado exitosamente");
    let head_after = head(&app).await;
    // A second apart, so a body built anew would carry another timestamp.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = keyed(&app, Method::POST, "/vehiculo", "v", vehicle).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, created.body);
    assert!(again.replayed());

    let update = r#"{"kilometrajeActual":120000}"#;
    let updated = keyed(&app, Method::PUT, "/vehiculo/1", "u", update).await;
    assert_eq!(updated.status, StatusCode::OK);
    let deleted = keyed(&app, Method::DELETE, "/vehiculo/1", "d", "").await;
    assert_eq!(deleted.status, StatusCode::OK);
    let head_after = head_after.max(head(&app).await);
    for (method, key, body, first) in [
        (Method::PUT, "u", update, &updated),
        (Method::DELETE, "d", "", &deleted),
    ] {
        let again = keyed(&app, method, "/vehiculo/1", key, body).await;
        assert_eq!(again.status, first.status);
        assert_eq!(again.body, first.body);
        assert!(again.replayed());
    }
    assert_eq!(head(&app).await, head_after);
}

async fn keys_expire_after_24_hours(app: TestApp) {
    let first = new_area(&app, "k", "Norte").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let now = Utc::now();
    let idempotency = &app.state.idempotency;
    assert_eq!(
        idempotency.sweep(now + TimeDelta::hours(23)).await.unwrap(),
        0
    );
    let reused = new_area(&app, "k", "Sur").await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(
        idempotency.sweep(now + TimeDelta::hours(25)).await.unwrap(),
        1
    );
    let anew = new_area(&app, "k", "Sur").await;
    assert_eq!(anew.status, StatusCode::CREATED);
    assert!(!anew.replayed());
    assert_eq!(anew.json(), json!({"id":2,"nombre":"Sur"}));
    // The key's new use replays its own answer, not the first one's.
    let again = new_area(&app, "k", "Sur").await;
    assert!(again.replayed());
    assert_eq!(again.body, anew.body);
}

/// Drops every kept answer, leaving the claims the appends wrote with their events: the state a
/// process leaves when it dies between committing a request's events and keeping its answer.
async fn forget_answers(app: &TestApp) {
    let sql = "UPDATE idempotency_keys SET status = NULL, content_type = NULL, body = NULL";
    match app.backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&app.location.log_url)
                .await
                .expect("the log's SQLite file");
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&app.location.log_url)
                .await
                .expect("the log's PostgreSQL schema");
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        }
        Backend::KurrentDb => unreachable!("a KurrentDB log keeps no Idempotency-Key records"),
    }
}

async fn a_crash_between_commit_and_answer_does_not_double(app: TestApp) {
    setup(&app).await;
    let area = new_area(&app, "a", "Sur").await;
    assert_eq!(area.status, StatusCode::CREATED);
    let first = new_refuel(&app, "t", 1, 150000).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let vehicle = r#"{"placa":"P503067","idClaseVehiculo":1,"idEstadoVehiculo":1}"#;
    let (status, _) = app.post("/vehiculo", vehicle).await;
    assert_eq!(status, StatusCode::CREATED);
    let deleted = keyed(&app, Method::DELETE, "/vehiculo/1", "d", "").await;
    assert_eq!(deleted.status, StatusCode::OK);
    forget_answers(&app).await;
    let app = app.restart().await;
    let head_before = head(&app).await;

    let area_again = new_area(&app, "a", "Sur").await;
    assert_eq!(area_again.status, StatusCode::CREATED);
    assert_eq!(area_again.body, area.body);
    assert_eq!(head(&app).await, head_before);

    let again = new_refuel(&app, "t", 1, 150000).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.json(), first.json());
    let listed = records(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], first.json()["id"]);
    let (_, areas) = app.get("/api/areas-operacion").await;
    assert_eq!(areas.as_array().map(Vec::len), Some(2));
    // Decided again, the deletion would be refused (already deleted): the retry answers what
    // the first run did instead. (The envelope is built anew: that answer was never kept.)
    let deleted_again = keyed(&app, Method::DELETE, "/vehiculo/1", "d", "").await;
    assert_eq!(
        deleted_again.status,
        StatusCode::OK,
        "{:?}",
        deleted_again.body
    );
    assert_eq!(deleted_again.json()["message"], deleted.json()["message"]);
    assert_eq!(deleted_again.json()["data"], deleted.json()["data"]);
    // The resumed answer is kept now, and replayed from here on.
    let replayed = new_refuel(&app, "t", 1, 150000).await;
    assert!(replayed.replayed());
    assert_eq!(replayed.body, again.body);
}

async fn two_instances_given_one_key_commit_once(app: TestApp) {
    setup(&app).await;
    let second = fleet_ledger::AppState::open(&app.location, app.keys.clone())
        .await
        .expect("a second instance opens on the same store");
    let second_router = fleet_ledger::app(second.clone());
    let token = app.operador();
    let send = |router: Router| refuel_via(router, token.clone(), "k", refuel(1, 77000));
    let (one, other) = tokio::join!(send(app.router.clone()), send(second_router.clone()));
    let created: Vec<&Answer> = [&one, &other]
        .into_iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert!(!created.is_empty());
    for answer in [&one, &other] {
        match answer.status {
            StatusCode::CREATED => assert_eq!(answer.json()["id"], created[0].json()["id"]),
            StatusCode::CONFLICT => assert_eq!(&answer.body[..], IN_FLIGHT.as_bytes()),
            status => panic!("unexpected {status}: {:?}", answer.body),
        }
    }
    assert_eq!(records(&app).await.len(), 1);
    // A 409 is not kept: the loser's retry gets the winner's answer.
    let retry = send(second_router).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.json()["id"], created[0].json()["id"]);
    second.shutdown().await;
}

async fn keys_are_only_read_on_writes_and_must_be_short_text(app: TestApp) {
    let refused = new_area(&app, &"x".repeat(256), "N").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        &refused.body[..],
        br#"{"error":"Idempotency-Key debe ser texto de 1 a 255 caracteres"}"#
    );
    let accepted = new_area(&app, &"x".repeat(255), "N").await;
    assert_eq!(accepted.status, StatusCode::CREATED);
    let token = app.operador();
    for _ in 0..2 {
        let path = "/api/areas-operacion";
        let read = send_to(&app.router, &token, Method::GET, path, Some("r"), None).await;
        assert_eq!(read.status, StatusCode::OK);
        assert!(!read.replayed());
    }
}
