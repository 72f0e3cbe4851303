//! What operators watch: `/metrics` in Prometheus' text format, and `/readyz` against its lag
//! threshold.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use fleet_ledger::settings::LedgerSettings;

on_both_stores_with!(
    super::settings();
    metrics_count_requests_by_route_template_and_appends_by_event_type,
    readiness_reports_its_lag_threshold,
);

/// A threshold no test write comes near, to see that it is the one `/readyz` applies.
const READY_LAG_MAX: u64 = 250;

fn settings() -> LedgerSettings {
    LedgerSettings {
        ready_lag_max_events: READY_LAG_MAX,
        ..LedgerSettings::default()
    }
}

/// `/metrics` without a token: status, content type and text.
async fn scrape(app: &TestApp) -> String {
    let request = Request::builder()
        .method(Method::GET)
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    body.as_str().expect("text, not JSON").to_string()
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

async fn metrics_count_requests_by_route_template_and_appends_by_event_type(app: TestApp) {
    let (status, created) = app
        .post("/api/areas-operacion", r#"{"nombre":"Metricas"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let path = format!("/api/areas-operacion/{id}");
    assert_eq!(app.get(&path).await.0, StatusCode::OK);
    let (status, _) = app.call(Method::GET, "/no/such/path/42", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let text = scrape(&app).await;
    let reads = r#"fleet_ledger_http_requests_total{route="/api/areas-operacion/{id}",method="GET",status="200"}"#;
    let before = sample(&text, reads).unwrap_or_else(|| panic!("no {reads} in\n{text}"));
    assert!(
        !text.contains(&format!("route=\"{path}\"")),
        "a raw path became a label"
    );
    for series in [
        r#"fleet_ledger_http_requests_total{route="unmatched",method="GET",status="404"}"#,
        r#"fleet_ledger_events_appended_total{type="OperationAreaRegistered"}"#,
        r#"fleet_ledger_append_batch_appends_count"#,
        r#"fleet_ledger_append_commit_duration_seconds_count"#,
        r#"fleet_ledger_projection_lag_events{projection="areas_operacion"}"#,
        r#"fleet_ledger_projection_position{projection="areas_operacion"}"#,
        r#"fleet_ledger_consumer_lag_events{consumer="auto_inspecao"}"#,
        r#"fleet_ledger_store_pool_connections{pool="log",state="max"}"#,
        r#"fleet_ledger_store_pool_connections{pool="read_models",state="in_use"}"#,
        r#"fleet_ledger_log_head_position"#,
    ] {
        assert!(sample(&text, series).is_some(), "no {series} in\n{text}");
    }
    assert!(
        text.contains(r#"fleet_ledger_http_request_duration_seconds_bucket{route="/api/areas-operacion/{id}",method="GET",status="200",le="0.5"}"#),
        "no latency histogram for the route in\n{text}"
    );
    let rss = sample(&text, "process_resident_memory_bytes").expect("the resident set");
    assert!(rss > 1_000_000.0, "{rss} bytes");

    // Counters count: another read of the same route adds to its series (other tests of this
    // binary share the process's recorder, so only a lower bound holds).
    assert_eq!(app.get(&path).await.0, StatusCode::OK);
    let after = sample(&scrape(&app).await, reads).expect("the series stays");
    assert!(after >= before + 1.0, "{before} -> {after}");
}

async fn readiness_reports_its_lag_threshold(app: TestApp) {
    app.post("/api/areas-operacion", r#"{"nombre":"Norte"}"#)
        .await;
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["lag_max"], READY_LAG_MAX);
}
