//! Upcasting: an event an older release stored at an older schema version is read at the current
//! version by every reader (a command's aggregate, the read models, the feed, the live feed, the
//! audit history and `as_of`), while the stored bytes, the chain and the export stay as written.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::SecondsFormat;
use common::TestApp;
use fleet_ledger::auth::Role;
use fleet_ledger::integrity;
use fleet_ledger::store::{AppendRequest, EventMetadata, NewEvent, StoredEvent};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

on_both_stores!(
    a_v1_event_reads_as_v2_through_every_path,
    an_event_at_a_version_without_a_path_is_a_clear_error,
);

async fn auditor_get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let token = app.token(Role::Auditor);
    app.call(Method::GET, path, Some(&token), None).await
}

async fn station_2(app: &TestApp) -> Vec<StoredEvent> {
    app.state
        .log
        .read_stream("fuel-station", "2", 0)
        .await
        .unwrap()
}

/// Appends `payload` as `TanqueoVoided` at `schema_version` to station 2's stream, straight to
/// the log: what a release from before the schema change wrote.
async fn store_void(app: &TestApp, schema_version: i32, payload: Value) -> i64 {
    let version = station_2(app).await.last().map_or(0, |e| e.version);
    let mut event = NewEvent::new(
        "TanqueoVoided",
        payload,
        EventMetadata {
            actor: Some("old-release@flota.co".into()),
            ..EventMetadata::default()
        },
    );
    event.schema_version = schema_version;
    let appended = app
        .state
        .log
        .append(AppendRequest {
            stream_type: "fuel-station".into(),
            stream_id: "2".into(),
            expected_version: version,
            events: vec![event],
            idempotency: None,
        })
        .await
        .unwrap();
    appended.last_position
}

/// The first event of the live feed from `position`, as its `data:` line says it.
async fn live_event_at(app: &TestApp, position: i64) -> Value {
    let request = Request::builder()
        .uri(format!("/api/eventos/stream?desde_posicion={position}"))
        .header(
            "authorization",
            format!("Bearer {}", app.token(Role::Auditor)),
        )
        .body(Body::empty())
        .unwrap();
    let mut body = app
        .router
        .clone()
        .oneshot(request)
        .await
        .unwrap()
        .into_body();
    let mut text = String::new();
    loop {
        if let Some(line) = text
            .split("\n\n")
            .next()
            .filter(|_| text.contains("\n\n"))
            .and_then(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        {
            return serde_json::from_str(line).unwrap();
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the live feed sends the event")
            .unwrap()
            .unwrap();
        if let Some(bytes) = frame.data_ref() {
            text.push_str(std::str::from_utf8(bytes).unwrap());
        }
    }
}

async fn a_v1_event_reads_as_v2_through_every_path(app: TestApp) {
    app.seed_fleet().await;
    // Station 2 allows no overdraft: 100000 in, 100000 out.
    for body in [
        r#"{"fecha":"2024-03-15","bomba_id":2,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":100000}"#,
        r#"{"fecha":"2024-03-16","bomba_id":2,"area_operacion_id":1,"conductor_id":1,"placa_id":1,"tipo_operacion":"TANQUEO","valor_tanqueo":100000,"cantidad_galones":10}"#,
    ] {
        let (status, answer) = app.post("/api/tanqueos", body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let refuel = station_2(&app).await.pop().unwrap();
    assert_eq!(refuel.event_type, "TanqueoRecorded");
    let record = refuel.payload["record"].clone();
    let id = record["id"].as_i64().unwrap();

    // The void as release 1 wrote it: no `efecto_saldo`.
    let v1 = json!({ "id": id, "motivo": "Duplicado", "record": record });
    let position = store_void(&app, 1, v1.clone()).await;
    let mut v2 = v1.clone();
    v2["efecto_saldo"] = json!(100000);

    // The feed.
    let (status, feed) = app
        .get(&format!(
            "/api/eventos?desde_posicion={position}&stream=fuel-station/2"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    let read = feed["data"][0].clone();
    assert_eq!(read["position"], position);
    assert_eq!(read["event_type"], "TanqueoVoided");
    assert_eq!(read["schema_version"], 2);
    assert_eq!(read["payload"].to_string(), v2.to_string());

    // The live feed, the subject's history: the same event, the same way.
    assert_eq!(live_event_at(&app, position).await, read);
    let (status, history) = auditor_get(&app, "/api/auditoria/bomba/2/eventos").await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["data"][2], read);

    // The read models folded it: the balance is back, the record voided.
    let (status, saldo) = app.get("/api/bombas/2/saldo").await;
    assert_eq!(status, StatusCode::OK, "{saldo}");
    assert_eq!(saldo["saldo"], 100000);
    let (_, voided) = app.get(&format!("/api/tanqueos/{id}")).await;
    assert_eq!(voided["anulado"], true, "{voided}");

    // The state as of the void, and just before it.
    let at = read["recorded_at"].as_str().unwrap().to_string();
    let (status, state) = auditor_get(&app, &format!("/api/auditoria/bomba/2?as_of={at}")).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["estado"]["saldo"], 100000);
    assert_eq!(state["estado"]["version"], read["version"], "{state}");
    assert_eq!(state["ultimo_evento"]["position"], position);
    let before =
        chrono::DateTime::parse_from_rfc3339(&at).unwrap() - chrono::Duration::nanoseconds(1);
    let before = before.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let (_, state) = auditor_get(&app, &format!("/api/auditoria/bomba/2?as_of={before}")).await;
    assert_eq!(state["estado"]["saldo"], 0, "{state}");

    // The station's aggregate folded it too: a refuel that needs the money back is accepted,
    // and the record cannot be voided twice.
    let (status, answer) = app
        .post(
            &format!("/api/tanqueos/{id}/anular"),
            r#"{"motivo":"otra vez"}"#,
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            json!({ "error": format!("El tanqueo con ID {id} ya está anulado") })
        )
    );
    let (status, answer) = app
        .post(
            "/api/tanqueos",
            r#"{"fecha":"2024-03-17","bomba_id":2,"area_operacion_id":1,"conductor_id":1,"placa_id":1,"tipo_operacion":"TANQUEO","valor_tanqueo":100000,"cantidad_galones":10}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, saldo) = app.get("/api/bombas/2/saldo").await;
    assert_eq!(saldo["saldo"], 0);

    // What was stored is what was written: the chain verifies, and the export carries version
    // 1 and the v1 bytes.
    integrity::verify_store(&app.location, &mut Vec::new())
        .await
        .expect("the chain covers the stored bytes, which upcasting leaves alone");
    let mut exported = Vec::new();
    integrity::export(&app.location.log_url, position, &mut exported)
        .await
        .unwrap();
    let line: Value =
        serde_json::from_str(String::from_utf8(exported).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["position"], position);
    assert_eq!(line["schema_version"], 1);
    assert_eq!(line["payload"].to_string(), v1.to_string());
}

async fn an_event_at_a_version_without_a_path_is_a_clear_error(app: TestApp) {
    app.seed_fleet().await;
    let position = store_void(&app, 9, json!({ "id": 1, "motivo": "x" })).await;
    let error = app
        .state
        .log
        .read_all(position - 1, 1)
        .await
        .expect_err("no release reads version 9");
    assert_eq!(
        error.to_string(),
        format!(
            "stored event at position {position}: TanqueoVoided version 9 was written by a newer \
             release: this one reads up to version 2"
        )
    );
    // A reader gets the service's own 500, not a dropped connection.
    let (status, answer) = app
        .get(&format!("/api/eventos?desde_posicion={position}"))
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": "Error en el servidor" })
        )
    );
}
