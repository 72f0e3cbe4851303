//! Two instances of the service on one store: what one records, the other counts, and record ids
//! never collide.

mod common;

use std::collections::{BTreeMap, HashSet};

use axum::http::{Method, StatusCode};
use common::TestApp;
use fleet_ledger::{app, AppState};
use rust_decimal::Decimal;
use serde_json::{json, Value};

on_both_stores!(
    two_instances_record_refuels_with_distinct_ids_and_exact_balances,
    a_policy_changed_on_one_instance_binds_the_next_refuel_on_another,
    three_instances_keep_the_read_models_exact_when_the_projection_leader_dies,
);

const STATIONS: i64 = 3;
const REFUELS_PER_INSTANCE: usize = 40;

/// An area, `STATIONS` stations, a plate and a driver: what the refuels below refer to.
async fn register_three_stations(app: &TestApp) {
    for (path, body) in [
        ("/api/areas-operacion", json!({ "nombre": "Logística" })),
        (
            "/api/bombas",
            json!([{ "bomba": "Norte", "area_operacion_id": 1 }, { "bomba": "Sur", "area_operacion_id": 1 }, { "bomba": "Centro", "area_operacion_id": 1 }]),
        ),
        ("/api/placas", json!({ "placa": "ABC123" })),
        ("/api/conductores", json!({ "conductor": "Juan Pérez" })),
    ] {
        let (status, answer) = app.post(path, &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
}

async fn two_instances_record_refuels_with_distinct_ids_and_exact_balances(first: TestApp) {
    register_three_stations(&first).await;
    // A second instance on the same store, as a second `serve` process would be.
    let second_state = AppState::open(&first.location, first.keys.clone())
        .await
        .expect("a second instance opens on the same store");
    let second_router = app(second_state.clone());

    let record = |instance: usize, n: usize| {
        let bomba_id = (n as i64 % STATIONS) + 1;
        let valor = 1000 + (instance * 1000 + n) as i64;
        (
            bomba_id,
            Decimal::from(valor),
            json!({"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":bomba_id,
                "area_operacion_id":1,"valor_tanqueo":valor,"cantidad_galones":10})
            .to_string(),
        )
    };
    let token = first.operador();
    let reader_token = token.clone();
    let send = move |router: axum::Router, body: String| {
        let token = token.clone();
        async move {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let request = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/api/tanqueos")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::from(body))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let mut tasks = Vec::new();
    for n in 0..REFUELS_PER_INSTANCE {
        for (instance, router) in [(0, first.router.clone()), (1, second_router.clone())] {
            let (bomba_id, valor, body) = record(instance, n);
            let send = send.clone();
            tasks.push(tokio::spawn(async move {
                let (status, answer) = send(router, body).await;
                (bomba_id, valor, status, answer)
            }));
        }
    }
    let mut ids = HashSet::new();
    let mut expected: BTreeMap<i64, Decimal> = BTreeMap::new();
    for task in tasks {
        let (bomba_id, valor, status, answer) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert!(
            ids.insert(answer["id"].as_i64().unwrap()),
            "id {} twice",
            answer["id"]
        );
        *expected.entry(bomba_id).or_default() -= valor;
    }
    assert_eq!(ids.len(), 2 * REFUELS_PER_INSTANCE);
    for (bomba_id, saldo) in expected {
        for router in [first.router.clone(), second_router.clone()] {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let request = axum::http::Request::builder()
                .uri(format!("/api/bombas/{bomba_id}/saldo"))
                .header("authorization", format!("Bearer {reader_token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let balance: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                balance["saldo"],
                json!(saldo),
                "station {bomba_id}: {balance}"
            );
        }
    }
    second_state.shutdown().await;
}

/// The overdraft policy lives in the station's stream: an instance that has already decided
/// refuels on the station (its aggregate and the registered policy cached) refuses the very next
/// overdraft after another instance forbids it, with no staleness window.
async fn a_policy_changed_on_one_instance_binds_the_next_refuel_on_another(first: TestApp) {
    register_three_stations(&first).await;
    let second_state = AppState::open(&first.location, first.keys.clone())
        .await
        .expect("a second instance opens on the same store");
    let second = app(second_state.clone());
    let token = first.operador();
    let tanqueo = |valor: i64| {
        json!({"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,
            "area_operacion_id":1,"valor_tanqueo":valor,"cantidad_galones":10})
        .to_string()
    };
    let (status, answer) = send_to(
        &second,
        &token,
        Method::POST,
        "/api/tanqueos",
        Some(tanqueo(1000)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "overdraft allowed at registration: {answer}"
    );

    let (status, station) = send_to(
        &first.router,
        &token,
        Method::PATCH,
        "/api/bombas/1",
        Some(r#"{"permitir_saldo_negativo":false}"#.into()),
    )
    .await;
    assert_eq!(
        (status, station.to_string()),
        (
            StatusCode::OK,
            r#"{"id":1,"bomba":"Norte","area_operacion_id":1,"permitir_saldo_negativo":false}"#
                .into()
        )
    );
    let (status, answer) = send_to(
        &second,
        &token,
        Method::POST,
        "/api/tanqueos",
        Some(tanqueo(500)),
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::CONFLICT,
            json!({ "error": "Saldo insuficiente en la bomba 1: disponible -1000, requerido 500" })
        )
    );
    // The other stations keep the policy they were registered with.
    let (status, answer) = send_to(
        &second,
        &token,
        Method::POST,
        "/api/tanqueos",
        Some(tanqueo(500).replace(r#""bomba_id":1"#, r#""bomba_id":2"#)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, listed) = send_to(&second, &token, Method::GET, "/api/bombas/1", None).await;
    assert_eq!(listed["permitir_saldo_negativo"], false, "{listed}");

    // Allowed again from the second instance: the first decides on it at once.
    let (status, _) = send_to(
        &second,
        &token,
        Method::PATCH,
        "/api/bombas/1",
        Some(r#"{"permitir_saldo_negativo":true}"#.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = first.post("/api/tanqueos", &tanqueo(500)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, balance) = first.get("/api/bombas/1/saldo").await;
    assert_eq!(balance["saldo"], json!(-1500), "{balance}");
    second_state.shutdown().await;
}

/// Sends one request through `router` with `token`; answers status and JSON body.
async fn send_to(
    router: &axum::Router,
    token: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(body.map_or_else(axum::body::Body::empty, axum::body::Body::from))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Three instances on one store take writes; the one folding the log into the read models dies
/// mid-load (without giving its lease up). Another takes over; afterwards every acknowledged
/// refuel reads back on every live instance, and the read models equal a rebuild from the log
/// (nothing applied twice, nothing skipped).
async fn three_instances_keep_the_read_models_exact_when_the_projection_leader_dies(
    first: TestApp,
) {
    register_three_stations(&first).await;
    assert!(
        first.state.runner.is_leading(),
        "the first instance took the lease"
    );
    let mut others = Vec::new();
    for _ in 0..2 {
        let state = AppState::open(&first.location, first.keys.clone())
            .await
            .expect("another instance opens on the same store");
        assert!(!state.runner.is_leading());
        others.push((app(state.clone()), state));
    }
    let token = first.operador();
    let refuel = |n: i64| {
        json!({"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":(n % STATIONS) + 1,
            "area_operacion_id":1,"valor_tanqueo":1000 + n,"cantidad_galones":10})
        .to_string()
    };
    let mut acknowledged = Vec::new();
    let mut n = 0;
    for round in 0..6 {
        if round == 2 {
            // The leader dies mid-load: it stops folding and never answers again.
            first.state.runner.abandon();
        }
        let mut routers = vec![others[0].0.clone(), others[1].0.clone()];
        if round < 2 {
            routers.push(first.router.clone());
        }
        let mut tasks = Vec::new();
        for router in routers {
            for _ in 0..8 {
                n += 1;
                let (router, token, body) = (router.clone(), token.clone(), refuel(n));
                tasks.push(tokio::spawn(async move {
                    send_to(&router, &token, Method::POST, "/api/tanqueos", Some(body)).await
                }));
            }
        }
        for task in tasks {
            let (status, answer) = task.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{answer}");
            acknowledged.push(answer["id"].as_i64().unwrap());
        }
    }
    // Another instance takes the lease over and catches up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !others.iter().any(|(_, state)| state.runner.is_leading()) {
        assert!(
            std::time::Instant::now() < deadline,
            "nobody took the lease over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (router, _) in &others {
        for id in &acknowledged {
            let (status, record) = send_to(
                router,
                &token,
                Method::GET,
                &format!("/api/tanqueos/{id}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "record {id}: {record}");
        }
    }
    // A rebuild: the same log folded from position 0 into read models of its own.
    let rebuilt_dir = tempfile::tempdir().unwrap();
    let rebuilt_location = fleet_ledger::StoreLocation {
        log_url: first.location.log_url.clone(),
        read_models_url: format!(
            "sqlite://{}?mode=rwc",
            rebuilt_dir.path().join("rebuilt.db").display()
        ),
    };
    let rebuilt = AppState::open(&rebuilt_location, first.keys.clone())
        .await
        .expect("a rebuild opens");
    let rebuilt_router = app(rebuilt.clone());
    for path in [
        "/api/tanqueos?limit=500",
        "/api/saldos-bombas",
        "/api/bombas/1/movimientos",
        "/api/contabilidad/cuentas/1330-anticipos-bomba-1/movimientos",
    ] {
        let (status, live) = send_to(&others[0].0, &token, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {live}");
        let (_, from_scratch) = send_to(&rebuilt_router, &token, Method::GET, path, None).await;
        assert_eq!(live, from_scratch, "{path}");
    }
    let (_, live) = send_to(
        &others[1].0,
        &token,
        Method::GET,
        "/api/contabilidad/balance-prueba",
        None,
    )
    .await;
    let (_, from_scratch) = send_to(
        &rebuilt_router,
        &token,
        Method::GET,
        "/api/contabilidad/balance-prueba",
        None,
    )
    .await;
    assert_eq!(live["cuentas"], from_scratch["cuentas"]);
    assert_eq!(live["total_debe"], live["total_haber"]);
    rebuilt.shutdown().await;
    for (_, state) in others {
        state.shutdown().await;
    }
}
