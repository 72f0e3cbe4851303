//! Hostile input (issue 10): strict bodies, enumerated filters, content types, size and depth
//! limits, the request timeout and load shedding, each refused in its family's format and
//! without appending anything.

mod common;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use fleet_ledger::{app_with_limits, HttpLimits};
use serde_json::{json, Value};
use tower::ServiceExt;

on_both_stores!(
    an_unknown_field_is_a_400_naming_it_and_changes_nothing,
    an_unknown_filter_value_is_a_400_listing_the_accepted_ones,
    a_list_filter_of_only_commas_or_too_many_values_is_a_400,
    a_body_that_is_not_json_is_a_415_and_no_content_type_is_json,
    a_body_over_the_limit_is_a_413_and_the_import_takes_16_mib,
    json_nested_too_deeply_is_a_400,
    a_bad_path_encoding_is_a_400_in_the_family_format,
    overlong_trace_headers_are_not_stored,
    a_request_running_past_the_timeout_is_a_503,
    requests_past_the_in_flight_cap_are_shed_with_a_503,
);

/// Sends `body` with `content_type` (none when `None`) as an operador.
async fn send_typed(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", app.operador()));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    app.send(request.body(body.into()).unwrap()).await
}

fn error(message: &str) -> Value {
    json!({ "error": message })
}

/// A `/vehiculo` refusal: the envelope with `message`, whatever the timestamp.
fn assert_envelope(answer: &Value, message: &str) {
    assert_eq!(answer["success"], json!(false), "{answer}");
    assert_eq!(answer["message"], json!(message), "{answer}");
    assert!(answer["timestamp"].is_string(), "{answer}");
    assert_eq!(answer.as_object().map(|o| o.len()), Some(3), "{answer}");
}

async fn an_unknown_field_is_a_400_naming_it_and_changes_nothing(app: TestApp) {
    app.seed_fleet().await;
    let before = app.get("/vehiculo/1").await.1["data"].clone();
    let head = app.state.log.head().await.unwrap();

    // The issue's example: a typo for `kilometrajeActual` used to answer 200 and change nothing.
    let token = app.operador();
    let (status, answer) = app
        .call(
            Method::PUT,
            "/vehiculo/1",
            Some(&token),
            Some(r#"{"kilometraje_actual":5}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&answer, "Unknown field: kilometraje_actual");
    let (status, answer) = app
        .post(
            "/vehiculo",
            r#"{"placa":"XYZ987","idClaseVehiculo":1,"idEstadoVehiculo":1,"Marca":"TOYOTA"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&answer, "Unknown field: Marca");

    for (method, path, body, message) in [
        (
            Method::POST,
            "/api/areas-operacion",
            r#"{"nombre":"Norte","descripcion":"x"}"#,
            "Unknown field: descripcion",
        ),
        (
            Method::POST,
            "/api/placas",
            r#"[{"placa":"AAA111"},{"placa":"BBB222","estdo":"ACTIVADA"}]"#,
            "Registro 1: Unknown field: estdo",
        ),
        (
            Method::PATCH,
            "/api/bombas/1",
            r#"{"permitir_saldo_negativo":false,"saldo":0}"#,
            "Unknown field: saldo",
        ),
        (
            Method::POST,
            "/api/tanqueos",
            r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":100,"cantidad_galones":10,"costo_por_galon":10}"#,
            "Unknown field: costo_por_galon",
        ),
        (
            Method::POST,
            "/api/misiones",
            r#"{"vehiculo_id":1,"conductor_id":1,"descripcion":"Ruta","fecha_programada":"2026-03-01","prioridad":1}"#,
            "Unknown field: prioridad",
        ),
        (
            Method::POST,
            "/api/tanqueos/import",
            r#"{"bomba_id":1,"area_operacion_id":1,"records":[{"FECHA":"15/03/2024","NOMBRE CONDUCTOR":"Juan Pérez","PLACA":"ABC123","TIPO COMBUSTIBE":"UREA","VALOR TANQUEO":"1000","CANTIDAD GALONES":"1"}]}"#,
            "Registro 0: Unknown field: TIPO COMBUSTIBE",
        ),
    ] {
        let (status, answer) = app.call(method, path, Some(&token), Some(body)).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, error(message)),
            "{path}"
        );
    }
    // A long unknown name is not repeated whole.
    let long = "x".repeat(500);
    let (status, answer) = app
        .post(
            "/api/areas-operacion",
            &format!(r#"{{"nombre":"N","{long}":1}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        error(&format!("Unknown field: {}…", "x".repeat(64)))
    );

    assert_eq!(
        app.state.log.head().await.unwrap(),
        head,
        "nothing appended"
    );
    assert_eq!(app.get("/vehiculo/1").await.1["data"], before);
}

async fn an_unknown_filter_value_is_a_400_listing_the_accepted_ones(app: TestApp) {
    app.seed_fleet().await;
    for (query, message) in [
        (
            "tipo_operacion=FOO",
            "Invalid value for tipo_operacion: FOO; accepted values: TANQUEO, ANTICIPO",
        ),
        (
            "concepto=OPERATIVO,personal",
            "Invalid value for concepto: personal; accepted values: OPERATIVO, ADMINISTRATIVO",
        ),
        (
            "tipo_combustible=NAFTA",
            "Invalid value for tipo_combustible: NAFTA; accepted values: ACPM, GASOLINA, EXTRA, UREA, LUBRICANTE, HIDRAULICO, ACEITE MOTOR, LAVADO, ENGRASE, CONSUMIBLES LIMPIEZA",
        ),
    ] {
        let (status, answer) = app.get(&format!("/api/tanqueos?{query}")).await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, error(message)));
    }
    // Known values, in any case, still filter.
    for (query, total) in [
        ("tipo_operacion=tanqueo,ANTICIPO&concepto=operativo", 1),
        ("tipo_combustible=acpm", 0),
    ] {
        let (status, answer) = app.get(&format!("/api/tanqueos?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["pagination"]["total"], json!(total), "{query}");
    }
}

async fn a_list_filter_of_only_commas_or_too_many_values_is_a_400(app: TestApp) {
    let many: Vec<String> = (1..=101).map(|n| n.to_string()).collect();
    for (query, message) in [
        (
            "bomba_id=,".to_string(),
            "Invalid value for bomba_id: expected comma-separated integers",
        ),
        (
            "placa_id=%20,%20,".to_string(),
            "Invalid value for placa_id: expected comma-separated integers",
        ),
        (
            "tipo_operacion=,,".to_string(),
            "Invalid value for tipo_operacion: expected a comma-separated list of values",
        ),
        (
            format!("conductor_id={}", many.join(",")),
            "Invalid value for conductor_id: at most 100 values",
        ),
    ] {
        let (status, answer) = app.get(&format!("/api/tanqueos?{query}")).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, error(message)),
            "{query}"
        );
    }
    let (status, _) = app
        .get(&format!("/api/tanqueos?bomba_id={}", many[..100].join(",")))
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_body_that_is_not_json_is_a_415_and_no_content_type_is_json(app: TestApp) {
    let head = app.state.log.head().await.unwrap();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, _, answer) = send_typed(
            &app,
            Method::POST,
            "/api/areas-operacion",
            Some(content_type),
            r#"{"nombre":"Norte"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            answer,
            error(&format!(
                "Unsupported Content-Type: {content_type} (expected application/json)"
            ))
        );
    }
    let (status, _, answer) = send_typed(
        &app,
        Method::POST,
        "/vehiculo",
        Some("text/csv"),
        r#"{"placa":"ABC123"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_envelope(
        &answer,
        "Unsupported Content-Type: text/csv (expected application/json)",
    );
    assert_eq!(
        app.state.log.head().await.unwrap(),
        head,
        "nothing appended"
    );

    for (content_type, nombre) in [
        (None, "Sin tipo"),
        (Some("application/json; charset=utf-8"), "Con charset"),
        (Some("Application/JSON"), "Mayúsculas"),
        (Some("application/merge-patch+json"), "Sufijo json"),
    ] {
        let (status, _, answer) = send_typed(
            &app,
            Method::POST,
            "/api/areas-operacion",
            content_type,
            json!({ "nombre": nombre }).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{content_type:?}: {answer}");
    }
}

async fn a_body_over_the_limit_is_a_413_and_the_import_takes_16_mib(app: TestApp) {
    app.seed_fleet().await;
    let head = app.state.log.head().await.unwrap();
    // Valid JSON that is only too large: the limit, not the parser, refuses it.
    let padded = |bytes: usize| {
        let body = r#"{"nombre":"Norte"}"#;
        format!("{body}{}", " ".repeat(bytes - body.len()))
    };
    let (status, answer) = app
        .post("/api/areas-operacion", &padded(1024 * 1024 + 1))
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            error("Request body too large: at most 1048576 bytes")
        )
    );
    let (status, _) = app.post("/api/areas-operacion", &padded(1024 * 1024)).await;
    assert_eq!(status, StatusCode::CREATED, "exactly 1 MiB is taken");

    let token = app.operador();
    let (status, answer) = app
        .call(
            Method::PUT,
            "/vehiculo/1",
            Some(&token),
            Some(&format!(r#"{{"marca":"{}"}}"#, "x".repeat(1024 * 1024))),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&answer, "Request body too large: at most 1048576 bytes");

    // The import takes a spreadsheet of up to 16 MiB.
    let import = r#"{"bomba_id":1,"area_operacion_id":1,"records":[]}"#;
    let big = format!("{import}{}", " ".repeat(4 * 1024 * 1024));
    let (status, answer) = app.post("/api/tanqueos/import", &big).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!({ "imported": 0, "errors": [], "totalProcessed": 0 })
        )
    );
    let too_big = format!("{import}{}", " ".repeat(16 * 1024 * 1024));
    let (status, answer) = app.post("/api/tanqueos/import", &too_big).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            error("Request body too large: at most 16777216 bytes")
        )
    );
    assert_eq!(app.state.log.head().await.unwrap(), head + 1);
}

async fn json_nested_too_deeply_is_a_400(app: TestApp) {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let (status, answer) = app.post("/api/areas-operacion", &nested(17)).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            error("Invalid JSON: nested deeper than 16 levels")
        )
    );
    // A hundred thousand brackets are refused before the parser sees them.
    let (status, answer) = app.post("/api/areas-operacion", &nested(100_000)).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            error("Invalid JSON: nested deeper than 16 levels")
        )
    );
    // Brackets inside strings are text, not nesting.
    let (status, answer) = app
        .post(
            "/api/areas-operacion",
            &json!({ "nombre": "[[[[[[[[[[[[[[[[[[[[\"{{{{" }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = app.post("/api/areas-operacion", &nested(16)).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            error("Registro 0: El cuerpo debe ser un objeto JSON")
        )
    );
}

async fn a_bad_path_encoding_is_a_400_in_the_family_format(app: TestApp) {
    let (status, answer) = app.get("/api/placas/%FF").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid path: "), "{answer}");
    // Query strings decode invalid UTF-8 lossily; the parameter's own parser refuses it.
    let (status, answer) = app.get("/api/tanqueos?bomba_id=%FF").await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            error("Invalid value for bomba_id: expected comma-separated integers")
        )
    );
    // Found by the property test: PostgreSQL refuses a NUL in text, which was a 500.
    let (status, answer) = app.get("/api/contabilidad/cuentas/%00/movimientos").await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::NOT_FOUND,
            error("No hay movimientos en la cuenta \u{0}")
        )
    );
    let (status, answer) = app.get("/vehiculo/%C3%28").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid path: "), "{answer}");
}

/// A body that sends nothing until its sender is dropped, and then ends.
fn stalled_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, std::io::Error>(bytes), receiver))
    });
    (sender, Body::from_stream(stream))
}

async fn a_request_running_past_the_timeout_is_a_503(app: TestApp) {
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let router = app_with_limits(app.state.clone(), limits);
    let token = app.operador();
    for (path, envelope) in [("/api/areas-operacion", false), ("/vehiculo", true)] {
        let (_sender, body) = stalled_body();
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(body)
            .unwrap();
        let response =
            tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(request))
                .await
                .expect("the timeout answers, the connection does not hang")
                .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        let message = "La solicitud superó el tiempo límite (300ms)";
        if envelope {
            assert_envelope(&answer, message);
        } else {
            assert_eq!(answer, error(message));
        }
    }
}

async fn requests_past_the_in_flight_cap_are_shed_with_a_503(app: TestApp) {
    let limits = HttpLimits {
        in_flight_max: 1,
        ..HttpLimits::default()
    };
    let router = app_with_limits(app.state.clone(), limits);
    let token = app.operador();
    let request = |method: Method, path: &str, body: Body| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(body)
            .unwrap()
    };
    // One request holds the only place: its body has not arrived yet. (Sent alone, so that no
    // other request can take the place first.)
    let (sender, body) = stalled_body();
    let holder = tokio::spawn(router.clone().oneshot(request(
        Method::POST,
        "/api/areas-operacion",
        body,
    )));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !holder.is_finished(),
        "the first request waits for its body"
    );
    let shed = router
        .clone()
        .oneshot(request(Method::GET, "/api/areas-operacion", Body::empty()))
        .await
        .unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let bytes = http_body_util::BodyExt::collect(shed.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        error("Servicio sobrecargado; intente de nuevo en un momento")
    );
    // Health probes are not counted.
    let health = router
        .clone()
        .oneshot(request(Method::GET, "/healthz", Body::empty()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    sender
        .send(Bytes::from_static(br#"{"nombre":"Norte"}"#))
        .await
        .unwrap();
    drop(sender);
    let held = holder.await.unwrap().unwrap();
    assert_eq!(held.status(), StatusCode::CREATED);
    let after = router
        .clone()
        .oneshot(request(Method::GET, "/api/areas-operacion", Body::empty()))
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK, "the place is free again");
}

async fn overlong_trace_headers_are_not_stored(app: TestApp) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/areas-operacion")
        .header("authorization", format!("Bearer {}", app.operador()))
        .header("x-request-id", "r".repeat(129))
        .header("x-correlation-id", "c".repeat(129))
        .header("x-causation-id", "k".repeat(128))
        .body(Body::from(r#"{"nombre":"Norte"}"#))
        .unwrap();
    let (status, headers, _) = app.send(request).await;
    assert_eq!(status, StatusCode::CREATED);
    let request_id = headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(request_id.len(), 36, "a generated UUID replaces it");
    let events = app
        .state
        .log
        .read_type("operation-areas", 0, 10)
        .await
        .unwrap();
    let metadata = &events[0].metadata;
    assert_eq!(metadata.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(
        metadata.correlation_id.as_deref(),
        Some(request_id.as_str()),
        "an overlong correlation id falls back to the request id"
    );
    assert_eq!(metadata.causation_id, Some("k".repeat(128)));
}
