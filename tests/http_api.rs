//! The service skeleton seen from outside: authentication and roles, error bodies, request ids,
//! health, and the global event feed.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{TestApp, TEST_SECRET};
use fleet_ledger::auth::{JwtKeys, Role};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

on_both_stores!(
    a_request_without_token_is_401,
    a_token_signed_with_another_secret_is_401,
    an_expired_token_is_401,
    an_alg_none_token_is_401,
    an_hs512_token_is_401,
    an_auditor_reads_but_cannot_write,
    an_admin_and_an_operador_can_write,
    malformed_json_is_a_clear_400,
    the_request_id_is_echoed_and_stored_with_the_event,
    the_event_feed_pages_in_position_order,
    the_event_feed_refuses_bad_parameters,
    health_and_readiness_answer,
    readiness_is_503_while_a_projection_cannot_catch_up,
    an_unknown_path_is_a_json_404,
    an_unknown_method_is_a_json_405,
    a_non_numeric_id_is_400_and_an_unknown_one_404,
    an_empty_name_is_400_and_writes_nothing,
);

const AUTH_REQUIRED: &str = r#"{"error":"Authentication required"}"#;

fn forge(header: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

async fn assert_401(app: &TestApp, token: Option<&str>) {
    for (method, body) in [
        (Method::GET, None),
        (Method::POST, Some(r#"{"nombre":"X"}"#)),
    ] {
        let (status, answer) = app.call(method, "/api/areas-operacion", token, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.to_string(), AUTH_REQUIRED);
    }
}

async fn a_request_without_token_is_401(app: TestApp) {
    assert_401(&app, None).await;
    let (status, answer) = app.call(Method::GET, "/api/eventos", None, None).await;
    assert_eq!(
        (status.as_u16(), answer.to_string()),
        (401, AUTH_REQUIRED.to_string())
    );
}

async fn a_token_signed_with_another_secret_is_401(app: TestApp) {
    let token = JwtKeys::new("not-the-secret").issue(
        "mallory",
        &[Role::Admin],
        std::time::Duration::from_secs(60),
    );
    assert_401(&app, Some(&token)).await;
    assert_401(&app, Some("not.a.jwt")).await;
}

async fn an_expired_token_is_401(app: TestApp) {
    let expired = forge(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"sub":"ana","exp":1700000000}"#,
        TEST_SECRET.as_bytes(),
    );
    assert_401(&app, Some(&expired)).await;
}

async fn an_alg_none_token_is_401(app: TestApp) {
    let claims = format!(
        r#"{{"sub":"ana","exp":{},"roles":["admin"]}}"#,
        in_an_hour()
    );
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    assert_401(&app, Some(&unsigned)).await;
}

async fn an_hs512_token_is_401(app: TestApp) {
    let claims = format!(r#"{{"sub":"ana","exp":{}}}"#, in_an_hour());
    let token = forge(
        r#"{"alg":"HS512","typ":"JWT"}"#,
        &claims,
        TEST_SECRET.as_bytes(),
    );
    assert_401(&app, Some(&token)).await;
}

async fn an_auditor_reads_but_cannot_write(app: TestApp) {
    let auditor = app.token(Role::Auditor);
    let base = app.state.log.head().await.unwrap();
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/areas-operacion",
            Some(&auditor),
            Some(r#"{"nombre":"Norte"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer.to_string(), r#"{"error":"Permiso denegado"}"#);
    assert_eq!(
        app.state.log.head().await.unwrap(),
        base,
        "a refused write appends nothing"
    );
    let (status, answer) = app
        .call(Method::GET, "/api/areas-operacion", Some(&auditor), None)
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!([])));
    let (status, _) = app
        .call(Method::GET, "/api/eventos", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn an_admin_and_an_operador_can_write(app: TestApp) {
    let admin = app.token(Role::Admin);
    let (status, created) = app
        .call(
            Method::POST,
            "/api/areas-operacion",
            Some(&admin),
            Some(r#"{"nombre":"Logística"}"#),
        )
        .await;
    assert_eq!(
        (status, created),
        (
            StatusCode::CREATED,
            json!({ "id": 1, "nombre": "Logística" })
        )
    );
    let no_roles = forge(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(r#"{{"sub":"luis@flota.co","exp":{}}}"#, in_an_hour()),
        TEST_SECRET.as_bytes(),
    );
    let (status, created) = app
        .call(
            Method::POST,
            "/api/areas-operacion",
            Some(&no_roles),
            Some(r#"{"nombre":"Norte"}"#),
        )
        .await;
    assert_eq!(
        (status, created),
        (StatusCode::CREATED, json!({ "id": 2, "nombre": "Norte" }))
    );
    let events = app
        .state
        .log
        .read_type("operation-areas", 0, 10)
        .await
        .unwrap();
    assert_eq!(events[1].metadata.actor.as_deref(), Some("luis@flota.co"));
}

async fn malformed_json_is_a_clear_400(app: TestApp) {
    let base = app.state.log.head().await.unwrap();
    for body in ["{\"nombre\":", "not json", ""] {
        let (status, answer) = app.post("/api/areas-operacion", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "body {body:?}");
        let message = answer["error"].as_str().unwrap();
        assert!(
            message.starts_with("Invalid JSON") || message == "Request body is required",
            "{message}"
        );
    }
    assert_eq!(app.state.log.head().await.unwrap(), base);
}

async fn the_request_id_is_echoed_and_stored_with_the_event(app: TestApp) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/areas-operacion")
        .header("authorization", format!("Bearer {}", app.operador()))
        .header("x-request-id", "req-123")
        .body(Body::from(r#"{"nombre":"Norte"}"#))
        .unwrap();
    let (status, headers, _) = app.send(request).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-request-id"], "req-123");
    let events = app
        .state
        .log
        .read_type("operation-areas", 0, 10)
        .await
        .unwrap();
    assert_eq!(events[0].metadata.request_id.as_deref(), Some("req-123"));
    assert_eq!(
        events[0].metadata.correlation_id.as_deref(),
        Some("req-123")
    );
    assert_eq!(events[0].metadata.actor.as_deref(), Some("ana@flota.co"));

    let (_, headers, _) = app
        .send(
            Request::builder()
                .uri("/healthz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let generated = headers["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(generated).is_ok(),
        "generated id {generated}"
    );
}

async fn the_event_feed_pages_in_position_order(app: TestApp) {
    // A new store starts with the catalogues' default entries.
    let base = app.state.log.head().await.unwrap();
    let areas: Vec<_> = (1..=5)
        .map(|n| json!({ "nombre": format!("Área {n}") }))
        .collect();
    app.post("/api/areas-operacion", &json!(areas).to_string())
        .await;
    let (status, page) = app
        .get(&format!(
            "/api/eventos?desde_posicion={}&limite=3",
            base + 2
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let positions: Vec<i64> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, vec![base + 2, base + 3, base + 4]);
    assert_eq!(page["siguiente_posicion"], base + 5);
    assert_eq!(page["ultima_posicion"], base + 5);
    let event = &page["data"][0];
    assert_eq!(event["event_type"], "OperationAreaRegistered");
    assert_eq!(event["stream_type"], "operation-areas");
    assert_eq!(event["version"], 2);
    assert_eq!(event["payload"], json!({ "id": 2, "nombre": "Área 2" }));
    assert_eq!(event["metadata"]["actor"], "ana@flota.co");
    assert!(event["recorded_at"].as_str().unwrap().ends_with('Z'));

    let (_, rest) = app
        .get(&format!("/api/eventos?desde_posicion={}", base + 5))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    let (_, beyond) = app
        .get(&format!("/api/eventos?desde_posicion={}", base + 6))
        .await;
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["siguiente_posicion"], base + 6);
    let (_, everything) = app.get("/api/eventos?limite=1000").await;
    assert_eq!(
        everything["data"].as_array().unwrap().len() as i64,
        base + 5
    );
    assert_eq!(everything["data"][0]["position"], 1);
}

async fn the_event_feed_refuses_bad_parameters(app: TestApp) {
    for query in [
        "desde_posicion=abc",
        "desde_posicion=-1",
        "limite=0",
        "limite=1001",
        "limite=x",
    ] {
        let (status, answer) = app.get(&format!("/api/eventos?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer["error"].is_string(), "{query}: {answer}");
    }
}

async fn health_and_readiness_answer(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "status": "ok" })));
    app.post("/api/areas-operacion", r#"{"nombre":"Norte"}"#)
        .await;
    let head = app.state.log.head().await.unwrap();
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["head"], head);
}

async fn an_unknown_method_is_a_json_405(app: TestApp) {
    let (status, body) = app
        .call(Method::DELETE, "/api/eventos", Some(&app.operador()), None)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "error": "Método no permitido" })
        )
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            "/vehiculo/1",
            Some(&app.operador()),
            Some("{}"),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        (body["success"].clone(), body["message"].clone()),
        (json!(false), json!("Método no permitido"))
    );
}

async fn an_unknown_path_is_a_json_404(app: TestApp) {
    let (status, body) = app.get("/api/nada").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "Recurso no encontrado" })
        )
    );
}

async fn a_non_numeric_id_is_400_and_an_unknown_one_404(app: TestApp) {
    let (status, body) = app.get("/api/areas-operacion/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());
    let (status, body) = app.get("/api/areas-operacion/999").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró el área de operación con ID 999" })
        )
    );
}

async fn an_empty_name_is_400_and_writes_nothing(app: TestApp) {
    let base = app.state.log.head().await.unwrap();
    let (status, body) = app
        .post("/api/areas-operacion", r#"{"nombre":"   "}"#)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El campo nombre es obligatorio" })
        )
    );
    let (status, body) = app
        .post(
            "/api/areas-operacion",
            r#"[{"nombre":"Norte"},{"nombre":""}]"#,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Registro 1: El campo nombre es obligatorio" })
        )
    );
    assert_eq!(app.state.log.head().await.unwrap(), base, "all or nothing");
}

async fn readiness_is_503_while_a_projection_cannot_catch_up(app: TestApp) {
    use fleet_ledger::store::{AppendRequest, EventMetadata, NewEvent};
    let base = app.state.log.head().await.unwrap();
    // An event the operation-areas projection cannot fold stalls it (it retries, never skips).
    let poison = NewEvent::new(
        "OperationAreaRegistered",
        json!({ "unexpected": true }),
        EventMetadata::default(),
    );
    let request = AppendRequest {
        stream_type: "operation-areas".into(),
        stream_id: "all".into(),
        expected_version: 0,
        events: vec![poison],
        idempotency: None,
    };
    app.state.log.append(request).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "catching_up");
    assert_eq!(body["head"], base + 1);
    assert_eq!(body["projections"][0]["name"], "areas_operacion");
    assert_eq!(body["projections"][0]["position"], base);
}
