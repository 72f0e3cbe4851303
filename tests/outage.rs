//! PostgreSQL goes away under load and comes back: while it is gone, writes and reads answer 503
//! `Servicio no disponible` within seconds and `/readyz` says why; once it is back, the service
//! recovers by itself (no restart) and nothing acknowledged is lost.
//!
//! The database is cut with a TCP proxy between the service and PostgreSQL, not by stopping the
//! cluster: other tests share that cluster and must not see the outage.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{fresh_location, Backend, TestApp};
use fleet_ledger::StoreLocation;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards connections to PostgreSQL until cut; while cut, it drops every open connection and
/// refuses new ones, as a database that went down would.
struct CuttableProxy {
    port: u16,
    state: Arc<Mutex<ProxyState>>,
    _acceptor: JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    connections: Vec<JoinHandle<()>>,
}

impl CuttableProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if shared.lock().unwrap().cut {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                shared.lock().unwrap().connections.push(connection);
            }
        });
        Self {
            port,
            state,
            _acceptor: acceptor,
        }
    }

    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

/// `postgres://user@host:port/db?…` → (`host:port`, the URL with `127.0.0.1:{port}` instead).
fn through_proxy(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a database");
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (format!("{user}@"), host_port.to_string()),
        None => (String::new(), authority.to_string()),
    };
    let host_port = if host_port.contains(':') {
        host_port
    } else {
        format!("{host_port}:5432")
    };
    (
        host_port,
        format!("{scheme}://{user}127.0.0.1:{port}/{path}"),
    )
}

const REFUEL: &str = r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1000,"cantidad_galones":10}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let Some(direct) = fresh_location(Backend::Postgres, dir.path()).await else {
        return;
    };
    let (upstream, _) = through_proxy(&direct.log_url, 0);
    let proxy = CuttableProxy::start(upstream).await;
    let (_, proxied) = through_proxy(&direct.log_url, proxy.port);
    let location = StoreLocation::resolve(dir.path(), Some(&proxied));
    let app = TestApp::start_at(Backend::Postgres, location, dir).await;
    for (path, body) in [
        ("/api/areas-operacion", json!({ "nombre": "Logística" })),
        (
            "/api/bombas",
            json!({ "bomba": "Norte", "area_operacion_id": 1 }),
        ),
        ("/api/placas", json!({ "placa": "ABC123" })),
        ("/api/conductores", json!({ "conductor": "Juan Pérez" })),
    ] {
        let (status, answer) = app.post(path, &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }

    // Load before, during and after the outage; every 201 is remembered.
    let acknowledged: Arc<Mutex<Vec<i64>>> = Arc::default();
    let unavailable = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load_until = Instant::now() + Duration::from_secs(9);
    let mut writers = Vec::new();
    for _ in 0..4 {
        let app_router = app.router.clone();
        let token = app.operador();
        let acknowledged = acknowledged.clone();
        let unavailable = unavailable.clone();
        writers.push(tokio::spawn(async move {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            while Instant::now() < load_until {
                let request = axum::http::Request::builder()
                    .method("POST")
                    .uri("/api/tanqueos")
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::from(REFUEL))
                    .unwrap();
                let started = Instant::now();
                let response = app_router.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&body).unwrap();
                match status {
                    StatusCode::CREATED => acknowledged
                        .lock()
                        .unwrap()
                        .push(body["id"].as_i64().unwrap()),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(body, json!({ "error": "Servicio no disponible" }));
                        assert!(
                            started.elapsed() <= Duration::from_secs(5),
                            "{:?}",
                            started.elapsed()
                        );
                        unavailable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // While it is gone: writes and reads answer 503 fast; readiness names the cause.
    let started = Instant::now();
    let (status, answer) = app.post("/api/tanqueos", REFUEL).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "Servicio no disponible" })
        )
    );
    assert!(started.elapsed() <= Duration::from_secs(5));
    let started = Instant::now();
    let (status, answer) = app.get("/api/tanqueos").await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "Servicio no disponible" })
        )
    );
    assert!(started.elapsed() <= Duration::from_secs(10));
    let (status, ready) = app
        .call(axum::http::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(
        ready["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{ready}"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    for writer in writers {
        writer.await.expect("a writer");
    }
    assert!(unavailable.load(std::sync::atomic::Ordering::Relaxed) > 0);

    // Back without a restart: writes succeed, readiness returns, nothing acknowledged is lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = app.post("/api/tanqueos", REFUEL).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never recovered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let (status, ready) = app
            .call(axum::http::Method::GET, "/readyz", None, None)
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty());
    for id in &acknowledged {
        let (status, record) = app.get(&format!("/api/tanqueos/{id}")).await;
        assert_eq!(status, StatusCode::OK, "record {id}: {record}");
    }
    // Every acknowledged refuel counts in the balance, and only those (plus the last one).
    let (status, balance) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(status, StatusCode::OK, "{balance}");
    let saldo: Decimal = balance["saldo"].to_string().parse().unwrap();
    let counted = -Decimal::from(1000 * (acknowledged.len() as i64 + 1));
    assert!(
        saldo <= counted,
        "balance {saldo} misses acknowledged refuels (expected at most {counted})"
    );
}
