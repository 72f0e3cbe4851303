//! The real binary under concurrent refuels, advances, corrections, voids and vehicle commands,
//! killed with SIGKILL at random moments over several rounds, on each store. Afterwards every
//! acknowledged (2xx) write is in the ledger exactly once, and every read model equals a fresh
//! rebuild from the log.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{free_port, fresh_location, Backend};
use fleet_ledger::auth::{JwtKeys, Role};
use fleet_ledger::{app, AppState, StoreLocation};
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-ledger");
const SECRET: &str = "crash-test-secret-of-at-least-32-bytes!";
const ROUNDS: usize = 3;
const WORKERS: usize = 4;

/// One request over a fresh connection: `(status, body)`, or `None` if the service is gone.
fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b)?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn serve(dir: &Path, database_url: Option<&str>, port: u16) -> Child {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env("FLEET_LEDGER_JWT_SECRET", SECRET)
        .env_remove("DATABASE_URL")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/readyz", "", "").is_some_and(|(s, _)| s == 200);
        if ready {
            return child;
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        assert!(Instant::now() < deadline, "serve never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a 2xx answer acknowledged (and the corrections sent, answered or not: one the kill
/// cut off may still have committed).
#[derive(Debug, Clone)]
enum Ack {
    CorrectionSent { id: i64, valor: i64 },
    Recorded { id: i64, valor: i64 },
    Corrected { id: i64 },
    Voided { id: i64 },
    Vehicle { id: i64 },
}

/// One worker's loop until `stop`: every kind of command, acknowledged answers into `acks`.
fn work(
    port: u16,
    token: String,
    worker: i64,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    counter: Arc<AtomicI64>,
) {
    // Records this worker had acknowledged: what it corrects and voids.
    let mut mine: Vec<i64> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        // Unique amounts: a record is found in the ledger by its amount.
        let valor = 1_000_000 * (worker + 1) + n;
        let outcome = match n % 6 {
            0 | 1 => http(
                port,
                "POST",
                "/api/tanqueos",
                &token,
                &json!({
                "fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":(n % 3) + 1,
                "area_operacion_id":1,"valor_tanqueo":valor,"cantidad_galones":10})
                .to_string(),
            )
            .map(|(s, b)| {
                (
                    s,
                    b.clone(),
                    b["id"].as_i64().map(|id| Ack::Recorded { id, valor }),
                )
            }),
            2 => http(
                port,
                "POST",
                "/api/tanqueos",
                &token,
                &json!({
                "fecha":"2024-03-15","bomba_id":(n % 3) + 1,"area_operacion_id":1,
                "tipo_operacion":"ANTICIPO","valor_anticipo":valor})
                .to_string(),
            )
            .map(|(s, b)| {
                (
                    s,
                    b.clone(),
                    b["id"].as_i64().map(|id| Ack::Recorded { id, valor }),
                )
            }),
            3 if !mine.is_empty() => {
                let id = mine[n as usize % mine.len()];
                acks.lock().unwrap().push(Ack::CorrectionSent { id, valor });
                http(
                    port,
                    "PUT",
                    &format!("/api/tanqueos/{id}"),
                    &token,
                    &json!({"valor_tanqueo": valor}).to_string(),
                )
                .map(|(s, b)| (s, b, Some(Ack::Corrected { id })))
            }
            4 if mine.len() > 3 => {
                let id = mine.remove(0);
                http(
                    port,
                    "POST",
                    &format!("/api/tanqueos/{id}/anular"),
                    &token,
                    r#"{"motivo":"prueba de caída"}"#,
                )
                .map(|(s, b)| (s, b, Some(Ack::Voided { id })))
            }
            _ => http(
                port,
                "POST",
                "/vehiculo",
                &token,
                &json!({
                "placa": format!("C{worker}X{n}"), "idClaseVehiculo":1,"idEstadoVehiculo":1})
                .to_string(),
            )
            .map(|(s, b)| {
                let vehicle = b["data"]["Id"].as_i64().map(|id| Ack::Vehicle { id });
                (s, b, vehicle)
            }),
        };
        match outcome {
            Some((status, _, Some(ack))) if (200..300).contains(&status) => {
                if let Ack::Recorded { id, .. } = &ack {
                    mine.push(*id);
                }
                acks.lock().unwrap().push(ack);
            }
            Some((status, _, _)) if (200..300).contains(&status) => {}
            Some((status, body, _)) if status >= 500 => panic!("{status}: {body}"),
            // Refused (a void of a record corrected meanwhile, say) or the service is gone.
            _ => {}
        }
    }
}

/// Every record of the ledger, page by page.
fn all_records(port: u16, token: &str) -> Vec<Value> {
    let mut records = Vec::new();
    for page in 1.. {
        let (status, body) = http(
            port,
            "GET",
            &format!("/api/tanqueos?limit=500&page={page}"),
            token,
            "",
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().unwrap().clone();
        let done = data.len() < 500;
        records.extend(data);
        if done {
            break;
        }
    }
    records
}

async fn kill_at_random_then_check(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(location) = fresh_location(backend, dir.path()).await else {
        return;
    };
    let database_url = (backend == Backend::Postgres).then(|| location.log_url.clone());
    let keys = JwtKeys::new(SECRET);
    let token = keys.issue("ana@flota.co", &[Role::Admin], Duration::from_secs(3600));
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let counter = Arc::new(AtomicI64::new(0));
    for round in 0..ROUNDS {
        let port = free_port();
        let mut child = serve(dir.path(), database_url.as_deref(), port);
        if round == 0 {
            for (path, body) in [
                ("/api/areas-operacion", json!({ "nombre": "Logística" })),
                (
                    "/api/bombas",
                    json!([{ "bomba": "A", "area_operacion_id": 1 }, { "bomba": "B", "area_operacion_id": 1 }, { "bomba": "C", "area_operacion_id": 1 }]),
                ),
                ("/api/placas", json!({ "placa": "ABC123" })),
                ("/api/conductores", json!({ "conductor": "Juan Pérez" })),
            ] {
                let (status, answer) = http(port, "POST", path, &token, &body.to_string()).unwrap();
                assert_eq!(status, 201, "{path}: {answer}");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS as i64)
            .map(|worker| {
                let (token, stop, acks, counter) =
                    (token.clone(), stop.clone(), acks.clone(), counter.clone());
                std::thread::spawn(move || work(port, token, worker, stop, acks, counter))
            })
            .collect();
        let lifetime = Duration::from_millis(600 + rand_millis(900));
        std::thread::sleep(lifetime);
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.join().expect("a worker");
        }
    }
    let acks = acks.lock().unwrap().clone();
    assert!(
        acks.iter().any(|a| matches!(a, Ack::Recorded { .. })),
        "no refuel was acknowledged"
    );

    // Restarted once more: every acknowledged write is there, exactly once.
    let port = free_port();
    let mut child = serve(dir.path(), database_url.as_deref(), port);
    let records = all_records(port, &token);
    let mut by_id: HashMap<i64, &Value> = HashMap::new();
    for record in &records {
        assert!(
            by_id
                .insert(record["id"].as_i64().unwrap(), record)
                .is_none(),
            "record twice: {record}"
        );
    }
    let mut corrected: HashMap<i64, Vec<i64>> = HashMap::new();
    for ack in &acks {
        if let Ack::CorrectionSent { id, valor } = ack {
            corrected.entry(*id).or_default().push(*valor);
        }
    }
    for ack in &acks {
        match ack {
            Ack::Recorded { id, valor } => {
                let record = by_id
                    .get(id)
                    .unwrap_or_else(|| panic!("acknowledged record {id} is missing"));
                let stored = record["valor_tanqueo"]
                    .as_i64()
                    .or(record["valor_anticipo"].as_i64())
                    .unwrap();
                let expected = corrected.get(id).cloned().unwrap_or_default();
                assert!(
                    stored == *valor || expected.contains(&stored),
                    "record {id}: {record}"
                );
                let same_amount = records
                    .iter()
                    .filter(|r| {
                        r["valor_tanqueo"].as_i64() == Some(*valor)
                            || r["valor_anticipo"].as_i64() == Some(*valor)
                    })
                    .count();
                assert!(
                    same_amount <= 1,
                    "amount {valor} recorded {same_amount} times"
                );
            }
            Ack::Voided { id } => {
                let (status, record) =
                    http(port, "GET", &format!("/api/tanqueos/{id}"), &token, "").unwrap();
                assert_eq!(status, 200);
                assert_eq!(record["anulado"], json!(true), "voided {id}: {record}");
            }
            Ack::Vehicle { id } => {
                let (status, vehicle) =
                    http(port, "GET", &format!("/vehiculo/{id}"), &token, "").unwrap();
                assert_eq!(status, 200, "vehicle {id}: {vehicle}");
            }
            Ack::Corrected { id, .. } => {
                // Acknowledged, so it took effect (a later correction may have replaced its
                // amount, but the record shows it was corrected).
                let record = by_id[id];
                assert!(
                    record["actualizado_por"].is_string(),
                    "record {id}: {record}"
                );
            }
            Ack::CorrectionSent { .. } => {}
        }
    }
    let live: Vec<(String, Value)> = [
        "/api/saldos-bombas",
        "/api/contabilidad/balance-prueba",
        "/api/bombas/1/movimientos",
        "/vehiculo?incluir_eliminados=true",
    ]
    .iter()
    .map(|path| {
        (
            path.to_string(),
            http(port, "GET", path, &token, "").unwrap().1,
        )
    })
    .collect();
    child.kill().unwrap();
    child.wait().unwrap();

    // A rebuild: the same log folded from position 0 into read models of its own.
    let rebuilt_dir = tempfile::tempdir().unwrap();
    let rebuilt_location = StoreLocation {
        log_url: match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("data/ledger.db").display()),
            Backend::Postgres | Backend::KurrentDb => location.log_url.clone(),
        },
        read_models_url: format!(
            "sqlite://{}?mode=rwc",
            rebuilt_dir.path().join("rebuilt.db").display()
        ),
    };
    let rebuilt = AppState::open(&rebuilt_location, keys.clone())
        .await
        .expect("a rebuild opens");
    let router = app(rebuilt.clone());
    let call = |path: String| {
        let router = router.clone();
        let token = token.clone();
        async move {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let request = axum::http::Request::builder()
                .method(Method::GET)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let mut rebuilt_records = Vec::new();
    for page in 1.. {
        let body = call(format!("/api/tanqueos?limit=500&page={page}")).await;
        let data = body["data"].as_array().unwrap().clone();
        let done = data.len() < 500;
        rebuilt_records.extend(data);
        if done {
            break;
        }
    }
    assert_eq!(
        records, rebuilt_records,
        "the records read model equals a rebuild"
    );
    for (path, answer) in live {
        let from_scratch = call(path.clone()).await;
        if path.contains("balance-prueba") {
            assert_eq!(answer["cuentas"], from_scratch["cuentas"], "{path}");
        } else if path.starts_with("/vehiculo") {
            assert_eq!(answer["data"], from_scratch["data"], "{path}");
        } else {
            assert_eq!(answer, from_scratch, "{path}");
        }
    }
    rebuilt.shutdown().await;
}

/// A pseudo-random number of milliseconds below `below` (no crate needed for a kill moment).
fn rand_millis(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos % below
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sigkill_under_load_loses_and_doubles_nothing() {
    kill_at_random_then_check(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sigkill_under_load_loses_and_doubles_nothing() {
    kill_at_random_then_check(Backend::Postgres).await;
}
