//! The fuel ledger over HTTP (seed 004): records, their exact errors, balances on both time
//! axes, corrections and voids, and concurrent refuels on one station.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::{json, Value};

on_both_stores!(
    a_tanqueo_is_recorded_exactly_as_the_seed_answers,
    an_anticipo_has_no_vehicle_fields,
    defaults_apply_and_zero_is_a_value,
    decimals_round_trip_without_drift,
    refusals_use_the_seed_bodies,
    foreign_keys_use_the_seed_constraint_names,
    a_no_overdraft_station_refuses_a_tanqueo_it_cannot_cover,
    corrections_and_voids_move_the_balance_without_rewriting_history,
    as_of_and_fecha_corte_answer_what_the_ledger_knew,
    the_list_filters_pages_and_summarises,
    station_balances_are_listed_with_their_state,
    concurrent_tanqueos_on_one_station_keep_the_exact_balance,
    a_spreadsheet_imports_valid_rows_and_reports_the_rest,
    an_atomic_import_with_one_bad_row_imports_nothing,
    the_statement_and_reconciliation_show_where_reports_disagree,
    the_journal_posts_balanced_entries_and_a_trial_balance,
    rebuilt_ledger_read_models_answer_byte_for_byte_the_same,
    an_admin_adds_a_fuel_product_operators_can_then_record,
    voiding_an_anticipo_cannot_overdraw_a_no_overdraft_station,
    review_fixes_hold,
    random_histories_rebuild_to_the_same_answers,
);

async fn raw(app: &TestApp, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let token = app.operador();
    app.call(method, path, Some(&token), Some(body)).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    raw(app, Method::POST, path, &body.to_string()).await
}

/// Area 1, station 1 (overdraft allowed unless `strict`), plate 1, driver 1.
async fn setup(app: &TestApp, strict: bool) {
    assert_eq!(
        post(
            app,
            "/api/areas-operacion",
            json!({ "nombre": "Logística" })
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let station = json!({ "bomba": "Estación Central", "area_operacion_id": 1, "permitir_saldo_negativo": !strict });
    assert_eq!(
        post(app, "/api/bombas", station).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(
            app,
            "/api/placas",
            json!({ "placa": "ABC123", "estado": "ACTIVADA" })
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(
            app,
            "/api/conductores",
            json!({ "conductor": "Juan Pérez", "area_principal": 1 })
        )
        .await
        .0,
        StatusCode::CREATED
    );
}

fn tanqueo(valor: &str) -> String {
    format!(
        r#"{{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":{valor},"cantidad_galones":10}}"#
    )
}

fn anticipo(valor: &str, fecha: &str) -> String {
    format!(
        r#"{{"fecha":"{fecha}","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{valor}}}"#
    )
}

async fn saldo(app: &TestApp, query: &str) -> Value {
    let (status, body) = raw(app, Method::GET, &format!("/api/bombas/1/saldo{query}"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn a_tanqueo_is_recorded_exactly_as_the_seed_answers(app: TestApp) {
    setup(&app, false).await;
    let body = r#"{
        "fecha": "2024-03-15", "conductor_id": 1, "placa_id": 1, "bomba_id": 1, "area_operacion_id": 1,
        "tipo_combustible": "ACPM", "valor_tanqueo": 150000, "cantidad_galones": 12.5, "horometro": 1250.5,
        "saldo_disponible": 2500000, "concepto": "OPERATIVO", "tipo_operacion": "TANQUEO",
        "observacion": "Tanqueo regular de ruta matutina"
    }"#;
    let (status, created) = raw(&app, Method::POST, "/api/tanqueos", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created.to_string(),
        r#"{"id":1,"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"tipo_combustible":"ACPM","valor_tanqueo":150000,"cantidad_galones":12.5,"costo_por_galon":12000,"horometro":1250.5,"valor_anticipo":null,"saldo_disponible":2500000,"concepto":"OPERATIVO","tipo_operacion":"TANQUEO","observacion":"Tanqueo regular de ruta matutina","creado_por":"ana@flota.co","actualizado_por":null,"actualizado_en":null}"#
    );
    let (status, read) = raw(&app, Method::GET, "/api/tanqueos/1", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["anulado"], false);
    assert_eq!(read["valor_tanqueo"], created["valor_tanqueo"]);
    let events = app
        .state
        .log
        .read_type("fuel-station", 0, 10)
        .await
        .unwrap();
    assert_eq!(
        (
            events.len(),
            events[0].event_type.as_str(),
            events[0].stream_id.as_str()
        ),
        (1, "TanqueoRecorded", "1")
    );
}

async fn an_anticipo_has_no_vehicle_fields(app: TestApp) {
    setup(&app, false).await;
    let (status, created) = raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("500000", "2024-03-15"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for field in [
        "conductor_id",
        "placa_id",
        "tipo_combustible",
        "valor_tanqueo",
        "cantidad_galones",
        "costo_por_galon",
        "horometro",
    ] {
        assert_eq!(created[field], Value::Null, "{field}");
    }
    assert_eq!(created["valor_anticipo"], 500000);
    assert_eq!(created["tipo_operacion"], "ANTICIPO");
    let events = app
        .state
        .log
        .read_type("fuel-station", 0, 10)
        .await
        .unwrap();
    assert_eq!(events[0].event_type, "AnticipoPaid");
}

async fn defaults_apply_and_zero_is_a_value(app: TestApp) {
    setup(&app, false).await;
    let minimal = r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":80000,"cantidad_galones":6.5}"#;
    let (status, created) = raw(&app, Method::POST, "/api/tanqueos", minimal).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (
            created["concepto"].clone(),
            created["tipo_combustible"].clone()
        ),
        (json!("OPERATIVO"), json!("ACPM"))
    );
    assert_eq!(created["costo_por_galon"].to_string(), "12307.69");
    let zeros = r#"{"fecha":"2030-01-01","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":0,"cantidad_galones":0,"horometro":0,"saldo_disponible":0,"tipo_combustible":"UREA"}"#;
    let (status, created) = raw(&app, Method::POST, "/api/tanqueos", zeros).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "future dates and zeros are fine: {created}"
    );
    assert_eq!(
        (
            created["horometro"].clone(),
            created["saldo_disponible"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_eq!(created["costo_por_galon"], Value::Null);
    assert_eq!(created["tipo_combustible"], "UREA");
}

async fn decimals_round_trip_without_drift(app: TestApp) {
    setup(&app, false).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("0.1", "2024-03-01"),
    )
    .await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("0.2", "2024-03-01"),
    )
    .await;
    let (_, created) = raw(&app, Method::POST, "/api/tanqueos", &tanqueo("12.10")).await;
    assert_eq!(created["valor_tanqueo"].to_string(), "12.10");
    assert_eq!(saldo(&app, "").await["total_anticipos"].to_string(), "0.3");
    assert_eq!(saldo(&app, "").await["saldo"].to_string(), "-11.8");
}

async fn refusals_use_the_seed_bodies(app: TestApp) {
    setup(&app, false).await;
    let cases = [
        (
            r#"{"fecha":"2024-03-15","placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
            "Missing required field: conductor_id",
        ),
        (
            r#"{"conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
            "Missing required field: fecha",
        ),
        (
            r#"{"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO"}"#,
            "Missing required field: valor_anticipo",
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":"abc","cantidad_galones":1}"#,
            r#"invalid input syntax for type numeric: "abc""#,
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1,"valor_anticipo":5}"#,
            "Field not allowed for TANQUEO: valor_anticipo",
        ),
        (
            r#"{"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":5,"placa_id":1}"#,
            "Field not allowed for ANTICIPO: placa_id",
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1,"tipo_combustible":"KEROSENE"}"#,
            "Invalid value for tipo_combustible: KEROSENE",
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1,"concepto":"OTRO"}"#,
            "Invalid value for concepto: OTRO",
        ),
        (
            r#"{"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"PRESTAMO","valor_anticipo":5}"#,
            "Invalid value for tipo_operacion: PRESTAMO",
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":-5,"cantidad_galones":1}"#,
            "Invalid value for valor_tanqueo: must be zero or positive",
        ),
        (
            r#"{"fecha":"15/03/2024","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
            "Invalid date for fecha: 15/03/2024 (expected YYYY-MM-DD)",
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1e30,"cantidad_galones":1}"#,
            "Invalid value for valor_tanqueo: out of range",
        ),
        (
            r#"{"fecha":"2024-03-15","conductor_id":"uno","placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
            r#"invalid input syntax for type integer: "uno""#,
        ),
    ];

    for (body, message) in cases {
        let (status, answer) = raw(&app, Method::POST, "/api/tanqueos", body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({ "error": message })),
            "{body}"
        );
    }
    let (status, answer) = app
        .call(Method::POST, "/api/tanqueos", None, Some(&tanqueo("1")))
        .await;
    assert_eq!(
        (status, answer.to_string()),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"Authentication required"}"#.into()
        )
    );
    assert!(app
        .state
        .log
        .read_type("fuel-station", 0, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn foreign_keys_use_the_seed_constraint_names(app: TestApp) {
    setup(&app, false).await;
    for (field, body) in [
        (
            "bomba_id",
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":9,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
        ),
        (
            "placa_id",
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":9,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
        ),
        (
            "conductor_id",
            r#"{"fecha":"2024-03-15","conductor_id":9,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#,
        ),
        (
            "area_operacion_id",
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":9,"valor_tanqueo":1,"cantidad_galones":1}"#,
        ),
    ] {
        let (status, answer) = raw(&app, Method::POST, "/api/tanqueos", body).await;
        let message = format!("insert or update on table \"tanqueo\" violates foreign key constraint \"tanqueo_{field}_fkey\"");
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({ "error": message }))
        );
    }
}

async fn a_no_overdraft_station_refuses_a_tanqueo_it_cannot_cover(app: TestApp) {
    setup(&app, true).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("100000", "2024-03-01"),
    )
    .await;
    let (status, answer) = raw(&app, Method::POST, "/api/tanqueos", &tanqueo("150000")).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            json!({ "error": "Saldo insuficiente en la bomba 1: disponible 100000, requerido 150000" })
        )
    );
    let (status, _) = raw(&app, Method::POST, "/api/tanqueos", &tanqueo("100000")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(saldo(&app, "").await["saldo"], 0);
    // Allowing overdraft again lets the operator owe the station.
    raw(
        &app,
        Method::PATCH,
        "/api/bombas/1",
        r#"{"permitir_saldo_negativo":true}"#,
    )
    .await;
    assert_eq!(
        raw(&app, Method::POST, "/api/tanqueos", &tanqueo("5000"))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(saldo(&app, "").await["saldo"], -5000);
}

async fn corrections_and_voids_move_the_balance_without_rewriting_history(app: TestApp) {
    setup(&app, false).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("500000", "2024-03-01"),
    )
    .await;
    raw(&app, Method::POST, "/api/tanqueos", &tanqueo("150000")).await;
    let (status, corrected) = raw(
        &app,
        Method::PUT,
        "/api/tanqueos/2",
        r#"{"valor_tanqueo":120000}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{corrected}");
    assert_eq!(corrected["valor_tanqueo"], 120000);
    assert_eq!(corrected["costo_por_galon"], 12000);
    assert_eq!(corrected["actualizado_por"], "ana@flota.co");
    assert!(corrected["actualizado_en"].is_string());
    assert_eq!(saldo(&app, "").await["saldo"], 380000);
    let (status, answer) = raw(
        &app,
        Method::PUT,
        "/api/tanqueos/2",
        r#"{"valor_anticipo":5}"#,
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Field not allowed for TANQUEO: valor_anticipo" })
        )
    );

    let (status, voided) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/2/anular",
        r#"{"motivo":"Duplicado"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(voided["anulado"], true);
    assert_eq!(saldo(&app, "").await["saldo"], 500000);
    let (status, answer) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/2/anular",
        r#"{"motivo":"otra vez"}"#,
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            json!({ "error": "El tanqueo con ID 2 ya está anulado" })
        )
    );
    let (status, _) = raw(&app, Method::GET, "/api/tanqueos/2", "").await;
    assert_eq!(status, StatusCode::OK, "a voided record stays readable");
    let types: Vec<String> = app
        .state
        .log
        .read_type("fuel-station", 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "AnticipoPaid",
            "TanqueoRecorded",
            "TanqueoCorrected",
            "TanqueoVoided"
        ]
    );
    let corrected_event = &app
        .state
        .log
        .read_type("fuel-station", 0, 10)
        .await
        .unwrap()[2];
    assert_eq!(corrected_event.payload["antes"]["valor_tanqueo"], 150000);
    assert_eq!(corrected_event.payload["despues"]["valor_tanqueo"], 120000);
    let (status, _) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/99/anular",
        r#"{"motivo":"x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn as_of_and_fecha_corte_answer_what_the_ledger_knew(app: TestApp) {
    setup(&app, false).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("300000", "2024-03-31"),
    )
    .await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("200000", "2024-04-02"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before_correction = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    raw(
        &app,
        Method::PUT,
        "/api/tanqueos/1",
        r#"{"valor_anticipo":250000}"#,
    )
    .await;
    assert_eq!(saldo(&app, "").await["saldo"], 450000);
    assert_eq!(
        saldo(&app, "?fecha_corte=2024-03-31").await["saldo"],
        250000
    );
    let then = saldo(
        &app,
        &format!("?as_of={before_correction}&fecha_corte=2024-03-31"),
    )
    .await;
    assert_eq!(
        (then["saldo"].clone(), then["movimientos"].clone()),
        (json!(300000), json!(1))
    );
    assert_eq!(saldo(&app, "?as_of=2020-01-01").await["movimientos"], 0);
    // A plain date is the end of that day in Bogotá (UTC−5), so "today there" includes everything.
    let today_in_bogota = (chrono::Utc::now() - chrono::Duration::hours(5)).date_naive();
    assert_eq!(
        saldo(&app, &format!("?as_of={today_in_bogota}")).await["saldo"],
        450000
    );
    let (status, _) = raw(&app, Method::GET, "/api/bombas/1/saldo?as_of=ayer", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = raw(&app, Method::GET, "/api/bombas/9/saldo", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_list_filters_pages_and_summarises(app: TestApp) {
    setup(&app, false).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("1000", "2024-03-01"),
    )
    .await;
    for valor in ["100", "200", "300"] {
        raw(&app, Method::POST, "/api/tanqueos", &tanqueo(valor)).await;
    }
    let (status, page) = raw(
        &app,
        Method::GET,
        "/api/tanqueos?limit=2&tipo_operacion=TANQUEO",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["pagination"],
        json!({ "page": 1, "limit": 2, "total": 3, "totalPages": 2 })
    );
    assert_eq!(
        page["summary"],
        json!({ "total_galones": 30, "total_valor": 600 })
    );
    let ids: Vec<i64> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 3], "newest first");
    assert_eq!(page["data"][0]["placa"], "ABC123");
    assert_eq!(page["data"][0]["nombre_conductor"], "Juan Pérez");
    assert_eq!(page["data"][0]["nombre_bomba"], "Estación Central");
    assert_eq!(page["data"][0]["nombre_area_operacion"], "Logística");
    let (_, second) = raw(
        &app,
        Method::GET,
        "/api/tanqueos?limit=2&page=2&tipo_operacion=TANQUEO",
        "",
    )
    .await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    let (_, dated) = raw(
        &app,
        Method::GET,
        "/api/tanqueos?desde=2024-03-01&hasta=2024-03-01&bomba_id=1,2",
        "",
    )
    .await;
    assert_eq!(dated["pagination"]["total"], 1);
    let (status, _) = raw(&app, Method::GET, "/api/tanqueos?limit=501", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn station_balances_are_listed_with_their_state(app: TestApp) {
    setup(&app, false).await;
    post(
        &app,
        "/api/bombas",
        json!([{ "bomba": "Norte" }, { "bomba": "Sur" }]),
    )
    .await;
    raw(&app, Method::POST, "/api/tanqueos", &tanqueo("600000")).await;
    let low = r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":2,"area_operacion_id":1,"valor_tanqueo":1000,"cantidad_galones":1,"saldo_disponible":-900}"#;
    raw(&app, Method::POST, "/api/tanqueos", low).await;
    let (status, all) = raw(&app, Method::GET, "/api/saldos-bombas", "").await;
    assert_eq!(status, StatusCode::OK);
    let estados: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["estado"].as_str().unwrap())
        .collect();
    assert_eq!(estados, ["CRITICO", "BAJO", "POSITIVO"]);
    assert_eq!(all["data"][1]["saldo_disponible"], -900);
    assert_eq!(all["data"][0]["nombre_bomba"], "Estación Central");
    assert_eq!(
        all["stats"],
        json!({ "total_bombas": 3, "total_saldo": -601000, "criticos": 1, "bajos": 1, "positivos": 1 })
    );
}

async fn concurrent_tanqueos_on_one_station_keep_the_exact_balance(app: TestApp) {
    setup(&app, true).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("100000", "2024-03-01"),
    )
    .await;
    let app = Arc::new(app);
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                raw(&app, Method::POST, "/api/tanqueos", &tanqueo("10000.50")).await
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        match status {
            StatusCode::CREATED => accepted.push(body["id"].as_i64().unwrap()),
            StatusCode::CONFLICT => assert!(body["error"]
                .as_str()
                .unwrap()
                .starts_with("Saldo insuficiente en la bomba 1")),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted.len(), 9, "100000 covers nine refuels of 10000.50");
    accepted.sort_unstable();
    accepted.dedup();
    assert_eq!(accepted.len(), 9, "no duplicated record");
    let balance = saldo(&app, "").await;
    assert_eq!(balance["saldo"].to_string(), "9995.5");
    assert_eq!(balance["movimientos"], 10);
    let (_, listed) = raw(&app, Method::GET, "/api/tanqueos?limit=500", "").await;
    assert_eq!(listed["pagination"]["total"], 10);
}

fn sheet(records: Value) -> String {
    json!({ "area_operacion_id": 1, "bomba_id": 1, "records": records }).to_string()
}

async fn a_spreadsheet_imports_valid_rows_and_reports_the_rest(app: TestApp) {
    setup(&app, false).await;
    let records = json!([
        { "FECHA": "15/03/2024", "NOMBRE CONDUCTOR": "JUAN PEREZ", "PLACA": "abc-123", "TIPO COMBUSTIBLE": "ACPM", "VALOR TANQUEO": "$150.000", "CANTIDAD GALONES": "12,5" },
        { "FECHA": "15/03/2024", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ZZZ999", "VALOR TANQUEO": "1000", "CANTIDAD GALONES": "1" },
        { "FECHA": 45361, "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC 123", "VALOR TANQUEO": 80000, "CANTIDAD GALONES": 6.5 },
        { "FECHA": "2024-03-15", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC123", "VALOR TANQUEO": "$ 150,000.00", "CANTIDAD GALONES": "12.5" },
        { "FECHA": "16/03/2024", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC123", "VALOR TANQUEO": "1.234,567", "CANTIDAD GALONES": "1" },
        { "FECHA": "16/03/2024", "NOMBRE CONDUCTOR": "Pedro", "PLACA": "ABC123", "VALOR TANQUEO": "1000", "CANTIDAD GALONES": "1" },
    ]);
    let (status, report) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/import",
        &sheet(records.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 2);
    assert_eq!(report["totalProcessed"], 6);
    let errors: Vec<(i64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_i64().unwrap(), e["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (1, "Placa no encontrada"),
            (3, "Duplicado"),
            (4, "Valor inválido"),
            (5, "Conductor no encontrado")
        ]
    );
    assert!(report["errors"][0]["detail"].is_string());
    let (_, first) = raw(&app, Method::GET, "/api/tanqueos/1", "").await;
    assert_eq!(
        (
            first["valor_tanqueo"].clone(),
            first["cantidad_galones"].clone()
        ),
        (json!(150000), json!(12.5))
    );
    assert_eq!(
        (first["fecha"].clone(), first["costo_por_galon"].clone()),
        (json!("2024-03-15"), json!(12000))
    );
    let (_, second) = raw(&app, Method::GET, "/api/tanqueos/2", "").await;
    assert_eq!(second["fecha"], "2024-03-10");

    let (_, again) = raw(&app, Method::POST, "/api/tanqueos/import", &sheet(records)).await;
    assert_eq!(
        again["imported"], 0,
        "importing the same file twice does not double it"
    );
    assert_eq!(saldo(&app, "").await["saldo"], -230000);
}

async fn an_atomic_import_with_one_bad_row_imports_nothing(app: TestApp) {
    setup(&app, false).await;
    let records = json!([
        { "FECHA": "15/03/2024", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC123", "VALOR TANQUEO": "1000", "CANTIDAD GALONES": "1" },
        { "FECHA": "31/02/2024", "NOMBRE CONDUCTOR": "Juan Pérez", "PLACA": "ABC123", "VALOR TANQUEO": "2000", "CANTIDAD GALONES": "1" },
    ]);
    let (status, report) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/import?atomico=true",
        &sheet(records.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            report["imported"].clone(),
            report["errors"][0]["index"].clone()
        ),
        (json!(0), json!(1))
    );
    assert_eq!(report["errors"][0]["error"], "Fecha inválida");
    assert_eq!(saldo(&app, "").await["movimientos"], 0);
    let (_, report) = raw(&app, Method::POST, "/api/tanqueos/import", &sheet(records)).await;
    assert_eq!(
        report["imported"], 1,
        "without atomico the good row goes in"
    );
    let (status, _) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/import",
        &json!({ "area_operacion_id": 1, "bomba_id": 1, "records": vec![json!({}); 5001] })
            .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn the_statement_and_reconciliation_show_where_reports_disagree(app: TestApp) {
    setup(&app, false).await;
    let reported = |fecha: &str, tipo: &str, valor: i64, saldo: i64| {
        if tipo == "ANTICIPO" {
            format!(
                r#"{{"fecha":"{fecha}","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{valor},"saldo_disponible":{saldo}}}"#
            )
        } else {
            format!(
                r#"{{"fecha":"{fecha}","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":{valor},"cantidad_galones":1,"saldo_disponible":{saldo}}}"#
            )
        }
    };
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &reported("2024-03-01", "ANTICIPO", 500000, 500000),
    )
    .await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &reported("2024-03-02", "TANQUEO", 100000, 400000),
    )
    .await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &reported("2024-03-03", "TANQUEO", 50000, 340000),
    )
    .await;
    let (status, statement) = raw(
        &app,
        Method::GET,
        "/api/bombas/1/movimientos?desde=2024-03-02",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        statement["movimientos"],
        json!([
            { "id": 2, "fecha": "2024-03-02", "tipo_operacion": "TANQUEO", "valor": 100000, "saldo_calculado": 400000, "saldo_disponible": 400000, "diferencia": 0 },
            { "id": 3, "fecha": "2024-03-03", "tipo_operacion": "TANQUEO", "valor": 50000, "saldo_calculado": 350000, "saldo_disponible": 340000, "diferencia": -10000 },
        ])
    );
    let (status, report) = raw(&app, Method::GET, "/api/reconciliacion?bomba_id=1", "").await;
    assert_eq!(status, StatusCode::OK);
    let station = &report["bombas"][0];
    assert_eq!(
        (
            station["saldo_calculado"].clone(),
            station["saldo_reportado"].clone()
        ),
        (json!(350000), json!(340000))
    );
    assert_eq!(station["diferencia"], -10000);
    assert_eq!(station["discrepancias"].as_array().unwrap().len(), 1);
    assert_eq!(station["discrepancias"][0]["id"], 3);

    let token = app.operador();
    let request = axum::http::Request::builder()
        .uri("/api/reconciliacion?bomba_id=1")
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/csv")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = body.as_str().unwrap();
    assert_eq!(
        csv.lines().nth(1),
        Some("1,Estación Central,350000,340000,-10000,3,2024-03-03,350000,340000,-10000")
    );
}

async fn the_journal_posts_balanced_entries_and_a_trial_balance(app: TestApp) {
    setup(&app, false).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("500000", "2024-03-01"),
    )
    .await;
    raw(&app, Method::POST, "/api/tanqueos", &tanqueo("150000")).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let before_correction = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    raw(
        &app,
        Method::PUT,
        "/api/tanqueos/2",
        r#"{"valor_tanqueo":120000}"#,
    )
    .await;
    let (status, trial) = raw(&app, Method::GET, "/api/contabilidad/balance-prueba", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        trial["cuentas"],
        json!([
            { "cuenta": "1105-caja", "debe": 0, "haber": 500000, "saldo": -500000 },
            { "cuenta": "1330-anticipos-bomba-1", "debe": 650000, "haber": 270000, "saldo": 380000 },
            { "cuenta": "5195-combustible-placa-1-area-1", "debe": 270000, "haber": 150000, "saldo": 120000 },
        ])
    );
    assert_eq!(
        (trial["total_debe"].clone(), trial["total_haber"].clone()),
        (json!(920000), json!(920000))
    );
    assert_eq!(
        saldo(&app, "").await["saldo"],
        380000,
        "the prepaid account is the station balance"
    );

    let (_, then) = raw(
        &app,
        Method::GET,
        &format!("/api/contabilidad/balance-prueba?as_of={before_correction}"),
        "",
    )
    .await;
    assert_eq!(then["cuentas"][1]["saldo"], 350000);
    assert_eq!(then["total_debe"], then["total_haber"]);

    let (status, account) = raw(
        &app,
        Method::GET,
        "/api/contabilidad/cuentas/1330-anticipos-bomba-1/movimientos",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let running: Vec<i64> = account["movimientos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["saldo"].as_i64().unwrap())
        .collect();
    assert_eq!(running, [500000, 350000, 500000, 380000]);
    let (status, _) = raw(
        &app,
        Method::GET,
        "/api/contabilidad/cuentas/9999-nada/movimientos",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn rebuilt_ledger_read_models_answer_byte_for_byte_the_same(app: TestApp) {
    setup(&app, false).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("500000.50", "2024-03-01"),
    )
    .await;
    raw(&app, Method::POST, "/api/tanqueos", &tanqueo("150000.10")).await;
    raw(&app, Method::POST, "/api/tanqueos", &tanqueo("20000")).await;
    raw(
        &app,
        Method::PUT,
        "/api/tanqueos/2",
        r#"{"valor_tanqueo":120000.10,"saldo_disponible":0}"#,
    )
    .await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos/3/anular",
        r#"{"motivo":"Duplicado"}"#,
    )
    .await;
    let paths = [
        "/api/tanqueos",
        "/api/tanqueos/2",
        "/api/saldos-bombas",
        "/api/bombas/1/saldo",
        "/api/bombas/1/movimientos",
        "/api/reconciliacion",
        "/api/contabilidad/balance-prueba?as_of=2100-01-01",
        "/api/contabilidad/cuentas/1330-anticipos-bomba-1/movimientos",
    ];
    let mut before = Vec::new();
    for path in paths {
        let (status, body) = raw(&app, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        before.push(body.to_string());
    }
    let pool = app.state.read_models.pool();
    for table in ["rm_tanqueos", "rm_asientos", "projection_checkpoints"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(pool)
            .await
            .unwrap();
    }
    let app = app.restart().await;
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, std::time::Duration::from_secs(10))
            .await
    );
    for (path, expected) in paths.iter().zip(before) {
        let (_, body) = raw(&app, Method::GET, path, "").await;
        assert_eq!(body.to_string(), expected, "{path}");
    }
}

async fn an_admin_adds_a_fuel_product_operators_can_then_record(app: TestApp) {
    setup(&app, false).await;
    let body = r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1,"tipo_combustible":"ADBLUE"}"#;
    let (status, _) = raw(&app, Method::POST, "/api/tanqueos", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, products) = raw(&app, Method::GET, "/api/catalogos/combustibles", "").await;
    let names: Vec<&str> = products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nombre"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ACPM",
            "GASOLINA",
            "EXTRA",
            "UREA",
            "LUBRICANTE",
            "HIDRAULICO",
            "ACEITE MOTOR",
            "LAVADO",
            "ENGRASE",
            "CONSUMIBLES LIMPIEZA"
        ]
    );
    let admin = app.token(fleet_ledger::auth::Role::Admin);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/catalogos/combustibles",
            Some(&admin),
            Some(r#"{"nombre":"ADBLUE"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, created) = raw(&app, Method::POST, "/api/tanqueos", body).await;
    assert_eq!(
        (status, created["tipo_combustible"].clone()),
        (StatusCode::CREATED, json!("ADBLUE"))
    );
}

async fn voiding_an_anticipo_cannot_overdraw_a_no_overdraft_station(app: TestApp) {
    setup(&app, true).await;
    raw(
        &app,
        Method::POST,
        "/api/tanqueos",
        &anticipo("100000", "2024-03-01"),
    )
    .await;
    raw(&app, Method::POST, "/api/tanqueos", &tanqueo("100000")).await;
    let (status, body) = raw(
        &app,
        Method::POST,
        "/api/tanqueos/1/anular",
        r#"{"motivo":"error"}"#,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({ "error": "Saldo insuficiente en la bomba 1: disponible 0, requerido 100000" })
        )
    );
    assert_eq!(saldo(&app, "").await["saldo"], 0);
}

/// Behaviours a review against the issue pinned down.
async fn review_fixes_hold(app: TestApp) {
    setup(&app, false).await;
    // The seed forbids only the vehicle and driver fields on an ANTICIPO.
    let with_hourmeter = r#"{"fecha":"2024-03-01","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":1000,"horometro":12}"#;
    assert_eq!(
        raw(&app, Method::POST, "/api/tanqueos", with_hourmeter)
            .await
            .0,
        StatusCode::CREATED
    );
    let lower_case = r#"{"fecha":"2024-03-02","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":100,"cantidad_galones":12.5,"tipo_combustible":"acpm"}"#;
    raw(&app, Method::POST, "/api/tanqueos", lower_case).await;
    raw(&app, Method::POST, "/api/tanqueos", r#"{"fecha":"2024-03-03","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":50,"cantidad_galones":6.5}"#).await;
    // Filters take the values as people type them; the summary adds refuel values only and
    // writes computed sums without trailing zeros.
    let (_, page) = raw(
        &app,
        Method::GET,
        "/api/tanqueos?tipo_combustible=acpm&tipo_operacion=tanqueo",
        "",
    )
    .await;
    assert_eq!(page["pagination"]["total"], 2);
    assert_eq!(
        page["summary"].to_string(),
        r#"{"total_galones":19,"total_valor":150}"#
    );
    // A whole-file problem is one 400 with the seed's text, not 5,000 row errors.
    let sheet = json!({ "area_operacion_id": 1, "bomba_id": 9, "records": [] }).to_string();
    let (status, body) = raw(&app, Method::POST, "/api/tanqueos/import", &sheet).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "insert or update on table \"tanqueo\" violates foreign key constraint \"tanqueo_bomba_id_fkey\"");
    // Reconciliation balances are as of the end of the range, whatever came before it.
    let (_, report) = raw(
        &app,
        Method::GET,
        "/api/reconciliacion?bomba_id=1&desde=2024-03-03&hasta=2024-03-03",
        "",
    )
    .await;
    assert_eq!(report["bombas"][0]["saldo_calculado"], 850);
    let (_, report) = raw(
        &app,
        Method::GET,
        "/api/reconciliacion?bomba_id=1&desde=2030-01-01",
        "",
    )
    .await;
    assert_eq!(report["bombas"][0]["saldo_calculado"], 850);
    // With more conductor and plate errors at once, the first foreign key in the seed's order wins.
    let two_bad = r#"{"fecha":"2024-03-15","conductor_id":9,"placa_id":9,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1,"cantidad_galones":1}"#;
    let (_, body) = raw(&app, Method::POST, "/api/tanqueos", two_bad).await;
    assert_eq!(body["error"], "insert or update on table \"tanqueo\" violates foreign key constraint \"tanqueo_conductor_id_fkey\"");
}

const LEDGER_READS: [&str; 8] = [
    "/api/tanqueos?limit=500",
    "/api/saldos-bombas",
    "/api/bombas/1/saldo",
    "/api/bombas/1/saldo?fecha_corte=2024-03-15",
    "/api/bombas/1/movimientos",
    "/api/reconciliacion",
    "/api/contabilidad/balance-prueba?as_of=2100-01-01",
    "/api/contabilidad/cuentas/1330-anticipos-bomba-1/movimientos",
];

async fn ledger_answers(app: &TestApp) -> Vec<String> {
    let mut answers = Vec::new();
    for path in LEDGER_READS {
        answers.push(raw(app, Method::GET, path, "").await.1.to_string());
    }
    answers
}

/// (c) For random histories of anticipos, tanqueos, corrections and voids, throwing every
/// ledger read model away and rebuilding it from the events answers byte for byte the same.
async fn random_histories_rebuild_to_the_same_answers(app: TestApp) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let backend = app.backend;
    app.state.shutdown().await;
    let history = proptest::collection::vec((0u8..4, 1u32..50_000_000, 1u32..28, 1i64..8), 1..14);
    let mut runner = TestRunner::new(Config {
        cases: 4,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&history, |ops| {
            handle.block_on(async {
                let app = TestApp::start(backend).await.expect("a fresh store");
                setup(&app, false).await;
                for (kind, cents, day, target) in ops {
                    let amount = format!("{}.{:02}", cents / 100, cents % 100);
                    let fecha = format!("2024-03-{day:02}");
                    let (method, path, body) = match kind {
                        0 => (
                            Method::POST,
                            "/api/tanqueos".to_string(),
                            anticipo(&amount, &fecha),
                        ),
                        1 => (
                            Method::POST,
                            "/api/tanqueos".to_string(),
                            tanqueo(&amount).replace("2024-03-15", &fecha),
                        ),
                        2 => (
                            Method::PUT,
                            format!("/api/tanqueos/{target}"),
                            format!(r#"{{"valor_tanqueo":{amount}}}"#),
                        ),
                        _ => (
                            Method::POST,
                            format!("/api/tanqueos/{target}/anular"),
                            r#"{"motivo":"x"}"#.to_string(),
                        ),
                    };
                    // Refusals (a correction of an anticipo's valor_tanqueo, an unknown id) are
                    // part of a realistic history too.
                    raw(&app, method, &path, &body).await;
                }
                let live = ledger_answers(&app).await;
                let pool = app.state.read_models.pool();
                for table in ["rm_tanqueos", "rm_asientos", "projection_checkpoints"] {
                    sqlx::query(&format!("DELETE FROM {table}"))
                        .execute(pool)
                        .await
                        .unwrap();
                }
                let app = app.restart().await;
                let head = app.state.log.head().await.unwrap();
                assert!(
                    app.state
                        .runner
                        .wait_for(head, std::time::Duration::from_secs(10))
                        .await
                );
                let rebuilt = ledger_answers(&app).await;
                app.state.shutdown().await;
                if live != rebuilt {
                    return Err(TestCaseError::fail(format!(
                        "live {live:?}\nrebuilt {rebuilt:?}"
                    )));
                }
                Ok(())
            })
        })
    });
    outcome.unwrap();
}
