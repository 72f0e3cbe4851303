//! The live feeds open at once are capped: past the cap a new subscriber is shed with 503, and
//! a feed whose client hung up frees its place. The cap is per process, so this test has a
//! test binary of its own (SQLite only: the cap does not depend on the store).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Backend, TestApp};
use fleet_ledger::auth::Role;
use fleet_ledger::http::eventos::LIVE_FEEDS_MAX;
use serde_json::json;
use tower::ServiceExt;

fn subscribe(app: &TestApp) -> Request<Body> {
    Request::builder()
        .uri("/api/eventos/stream")
        .header(
            "authorization",
            format!("Bearer {}", app.token(Role::Auditor)),
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_feeds_past_the_cap_are_shed_until_one_closes() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..LIVE_FEEDS_MAX {
        let response = app.router.clone().oneshot(subscribe(&app)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let (status, headers, body) = app.send(subscribe(&app)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        body,
        json!({ "error": "Servicio sobrecargado; intente de nuevo en un momento" })
    );
    // A client hangs up: its place is free again.
    drop(open.pop());
    let response = app.router.clone().oneshot(subscribe(&app)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
