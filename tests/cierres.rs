//! Monthly closes over HTTP (issue 16): closing and reopening a month, the origin system's exact
//! refusals, the period lock on new records, corrections and voids, the list of months with
//! their states, a close racing refuels, and closes surviving a restart.

mod common;

use std::sync::Arc;

use aggregates::period::Periodo;
use aggregates::registry::{StationCommand, REGISTRY_STREAM_ID};
use axum::http::{Method, StatusCode};
use common::TestApp;
use fleet_ledger::auth::Role;
use fleet_ledger::store::EventMetadata;
use serde_json::{json, Value};

on_both_stores!(
    a_close_answers_the_origin_systems_message_and_counts_the_months_records,
    closing_a_closed_month_or_reopening_an_open_one_is_409,
    a_bad_year_or_month_is_400_and_a_non_admin_403_before_anything_else,
    a_closed_month_refuses_new_records_corrections_and_voids_with_the_origin_systems_403,
    a_station_registered_after_a_close_inherits_the_closed_month,
    a_reopened_month_takes_records_again_and_closes_with_them,
    the_list_shows_every_month_with_its_state_records_and_totals,
    a_close_that_stopped_half_way_is_partial_and_sending_it_again_completes_it,
    refuels_racing_a_close_land_before_it_or_are_refused,
    closes_are_in_the_feed_the_audit_trail_and_survive_a_restart,
);

const CERRADO: &str =
    "No se pueden agregar registros en un mes que se encuentra cerrado contablemente.";
const FECHA_CERRADA: &str =
    "No se puede asignar una fecha perteneciente a un periodo contable cerrado.";
const REGISTRO_CERRADO: &str =
    "No se puede modificar/eliminar este registro porque pertenece a un periodo cerrado.";
const NO_ADMIN: &str = "No tienes permisos de Administrador de Cierres para realizar esta acción.";
const MES_INVALIDO: &str = "Se requiere año y mes válidos.";

async fn as_role(
    app: &TestApp,
    role: Role,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let token = app.token(role);
    app.call(method, path, Some(&token), body).await
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    as_role(
        app,
        Role::Admin,
        Method::POST,
        path,
        Some(&body.to_string()),
    )
    .await
}

async fn close(app: &TestApp, anio: i64, mes: i64) -> (StatusCode, Value) {
    admin_post(app, "/api/cierres", json!({ "anio": anio, "mes": mes })).await
}

async fn reopen(app: &TestApp, anio: i64, mes: i64) -> (StatusCode, Value) {
    let body = json!({ "anio": anio, "mes": mes, "motivo": "Factura recibida tarde" });
    admin_post(app, "/api/cierres/reabrir", body).await
}

/// Area 1, stations 1 and 2 (overdraft allowed), plate 1, driver 1.
async fn setup(app: &TestApp) {
    for (path, body) in [
        ("/api/areas-operacion", json!({ "nombre": "Logística" })),
        (
            "/api/bombas",
            json!({ "bomba": "Central", "area_operacion_id": 1 }),
        ),
        (
            "/api/bombas",
            json!({ "bomba": "Norte", "area_operacion_id": 1 }),
        ),
        ("/api/placas", json!({ "placa": "ABC123" })),
        (
            "/api/conductores",
            json!({ "conductor": "Juan Pérez", "area_principal": 1 }),
        ),
    ] {
        let (status, answer) = app.post(path, &body.to_string()).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }
}

fn tanqueo(bomba_id: i64, fecha: &str, valor: &str) -> String {
    format!(
        r#"{{"fecha":"{fecha}","bomba_id":{bomba_id},"area_operacion_id":1,"tipo_operacion":"TANQUEO","conductor_id":1,"placa_id":1,"valor_tanqueo":{valor},"cantidad_galones":1}}"#
    )
}

fn anticipo(bomba_id: i64, fecha: &str, valor: &str) -> String {
    format!(
        r#"{{"fecha":"{fecha}","bomba_id":{bomba_id},"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{valor}}}"#
    )
}

/// Records `body` and answers its id.
async fn record(app: &TestApp, body: &str) -> i64 {
    let (status, answer) = app.post("/api/tanqueos", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["id"].as_i64().unwrap()
}

/// January 2026: three live records on two stations (and a voided one), one in February.
async fn january(app: &TestApp) {
    setup(app).await;
    record(app, &anticipo(1, "2026-01-02", "100000")).await;
    record(app, &tanqueo(1, "2026-01-31", "30000.50")).await;
    record(app, &anticipo(2, "2026-01-15", "5000")).await;
    let voided = record(app, &tanqueo(2, "2026-01-20", "777")).await;
    let (status, answer) = app
        .post(
            &format!("/api/tanqueos/{voided}/anular"),
            r#"{"motivo":"Duplicado"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    record(app, &anticipo(1, "2026-02-01", "1")).await;
}

async fn head(app: &TestApp) -> i64 {
    app.state.log.head().await.unwrap()
}

async fn a_close_answers_the_origin_systems_message_and_counts_the_months_records(app: TestApp) {
    january(&app).await;
    let (status, answer) = close(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({ "message": "Mes 01/2026 cerrado exitosamente.", "registrosAfectados": 3 })
    );
    // Each station's close carries its balance at the end of the month.
    let stream = app
        .state
        .log
        .read_stream("fuel-station", "1", 0)
        .await
        .unwrap();
    let closed = stream
        .iter()
        .find(|e| e.event_type == "PeriodClosed")
        .expect("station 1 closed the month");
    assert_eq!(
        closed.payload,
        json!({
            "bomba_id": 1, "anio": 2026, "mes": 1, "saldo_cierre": 69999.5, "registros": 2,
            "total_tanqueos": 30000.5, "total_anticipos": 100000,
        })
    );
    assert_eq!(closed.metadata.actor.as_deref(), Some("ana@flota.co"));
}

async fn closing_a_closed_month_or_reopening_an_open_one_is_409(app: TestApp) {
    january(&app).await;
    let (status, answer) = reopen(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        answer,
        json!({ "error": "El mes 01/2026 no se encuentra cerrado." })
    );
    assert_eq!(close(&app, 2026, 1).await.0, StatusCode::OK);
    let before = head(&app).await;
    let (status, answer) = close(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        answer,
        json!({ "error": "El mes 01/2026 ya se encuentra cerrado." })
    );
    assert_eq!(head(&app).await, before, "nothing appended");
}

async fn a_bad_year_or_month_is_400_and_a_non_admin_403_before_anything_else(app: TestApp) {
    setup(&app).await;
    let before = head(&app).await;
    for body in [
        r#"{"anio":2026,"mes":13}"#,
        r#"{"anio":2026,"mes":0}"#,
        r#"{"anio":0,"mes":1}"#,
        r#"{"anio":10000,"mes":1}"#,
        r#"{"anio":2026}"#,
        r#"{"mes":1}"#,
        r#"{"anio":"2026","mes":1}"#,
        r#"{"anio":2026.5,"mes":1}"#,
        r#"{"anio":2026,"mes":null}"#,
        r#"[2026,1]"#,
    ] {
        for path in ["/api/cierres", "/api/cierres/reabrir"] {
            let (status, answer) = as_role(&app, Role::Admin, Method::POST, path, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
            assert_eq!(answer, json!({ "error": MES_INVALIDO }), "{path} {body}");
        }
    }
    // A reopening needs its reason, and names it.
    for body in [
        r#"{"anio":2026,"mes":1}"#,
        r#"{"anio":2026,"mes":1,"motivo":"  "}"#,
    ] {
        let (status, answer) = as_role(
            &app,
            Role::Admin,
            Method::POST,
            "/api/cierres/reabrir",
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer, json!({ "error": "Missing required field: motivo" }));
    }
    // Permission first: a non-admin learns nothing about its body, whatever it is.
    for role in [Role::Operador, Role::Auditor] {
        for path in ["/api/cierres", "/api/cierres/reabrir"] {
            for body in [
                r#"{"anio":2026,"mes":1,"motivo":"x"}"#,
                r#"{"anio":2026,"mes":13}"#,
                "not json",
            ] {
                let (status, answer) = as_role(&app, role, Method::POST, path, Some(body)).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{role:?} {path} {body}");
                assert_eq!(
                    answer,
                    json!({ "error": NO_ADMIN }),
                    "{role:?} {path} {body}"
                );
            }
        }
        // Reading the months is anyone's.
        let (status, _) = as_role(&app, role, Method::GET, "/api/cierres", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .call(
            Method::POST,
            "/api/cierres",
            None,
            Some(r#"{"anio":2026,"mes":1}"#),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(head(&app).await, before, "no refusal appended anything");
}

async fn a_closed_month_refuses_new_records_corrections_and_voids_with_the_origin_systems_403(
    app: TestApp,
) {
    setup(&app).await;
    let in_january = record(&app, &anticipo(1, "2026-01-10", "1000")).await;
    let in_february = record(&app, &anticipo(1, "2026-02-10", "1000")).await;
    assert_eq!(close(&app, 2026, 1).await.0, StatusCode::OK);
    let before = head(&app).await;
    let refused = |status: StatusCode, answer: &Value, message: &str| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(*answer, json!({ "error": message }));
    };
    for body in [
        tanqueo(1, "2026-01-01", "10"),
        tanqueo(2, "2026-01-31", "10"),
        anticipo(1, "2026-01-15", "10"),
    ] {
        let (status, answer) = app.post("/api/tanqueos", &body).await;
        refused(status, &answer, CERRADO);
    }
    let token = app.operador();
    let put = |id: i64, body: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                &format!("/api/tanqueos/{id}"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    // A record of the closed month: neither corrected (even out of the month) nor voided.
    let (status, answer) = put(in_january, r#"{"valor_anticipo":2000}"#).await;
    refused(status, &answer, REGISTRO_CERRADO);
    let (status, answer) = put(in_january, r#"{"fecha":"2026-02-01"}"#).await;
    refused(status, &answer, REGISTRO_CERRADO);
    let (status, answer) = app
        .post(
            &format!("/api/tanqueos/{in_january}/anular"),
            r#"{"motivo":"Error"}"#,
        )
        .await;
    refused(status, &answer, REGISTRO_CERRADO);
    // A record of an open month may not be moved into the closed one.
    let (status, answer) = put(in_february, r#"{"fecha":"2026-01-31"}"#).await;
    refused(status, &answer, FECHA_CERRADA);
    // An import row dated in the closed month is reported, and nothing of the sheet is kept.
    let sheet = json!({ "area_operacion_id": 1, "bomba_id": 1, "records": [
        { "FECHA": "2026-02-03", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC123", "VALOR TANQUEO": "10", "CANTIDAD GALONES": "1" },
        { "FECHA": "2026-01-03", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC123", "VALOR TANQUEO": "11", "CANTIDAD GALONES": "1" },
    ]});
    let (status, report) = app
        .post("/api/tanqueos/import?atomico=true", &sheet.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 0, "{report}");
    assert_eq!(report["errors"][0]["index"], 1, "{report}");
    assert_eq!(report["errors"][0]["error"], "Periodo cerrado", "{report}");
    assert_eq!(report["errors"][0]["detail"], CERRADO, "{report}");
    assert_eq!(head(&app).await, before, "nothing was appended");

    // The open months are untouched: the adjustment goes to February, naming the original.
    let adjustment = format!(
        r#"{{"fecha":"2026-02-05","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":500,"observacion":"Ajuste del registro {in_january} (enero 2026)"}}"#
    );
    record(&app, &adjustment).await;
    let (status, answer) = put(in_february, r#"{"fecha":"2026-02-28"}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    record(&app, &anticipo(1, "2025-12-31", "1")).await;
}

async fn a_station_registered_after_a_close_inherits_the_closed_month(app: TestApp) {
    setup(&app).await;
    assert_eq!(close(&app, 2026, 1).await.0, StatusCode::OK);
    let (status, answer) = app
        .post("/api/bombas", r#"{"bomba":"Nueva","area_operacion_id":1}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = app
        .post("/api/tanqueos", &anticipo(3, "2026-01-20", "10"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer, json!({ "error": CERRADO }));
    record(&app, &anticipo(3, "2026-02-20", "10")).await;
    // Reopening reaches it too.
    assert_eq!(reopen(&app, 2026, 1).await.0, StatusCode::OK);
    record(&app, &anticipo(3, "2026-01-20", "10")).await;
}

async fn a_reopened_month_takes_records_again_and_closes_with_them(app: TestApp) {
    january(&app).await;
    assert_eq!(close(&app, 2026, 1).await.0, StatusCode::OK);
    let (status, answer) = reopen(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({ "message": "Mes 01/2026 reabierto exitosamente.", "registrosAfectados": 3 })
    );
    let reopened = app
        .state
        .log
        .read_stream("stations", REGISTRY_STREAM_ID, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "AccountingPeriodReopened")
        .expect("the registry records the reopening");
    assert_eq!(reopened.payload["motivo"], "Factura recibida tarde");
    let id = record(&app, &anticipo(2, "2026-01-16", "1")).await;
    let (status, answer) = app
        .post(
            &format!("/api/tanqueos/{id}/anular"),
            r#"{"motivo":"Prueba"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    record(&app, &anticipo(2, "2026-01-17", "1")).await;
    let (status, answer) = close(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["registrosAfectados"], 4);
}

/// `GET /api/cierres`'s entry for `anio`/`mes`.
async fn month(app: &TestApp, anio: i64, mes: i64) -> Value {
    let (status, months) = app.get("/api/cierres").await;
    assert_eq!(status, StatusCode::OK, "{months}");
    months
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["anio"] == anio && m["mes"] == mes)
        .cloned()
        .unwrap_or_else(|| panic!("{anio}/{mes} not listed: {months}"))
}

async fn the_list_shows_every_month_with_its_state_records_and_totals(app: TestApp) {
    january(&app).await;
    record(&app, &anticipo(2, "2025-11-30", "12.10")).await;
    assert_eq!(close(&app, 2026, 1).await.0, StatusCode::OK);
    let (status, months) = app.get("/api/cierres").await;
    assert_eq!(status, StatusCode::OK);
    let months = months.as_array().unwrap();
    // Every month from the first with records to the current one, oldest first, none twice.
    assert_eq!(
        (months[0]["anio"].clone(), months[0]["mes"].clone()),
        (json!(2025), json!(11))
    );
    let listed: Vec<(i64, i64)> = months
        .iter()
        .map(|m| (m["anio"].as_i64().unwrap(), m["mes"].as_i64().unwrap()))
        .collect();
    let today = Periodo::of(chrono::Utc::now().date_naive());
    assert_eq!(
        *listed.last().unwrap(),
        (i64::from(today.anio), i64::from(today.mes)).max((2026, 2))
    );
    for pair in listed.windows(2) {
        let next = if pair[0].1 == 12 {
            (pair[0].0 + 1, 1)
        } else {
            (pair[0].0, pair[0].1 + 1)
        };
        assert_eq!(pair[1], next, "consecutive months");
    }
    let january = month(&app, 2026, 1).await;
    assert_eq!(
        january,
        json!({
            "anio": 2026, "mes": 1, "estado": "CERRADO", "registros": 3,
            "total_tanqueos": 30000.5, "total_anticipos": 105000, "saldo_cierre": 74999.5 + 12.1,
            "bombas_cerradas": 2, "bombas_pendientes": 0, "cerrado_por": "ana@flota.co",
            "cerrado_en": january["cerrado_en"], "reabierto_por": null, "reabierto_en": null,
            "motivo_reapertura": null,
        })
    );
    assert!(january["cerrado_en"].is_string());
    let november = month(&app, 2025, 11).await;
    assert_eq!(november["estado"], "ABIERTO");
    assert_eq!(november["registros"], 1);
    assert_eq!(november["total_anticipos"].to_string(), "12.1");
    assert_eq!(november["saldo_cierre"], Value::Null);
    let december = month(&app, 2025, 12).await;
    assert_eq!(
        (
            december["estado"].clone(),
            december["registros"].clone(),
            december["total_tanqueos"].clone()
        ),
        (json!("ABIERTO"), json!(0), json!(0))
    );
    assert_eq!(month(&app, 2026, 2).await["registros"], 1);
    // Reopened: open again, and who reopened it and why are shown.
    assert_eq!(reopen(&app, 2026, 1).await.0, StatusCode::OK);
    let january = month(&app, 2026, 1).await;
    assert_eq!(january["estado"], "ABIERTO");
    assert_eq!(january["motivo_reapertura"], "Factura recibida tarde");
    assert_eq!(january["reabierto_por"], "ana@flota.co");
    assert_eq!(january["saldo_cierre"], Value::Null);
}

async fn a_close_that_stopped_half_way_is_partial_and_sending_it_again_completes_it(app: TestApp) {
    january(&app).await;
    // The first step of a close only, as a process that died right after it would leave it.
    let metadata = EventMetadata {
        actor: Some("ana@flota.co".into()),
        ..EventMetadata::default()
    };
    let periodo = Periodo::new(2026, 1).unwrap();
    app.state
        .stations
        .execute(
            REGISTRY_STREAM_ID,
            StationCommand::ClosePeriod { periodo },
            &metadata,
        )
        .await
        .unwrap();
    // Reads wait for the write: the references index re-reads the registry on its next miss.
    app.state.references.appended_to("stations").await;
    let partial = month(&app, 2026, 1).await;
    assert_eq!(partial["estado"], "PARCIAL", "{partial}");
    assert_eq!(partial["bombas_cerradas"], 0);
    assert_eq!(partial["bombas_pendientes"], 2);
    // A station the close has not reached is not locked yet: its closing balance is decided
    // when the close reaches it, with this record in it.
    record(&app, &anticipo(1, "2026-01-21", "10")).await;
    // Sent again, the close completes the stations it had not reached.
    let (status, answer) = close(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["registrosAfectados"], 4);
    let (status, answer) = app
        .post("/api/tanqueos", &anticipo(1, "2026-01-22", "10"))
        .await;
    assert_eq!(
        (status, answer),
        (StatusCode::FORBIDDEN, json!({ "error": CERRADO }))
    );
    let closed = month(&app, 2026, 1).await;
    assert_eq!(closed["estado"], "CERRADO", "{closed}");
    assert_eq!(closed["bombas_cerradas"], 2);
}

async fn refuels_racing_a_close_land_before_it_or_are_refused(app: TestApp) {
    setup(&app).await;
    record(&app, &anticipo(1, "2026-01-01", "1000000")).await;
    let app = Arc::new(app);
    // Writers that keep refuelling January until the close turns them away, and a close sent
    // while they run.
    let landed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let app = app.clone();
            let landed = landed.clone();
            tokio::spawn(async move {
                let mut accepted = 0;
                for n in 0..500 {
                    let fecha = format!("2026-01-{:02}", (writer * 7 + n) % 28 + 1);
                    let (status, answer) = app
                        .post("/api/tanqueos", &tanqueo(1, &fecha, "10.01"))
                        .await;
                    match status {
                        StatusCode::CREATED => {
                            accepted += 1;
                            landed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        StatusCode::FORBIDDEN => {
                            assert_eq!(answer, json!({ "error": CERRADO }));
                            return (accepted, true);
                        }
                        other => panic!("unexpected {other}: {answer}"),
                    }
                }
                (accepted, false)
            })
        })
        .collect();
    // Closed while they write: once a few refuels have landed.
    while landed.load(std::sync::atomic::Ordering::Relaxed) < 8 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let (status, answer) = close(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut accepted = 0;
    for writer in writers {
        let (count, refused) = writer.await.unwrap();
        assert!(refused, "every writer ends turned away by the close");
        accepted += count;
    }
    assert!(accepted > 0, "some refuels landed before the close");
    assert_eq!(answer["registrosAfectados"], 1 + accepted, "{answer}");
    // The station's stream: every refuel dated in January before the close, none after it, and
    // the closing balance counts exactly those.
    let stream = app
        .state
        .log
        .read_stream("fuel-station", "1", 0)
        .await
        .unwrap();
    let at = stream
        .iter()
        .position(|e| e.event_type == "PeriodClosed")
        .expect("closed");
    assert_eq!(at, stream.len() - 1, "nothing recorded after the close");
    assert_eq!(
        at as i64,
        1 + accepted,
        "every accepted refuel is before the close"
    );
    let expected = 1_000_000.0 - 10.01 * accepted as f64;
    let saldo: f64 = stream[at].payload["saldo_cierre"]
        .to_string()
        .parse()
        .unwrap();
    assert!((saldo - expected).abs() < 1e-6, "{saldo} vs {expected}");
    assert_eq!(
        stream[at].payload["saldo_cierre"].to_string(),
        rust_decimal::Decimal::from(1_000_000)
            .checked_sub(
                rust_decimal::Decimal::new(1001, 2) * rust_decimal::Decimal::from(accepted)
            )
            .unwrap()
            .normalize()
            .to_string()
    );
}

async fn closes_are_in_the_feed_the_audit_trail_and_survive_a_restart(app: TestApp) {
    january(&app).await;
    assert_eq!(close(&app, 2026, 1).await.0, StatusCode::OK);
    let (status, trail) = as_role(
        &app,
        Role::Auditor,
        Method::GET,
        "/api/auditoria/bomba/1/eventos",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let types: Vec<&str> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.last(), Some(&"PeriodClosed"), "{types:?}");
    let (status, feed) = app.get("/api/eventos?tipos=AccountingPeriodClosed").await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert_eq!(feed["data"].as_array().map(Vec::len), Some(1), "{feed}");
    let listed = month(&app, 2026, 1).await;

    let app = app.restart().await;
    let (status, answer) = app
        .post("/api/tanqueos", &anticipo(2, "2026-01-20", "10"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer, json!({ "error": CERRADO }));
    assert_eq!(month(&app, 2026, 1).await, listed);
    let (status, answer) = close(&app, 2026, 1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}
