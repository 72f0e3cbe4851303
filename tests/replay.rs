//! Online rebuilds through shadow tables (src/rebuild): while requests keep flowing, none fails;
//! every read endpoint answers the same before and after the swap, and the same as a fresh fold
//! of the log; the live runner goes on from the swapped-in checkpoint, folding nothing twice.
//! Through the library, the `replay` command beside a running service, and the admin endpoint.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use fleet_ledger::auth::{JwtKeys, Role};
use fleet_ledger::lease::Lease;
use fleet_ledger::rebuild::ShadowRebuild;
use fleet_ledger::state::all_projections;
use fleet_ledger::{AppState, StoreLocation};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-ledger");

on_both_stores!(
    writes_flow_through_a_rebuild_and_every_answer_survives_the_swap,
    the_rebuild_endpoint_answers_202_and_swaps_403_404_409,
);

/// Every GET route that reads what the projections wrote (or the log), its parameters filled
/// with ids [`history`] creates, plus the queries a user asks for most. Left out: the probes
/// and the admin view, which report the rebuild itself, and the live feed, which never ends.
fn read_paths() -> Vec<String> {
    let mut paths: Vec<String> = common::ROUTES
        .iter()
        .filter(|(method, path)| {
            *method == "GET"
                && ![
                    "/readyz",
                    "/healthz",
                    "/metrics",
                    "/api/eventos/stream",
                    "/api/admin/proyecciones",
                ]
                .contains(path)
        })
        .map(|(_, path)| common::with_sample_ids(path))
        .collect();
    paths.extend(
        [
            "/api/eventos?desde_posicion=1&limite=1000",
            "/api/tanqueos?limit=500",
            "/api/bombas/2/saldo",
            "/api/bombas/1/saldo?as_of=2024-03-16",
            "/api/bombas/1/movimientos?desde=2024-03-01&hasta=2024-04-30",
            "/api/contabilidad/balance-prueba?as_of=2024-03-20",
            "/api/placas/2",
        ]
        .map(str::to_string),
    );
    paths
}

/// What every read path answers an admin: `(path, status, body)`.
async fn answers(router: &axum::Router, keys: &JwtKeys) -> Vec<(String, u16, Value)> {
    let token = keys.issue("ana@flota.co", &[Role::Admin], Duration::from_secs(600));
    let mut all = Vec::new();
    for path in read_paths() {
        let request = axum::http::Request::builder()
            .method(Method::GET)
            .uri(&path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, _, bytes) = common::respond(router, request).await;
        let mut body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        // When the answer was given, not what it says: the envelope's `timestamp` and the
        // trial balance's default `as_of` (now).
        if let Some(fields) = body.as_object_mut() {
            fields.remove("timestamp");
            if path == "/api/contabilidad/balance-prueba" {
                fields.remove("as_of");
            }
        }
        all.push((path, status.as_u16(), body));
    }
    all
}

/// Fails naming each path whose answer differs between `left` and `right`.
fn assert_same_answers(left: &[(String, u16, Value)], right: &[(String, u16, Value)], what: &str) {
    let differences: Vec<String> = left
        .iter()
        .zip(right)
        .filter(|(l, r)| l != r)
        .map(|(l, r)| format!("GET {}\n  {} {}\n  {} {}", l.0, l.1, l.2, r.1, r.2))
        .collect();
    assert!(
        differences.is_empty(),
        "{what}:\n{}",
        differences.join("\n")
    );
    assert_eq!(left.len(), right.len());
}

/// The same answers from read models folded afresh from the whole log, in a store of their own.
async fn fresh_fold_answers(app: &TestApp) -> Vec<(String, u16, Value)> {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation {
        log_url: app.location.log_url.clone(),
        read_models_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("fresh.db").display()
        ),
    };
    let fresh = AppState::open(&location, app.keys.clone()).await.unwrap();
    let head = fresh.log.head().await.unwrap();
    assert!(fresh.runner.wait_for(head, Duration::from_secs(60)).await);
    let answered = answers(&fleet_ledger::app(fresh.clone()), &app.keys).await;
    fresh.shutdown().await;
    answered
}

/// A short history over [`TestApp::seed_fleet`]: advances and refuels on two dates, plates.
async fn history(app: &TestApp) {
    app.seed_fleet().await;
    for n in 0..10 {
        let (status, answer) = app.post("/api/tanqueos", &advance(n)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let (status, answer) = app
            .post(
                "/api/placas",
                &json!({ "placa": format!("RPL{n:03}") }).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    // Monthly closes (the `cierres` read model): one closed, one closed and reopened. Months
    // the writers below never date a record in.
    let admin = app.token(Role::Admin);
    for (path, body) in [
        ("/api/cierres", json!({ "anio": 2024, "mes": 1 })),
        ("/api/cierres", json!({ "anio": 2024, "mes": 2 })),
        (
            "/api/cierres/reabrir",
            json!({ "anio": 2024, "mes": 2, "motivo": "Revisión" }),
        ),
    ] {
        let (status, answer) = app
            .call(Method::POST, path, Some(&admin), Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
}

fn advance(n: usize) -> String {
    json!({
        "fecha": if n.is_multiple_of(2) { "2024-03-15" } else { "2024-04-02" },
        "bomba_id": 1 + n % 2,
        "area_operacion_id": 1,
        "tipo_operacion": "ANTICIPO",
        "valor_anticipo": 1000 + n,
    })
    .to_string()
}

/// Writes (and reads) until `stop`, asserting each answer; answers how many writes it made.
fn keep_writing(app: Arc<TestApp>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 100;
        while !stop.load(Ordering::Relaxed) {
            let (status, answer) = app.post("/api/tanqueos", &advance(n)).await;
            assert_eq!(
                status,
                StatusCode::CREATED,
                "a write during the rebuild: {answer}"
            );
            let (status, answer) = app.get("/api/saldos-bombas").await;
            assert_eq!(
                status,
                StatusCode::OK,
                "a read during the rebuild: {answer}"
            );
            n += 1;
        }
        n - 100
    })
}

async fn writes_flow_through_a_rebuild_and_every_answer_survives_the_swap(app: TestApp) {
    history(&app).await;
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(app.clone(), stop.clone());
    let (_keep, running) = tokio::sync::watch::channel(false);

    // Writes go on through the whole rebuild, the swap included.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rebuild = ShadowRebuild::start(
        app.state.log.clone(),
        app.state.read_models.clone(),
        all_projections(),
    )
    .await
    .expect("the rebuild starts");
    // At least one write lands between the shadows' creation and the swap.
    let head_at_start = app.state.log.head().await.unwrap();
    let mut head = app.state.log.watch_head();
    tokio::time::timeout(
        Duration::from_secs(10),
        head.wait_for(|h| *h > head_at_start),
    )
    .await
    .expect("the writer keeps writing")
    .unwrap();
    let summary = rebuild.complete(&running).await.expect("the rebuild swaps");
    assert!(
        summary.position > head_at_start,
        "the shadows folded writes made during the rebuild"
    );
    assert_eq!(summary.projections.len(), all_projections().len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("no request failed");
    assert!(written > 0, "no write went through during the rebuild");
    let head = app.state.log.head().await.unwrap();
    assert!(summary.position < head, "writes came after the swap too");
    assert!(
        app.state
            .runner
            .wait_for(head, Duration::from_secs(30))
            .await
    );
    let settled = answers(&app.router, &app.keys).await;
    assert_same_answers(
        &settled,
        &fresh_fold_answers(&app).await,
        "after a swap under writes, every answer equals a fresh fold",
    );

    // Quiet now: the old tables (shadows caught up, not yet swapped in) and the new ones
    // answer alike.
    let mut rebuild = ShadowRebuild::start(
        app.state.log.clone(),
        app.state.read_models.clone(),
        all_projections(),
    )
    .await
    .unwrap();
    rebuild.catch_up(&running).await.unwrap();
    assert_same_answers(
        &answers(&app.router, &app.keys).await,
        &settled,
        "the old tables, shadows caught up",
    );
    let summary = rebuild.swap().await.unwrap();
    assert_eq!(summary.position, head);
    assert_same_answers(
        &answers(&app.router, &app.keys).await,
        &settled,
        "the swap changes no answer",
    );

    // The live runner goes on from the swapped-in checkpoint: one more advance counts once.
    let (_, before) = app.get("/api/bombas/1/saldo").await;
    let (status, answer) = app
        .post(
            "/api/tanqueos",
            r#"{"fecha":"2024-04-03","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":7}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, after) = app.get("/api/bombas/1/saldo").await;
    let balance = |body: &Value| body["saldo"].to_string().parse::<f64>().unwrap();
    assert_eq!(
        balance(&after) - balance(&before),
        7.0,
        "{before} → {after}"
    );
    assert_same_answers(
        &answers(&app.router, &app.keys).await,
        &fresh_fold_answers(&app).await,
        "after a write that followed the swap",
    );
}

async fn the_rebuild_endpoint_answers_202_and_swaps_403_404_409(app: TestApp) {
    history(&app).await;
    let path = "/api/admin/proyecciones/tanqueos/reconstruir";
    let before = answers(&app.router, &app.keys).await;
    for role in [Role::Operador, Role::Auditor] {
        let (status, answer) = app
            .call(Method::POST, path, Some(&app.token(role)), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(answer, json!({ "error": "Permiso denegado" }));
    }
    let admin = app.token(Role::Admin);

    let (status, answer) = app
        .call(
            Method::POST,
            "/api/admin/proyecciones/tanqueo/reconstruir",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer,
        json!({ "error": "No existe la proyección tanqueo; las proyecciones son: \
            areas_operacion, registros, flota, tanqueos, contabilidad, saldos, vehicle_checks, \
            auto_inspecao, cierres, alertas" })
    );

    // A rebuild of it running elsewhere (`fleet-ledger replay` in another process) holds its
    // lease.
    let elsewhere = Lease::new(app.state.read_models.clone(), "rebuild:tanqueos");
    assert!(elsewhere.hold().await.unwrap());
    let (status, answer) = app.call(Method::POST, path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        answer,
        json!({ "error": "Ya hay una reconstrucción de tanqueos en curso" })
    );
    elsewhere.release().await;

    let head = app.state.log.head().await.unwrap();
    let (status, answer) = app.call(Method::POST, path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["name"], "tanqueos");
    assert_eq!(answer["status"], "rebuilding");
    assert_eq!(answer["position"], head);
    assert_eq!(answer["lag"], 0);
    assert_eq!(answer["last_error"], Value::Null);
    assert_eq!(answer["rebuild"]["state"], "rebuilding");
    assert_eq!(answer["rebuild"]["target"], head);

    let started = Instant::now();
    let entry = loop {
        let (status, listed) = app
            .call(Method::GET, "/api/admin/proyecciones", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let entry = listed["projections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "tanqueos")
            .unwrap()
            .clone();
        if entry["rebuild"]["state"] != "rebuilding" {
            break entry;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{entry}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["rebuild"]["state"], "swapped", "{entry}");
    assert_eq!(entry["rebuild"]["position"], head);
    assert_eq!(entry["rebuild"]["progress"], 1.0);
    assert_eq!(entry["status"], "ready");
    assert_eq!(entry["last_error"], Value::Null);
    assert_same_answers(
        &answers(&app.router, &app.keys).await,
        &before,
        "after the swap",
    );
    // The swapped-in table has the live one's indexes under their names (a later migration
    // may name one), and no shadow is left behind.
    let (indexes_sql, shadows_sql) = match app.backend {
        Backend::Postgres => (
            "SELECT CAST(indexname AS TEXT) FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = 'rm_tanqueos' ORDER BY 1",
            "SELECT CAST(tablename AS TEXT) FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename LIKE '%shadow%'",
        ),
        // A KurrentDB log's read models are in SQLite.
        Backend::Sqlite | Backend::KurrentDb => (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rm_tanqueos' \
             ORDER BY 1",
            "SELECT name FROM sqlite_master WHERE name LIKE '%shadow%'",
        ),
    };
    let pool = app.state.read_models.pool();
    let indexes: Vec<String> = sqlx::query_scalar(indexes_sql)
        .fetch_all(pool)
        .await
        .unwrap();
    let shadows: Vec<String> = sqlx::query_scalar(shadows_sql)
        .fetch_all(pool)
        .await
        .unwrap();
    let primary = match app.backend {
        Backend::Postgres => "rm_tanqueos_pkey",
        Backend::Sqlite | Backend::KurrentDb => "sqlite_autoindex_rm_tanqueos_1",
    };
    let mut expected = vec!["rm_tanqueos_bomba", "rm_tanqueos_fecha", primary];
    expected.sort();
    assert_eq!(indexes, expected);
    assert!(shadows.is_empty(), "{shadows:?}");
}

/// The store of `app` as `fleet-ledger replay` is told where it is.
fn store_args(app: &TestApp) -> Vec<String> {
    match app.backend {
        Backend::Postgres => vec!["--database-url".into(), app.location.log_url.clone()],
        Backend::Sqlite => {
            let log = app.location.log_url.trim_start_matches("sqlite://");
            let dir = log.strip_suffix("/ledger.db").expect("a data directory");
            vec!["--data-dir".into(), dir.to_string()]
        }
        Backend::KurrentDb => vec![
            "--database-url".into(),
            app.location.log_url.clone(),
            "--read-models-url".into(),
            app.location.read_models_url.clone(),
        ],
    }
}

fn replay(app: &TestApp, projections: &[&str]) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command
        .env_remove("DATABASE_URL")
        .env_remove("FLEET_LEDGER_DATA_DIR")
        .arg("replay")
        .args(store_args(app));
    for projection in projections {
        command.args(["--projection", projection]);
    }
    command.output().expect("the binary runs")
}

/// `fleet-ledger replay` in its own process beside the service running on the same store.
async fn replay_beside_a_running_service(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    history(&app).await;
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(app.clone(), stop.clone());

    let unknown = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || replay(&app, &["tanqueos", "saldo"]))
            .await
            .unwrap()
    };
    assert!(!unknown.status.success());
    assert!(unknown.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains(
            "error: unknown projection \"saldo\"; the projections are: areas_operacion, \
             registros, flota, tanqueos, contabilidad, saldos, vehicle_checks, auto_inspecao, \
             cierres, alertas"
        ),
        "{stderr}"
    );

    let output = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || replay(&app, &["tanqueos", "saldos"]))
            .await
            .unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("no request failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].starts_with("rebuilt 2 read models from position 0 to "),
        "{stdout}"
    );
    assert!(
        lines[0].contains("swapped in with their checkpoints in one transaction"),
        "{stdout}"
    );
    let columns: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        columns,
        ["projection", "events", "rows", "seconds", "events/s"]
    );
    assert!(lines[2].starts_with("tanqueos "), "{stdout}");
    assert!(lines[3].starts_with("saldos "), "{stdout}");
    assert!(lines[4].starts_with("all (wall clock) "), "{stdout}");
    // Every refuel record is a row of `tanqueos`: 11 advances, and what the writer added.
    let tanqueos: Vec<&str> = lines[2].split_whitespace().collect();
    let rows: usize = tanqueos[2].replace(',', "").parse().unwrap();
    assert!(rows >= 11 && rows <= 11 + written, "{stdout}");

    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, Duration::from_secs(30))
            .await
    );
    assert_same_answers(
        &answers(&app.router, &app.keys).await,
        &fresh_fold_answers(&app).await,
        "the live runner went on from the checkpoint the command swapped in",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_beside_a_running_service_on_sqlite() {
    replay_beside_a_running_service(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_beside_a_running_service_on_postgres() {
    replay_beside_a_running_service(Backend::Postgres).await;
}
