//! Two instances of the service on one store: what one records, the other counts, and record ids
//! never collide.

mod common;

use std::collections::{BTreeMap, HashSet};

use axum::http::{Method, StatusCode};
use common::TestApp;
use fleet_ledger::{app, AppState};
use rust_decimal::Decimal;
use serde_json::{json, Value};

on_both_stores!(two_instances_record_refuels_with_distinct_ids_and_exact_balances);

const STATIONS: i64 = 3;
const REFUELS_PER_INSTANCE: usize = 40;

async fn two_instances_record_refuels_with_distinct_ids_and_exact_balances(first: TestApp) {
    for (path, body) in [
        ("/api/areas-operacion", json!({ "nombre": "Logística" })),
        (
            "/api/bombas",
            json!([{ "bomba": "Norte", "area_operacion_id": 1 }, { "bomba": "Sur", "area_operacion_id": 1 }, { "bomba": "Centro", "area_operacion_id": 1 }]),
        ),
        ("/api/placas", json!({ "placa": "ABC123" })),
        ("/api/conductores", json!({ "conductor": "Juan Pérez" })),
    ] {
        let (status, answer) = first.post(path, &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
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
