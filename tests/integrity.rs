//! The tamper-evident chain and the commands around it, as an operator and an auditor meet them:
//! `verify` on a store (and on an export, offline), `export`, `import` and `backup`, through the
//! real binary and through the library calls it makes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use fleet_ledger::auth::Role;
use fleet_ledger::integrity::{self, IntegrityError};
use fleet_ledger::store::chain::{Broken, Problem};
use fleet_ledger::store::history::ImportError;
use fleet_ledger::{AppState, StoreLocation};
use serde_json::Value;
use sqlx::Connection;

const BINARY: &str = env!("CARGO_BIN_EXE_fleet-ledger");

on_both_stores!(
    verify_passes_then_names_the_position_of_one_edited_byte,
    verify_refuses_a_checkpoint_past_the_head,
    verify_names_a_deleted_event_and_a_head_moved_back,
    events_stored_before_the_chain_get_the_hashes_the_writer_gives,
    two_instances_appending_in_turn_keep_one_chain,
    an_export_verifies_offline_and_imports_once,
    an_export_from_a_later_position_continues_a_store_that_holds_the_rest,
);

/// The binary, with nothing from the test's environment choosing its store for it.
fn fleet_ledger(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .env_remove("DATABASE_URL")
        .env_remove("FLEET_LEDGER_DATA_DIR")
        .env_remove("FLEET_LEDGER_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The flags that point the binary at `location`.
fn store_flags(location: &StoreLocation) -> Vec<String> {
    if location.is_postgres() {
        vec!["--database-url".into(), location.log_url.clone()]
    } else {
        vec![
            "--data-dir".into(),
            log_path(location).parent().unwrap().display().to_string(),
        ]
    }
}

fn log_path(location: &StoreLocation) -> PathBuf {
    PathBuf::from(location.log_url.trim_start_matches("sqlite://"))
}

fn with_store<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    all
}

/// Runs one statement on the log's database (or the read models' at `url`), behind the
/// service's back.
async fn execute(url: &str, sql: &str) {
    if fleet_ledger::store::is_postgres(url) {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut connection).await.unwrap();
    } else {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut connection).await.unwrap();
    }
}

async fn scalar(url: &str, sql: &str) -> Option<String> {
    if fleet_ledger::store::is_postgres(url) {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    } else {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    }
}

/// `(position, chain_hash)` of every stored event.
async fn hashes(location: &StoreLocation) -> Vec<(i64, Option<String>)> {
    let sql = "SELECT position, chain_hash FROM events ORDER BY position";
    let url = &location.log_url;
    if location.is_postgres() {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql)
            .fetch_all(&mut connection)
            .await
            .unwrap()
    } else {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql)
            .fetch_all(&mut connection)
            .await
            .unwrap()
    }
}

/// What `verify` prints for an intact store holding `hashes`.
async fn intact_report(location: &StoreLocation) -> String {
    let hashes = hashes(location).await;
    let (last, hash) = hashes.last().cloned().unwrap();
    let streams = scalar(
        &location.log_url,
        "SELECT CAST(COUNT(DISTINCT stream_type || '/' || stream_id) AS TEXT) FROM events",
    )
    .await
    .unwrap();
    let store = if location.is_postgres() {
        "postgres".to_string()
    } else {
        format!("sqlite {}", log_path(location).display())
    };
    format!(
        "store:       {store}\n\
         events:      {} in {streams} streams, positions 1 to {last}\n\
         chain:       intact; head hash {}\n\
         checkpoints: projections {}, consumers 2; all at or below position {last}\n\
         ok\n",
        hashes.len(),
        hash.unwrap(),
        fleet_ledger::state::all_projections().len(),
    )
}

/// Where the ANTICIPO of 500000 that `seed_fleet` records sits.
async fn anticipo_position(location: &StoreLocation) -> i64 {
    let payload = if location.is_postgres() {
        "payload::text"
    } else {
        "payload"
    };
    scalar(
        &location.log_url,
        &format!("SELECT CAST(MIN(position) AS TEXT) FROM events WHERE {payload} LIKE '%500000%'"),
    )
    .await
    .unwrap()
    .parse()
    .unwrap()
}

async fn verify_passes_then_names_the_position_of_one_edited_byte(app: TestApp) {
    app.seed_fleet().await;
    let flags = store_flags(&app.location);
    let (ok, stdout, stderr) = fleet_ledger(&with_store(&["verify"], &flags));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, intact_report(&app.location).await);

    // One byte of the ANTICIPO's amount, edited in place: 500000 becomes 500001.
    let position = anticipo_position(&app.location).await;
    let payload = if app.location.is_postgres() {
        "replace(payload::text, '500000', '500001')::json"
    } else {
        "replace(payload, '500000', '500001')"
    };
    execute(
        &app.location.log_url,
        &format!("UPDATE events SET payload = {payload} WHERE position = {position}"),
    )
    .await;

    let (ok, stdout, stderr) = fleet_ledger(&with_store(&["verify"], &flags));
    assert!(!ok, "verify passed an edited log: {stdout}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!(
            "error: the log is broken at position {position}: the stored hash "
        )),
        "{stderr}"
    );
    let broken = integrity::verify_store(&app.location, &mut Vec::new()).await;
    assert!(
        matches!(
            broken,
            Err(IntegrityError::Broken(Broken {
                position: at,
                problem: Problem::HashMismatch { .. }
            })) if at == position
        ),
        "{broken:?}"
    );
}

async fn verify_refuses_a_checkpoint_past_the_head(app: TestApp) {
    app.seed_fleet().await;
    let head = app.state.log.head().await.unwrap();
    app.state.shutdown().await;
    execute(
        &app.location.read_models_url,
        "UPDATE projection_checkpoints SET position = 999999 WHERE name = 'flota'",
    )
    .await;
    let (ok, stdout, stderr) = fleet_ledger(&with_store(&["verify"], &store_flags(&app.location)));
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "error: projection flota is at position 999999, past the log's last position {head}"
        )),
        "{stderr}"
    );
}

async fn verify_names_a_deleted_event_and_a_head_moved_back(app: TestApp) {
    app.seed_fleet().await;
    let head = app.state.log.head().await.unwrap();
    let flags = store_flags(&app.location);
    let position = head / 2;
    if app.location.is_postgres() {
        // The head row says where the log ends; events past it are not accounted for.
        execute(
            &app.location.log_url,
            "UPDATE event_log_head SET position = position - 1",
        )
        .await;
        let (ok, _, stderr) = fleet_ledger(&with_store(&["verify"], &flags));
        assert!(!ok);
        assert!(
            stderr.contains(&format!(
                "error: the log's head is position {}, but its events run to position {head} \
                 (position {head} is past the head)",
                head - 1
            )),
            "{stderr}"
        );
        execute(
            &app.location.log_url,
            "UPDATE event_log_head SET position = position + 1",
        )
        .await;
    }
    execute(
        &app.location.log_url,
        &format!("DELETE FROM events WHERE position = {position}"),
    )
    .await;
    let (ok, _, stderr) = fleet_ledger(&with_store(&["verify"], &flags));
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "error: the log is broken at position {position}: missing: the next event stored is \
             at position {}",
            position + 1
        )),
        "{stderr}"
    );
}

async fn events_stored_before_the_chain_get_the_hashes_the_writer_gives(app: TestApp) {
    app.seed_fleet().await;
    let written = hashes(&app.location).await;
    assert!(written.iter().all(|(_, hash)| hash.is_some()));
    // As a store migrated by 0004 is: every event without a hash.
    execute(&app.location.log_url, "UPDATE events SET chain_hash = NULL").await;
    let app = app.restart().await;
    assert_eq!(hashes(&app.location).await, written);

    // And a store where only the last events lack one, as after an instance of the previous
    // release appended beside this one: the next append fills the gap before linking to it.
    let last = written.len() as i64;
    execute(
        &app.location.log_url,
        &format!(
            "UPDATE events SET chain_hash = NULL WHERE position > {}",
            last - 3
        ),
    )
    .await;
    let app = app.restart().await;
    let (status, body) = app
        .post("/api/areas-operacion", r#"{"nombre":"Norte"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let after = hashes(&app.location).await;
    assert_eq!(&after[..written.len()], &written[..]);
    let report = integrity::verify_store(&app.location, &mut Vec::new())
        .await
        .expect("the chain is intact");
    assert_eq!(report.last, last + 1);
}

async fn two_instances_appending_in_turn_keep_one_chain(first: TestApp) {
    let second = AppState::open(&first.location, first.keys.clone())
        .await
        .expect("a second instance opens on the same store");
    let second_router = fleet_ledger::app(second.clone());
    let token = first.operador();
    for n in 0..6 {
        let body = format!(r#"{{"nombre":"Área {n}"}}"#);
        let (status, answer) = if n % 2 == 0 {
            first.post("/api/areas-operacion", &body).await
        } else {
            let request = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/api/areas-operacion")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let (status, _, bytes) = common::respond(&second_router, request).await;
            (status, serde_json::from_slice(&bytes).unwrap())
        };
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    second.shutdown().await;
    let mut out = Vec::new();
    integrity::verify_store(&first.location, &mut out)
        .await
        .expect("both instances linked to each other's events");
}

/// An export of `app`'s store, written by the binary.
fn export(location: &StoreLocation, dir: &Path, from: Option<i64>) -> PathBuf {
    let flags = store_flags(location);
    let from = from.map(|n| n.to_string());
    let mut args = vec!["export"];
    if let Some(from) = &from {
        args.extend(["--desde-posicion", from.as_str()]);
    }
    let (ok, stdout, stderr) = fleet_ledger(&with_store(&args, &flags));
    assert!(ok, "{stderr}");
    let path = dir.join(format!("events-{}.jsonl", uuid::Uuid::now_v7()));
    std::fs::write(&path, stdout).unwrap();
    path
}

async fn an_export_verifies_offline_and_imports_once(app: TestApp) {
    app.seed_fleet().await;
    let dir = tempfile::tempdir().unwrap();
    let file = export(&app.location, dir.path(), None);
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let stored = hashes(&app.location).await;
    assert_eq!(lines.len(), stored.len());
    for (line, (position, hash)) in lines.iter().zip(&stored) {
        assert_eq!(line["position"], *position);
        assert_eq!(line["hash"].as_str(), hash.as_deref());
    }
    let first = &lines[0];
    assert_eq!(first["previous_hash"], "0".repeat(64));
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "position",
            "event_id",
            "stream_type",
            "stream_id",
            "version",
            "event_type",
            "schema_version",
            "payload",
            "metadata",
            "recorded_at",
            "previous_hash",
            "hash"
        ]
    );

    // Offline: no store named, none reachable.
    let file_arg = file.display().to_string();
    let (ok, stdout, stderr) = fleet_ledger(&["verify", "--file", &file_arg]);
    assert!(ok, "{stderr}");
    let (last, head_hash) = stored.last().cloned().unwrap();
    let streams = intact_report(&app.location).await;
    let streams = streams.lines().nth(1).unwrap();
    assert_eq!(
        stdout,
        format!(
            "file:        {file_arg}\n{streams}\nchain:       intact; head hash {}\nok\n",
            head_hash.unwrap()
        )
    );

    // One byte changed in the copy an auditor was given.
    let position = anticipo_position(&app.location).await;
    let tampered = dir.path().join("tampered.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            if value["position"] == position {
                line.replacen("500000", "500001", 1)
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&tampered, edited.join("\n") + "\n").unwrap();
    let tampered_arg = tampered.display().to_string();
    let (ok, stdout, stderr) = fleet_ledger(&["verify", "--file", &tampered_arg]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "error: the log is broken at position {position}: the stored hash "
        )),
        "{stderr}"
    );

    // Into an empty store of the same kind, twice: the second import adds nothing.
    let target_dir = tempfile::tempdir().unwrap();
    let target = common::fresh_location(app.backend, target_dir.path())
        .await
        .unwrap();
    let target_flags = store_flags(&target);
    let (ok, stdout, stderr) = fleet_ledger(&with_store(&["import", &file_arg], &target_flags));
    assert!(ok, "{stderr}");
    assert!(
        stdout.ends_with(&format!(
            "imported:    {last} events added, 0 already present\n"
        )),
        "{stdout}"
    );
    let (ok, stdout, stderr) = fleet_ledger(&with_store(&["import", &file_arg], &target_flags));
    assert!(ok, "{stderr}");
    assert!(
        stdout.ends_with(&format!(
            "imported:    0 events added, {last} already present\n"
        )),
        "{stdout}"
    );
    assert_eq!(hashes(&target).await, stored);

    // The copy and the original each record their own next event: their histories part at
    // the same position, and importing the original's again is refused there.
    let copy = TestApp::start_at(app.backend, target, target_dir).await;
    let (status, body) = copy
        .post("/api/areas-operacion", r#"{"nombre":"Norte"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post("/api/areas-operacion", r#"{"nombre":"Sur"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let parted = export(&app.location, dir.path(), None);
    let refused = integrity::import(&copy.location.log_url, &parted, &mut Vec::new()).await;
    let conflict = last + 1;
    assert!(
        matches!(
            &refused,
            Err(IntegrityError::Import(ImportError::Conflict { position, .. })) if *position == conflict
        ),
        "{refused:?}"
    );
    let (ok, _, stderr) = fleet_ledger(&with_store(
        &["import", &parted.display().to_string()],
        &store_flags(&copy.location),
    ));
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "error: import refused: position {conflict} conflicts: the store holds another event there"
        )),
        "{stderr}"
    );
}

async fn an_export_from_a_later_position_continues_a_store_that_holds_the_rest(app: TestApp) {
    app.seed_fleet().await;
    let dir = tempfile::tempdir().unwrap();
    let whole = export(&app.location, dir.path(), None);
    let stored = hashes(&app.location).await;
    let from = stored.len() as i64 / 2;
    let tail = export(&app.location, dir.path(), Some(from));

    let (ok, stdout, stderr) = fleet_ledger(&["verify", "--file", &tail.display().to_string()]);
    assert!(ok, "{stderr}");
    let anchor = stored[from as usize - 2].1.clone().unwrap();
    assert!(
        stdout.contains(&format!(
            "anchor:      position {} links to {anchor}: confirm it against the log the file came from\n",
            from - 1
        )),
        "{stdout}"
    );

    // A store holding the events before `from` only.
    let head: Vec<String> = std::fs::read_to_string(&whole)
        .unwrap()
        .lines()
        .take(from as usize - 1)
        .map(str::to_string)
        .collect();
    let head_file = dir.path().join("head.jsonl");
    std::fs::write(&head_file, head.join("\n") + "\n").unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let target = common::fresh_location(app.backend, target_dir.path())
        .await
        .unwrap();
    integrity::import(&target.log_url, &head_file, &mut Vec::new())
        .await
        .unwrap();

    // A tail that skips events is refused, naming where the store ends.
    let later = export(&app.location, dir.path(), Some(from + 1));
    let refused = integrity::import(&target.log_url, &later, &mut Vec::new()).await;
    assert!(
        matches!(
            &refused,
            Err(IntegrityError::Import(ImportError::Gap { position, head, .. }))
                if *position == from + 1 && *head == from - 1
        ),
        "{refused:?}"
    );

    let imported = integrity::import(&target.log_url, &tail, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(imported.added, stored.len() as u64 - from as u64 + 1);
    assert_eq!(hashes(&target).await, stored);
}

/// A log no release with the chain has opened: `verify` says so, and changes nothing.
#[tokio::test]
async fn verify_explains_a_log_from_before_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ledger.db");
    let url = format!("sqlite://{}?mode=rwc", log.display());
    execute(
        &url,
        include_str!("../migrations/sqlite/0001_event_log.sql"),
    )
    .await;
    let (ok, stdout, stderr) =
        fleet_ledger(&["verify", "--data-dir", &dir.path().display().to_string()]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(
            "error: this log has no hash chain yet (it predates migration 0004): start the \
             service on it once, and the chain is filled in before it serves"
        ),
        "{stderr}"
    );
}

/// The migration path of an operator who outgrows the embedded store: SQLite's history
/// exported, imported into PostgreSQL, and the service started there answers every read as the
/// SQLite one did.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_history_imported_into_postgres_answers_every_read_alike() {
    let sqlite = TestApp::start(Backend::Sqlite).await.unwrap();
    let pg_dir = tempfile::tempdir().unwrap();
    let Some(pg_location) = common::fresh_location(Backend::Postgres, pg_dir.path()).await else {
        return;
    };
    drive_a_working_day(&sqlite).await;
    consumers_caught_up(&sqlite).await;
    let reads = read_paths();
    let mut before = Vec::new();
    for path in &reads {
        before.push(read(&sqlite, path).await);
    }

    // Every read answers something to compare (the self-inspection page asks for a link that
    // was never issued, and the deliveries of a webhook never registered: 404 on both).
    for (path, (status, body)) in reads.iter().zip(&before) {
        let expected = if path.starts_with("/auto-inspecao/") || path.starts_with("/api/webhooks/")
        {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(*status, expected, "GET {path}: {body}");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = export(&sqlite.location, dir.path(), None);
    let (ok, _, stderr) = fleet_ledger(&with_store(
        &["import", &file.display().to_string()],
        &store_flags(&pg_location),
    ));
    assert!(ok, "{stderr}");
    let postgres = TestApp::start_at(Backend::Postgres, pg_location, pg_dir).await;
    consumers_caught_up(&postgres).await;
    let mut differences = Vec::new();
    for (path, sqlite_answer) in reads.iter().zip(before) {
        let postgres_answer = read(&postgres, path).await;
        if postgres_answer != sqlite_answer {
            differences.push(format!(
                "GET {path}\n  sqlite:   {sqlite_answer:?}\n  postgres: {postgres_answer:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(
        hashes(&postgres.location).await,
        hashes(&sqlite.location).await
    );
}

/// Every GET route `app()` lists, its parameters filled with ids the day below creates, plus
/// the query variants a user asks for most.
fn read_paths() -> Vec<String> {
    let mut paths: Vec<String> = common::ROUTES
        .iter()
        // The live feed never ends: its catch-up is the feed's first page, compared below. The
        // metrics count this process's own requests and appends, which differ by store.
        .filter(|(method, path)| {
            *method == "GET" && !["/api/eventos/stream", "/metrics"].contains(path)
        })
        .map(|(_, path)| common::with_sample_ids(path))
        .collect();
    paths.extend(
        [
            "/api/eventos?desde_posicion=1&limite=1000",
            "/api/bombas/2",
            "/api/bombas/2/saldo",
            "/api/bombas/1/saldo?as_of=2024-03-16",
            "/api/bombas/1/movimientos?desde=2024-03-01&hasta=2024-03-31",
            "/api/reconciliacion?bomba_id=1",
            "/api/contabilidad/balance-prueba?as_of=2024-03-16",
            "/api/tanqueos/2",
            "/api/tanqueos/3",
            "/api/misiones/2",
            "/api/catalogos/estados-vehiculo",
            "/api/catalogos/tipos-combustible",
            "/api/catalogos/departamentos",
            "/api/catalogos/combustibles",
        ]
        .map(str::to_string),
    );
    paths
}

/// What an admin sees at `path`: status and whole body, but for the two fields that say when
/// the request was answered rather than anything stored, which legitimately differ between any
/// two requests: the `/vehiculo` envelope's `timestamp`, and the trial balance's `as_of` when
/// none is asked for (it is then "now"; the variant with an explicit `as_of` is compared whole).
/// Waits until every consumer of the log has reached its head: `/readyz` and the admin view
/// report their positions, which a busy machine may leave behind for a moment (the read models
/// themselves are waited for by every read).
async fn consumers_caught_up(app: &TestApp) {
    let started = std::time::Instant::now();
    loop {
        let (_, ready) = read(app, "/readyz").await;
        let consumers = ready["consumers"].as_array().cloned().unwrap_or_default();
        if consumers.iter().all(|consumer| consumer["lag"] == 0) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "consumers still behind: {ready}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn read(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let admin = app.token(Role::Admin);
    let (status, mut body) = app.call(Method::GET, path, Some(&admin), None).await;
    if let Some(object) = body.as_object_mut() {
        if path.starts_with("/vehiculo") {
            object.remove("timestamp");
        }
        if path == "/api/contabilidad/balance-prueba" {
            object.remove("as_of");
        }
    }
    (status, body)
}

/// A realistic day through the HTTP app: the seeded fleet, refuels, a correction, a void, a
/// catalogue entry, policy and plate changes, missions started, finished and cancelled, and a
/// vehicle deleted.
async fn drive_a_working_day(app: &TestApp) {
    app.seed_fleet().await;
    let admin = app.token(Role::Admin);
    let admin = admin.as_str();
    let operador = app.operador();
    let operador = operador.as_str();
    let tanqueo = |valor: &str, bomba: i64| {
        format!(
            r#"{{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":{bomba},"area_operacion_id":1,"valor_tanqueo":{valor},"cantidad_galones":10}}"#
        )
    };
    let steps: Vec<(Method, String, String, &str)> = vec![
        (Method::POST, "/api/tanqueos".into(), tanqueo("150000", 1), operador),
        (Method::POST, "/api/tanqueos".into(), tanqueo("12.10", 1), operador),
        (
            Method::POST,
            "/api/tanqueos".into(),
            r#"{"fecha":"2024-03-14","bomba_id":2,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":250000}"#.into(),
            operador,
        ),
        (Method::POST, "/api/tanqueos".into(), tanqueo("99000.50", 2), operador),
        (
            Method::PUT,
            "/api/tanqueos/2".into(),
            r#"{"valor_tanqueo":120000}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/tanqueos/3/anular".into(),
            r#"{"motivo":"duplicado"}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/catalogos/clases-vehiculo".into(),
            r#"{"nombre":"Furgón"}"#.into(),
            admin,
        ),
        (
            Method::PATCH,
            "/api/bombas/1".into(),
            r#"{"permitir_saldo_negativo":false}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/misiones/1/iniciar".into(),
            r#"{"kilometraje_inicial":120500,"combustible_inicial_galones":30}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/misiones/1/finalizar".into(),
            r#"{"kilometraje_final":120730,"combustible_final_galones":21.5}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/misiones".into(),
            r#"{"vehiculo_id":1,"conductor_id":1,"descripcion":"Ruta sur","fecha_programada":"2026-03-02"}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/misiones/2/cancelar".into(),
            r#"{"motivo":"lluvia"}"#.into(),
            operador,
        ),
        (
            Method::POST,
            "/api/placas".into(),
            r#"{"placa":"XYZ987"}"#.into(),
            operador,
        ),
        (Method::POST, "/api/flota/sync".into(), String::new(), operador),
        (Method::DELETE, "/vehiculo/2".into(), String::new(), operador),
    ];
    for (method, path, body, token) in steps {
        let body = (!body.is_empty()).then_some(body.as_str());
        let (status, answer) = app.call(method.clone(), &path, Some(token), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
}

/// `backup` while refuels keep arriving: the copy is consistent, passes `verify`, and a service
/// started on it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_writes_continue_passes_verify() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    app.seed_fleet().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let router = app.router.clone();
        let token = app.operador();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let request = axum::http::Request::builder()
                    .method(Method::POST)
                    .uri("/api/tanqueos")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":1000,"cantidad_galones":1}"#,
                    ))
                    .unwrap();
                let (status, _, _) = common::respond(&router, request).await;
                assert_eq!(status, StatusCode::CREATED);
                written += 1;
            }
            written
        })
    };
    // Let some writes land before, during and after the copy.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    // Into a directory that does not exist yet.
    let copy = dir.path().join("copias").join("backup.db");
    let flags = store_flags(&app.location);
    let copy_arg = copy.display().to_string();
    let (ok, stdout, stderr) = fleet_ledger(&with_store(&["backup", &copy_arg], &flags));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(ok, "{stderr}");
    assert!(written > 0);

    let copied = StoreLocation::resolve(dir.path(), Some(&copy_arg));
    let verified = fleet_ledger(&["verify", "--database-url", &copy_arg]);
    assert!(verified.0, "{}", verified.2);
    assert_eq!(verified.1, intact_report(&copied).await);
    assert_eq!(
        stdout,
        format!(
            "backup:      {copy_arg}\nread models: {}\n{}",
            dir.path()
                .join("copias")
                .join("backup.read_models.db")
                .display(),
            verified.1
        )
    );
    let (ok, _, stderr) = fleet_ledger(&with_store(&["backup", &copy_arg], &flags));
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "error: {copy_arg} already exists: a backup never overwrites a file"
        )),
        "{stderr}"
    );

    // The copy is a store a service opens, at its own head.
    let head_copied: i64 = hashes(&copied).await.len() as i64;
    let restored = TestApp::start_at(Backend::Sqlite, copied, dir).await;
    let (status, feed) = restored.get("/api/eventos?desde_posicion=1&limite=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(feed["ultima_posicion"], head_copied);
}
