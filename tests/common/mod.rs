//! One harness for every black-box test: the real `app()` on a fresh store.
//!
//! Every test runs on SQLite (a temporary directory). It runs again on PostgreSQL when
//! `DATABASE_URL` is set, each test in a schema of its own. With `CI=true`, a missing or
//! unreachable PostgreSQL fails the PostgreSQL tests instead of skipping them. The store
//! contract (`on_every_log!`) runs a third time on KurrentDB when built with the feature
//! `kurrentdb` and `EVENTSTORE_URL` is set.

#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use fleet_ledger::auth::{JwtKeys, Role};
use fleet_ledger::settings::LedgerSettings;
use fleet_ledger::{app, AppState, StoreLocation};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

pub const TEST_SECRET: &str = "test-secret-do-not-use";

/// A TCP port nothing listens on right now, for a service binary under test.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Runs each named `async fn(TestApp)` once per store.
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        $crate::on_both_stores_with!(
            fleet_ledger::settings::LedgerSettings::default();
            $($case),*
        );
    };
}

/// [`on_both_stores!`] for a service opened with `$settings` (a `LedgerSettings` expression,
/// evaluated inside the generated modules: name a function of the test file as `super::f()`).
#[macro_export]
macro_rules! on_both_stores_with {
    ($settings:expr; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let app = $crate::common::TestApp::start_with(
                        $crate::common::Backend::Sqlite,
                        $settings,
                    )
                    .await
                    .expect("SQLite is always available");
                    super::$case(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(app) = $crate::common::TestApp::start_with(
                        $crate::common::Backend::Postgres,
                        $settings,
                    )
                    .await
                    {
                        super::$case(app).await;
                    }
                }
            )*
        }
    };
}

/// Runs each named `async fn(TestApp)` once per store, and once more with the log in KurrentDB
/// (read models in SQLite) when built with the feature `kurrentdb` and `EVENTSTORE_URL` names a
/// server: the store contract every log keeps.
#[macro_export]
macro_rules! on_every_log {
    ($($case:ident),* $(,)?) => {
        $crate::on_both_stores!($($case),*);
        #[cfg(feature = "kurrentdb")]
        mod kurrentdb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(app) =
                        $crate::common::TestApp::start($crate::common::Backend::KurrentDb).await
                    {
                        super::$case(app).await;
                    }
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// The log in KurrentDB at `EVENTSTORE_URL`, the read models in SQLite (feature `kurrentdb`).
    KurrentDb,
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub keys: JwtKeys,
    pub location: StoreLocation,
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh, empty store: a temporary SQLite directory, or a new PostgreSQL schema.
pub async fn fresh_location(backend: Backend, dir: &std::path::Path) -> Option<StoreLocation> {
    match backend {
        Backend::Sqlite => Some(StoreLocation::resolve(dir, None)),
        Backend::Postgres => {
            let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
                assert!(
                    !ci(),
                    "CI=true but DATABASE_URL is not set: the PostgreSQL tests cannot run"
                );
                eprintln!("DATABASE_URL not set: skipping the PostgreSQL run of this test");
                return None;
            };
            let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
            let mut admin = sqlx::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL is unreachable: {e}"));
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut admin)
                .await
                .expect("create the test schema");
            let separator = if url.contains('?') { '&' } else { '?' };
            let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
            Some(StoreLocation::resolve(dir, Some(&scoped)))
        }
        Backend::KurrentDb => {
            // No server runs in CI: these runs are skipped there too, with the note.
            let Some(url) = std::env::var("EVENTSTORE_URL")
                .ok()
                .filter(|u| !u.is_empty())
            else {
                eprintln!("EVENTSTORE_URL not set: skipping the KurrentDB run of this test");
                return None;
            };
            // Every test writes under streams of its own, as each PostgreSQL test has a schema.
            let separator = if url.contains('?') { '&' } else { '?' };
            let scoped = format!(
                "{url}{separator}streamPrefix=t{}_",
                uuid::Uuid::now_v7().simple()
            );
            Some(StoreLocation::resolve(dir, Some(&scoped)))
        }
    }
}

impl TestApp {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, LedgerSettings::default()).await
    }

    /// [`Self::start`] with these settings.
    pub async fn start_with(backend: Backend, settings: LedgerSettings) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let location = fresh_location(backend, dir.path()).await?;
        Some(Self::start_at_with(backend, location, dir, settings).await)
    }

    /// The service on `location` (a store another instance may share).
    pub async fn start_at(
        backend: Backend,
        location: StoreLocation,
        dir: tempfile::TempDir,
    ) -> Self {
        Self::start_at_with(backend, location, dir, LedgerSettings::default()).await
    }

    /// [`Self::start_at`] with these settings.
    pub async fn start_at_with(
        backend: Backend,
        location: StoreLocation,
        dir: tempfile::TempDir,
        settings: LedgerSettings,
    ) -> Self {
        let keys = JwtKeys::new(TEST_SECRET);
        let state = AppState::open_with(&location, keys.clone(), settings)
            .await
            .expect("the ledger opens on a fresh store");
        Self {
            router: app(state.clone()),
            state,
            keys,
            location,
            backend,
            _dir: dir,
        }
    }

    /// Stops this instance and opens a new one on the same store, as a restart would.
    pub async fn restart(self) -> Self {
        self.restart_with(fleet_ledger::state::all_projections())
            .await
    }

    /// Restarts on the same store with these read models: how a release that fixes a projection
    /// is rolled out.
    pub async fn restart_with(
        self,
        projections: Vec<std::sync::Arc<dyn projections::Projection>>,
    ) -> Self {
        let settings = self.state.settings.clone();
        self.restart_with_settings(projections, settings).await
    }

    /// Restarts on the same store with these read models and settings.
    pub async fn restart_with_settings(
        self,
        projections: Vec<std::sync::Arc<dyn projections::Projection>>,
        settings: LedgerSettings,
    ) -> Self {
        self.state.shutdown().await;
        let state = AppState::open_with_projections(
            &self.location,
            self.keys.clone(),
            settings,
            projections,
        )
        .await
        .expect("the ledger reopens");
        Self {
            router: app(state.clone()),
            state,
            ..self
        }
    }

    /// Waits until every consumer of the log (the fuel checks' detector appends alerts in answer
    /// to refuels) has handled the whole log, so the head stays where it is until the next
    /// request.
    pub async fn consumers_settled(&self) {
        loop {
            let head = self.state.log.head().await.expect("the log's head");
            for consumer in ["auto_inspecao", "alertas"] {
                assert!(
                    self.state
                        .consumers
                        .wait_for(consumer, head, Duration::from_secs(30))
                        .await,
                    "consumer {consumer} did not reach {head}"
                );
            }
            if self.state.log.head().await.expect("the log's head") == head {
                return;
            }
        }
    }

    pub fn token(&self, role: Role) -> String {
        self.keys
            .issue("ana@flota.co", &[role], Duration::from_secs(600))
    }

    pub fn operador(&self) -> String {
        self.token(Role::Operador)
    }

    /// Sends one request through the real router; answers status, headers and the JSON body
    /// (`Value::Null` for an empty body, a string for a non-JSON one).
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (status, headers, bytes) = respond(&self.router, request).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, body)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let token = self.operador();
        self.call(Method::GET, path, Some(&token), None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let token = self.operador();
        self.call(Method::POST, path, Some(&token), Some(body))
            .await
    }

    /// A small fleet every kind of request can act on: area 1, station 1 (overdraft allowed)
    /// and station 2 (not), plate 1 `ABC123`, driver 1, vehicle 1 (synced from the plate),
    /// mission 1 (scheduled) and record 1, an ANTICIPO of 500000 to station 1.
    pub async fn seed_fleet(&self) {
        for (path, body) in [
            ("/api/areas-operacion", r#"{"nombre":"Logística"}"#),
            (
                "/api/bombas",
                r#"{"bomba":"Central","area_operacion_id":1}"#,
            ),
            (
                "/api/bombas",
                r#"{"bomba":"Estricta","area_operacion_id":1,"permitir_saldo_negativo":false}"#,
            ),
            ("/api/placas", r#"{"placa":"ABC123"}"#),
            (
                "/api/conductores",
                r#"{"conductor":"Juan Pérez","area_principal":1}"#,
            ),
            ("/api/flota/sync", ""),
            (
                "/api/misiones",
                r#"{"vehiculo_id":1,"conductor_id":1,"descripcion":"Ruta","fecha_programada":"2026-03-01"}"#,
            ),
            (
                "/api/tanqueos",
                r#"{"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":500000}"#,
            ),
        ] {
            let (status, answer) = self.post(path, body).await;
            assert!(status.is_success(), "{path}: {status} {answer}");
        }
    }
}

/// A self-inspection entry of seed 003 for company `token`'s operation type 1, questionnaire 1
/// and user 1 (see [`inspection_fixture`]).
pub fn entry(token: &str, placa: &str) -> Value {
    serde_json::json!({
        "token": token, "veiculo_placa": placa, "id_tipo_operacao": 1, "veiculo_tipo": 1,
        "veiculo_nome": "Corsa", "cliente_nome": "David", "cliente_email": "david@example.com",
        "cliente_numero": "44999999999", "criado_por": 1, "selecionar_galeria": "sim",
        "enviar_para_usuario": "nao"
    })
}

/// Company 1, operation type 1, questionnaire 1 for it and user 1; the company's token.
pub async fn inspection_fixture(app: &TestApp) -> String {
    let admin = app.token(Role::Admin);
    let mut token = String::new();
    for (path, body) in [
        ("/api/empresas", serde_json::json!({ "nome": "Vistorias" })),
        (
            "/api/tipos-operacao",
            serde_json::json!({ "nome": "Venda" }),
        ),
        (
            "/api/questionarios",
            serde_json::json!({ "nome": "Carro", "tipos_operacao": [1] }),
        ),
        ("/api/usuarios", serde_json::json!({ "nome": "David" })),
    ] {
        let (status, answer) = app
            .call(Method::POST, path, Some(&admin), Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        if let Some(t) = answer["token"].as_str() {
            token = t.to_string();
        }
    }
    token
}

/// `path` of [`ROUTES`] with its parameters filled with ids a small history has: station 1's
/// audit trail and balance account, catalogue `clases-vehiculo`, record and entity 1.
pub fn with_sample_ids(path: &str) -> String {
    path.replace("{tipo}/{id}", "bomba/1")
        .replace("{sub}", "ana@flota.co")
        .replace("{id}", "1")
        .replace("{catalogo}", "clases-vehiculo")
        .replace("{cuenta}", "1330-anticipos-bomba-1")
        .replace("{hash}", "0".repeat(64).as_str())
}

/// Every route `app()` lists (src/lib.rs), as `(method, path)` with its path parameters as
/// written there. The role table in README.md and the property test are checked against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/api/eventos"),
    ("GET", "/api/eventos/stream"),
    ("GET", "/api/auditoria/actores/{sub}/eventos"),
    ("GET", "/api/auditoria/{tipo}/{id}/eventos"),
    ("GET", "/api/auditoria/{tipo}/{id}"),
    ("GET", "/api/admin/proyecciones"),
    ("POST", "/api/admin/proyecciones/{name}/reconstruir"),
    ("GET", "/api/areas-operacion"),
    ("POST", "/api/areas-operacion"),
    ("GET", "/api/areas-operacion/{id}"),
    ("GET", "/api/placas"),
    ("POST", "/api/placas"),
    ("GET", "/api/placas/{id}"),
    ("PATCH", "/api/placas/{id}"),
    ("GET", "/api/conductores"),
    ("POST", "/api/conductores"),
    ("GET", "/api/conductores/{id}"),
    ("GET", "/api/bombas"),
    ("POST", "/api/bombas"),
    ("GET", "/api/bombas/{id}"),
    ("PATCH", "/api/bombas/{id}"),
    ("GET", "/api/catalogos/{catalogo}"),
    ("POST", "/api/catalogos/{catalogo}"),
    ("POST", "/api/flota/sync"),
    ("GET", "/api/tanqueos"),
    ("POST", "/api/tanqueos"),
    ("GET", "/api/tanqueos/{id}"),
    ("PUT", "/api/tanqueos/{id}"),
    ("POST", "/api/tanqueos/{id}/anular"),
    ("GET", "/api/alertas"),
    ("POST", "/api/alertas/{id}/revisar"),
    ("GET", "/api/alertas/bandas"),
    ("PUT", "/api/alertas/bandas"),
    ("POST", "/api/tanqueos/import"),
    ("GET", "/api/cierres"),
    ("POST", "/api/cierres"),
    ("POST", "/api/cierres/reabrir"),
    ("GET", "/api/bombas/{id}/saldo"),
    ("GET", "/api/saldos-bombas"),
    ("GET", "/api/bombas/{id}/movimientos"),
    ("GET", "/api/reconciliacion"),
    ("GET", "/api/contabilidad/balance-prueba"),
    ("GET", "/api/contabilidad/cuentas/{cuenta}/movimientos"),
    ("GET", "/api/misiones"),
    ("POST", "/api/misiones"),
    ("GET", "/api/misiones/{id}"),
    ("POST", "/api/misiones/{id}/iniciar"),
    ("POST", "/api/misiones/{id}/finalizar"),
    ("POST", "/api/misiones/{id}/cancelar"),
    ("GET", "/vehiculo"),
    ("POST", "/vehiculo"),
    ("GET", "/vehiculo/{id}"),
    ("PUT", "/vehiculo/{id}"),
    ("DELETE", "/vehiculo/{id}"),
    ("GET", "/api/empresas"),
    ("POST", "/api/empresas"),
    ("PATCH", "/api/empresas/{id}"),
    ("GET", "/api/tipos-operacao"),
    ("POST", "/api/tipos-operacao"),
    ("PATCH", "/api/tipos-operacao/{id}"),
    ("GET", "/api/questionarios"),
    ("POST", "/api/questionarios"),
    ("PATCH", "/api/questionarios/{id}"),
    ("GET", "/api/usuarios"),
    ("POST", "/api/usuarios"),
    ("PATCH", "/api/usuarios/{id}"),
    ("GET", "/api/webhooks"),
    ("POST", "/api/webhooks"),
    ("GET", "/api/webhooks/{id}/entregas"),
    ("POST", "/api/webhooks/{id}/entregas/{entrega}/reenviar"),
    ("POST", "/auto-inspecao/criar-em-lote"),
    ("GET", "/auto-inspecao/{hash}"),
    ("POST", "/auto-inspecao/{hash}/concluir"),
    ("POST", "/auto-inspecao/{hash}/cancelar"),
];

/// Sends one request through `router`; answers status, headers and the body's bytes.
pub async fn respond(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router always answers");
    let status = response.status();
    let headers = response.headers().clone();
    let live = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if live {
        // A live feed's body never ends: its head is the answer, and dropping the body is the
        // client hanging up.
        return (status, headers, axum::body::Bytes::new());
    }
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, bytes)
}

/// Runs an async property from inside a `#[tokio::test]` (multi-threaded): proptest drives its
/// cases synchronously, and each case blocks on the test's own runtime. No failure file: a
/// failing case prints its shrunk input instead.
pub fn run_property<S: proptest::strategy::Strategy>(
    cases: u32,
    strategy: &S,
    case: impl AsyncFn(S::Value) -> Result<(), proptest::test_runner::TestCaseError>,
) -> Result<(), proptest::test_runner::TestError<S::Value>> {
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| runner.run(strategy, |value| handle.block_on(case(value))))
}
