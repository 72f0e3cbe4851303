//! The fuel checks' alerts (issue 16) through the API: refuels that break a rule raise an alert
//! with its evidence, `GET /api/alertas` filters them, `POST /api/alertas/{id}/revisar` records
//! the reviewer, a correction closes or re-opens them, a void closes them, and a restart loses
//! none and repeats none.

mod common;

use std::time::Duration;

use aggregates::alert::alert_id;
use aggregates::anomaly::Rule;
use axum::http::{Method, StatusCode};
use common::TestApp;
use fleet_ledger::auth::Role;
use serde_json::{json, Value};

on_both_stores!(
    refuels_that_break_a_rule_are_listed_with_their_evidence,
    the_list_refuses_a_filter_it_cannot_apply,
    a_review_records_the_reviewer_once,
    a_correction_closes_or_reopens_an_alert_and_a_void_closes_it,
    a_restart_keeps_every_alert_and_repeats_none,
    a_flagged_alert_is_told_to_the_company_s_webhooks,
    a_band_set_by_an_admin_judges_the_refuels_after_it,
    a_band_is_set_by_an_admin_only_and_refused_naming_the_field,
);

/// The seeded fleet's vehicle 1 (plate 1) burns Diesel (sold as ACPM) from a 50-gallon tank.
async fn fleet(app: &TestApp) {
    app.seed_fleet().await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/vehiculo/1",
            Some(&app.operador()),
            Some(r#"{"idTipoCombustible":1,"capacidadCombustibleGalones":50}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Records a refuel of plate 1 at station 1; answers its id.
async fn refuel(app: &TestApp, fecha: &str, tipo: &str, galones: &str, valor: i64) -> i64 {
    let body = format!(
        r#"{{"fecha":"{fecha}","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,
            "tipo_combustible":"{tipo}","cantidad_galones":{galones},"valor_tanqueo":{valor}}}"#
    );
    let (status, record) = app.post("/api/tanqueos", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{record}");
    record["id"].as_i64().unwrap()
}

/// Waits until the detector has judged everything recorded, and its alerts are folded.
async fn settle(app: &TestApp) {
    // The detector's own appends move the head once more.
    for _ in 0..2 {
        let head = app.state.log.head().await.unwrap();
        assert!(
            app.state
                .consumers
                .wait_for("alertas", head, Duration::from_secs(20))
                .await,
            "the detector did not reach {head}"
        );
    }
}

async fn alerts(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/alertas{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn rules_of(listed: &Value) -> Vec<String> {
    let mut rules: Vec<String> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["regla"].as_str().unwrap().to_string())
        .collect();
    rules.sort();
    rules
}

/// The alert as listed, without the instant it last changed.
fn without_instants(mut alert: Value) -> Value {
    alert.as_object_mut().unwrap().remove("actualizado_en");
    if let Some(revision) = alert["revision"].as_object_mut() {
        revision.remove("revisado_en");
    }
    alert
}

async fn refuels_that_break_a_rule_are_listed_with_their_evidence(app: TestApp) {
    fleet(&app).await;
    // 40 gallons at 12,000 COP/gal: nothing to say.
    let first = refuel(&app, "2026-01-10", "ACPM", "40", 480_000).await;
    // The same day, 60 gallons (more than 50 + 5%) at 16,000 COP/gal (past ACPM's 15,000).
    let second = refuel(&app, "2026-01-10", "ACPM", "60", 960_000).await;
    // Gasoline in a Diesel vehicle, at a price inside gasoline's band.
    let third = refuel(&app, "2026-01-20", "GASOLINA", "10", 130_000).await;
    settle(&app).await;

    let listed = alerts(&app, "").await;
    assert_eq!(
        listed["pagination"],
        json!({ "page": 1, "limit": 20, "total": 4, "totalPages": 1 })
    );
    assert_eq!(
        rules_of(&listed),
        [
            "COMBUSTIBLE_DISTINTO",
            "COSTO_FUERA_DE_BANDA",
            "GALONES_SOBRE_CAPACIDAD",
            "TANQUEO_MUY_PRONTO"
        ]
    );
    // Newest refuel date first.
    assert_eq!(listed["data"][0]["tanqueo_id"], third);

    let over = alerts(&app, "?regla=galones_sobre_capacidad").await;
    assert_eq!(over["pagination"]["total"], 1);
    assert_eq!(
        without_instants(over["data"][0].clone()),
        json!({
            "id": alert_id(second, Rule::GalonesSobreCapacidad).to_string(),
            "regla": "GALONES_SOBRE_CAPACIDAD",
            "severidad": "ALTA",
            "estado": "ABIERTA",
            "evidencia": { "cantidad_galones": 60, "capacidad_galones": 50, "tolerancia": 0.05 },
            "tanqueo_id": second,
            "placa_id": 1,
            "bomba_id": 1,
            "fecha": "2026-01-10",
            "cierre": null,
            "revision": null,
        })
    );
    let band = alerts(&app, "?regla=COSTO_FUERA_DE_BANDA").await;
    assert_eq!(
        band["data"][0]["evidencia"],
        json!({ "costo_por_galon": 16000, "minimo": 9000, "maximo": 15000 })
    );
    let soon = alerts(&app, "?regla=TANQUEO_MUY_PRONTO").await;
    assert_eq!(
        soon["data"][0]["evidencia"],
        json!({ "dias_desde_anterior": 0, "dias_minimos": 0 })
    );

    // Each filter as named.
    assert_eq!(
        rules_of(&alerts(&app, "?severidad=ALTA").await),
        ["GALONES_SOBRE_CAPACIDAD"]
    );
    assert_eq!(
        alerts(&app, "?estado=ABIERTA&placa_id=1&bomba_id=1").await["pagination"]["total"],
        4
    );
    assert_eq!(
        alerts(&app, "?estado=CONFIRMADA").await["pagination"]["total"],
        0
    );
    assert_eq!(alerts(&app, "?bomba_id=2").await["pagination"]["total"], 0);
    assert_eq!(
        rules_of(&alerts(&app, "?desde=2026-01-15").await),
        ["COMBUSTIBLE_DISTINTO"]
    );
    assert_eq!(
        alerts(&app, "?hasta=2026-01-10").await["pagination"]["total"],
        3
    );
    let paged = alerts(&app, "?limit=1&page=2").await;
    assert_eq!(
        paged["pagination"],
        json!({ "page": 2, "limit": 1, "total": 4, "totalPages": 4 })
    );
    assert_eq!(paged["data"].as_array().unwrap().len(), 1);
    // The first refuel raised nothing.
    assert!(alerts(&app, "").await["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["tanqueo_id"] != first));
}

async fn the_list_refuses_a_filter_it_cannot_apply(app: TestApp) {
    let cases = [
        (
            "?regla=NOPE",
            "Invalid value for regla: NOPE; accepted values: HOROMETRO_RETROCEDE, \
             HOROMETRO_SALTO_IMPOSIBLE, HOROMETRO_FALTANTE, GALONES_SOBRE_CAPACIDAD, \
             TANQUEO_MUY_PRONTO, COMBUSTIBLE_DISTINTO, COSTO_ATIPICO_ESTACION, \
             COSTO_FUERA_DE_BANDA, CONSUMO_ATIPICO, POSIBLE_DUPLICADO, SALDO_REPORTADO_DESVIADO",
        ),
        (
            "?severidad=grave",
            "Invalid value for severidad: grave; accepted values: BAJA, MEDIA, ALTA",
        ),
        (
            "?estado=CERRADA",
            "Invalid value for estado: CERRADA; accepted values: ABIERTA, CONFIRMADA, \
             DESCARTADA, RESUELTA",
        ),
        (
            "?placa_id=uno",
            "Invalid value for placa_id: expected comma-separated integers",
        ),
        (
            "?bomba_id=x",
            "Invalid value for bomba_id: expected comma-separated integers",
        ),
        (
            "?desde=ayer",
            "Invalid date for desde: ayer (expected YYYY-MM-DD)",
        ),
        (
            "?hasta=2026-13-01",
            "Invalid date for hasta: 2026-13-01 (expected YYYY-MM-DD)",
        ),
        ("?limit=501", "Invalid value for limit: at most 500"),
    ];
    for (query, error) in cases {
        let (status, body) = app.get(&format!("/api/alertas{query}")).await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, json!({ "error": error })),
            "{query}"
        );
    }
}

async fn a_review_records_the_reviewer_once(app: TestApp) {
    fleet(&app).await;
    let id = refuel(&app, "2026-01-10", "ACPM", "60", 720_000).await;
    settle(&app).await;
    let alerta = alert_id(id, Rule::GalonesSobreCapacidad);
    let path = format!("/api/alertas/{alerta}/revisar");
    let auditor = app.token(Role::Auditor);
    let body = r#"{"resolucion":"confirmada","nota":"Cargó un bidón aparte"}"#;

    // An operador records refuels; reviewing their alarms is the audit side's.
    let (status, answer) = app
        .call(Method::POST, &path, Some(&app.operador()), Some(body))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = app
        .call(
            Method::POST,
            &path,
            Some(&auditor),
            Some(r#"{"resolucion":"quizas"}"#),
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Invalid value for resolucion: quizas; accepted values: confirmada, descartada" })
        )
    );
    let unknown = alert_id(id, Rule::PosibleDuplicado);
    let (status, answer) = app
        .call(
            Method::POST,
            &format!("/api/alertas/{unknown}/revisar"),
            Some(&auditor),
            Some(body),
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": format!("No se encontró la alerta {unknown}") })
        )
    );
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/alertas/abc/revisar",
            Some(&auditor),
            Some(body),
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la alerta abc" })
        )
    );

    let (status, reviewed) = app
        .call(Method::POST, &path, Some(&auditor), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["estado"], "CONFIRMADA");
    assert_eq!(
        without_instants(reviewed.clone())["revision"],
        json!({ "revisado_por": "ana@flota.co", "resolucion": "confirmada", "nota": "Cargó un bidón aparte" })
    );
    assert!(reviewed["revision"]["revisado_en"].is_string());
    let listed = alerts(&app, "?estado=CONFIRMADA").await;
    assert_eq!(listed["data"][0], reviewed);

    let (status, answer) = app
        .call(
            Method::POST,
            &path,
            Some(&app.token(Role::Admin)),
            Some(r#"{"resolucion":"descartada"}"#),
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            json!({ "error": format!("La alerta {alerta} ya fue revisada (confirmada)") })
        )
    );
    // The review is an event, written by the reviewer.
    let events = app.state.log.read_type("alerta", 0, 100).await.unwrap();
    let review = events
        .iter()
        .find(|e| e.event_type == "AnomalyReviewed")
        .expect("a review event");
    assert_eq!(review.metadata.actor.as_deref(), Some("ana@flota.co"));
    assert_eq!(review.payload["revisor"], "ana@flota.co");
}

async fn a_correction_closes_or_reopens_an_alert_and_a_void_closes_it(app: TestApp) {
    fleet(&app).await;
    let id = refuel(&app, "2026-01-10", "ACPM", "60", 720_000).await;
    settle(&app).await;
    let over = || async { alerts(&app, "?regla=GALONES_SOBRE_CAPACIDAD").await["data"][0].clone() };
    assert_eq!(over().await["estado"], "ABIERTA");

    let correct = |body: &'static str| {
        let path = format!("/api/tanqueos/{id}");
        let token = app.operador();
        let app = &app;
        async move {
            let (status, answer) = app.call(Method::PUT, &path, Some(&token), Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    correct(r#"{"cantidad_galones":40,"valor_tanqueo":480000}"#).await;
    settle(&app).await;
    let cleared = over().await;
    assert_eq!(
        (&cleared["estado"], &cleared["cierre"]),
        (&json!("RESUELTA"), &json!("TANQUEO_CORREGIDO"))
    );

    correct(r#"{"cantidad_galones":70,"valor_tanqueo":840000}"#).await;
    settle(&app).await;
    let reopened = over().await;
    assert_eq!(reopened["estado"], "ABIERTA");
    assert_eq!(reopened["cierre"], Value::Null);
    assert_eq!(reopened["evidencia"]["cantidad_galones"], 70);

    let (status, answer) = app
        .post(
            &format!("/api/tanqueos/{id}/anular"),
            r#"{"motivo":"Duplicado"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    settle(&app).await;
    let voided = over().await;
    assert_eq!(
        (&voided["estado"], &voided["cierre"]),
        (&json!("RESUELTA"), &json!("TANQUEO_ANULADO"))
    );
    // One alert all along, as the log tells it.
    let events = app.state.log.read_type("alerta", 0, 100).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "AnomalyFlagged",
            "AnomalyCleared",
            "AnomalyFlagged",
            "AnomalyCleared"
        ]
    );
}

async fn a_restart_keeps_every_alert_and_repeats_none(app: TestApp) {
    fleet(&app).await;
    for day in 10..16 {
        refuel(&app, &format!("2026-01-{day}"), "ACPM", "60", 720_000 + day).await;
    }
    // Stopped at once, whatever the detector had done: a killed process.
    app.state.consumers.abandon();
    let app = app.restart().await;
    settle(&app).await;
    assert_eq!(
        alerts(&app, "?regla=GALONES_SOBRE_CAPACIDAD").await["pagination"]["total"],
        6
    );
    // The detector's context came back from the log: a second refuel the same day as the last
    // one before the restart is too soon.
    refuel(&app, "2026-01-15", "ACPM", "30", 360_000).await;
    settle(&app).await;
    let soon = alerts(&app, "?regla=TANQUEO_MUY_PRONTO").await;
    assert_eq!(soon["pagination"]["total"], 1, "{soon}");
    let app = app.restart().await;
    settle(&app).await;
    let flagged = app
        .state
        .log
        .read_type("alerta", 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "AnomalyFlagged")
        .count();
    assert_eq!(flagged, 7);
    assert_eq!(alerts(&app, "").await["pagination"]["total"], 7);
}

async fn a_flagged_alert_is_told_to_the_company_s_webhooks(app: TestApp) {
    common::inspection_fixture(&app).await;
    let admin = app.token(Role::Admin);
    let (status, webhook) = app
        .call(
            Method::POST,
            "/api/webhooks",
            Some(&admin),
            Some(
                r#"{"empresa_id":1,"url":"https://203.0.113.10/hooks","eventos":["tanqueo.anomalia"]}"#,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    fleet(&app).await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/vehiculo/1",
            Some(&app.operador()),
            Some(r#"{"idEmpresa":1}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = refuel(&app, "2026-01-10", "ACPM", "60", 720_000).await;
    settle(&app).await;
    let (status, deliveries) = app
        .call(
            Method::GET,
            &format!("/api/webhooks/{}/entregas", webhook["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["evento"], "tanqueo.anomalia");
    // The body the receiver will get, as scheduled.
    let corpo: String = sqlx::query_scalar("SELECT corpo FROM webhook_deliveries WHERE id = $1")
        .bind(deliveries[0]["id"].as_str().unwrap())
        .fetch_one(app.state.read_models.pool())
        .await
        .unwrap();
    let corpo: Value = serde_json::from_str(&corpo).unwrap();
    assert_eq!(corpo["evento"], "tanqueo.anomalia");
    assert_eq!(
        corpo["dados"],
        json!({
            "id": alert_id(id, Rule::GalonesSobreCapacidad).to_string(),
            "regla": "GALONES_SOBRE_CAPACIDAD",
            "severidad": "ALTA",
            "estado": "ABIERTA",
            "evidencia": { "cantidad_galones": 60, "capacidad_galones": 50, "tolerancia": 0.05 },
            "tanqueo_id": id,
            "placa_id": 1,
            "bomba_id": 1,
            "fecha": "2026-01-10",
        })
    );
}

async fn put_band(app: &TestApp, role: Role, body: &str) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        "/api/alertas/bandas",
        Some(&app.token(role)),
        Some(body),
    )
    .await
}

fn default_bands() -> Vec<Value> {
    vec![
        json!({"tipo_combustible": "ACPM", "desde": null, "hasta": null, "minimo": 9000, "maximo": 15000, "por_defecto": true}),
        json!({"tipo_combustible": "GASOLINA", "desde": null, "hasta": null, "minimo": 10000, "maximo": 16000, "por_defecto": true}),
        json!({"tipo_combustible": "EXTRA", "desde": null, "hasta": null, "minimo": 11000, "maximo": 17000, "por_defecto": true}),
    ]
}

async fn a_band_set_by_an_admin_judges_the_refuels_after_it(app: TestApp) {
    fleet(&app).await;
    let (status, listed) = app.get("/api/alertas/bandas").await;
    assert_eq!(
        (status, listed),
        (StatusCode::OK, json!({ "data": default_bands() }))
    );
    // 9,200 COP/gal: inside ACPM's default band, judged before any band was set.
    let before = refuel(&app, "2026-02-10", "ACPM", "10", 92_000).await;
    settle(&app).await;

    let (status, set) = put_band(
        &app,
        Role::Admin,
        r#"{"tipo_combustible":"acpm","desde":"2026-01-01","hasta":null,"minimo":9500,"maximo":14500}"#,
    )
    .await;
    let mut expected = vec![
        json!({"tipo_combustible": "ACPM", "desde": "2026-01-01", "hasta": null,
        "minimo": 9500, "maximo": 14500, "por_defecto": false}),
    ];
    expected.extend(default_bands());
    assert_eq!((status, set), (StatusCode::OK, json!({ "data": expected })));
    let (_, listed) = app.get("/api/alertas/bandas").await;
    assert_eq!(listed, json!({ "data": expected }));

    // The same price after the band: outside it (but inside the default).
    let after = refuel(&app, "2026-02-20", "ACPM", "10", 92_000).await;
    // Dated before the band: the default decides.
    let old_date = refuel(&app, "2025-12-20", "ACPM", "10", 92_000).await;
    settle(&app).await;
    let flagged = alerts(&app, "?regla=COSTO_FUERA_DE_BANDA").await;
    assert_eq!(flagged["pagination"]["total"], 1, "{flagged}");
    let alert = &flagged["data"][0];
    assert_eq!(alert["tanqueo_id"], after);
    assert_eq!(alert["severidad"], "MEDIA");
    assert_eq!(
        alert["evidencia"],
        json!({ "costo_por_galon": 9200, "minimo": 9500, "maximo": 14500 })
    );
    // Judged before the band was set: not judged again.
    assert_ne!(alert["tanqueo_id"], before);
    assert_ne!(alert["tanqueo_id"], old_date);
}

async fn a_band_is_set_by_an_admin_only_and_refused_naming_the_field(app: TestApp) {
    app.seed_fleet().await;
    let body = r#"{"tipo_combustible":"ACPM","desde":"2026-01-01","hasta":null,"minimo":9500,"maximo":14500}"#;
    for role in [Role::Operador, Role::Auditor] {
        let (status, answer) = put_band(&app, role, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let cases = [
        (
            r#"{"desde":"2026-01-01","minimo":1,"maximo":2}"#,
            "Missing required field: tipo_combustible",
        ),
        (
            r#"{"tipo_combustible":"UREA_X","desde":"2026-01-01","minimo":1,"maximo":2}"#,
            "Invalid value for tipo_combustible: UREA_X",
        ),
        (
            r#"{"tipo_combustible":"ACPM","minimo":1,"maximo":2}"#,
            "Missing required field: desde",
        ),
        (
            r#"{"tipo_combustible":"ACPM","desde":"2026-01-01","maximo":2}"#,
            "Missing required field: minimo",
        ),
        (
            r#"{"tipo_combustible":"ACPM","desde":"2026-01-01","minimo":1}"#,
            "Missing required field: maximo",
        ),
        (
            r#"{"tipo_combustible":"ACPM","desde":"2026-01-01","minimo":0,"maximo":2}"#,
            "Invalid value for minimo: must be greater than 0",
        ),
        (
            r#"{"tipo_combustible":"ACPM","desde":"2026-01-01","minimo":3,"maximo":2}"#,
            "Invalid value for maximo: must be greater than or equal to minimo",
        ),
        (
            r#"{"tipo_combustible":"ACPM","desde":"2026-01-10","hasta":"2026-01-09","minimo":1,"maximo":2}"#,
            "Invalid value for hasta: must be on or after desde",
        ),
    ];
    for (body, error) in cases {
        let (status, answer) = put_band(&app, Role::Admin, body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({ "error": error })),
            "{body}"
        );
    }
    // Nothing was set.
    let (_, listed) = app.get("/api/alertas/bandas").await;
    assert_eq!(listed, json!({ "data": default_bands() }));
}
