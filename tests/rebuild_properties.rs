//! Replaying the log gives back what was answered live (issue 13). For random command
//! sequences sent through the real HTTP API, refusals and concurrent bursts included:
//! - every read model rebuilt from position 0 into an empty read store equals the live one,
//!   table by table, row for row;
//! - a subject's state at a past instant (`GET /api/auditoria/{tipo}/{id}?as_of=`) equals
//!   folding, with its aggregate's own `apply`, only the events its history
//!   (`GET /api/auditoria/{tipo}/{id}/eventos`) shows recorded at or before that instant, and is a
//!   404 before the first of them. An event recorded exactly at the instant counts: the store
//!   keeps `recorded_at` to the microsecond, and an instant is compared with it as sent.
//!
//! On both stores. `PROPTEST_CASES` sets how many sequences each store runs (default 4). A
//! failure shrinks to a shorter sequence that still fails and prints every request it sent with
//! the status answered.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aggregates::codec;
use aggregates::fleet::Fleet;
use aggregates::fuel::FuelStation;
use aggregates::registry::Catalog;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::{Backend, TestApp};
use cqrs_es::Aggregate;
use fleet_ledger::auth::Role;
use fleet_ledger::read_store::ReadStore;
use fleet_ledger::runner::ProjectionRunner;
use fleet_ledger::settings::{LedgerSettings, WebhookSettings};
use fleet_ledger::state::all_projections;
use projections::Cell;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use sqlx::{Column, Row};

on_both_stores!(rebuilt_read_models_and_past_states_agree_with_the_history);

/// Sequences per store: `PROPTEST_CASES`, else few enough that the file stays well under a
/// minute on two shared cores.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(4)
}

/// Longest the read models (live or rebuilt) may take to fold a sequence's log.
const CATCH_UP: Duration = Duration::from_secs(30);

const CATALOGS: [&str; 5] = [
    "clases-vehiculo",
    "estados-vehiculo",
    "tipos-combustible",
    "departamentos",
    "combustibles",
];

/// Vehicles seed 001's resources report on: (VIN, plate).
const CHECKED: [(&str, &str); 3] = [
    ("3VWFE21C04M000001", "JAL1234"),
    ("3VWFE21C04M000002", "JAL1235"),
    ("1HGCM82633A004352", "QRO9876"),
];

/// One command as a user sends it. Ids are small so that some name nothing (refused), and
/// names repeat so that some are duplicates (refused too). Runs after `seed_fleet` and
/// `inspection_fixture` (area 1, stations 1 and 2, plate 1, driver 1, vehicle 1, mission 1,
/// record 1; company 1, operation type 1, questionnaire 1, user 1).
#[derive(Debug, Clone)]
enum Step {
    RegisterArea,
    RegisterDriver {
        area: i64,
    },
    RegisterStation {
        area: i64,
        overdraft: bool,
    },
    SetOverdraft {
        station: i64,
        allowed: bool,
    },
    AddCatalogEntry {
        catalog: &'static str,
        name: u8,
    },
    RegisterPlate {
        plate: u8,
        active: bool,
    },
    SetPlateStatus {
        plate: i64,
        active: bool,
    },
    SyncFleet,
    RegisterVehicle {
        plate: u8,
    },
    UpdateVehicle {
        vehicle: i64,
        kilometraje: u32,
    },
    DeleteVehicle {
        vehicle: i64,
    },
    ScheduleMission {
        vehicle: i64,
        driver: i64,
    },
    StartMission {
        mission: i64,
        kilometraje: u32,
    },
    CompleteMission {
        mission: i64,
        kilometraje: u32,
    },
    CancelMission {
        mission: i64,
    },
    Anticipo {
        station: i64,
        cents: u32,
        day: u8,
    },
    Tanqueo {
        station: i64,
        cents: u32,
        day: u8,
    },
    Correct {
        record: i64,
        cents: u32,
        anticipo: bool,
    },
    Void {
        record: i64,
    },
    Import {
        station: i64,
        day: u8,
        valor: u32,
    },
    RecordCheck {
        vehicle: usize,
        resource: u8,
        completed: bool,
    },
    RegisterCompany {
        blocks_repeats: bool,
    },
    SetCompanyActive {
        company: i64,
        active: bool,
    },
    RegisterOperationType,
    RegisterQuestionnaire {
        operation_type: i64,
    },
    SetUserActive {
        user: i64,
        active: bool,
    },
    RegisterWebhook {
        company: i64,
    },
    QueueInspections {
        company: i64,
        plates: Vec<u8>,
    },
    ConcludeInspection {
        nth: usize,
    },
    CancelInspection {
        nth: usize,
    },
    /// These steps sent at once, the instant sampled while they are in flight.
    Burst(Vec<Step>),
}

fn single_step() -> impl Strategy<Value = Step> {
    let id = || 1i64..4;
    let cents = || 1u32..50_000_000;
    let day = || 1u8..29;
    prop_oneof![
        1 => Just(Step::RegisterArea),
        1 => id().prop_map(|area| Step::RegisterDriver { area }),
        1 => (id(), any::<bool>())
            .prop_map(|(area, overdraft)| Step::RegisterStation { area, overdraft }),
        1 => (id(), any::<bool>())
            .prop_map(|(station, allowed)| Step::SetOverdraft { station, allowed }),
        1 => (proptest::sample::select(&CATALOGS[..]), 0u8..3)
            .prop_map(|(catalog, name)| Step::AddCatalogEntry { catalog, name }),
        2 => (0u8..5, any::<bool>()).prop_map(|(plate, active)| Step::RegisterPlate { plate, active }),
        1 => (id(), any::<bool>()).prop_map(|(plate, active)| Step::SetPlateStatus { plate, active }),
        1 => Just(Step::SyncFleet),
        1 => (0u8..5).prop_map(|plate| Step::RegisterVehicle { plate }),
        2 => (id(), 0u32..300_000)
            .prop_map(|(vehicle, kilometraje)| Step::UpdateVehicle { vehicle, kilometraje }),
        1 => id().prop_map(|vehicle| Step::DeleteVehicle { vehicle }),
        2 => (id(), 1i64..3).prop_map(|(vehicle, driver)| Step::ScheduleMission { vehicle, driver }),
        1 => (id(), 0u32..300_000)
            .prop_map(|(mission, kilometraje)| Step::StartMission { mission, kilometraje }),
        1 => (id(), 0u32..300_000)
            .prop_map(|(mission, kilometraje)| Step::CompleteMission { mission, kilometraje }),
        1 => id().prop_map(|mission| Step::CancelMission { mission }),
        3 => (id(), cents(), day()).prop_map(|(station, cents, day)| Step::Anticipo { station, cents, day }),
        3 => (id(), cents(), day()).prop_map(|(station, cents, day)| Step::Tanqueo { station, cents, day }),
        2 => (1i64..8, cents(), any::<bool>())
            .prop_map(|(record, cents, anticipo)| Step::Correct { record, cents, anticipo }),
        1 => (1i64..8).prop_map(|record| Step::Void { record }),
        1 => (id(), day(), 1u32..1_000)
            .prop_map(|(station, day, valor)| Step::Import { station, day, valor }),
        2 => (0..CHECKED.len(), 1u8..4, any::<bool>())
            .prop_map(|(vehicle, resource, completed)| Step::RecordCheck { vehicle, resource, completed }),
        1 => any::<bool>().prop_map(|blocks_repeats| Step::RegisterCompany { blocks_repeats }),
        1 => (id(), any::<bool>())
            .prop_map(|(company, active)| Step::SetCompanyActive { company, active }),
        1 => Just(Step::RegisterOperationType),
        1 => id().prop_map(|operation_type| Step::RegisterQuestionnaire { operation_type }),
        1 => (id(), any::<bool>()).prop_map(|(user, active)| Step::SetUserActive { user, active }),
        1 => id().prop_map(|company| Step::RegisterWebhook { company }),
        2 => (id(), proptest::collection::vec(0u8..6, 1..4))
            .prop_map(|(company, plates)| Step::QueueInspections { company, plates }),
        1 => (0usize..6).prop_map(|nth| Step::ConcludeInspection { nth }),
        1 => (0usize..6).prop_map(|nth| Step::CancelInspection { nth }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => single_step(),
        1 => proptest::collection::vec(single_step(), 2..5).prop_map(Step::Burst),
    ]
}

/// An amount in cents as the exact decimal a user types: `1234.05`.
fn amount(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A request as sent: who sends it (no token for seed 003's inspections) and what.
#[derive(Debug, Clone)]
struct Sent {
    role: Option<Role>,
    method: Method,
    path: String,
    body: Option<String>,
}

impl Sent {
    fn new(role: Role, method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            role: Some(role),
            method,
            path: path.into(),
            body: body.map(|b| b.to_string()),
        }
    }

    /// A body with numbers written exactly as given (`json!` would go through `f64`).
    fn raw(role: Role, method: Method, path: impl Into<String>, body: String) -> Self {
        Self {
            role: Some(role),
            method,
            path: path.into(),
            body: Some(body),
        }
    }
}

/// A sequence being played: what its answers taught (company tokens, inspection hashes), the
/// instants sampled along the way and a transcript for the failure message.
struct Run<'a> {
    app: &'a TestApp,
    /// Where webhooks point: a port nothing listens on, so deliveries fail at once, off the log.
    hook_url: String,
    company_tokens: BTreeMap<i64, String>,
    hashes: Vec<String>,
    instants: Vec<DateTime<Utc>>,
    transcript: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(app: &'a TestApp, company_token: String) -> Self {
        Self {
            app,
            hook_url: format!("http://127.0.0.1:{}/hook", common::free_port()),
            company_tokens: BTreeMap::from([(1, company_token)]),
            hashes: Vec::new(),
            instants: Vec::new(),
            transcript: Vec::new(),
        }
    }

    fn request(&self, step: &Step) -> Sent {
        use Role::{Admin, Operador};
        let post = |path: &str, body: Value| Sent::new(Operador, Method::POST, path, Some(body));
        let admin =
            |method: Method, path: String, body: Value| Sent::new(Admin, method, path, Some(body));
        let hash = |nth: usize| {
            // No inspection queued yet: a hash nobody holds (refused 404).
            if self.hashes.is_empty() {
                "0".repeat(32)
            } else {
                self.hashes[nth % self.hashes.len()].clone()
            }
        };
        match step {
            Step::RegisterArea => post("/api/areas-operacion", json!({ "nombre": "Norte" })),
            Step::RegisterDriver { area } => post(
                "/api/conductores",
                json!({ "conductor": "Ana Gómez", "area_principal": area }),
            ),
            Step::RegisterStation { area, overdraft } => post(
                "/api/bombas",
                json!({ "bomba": "Sur", "area_operacion_id": area,
                        "permitir_saldo_negativo": overdraft }),
            ),
            Step::SetOverdraft { station, allowed } => Sent::new(
                Operador,
                Method::PATCH,
                format!("/api/bombas/{station}"),
                Some(json!({ "permitir_saldo_negativo": allowed })),
            ),
            Step::AddCatalogEntry { catalog, name } => admin(
                Method::POST,
                format!("/api/catalogos/{catalog}"),
                json!({ "nombre": format!("Entrada {name}") }),
            ),
            Step::RegisterPlate { plate, active } => post(
                "/api/placas",
                json!({ "placa": format!("PRP{plate:03}"),
                        "estado": if *active { "ACTIVADA" } else { "DESACTIVADA" } }),
            ),
            Step::SetPlateStatus { plate, active } => Sent::new(
                Operador,
                Method::PATCH,
                format!("/api/placas/{plate}"),
                Some(json!({ "estado": if *active { "ACTIVADA" } else { "DESACTIVADA" } })),
            ),
            Step::SyncFleet => Sent::new(Operador, Method::POST, "/api/flota/sync", None),
            Step::RegisterVehicle { plate } => post(
                "/vehiculo",
                json!({ "placa": format!("PRP{plate:03}"), "idClaseVehiculo": 2,
                        "idEstadoVehiculo": 1, "marca": "Renault" }),
            ),
            Step::UpdateVehicle {
                vehicle,
                kilometraje,
            } => Sent::raw(
                Operador,
                Method::PUT,
                format!("/vehiculo/{vehicle}"),
                format!(
                    r#"{{"kilometrajeActual":{kilometraje},"capacidadCombustibleGalones":12.10}}"#
                ),
            ),
            Step::DeleteVehicle { vehicle } => Sent::new(
                Operador,
                Method::DELETE,
                format!("/vehiculo/{vehicle}"),
                None,
            ),
            Step::ScheduleMission { vehicle, driver } => post(
                "/api/misiones",
                json!({ "vehiculo_id": vehicle, "conductor_id": driver,
                        "descripcion": "Ruta", "fecha_programada": "2026-03-01" }),
            ),
            Step::StartMission {
                mission,
                kilometraje,
            } => Sent::raw(
                Operador,
                Method::POST,
                format!("/api/misiones/{mission}/iniciar"),
                format!(
                    r#"{{"kilometraje_inicial":{kilometraje},"combustible_inicial_galones":30.5}}"#
                ),
            ),
            Step::CompleteMission {
                mission,
                kilometraje,
            } => Sent::raw(
                Operador,
                Method::POST,
                format!("/api/misiones/{mission}/finalizar"),
                format!(
                    r#"{{"kilometraje_final":{kilometraje},"combustible_final_galones":2.25}}"#
                ),
            ),
            Step::CancelMission { mission } => post(
                &format!("/api/misiones/{mission}/cancelar"),
                json!({ "motivo": "Lluvia" }),
            ),
            Step::Anticipo {
                station,
                cents,
                day,
            } => Sent::raw(
                Operador,
                Method::POST,
                "/api/tanqueos",
                format!(
                    r#"{{"fecha":"2024-03-{day:02}","bomba_id":{station},"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{}}}"#,
                    amount(*cents)
                ),
            ),
            Step::Tanqueo {
                station,
                cents,
                day,
            } => Sent::raw(
                Operador,
                Method::POST,
                "/api/tanqueos",
                format!(
                    r#"{{"fecha":"2024-03-{day:02}","conductor_id":1,"placa_id":1,"bomba_id":{station},"area_operacion_id":1,"valor_tanqueo":{},"cantidad_galones":12.5}}"#,
                    amount(*cents)
                ),
            ),
            Step::Correct {
                record,
                cents,
                anticipo,
            } => Sent::raw(
                Operador,
                Method::PUT,
                format!("/api/tanqueos/{record}"),
                format!(
                    r#"{{"{}":{}}}"#,
                    if *anticipo {
                        "valor_anticipo"
                    } else {
                        "valor_tanqueo"
                    },
                    amount(*cents)
                ),
            ),
            Step::Void { record } => post(
                &format!("/api/tanqueos/{record}/anular"),
                json!({ "motivo": "Duplicado" }),
            ),
            Step::Import {
                station,
                day,
                valor,
            } => post(
                "/api/tanqueos/import",
                json!({ "area_operacion_id": 1, "bomba_id": station, "records": [{
                    "FECHA": format!("{day:02}/03/2024"), "NOMBRE CONDUCTOR": "Juan Pérez",
                    "PLACA": "ABC123", "VALOR TANQUEO": valor, "CANTIDAD GALONES": 3 }] }),
            ),
            Step::RecordCheck {
                vehicle,
                resource,
                completed,
            } => {
                let (vin, plate) = CHECKED[*vehicle];
                let mut result = json!({
                    "vin": vin, "plate": plate, "resourceId": resource,
                    "result": [{ "concepto": "Multa", "monto": resource }],
                    "creationDateTime": "2024-03-01T10:00:00.000Z",
                });
                if *completed {
                    result["status"] = json!("Completed");
                    result["finishedDateTime"] = json!("2024-03-01T10:05:00.000Z");
                }
                post("/api/scraping/resultados", result)
            }
            Step::RegisterCompany { blocks_repeats } => admin(
                Method::POST,
                "/api/empresas".into(),
                json!({ "nome": "Vistorias", "bloquear_placas_repetidas": blocks_repeats }),
            ),
            Step::SetCompanyActive { company, active } => admin(
                Method::PATCH,
                format!("/api/empresas/{company}"),
                json!({ "ativo": active }),
            ),
            Step::RegisterOperationType => admin(
                Method::POST,
                "/api/tipos-operacao".into(),
                json!({ "nome": "Compra" }),
            ),
            Step::RegisterQuestionnaire { operation_type } => admin(
                Method::POST,
                "/api/questionarios".into(),
                json!({ "nome": "Moto", "tipos_operacao": [operation_type] }),
            ),
            Step::SetUserActive { user, active } => admin(
                Method::PATCH,
                format!("/api/usuarios/{user}"),
                json!({ "ativo": active }),
            ),
            Step::RegisterWebhook { company } => admin(
                Method::POST,
                "/api/webhooks".into(),
                json!({ "empresa_id": company, "url": self.hook_url, "eventos": [
                    "auto_inspecao.criada", "auto_inspecao.concluida", "auto_inspecao.cancelada"
                ] }),
            ),
            Step::QueueInspections { company, plates } => {
                // A company nobody registered has no token: a made-up one is refused.
                let token = self
                    .company_tokens
                    .get(company)
                    .cloned()
                    .unwrap_or_else(|| "f".repeat(64));
                let entries: Vec<Value> = plates
                    .iter()
                    .map(|plate| common::entry(&token, &format!("ABC{plate:04}")))
                    .collect();
                Sent {
                    role: None,
                    method: Method::POST,
                    path: "/auto-inspecao/criar-em-lote".into(),
                    body: Some(Value::Array(entries).to_string()),
                }
            }
            Step::ConcludeInspection { nth } => Sent {
                role: None,
                method: Method::POST,
                path: format!("/auto-inspecao/{}/concluir", hash(*nth)),
                body: None,
            },
            Step::CancelInspection { nth } => Sent {
                role: None,
                method: Method::POST,
                path: format!("/auto-inspecao/{}/cancelar", hash(*nth)),
                body: None,
            },
            Step::Burst(_) => unreachable!("a burst's steps are sent one by one by `play`"),
        }
    }

    async fn send(app: &TestApp, sent: &Sent) -> (StatusCode, Value) {
        let token = sent.role.map(|role| app.token(role));
        app.call(
            sent.method.clone(),
            &sent.path,
            token.as_deref(),
            sent.body.as_deref(),
        )
        .await
    }

    /// Keeps what later steps need from an answer, and writes the transcript line.
    fn learn(&mut self, step: &Step, sent: &Sent, status: StatusCode, answer: &Value) {
        match step {
            Step::RegisterCompany { .. } if status == StatusCode::CREATED => {
                if let (Some(id), Some(token)) = (answer["id"].as_i64(), answer["token"].as_str()) {
                    self.company_tokens.insert(id, token.to_string());
                }
            }
            Step::QueueInspections { .. } if status == StatusCode::OK => {
                let hashes = answer.as_array().into_iter().flatten();
                self.hashes
                    .extend(hashes.filter_map(|entry| entry["hash"].as_str().map(str::to_string)));
            }
            _ => {}
        }
        // A refusal says why; an acceptance's body is what the step asked for.
        let why = if status.is_success() {
            String::new()
        } else {
            format!(" {answer}")
        };
        self.transcript.push(format!(
            "  {step:?}: {} {} {} → {status}{why}",
            sent.method,
            sent.path,
            sent.body.as_deref().unwrap_or("")
        ));
    }

    async fn play(&mut self, step: &Step) {
        let Step::Burst(steps) = step else {
            let sent = self.request(step);
            let (status, answer) = Self::send(self.app, &sent).await;
            self.learn(step, &sent, status, &answer);
            return;
        };
        let sent: Vec<Sent> = steps.iter().map(|step| self.request(step)).collect();
        let app = self.app;
        let mut sampled = Vec::new();
        let answers = {
            let sending =
                futures_util::future::join_all(sent.iter().map(|sent| Self::send(app, sent)));
            let sampling = async {
                loop {
                    sampled.push(Utc::now());
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            };
            tokio::select! {
                answers = sending => answers,
                _ = sampling => unreachable!("sampling never ends"),
            }
        };
        self.instants.extend(sampled);
        self.transcript.push("  burst:".into());
        for ((step, sent), (status, answer)) in steps.iter().zip(&sent).zip(answers) {
            self.learn(step, sent, status, &answer);
        }
    }
}

fn settings() -> LedgerSettings {
    LedgerSettings {
        webhooks: WebhookSettings {
            allow_private: true,
            ..WebhookSettings::default()
        },
        ..LedgerSettings::default()
    }
}

async fn rebuilt_read_models_and_past_states_agree_with_the_history(app: TestApp) {
    let backend = app.backend;
    app.state.shutdown().await;
    let outcome = common::run_property(
        cases(),
        &proptest::collection::vec(step(), 0..40),
        async |steps| check_history(backend, steps).await,
    );
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

async fn check_history(backend: Backend, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let app = TestApp::start_with(backend, settings())
        .await
        .expect("a fresh store");
    let before_anything = Utc::now();
    app.seed_fleet().await;
    let company_token = common::inspection_fixture(&app).await;
    let mut run = Run::new(&app, company_token);
    run.instants.push(before_anything);
    run.instants.push(Utc::now());
    for step in &steps {
        run.play(step).await;
        run.instants.push(Utc::now());
    }
    // From here on nothing appends behind the test's back: the inspections' processor (which
    // opens queued inspections) stops, and the log is what the read models must show.
    app.state.consumers.shutdown().await;
    let checked = match rebuild_equals_live(&app).await {
        Ok(()) => as_of_equals_the_fold(&app, &run.instants).await,
        failed => failed,
    };
    app.state.shutdown().await;
    checked.map_err(|problem| {
        TestCaseError::fail(format!(
            "{problem}\nrequests sent after the fixture:\n{}",
            run.transcript.join("\n")
        ))
    })
}

/// A read-model table's rows in a stable order, with its column names.
#[derive(Debug, PartialEq)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// Every table of every projection, as `store` holds it.
async fn read_models(store: &ReadStore) -> BTreeMap<&'static str, Table> {
    let mut tables = BTreeMap::new();
    for projection in all_projections() {
        for table in projection.tables() {
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(store.pool())
                .await
                .unwrap_or_else(|e| panic!("read {table}: {e}"));
            let columns = rows.first().map_or_else(Vec::new, |row| {
                row.columns().iter().map(|c| c.name().to_string()).collect()
            });
            // Read-model columns are BIGINT or TEXT on both stores (src/read_store.rs).
            let mut rows: Vec<Vec<Cell>> = rows
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| match row.try_get::<Option<i64>, _>(i) {
                            Ok(number) => Cell::Int(number),
                            Err(_) => Cell::Text(
                                row.try_get::<Option<String>, _>(i)
                                    .unwrap_or_else(|e| panic!("{table} column {i}: {e}")),
                            ),
                        })
                        .collect()
                })
                .collect();
            rows.sort();
            tables.insert(*table, Table { columns, rows });
        }
    }
    tables
}

/// Folds the whole log from position 0 into an empty read store of the same kind, and compares
/// every table with the live one.
async fn rebuild_equals_live(app: &TestApp) -> Result<(), String> {
    let head = app.state.log.head().await.map_err(|e| e.to_string())?;
    if !app.state.runner.wait_for(head, CATCH_UP).await {
        return Err(format!(
            "the live read models did not fold the log up to {head}: {:?}",
            app.state.runner.statuses(head)
        ));
    }
    let live = read_models(&app.state.read_models).await;

    let dir = tempfile::tempdir().expect("temporary directory");
    let fresh = common::fresh_location(app.backend, dir.path())
        .await
        .expect("the store this test runs on");
    let store = ReadStore::open(&fresh.read_models_url)
        .await
        .expect("an empty read store opens");
    let runner = ProjectionRunner::start(app.state.log.clone(), store.clone(), all_projections())
        .await
        .expect("the rebuild starts");
    let caught_up = runner.wait_for(head, CATCH_UP).await;
    let statuses = runner.statuses(head);
    let rebuilt = read_models(&store).await;
    runner.shutdown().await;
    store.close().await;
    if !caught_up {
        return Err(format!(
            "the rebuild did not fold the log up to {head}: {statuses:?}"
        ));
    }
    for (table, live) in &live {
        let rebuilt = &rebuilt[table];
        if live != rebuilt {
            return Err(format!(
                "{table} rebuilt from position 0 differs from the live one\n{}",
                difference(live, rebuilt)
            ));
        }
    }
    Ok(())
}

/// The rows only one side has, with their column names.
fn difference(live: &Table, rebuilt: &Table) -> String {
    let columns = if live.columns.is_empty() {
        &rebuilt.columns
    } else {
        &live.columns
    };
    let show = |row: &Vec<Cell>| -> String {
        let cells: Vec<String> = columns
            .iter()
            .zip(row)
            .map(|(column, cell)| match cell {
                Cell::Int(Some(n)) => format!("{column}={n}"),
                Cell::Text(Some(text)) => format!("{column}={text:?}"),
                Cell::Int(None) | Cell::Text(None) => format!("{column}=NULL"),
            })
            .collect();
        format!("    {}", cells.join(", "))
    };
    let only = |side: &Table, other: &Table| -> Vec<String> {
        side.rows
            .iter()
            .filter(|row| !other.rows.contains(row))
            .map(show)
            .collect()
    };
    format!(
        "  live only:\n{}\n  rebuilt only:\n{}",
        only(live, rebuilt).join("\n"),
        only(rebuilt, live).join("\n")
    )
}

/// What `/api/auditoria` names: `bomba/2`, `vehiculo/1`, `catalogo/combustibles`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Subject {
    tipo: &'static str,
    id: String,
}

impl Subject {
    fn path(&self) -> String {
        format!("/api/auditoria/{}/{}", self.tipo, self.id)
    }

    /// Whether an event of the log is in this subject's stream.
    fn in_stream(&self, event: &Value) -> bool {
        match self.tipo {
            "bomba" => event["stream_type"] == "fuel-station" && event["stream_id"] == *self.id,
            "catalogo" => event["stream_type"] == "catalog" && event["stream_id"] == *self.id,
            "area" => event["stream_type"] == "operation-areas",
            "conductor" => event["stream_type"] == "drivers",
            "registro-bomba" => event["stream_type"] == "stations",
            "verificacion" => {
                event["stream_type"] == "vehicle-checks" && event["stream_id"] == *self.id
            }
            _ => event["stream_type"] == "fleet",
        }
    }
}

/// The subjects the log's events are about (README's table of `tipo`s), and one of each kind
/// that none is about.
fn subjects(log: &[Value]) -> BTreeSet<Subject> {
    let mut subjects: BTreeSet<Subject> = [
        "bomba",
        "placa",
        "vehiculo",
        "mision",
        "area",
        "conductor",
        "registro-bomba",
    ]
    .into_iter()
    .map(|tipo| Subject {
        tipo,
        id: "99".into(),
    })
    .collect();
    for event in log {
        let stream_id = event["stream_id"].as_str().unwrap_or_default().to_string();
        match event["stream_type"].as_str() {
            Some("fuel-station") => {
                subjects.insert(Subject {
                    tipo: "bomba",
                    id: stream_id,
                });
            }
            Some("catalog") => {
                subjects.insert(Subject {
                    tipo: "catalogo",
                    id: stream_id,
                });
            }
            Some("vehicle-checks") => {
                subjects.insert(Subject {
                    tipo: "verificacion",
                    id: stream_id,
                });
            }
            Some(registry @ ("operation-areas" | "drivers" | "stations")) => {
                let tipo = match registry {
                    "operation-areas" => "area",
                    "drivers" => "conductor",
                    _ => "registro-bomba",
                };
                if let Some(id) = event["payload"]["id"].as_i64() {
                    subjects.insert(Subject {
                        tipo,
                        id: id.to_string(),
                    });
                }
            }
            Some("fleet") => {
                for (tipo, field) in [
                    ("placa", "plate_id"),
                    ("vehiculo", "vehicle_id"),
                    ("mision", "mission_id"),
                ] {
                    if let Some(id) = event["payload"][field].as_i64() {
                        subjects.insert(Subject {
                            tipo,
                            id: id.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    subjects
}

/// Every event of a paged read (`/api/eventos`, a subject's `…/eventos`), in order.
async fn every_page(app: &TestApp, path: &str) -> Vec<Value> {
    let token = app.token(Role::Auditor);
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page_path = format!("{path}{separator}desde_posicion={from}&limite=1000");
        let (status, page) = app.call(Method::GET, &page_path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{page_path}: {page}");
        events.extend(page["data"].as_array().cloned().unwrap_or_default());
        from = page["siguiente_posicion"]
            .as_i64()
            .expect("a next position");
        if from > page["ultima_posicion"].as_i64().expect("the head") {
            return events;
        }
    }
}

fn recorded_at(event: &Value) -> DateTime<Utc> {
    serde_json::from_value(event["recorded_at"].clone()).expect("recorded_at is an instant")
}

/// The events of `events` up to `as_of`: the prefix recorded at or before it (all without it).
fn until(events: &[Value], as_of: Option<DateTime<Utc>>) -> &[Value] {
    let Some(as_of) = as_of else {
        return events;
    };
    let end = events
        .iter()
        .position(|event| recorded_at(event) > as_of)
        .unwrap_or(events.len());
    &events[..end]
}

/// The aggregate `A` folded from `events` by its own `apply`.
fn fold<A: Aggregate>(events: &[Value]) -> A {
    let mut aggregate = A::default();
    for event in events {
        let event_type = event["event_type"].as_str().expect("an event type");
        let decoded = codec::decode(event_type, &event["payload"])
            .unwrap_or_else(|e| panic!("{event_type} does not decode: {e}"));
        aggregate.apply(decoded);
    }
    aggregate
}

/// The subject's state folded from only its own history up to `as_of`; `None` without one.
fn folded_state(subject: &Subject, history: &[Value]) -> Option<Value> {
    if history.is_empty() {
        return None;
    }
    let id = subject.id.parse::<i64>().unwrap_or_default();
    let state = match subject.tipo {
        "bomba" => serde_json::to_value(fold::<FuelStation>(history).view()),
        "catalogo" => serde_json::to_value(fold::<Catalog>(history)),
        // A registry's entity: the registration's fields, each update's `changes` over them.
        "area" | "conductor" | "registro-bomba" => {
            let mut entity = serde_json::Map::new();
            for event in history {
                let payload = &event["payload"];
                let fields = payload.get("changes").unwrap_or(payload);
                for (name, value) in fields.as_object().expect("an object payload") {
                    entity.insert(name.clone(), value.clone());
                }
            }
            Ok(Value::Object(entity))
        }
        // The latest result of each resource, in resource order.
        "verificacion" => {
            let mut latest = BTreeMap::new();
            for event in history {
                let check = &event["payload"]["check"];
                latest.insert(check["resource_id"].as_i64(), check.clone());
            }
            Ok(json!({ "resultados": latest.into_values().collect::<Vec<_>>() }))
        }
        tipo => {
            let fleet = fold::<Fleet>(history);
            match tipo {
                "placa" => serde_json::to_value(fleet.plate(id)?),
                "vehiculo" => serde_json::to_value(fleet.vehicle(id)?),
                _ => serde_json::to_value(fleet.mission(id)?),
            }
        }
    };
    Some(state.expect("a state serializes"))
}

/// What `GET /api/auditoria/{tipo}/{id}?as_of=` must answer: `history` is the subject's
/// events, `stream` every event of its stream (a fleet entity's stream holds its neighbours').
fn expected_state(
    subject: &Subject,
    history: &[Value],
    stream: &[Value],
    as_of: Option<DateTime<Utc>>,
) -> (StatusCode, Value) {
    let as_of_text = as_of.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    let history = until(history, as_of);
    let (Some(state), Some(last)) = (folded_state(subject, history), history.last()) else {
        let error = match &as_of_text {
            Some(as_of) => format!(
                "No hay eventos de {}/{} hasta {as_of}",
                subject.tipo, subject.id
            ),
            None => format!("No hay eventos de {}/{}", subject.tipo, subject.id),
        };
        return (StatusCode::NOT_FOUND, json!({ "error": error }));
    };
    let version = until(stream, as_of).last().map(|e| e["version"].clone());
    (
        StatusCode::OK,
        json!({
            "tipo": subject.tipo,
            "id": subject.id,
            "as_of": as_of_text,
            "version": version,
            "ultimo_evento": {
                "position": last["position"],
                "version": last["version"],
                "event_type": last["event_type"],
                "recorded_at": last["recorded_at"],
            },
            "estado": state,
        }),
    )
}

/// For every subject and instant, the state answered equals the fold of the history's prefix.
async fn as_of_equals_the_fold(app: &TestApp, instants: &[DateTime<Utc>]) -> Result<(), String> {
    let log = every_page(app, "/api/eventos").await;
    let auditor = app.token(Role::Auditor);
    for subject in subjects(&log) {
        let stream: Vec<Value> = log
            .iter()
            .filter(|event| subject.in_stream(event))
            .cloned()
            .collect();
        // A stream's state is one of its prefixes only if time never goes back along it.
        if let Some(pair) = stream
            .windows(2)
            .find(|pair| recorded_at(&pair[1]) < recorded_at(&pair[0]))
        {
            return Err(format!(
                "{subject:?}: recorded_at goes back along the stream: {} then {}",
                pair[0], pair[1]
            ));
        }
        let history = every_page(app, &format!("{}/eventos", subject.path())).await;
        // Every instant sampled, and each of the subject's events at, just before (1 ns) and a
        // tick before (1 µs, the store's resolution) the instant it was recorded.
        let mut moments: BTreeSet<DateTime<Utc>> = instants.iter().copied().collect();
        for event in &history {
            let at = recorded_at(event);
            moments.extend([
                at,
                at - TimeDelta::nanoseconds(1),
                at - TimeDelta::microseconds(1),
            ]);
        }
        for as_of in moments.into_iter().map(Some).chain([None]) {
            let path = match as_of {
                Some(t) => format!(
                    "{}?as_of={}",
                    subject.path(),
                    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                ),
                None => subject.path(),
            };
            let answered = app.call(Method::GET, &path, Some(&auditor), None).await;
            let expected = expected_state(&subject, &history, &stream, as_of);
            if answered != expected {
                let folded: Vec<String> = until(&history, as_of)
                    .iter()
                    .map(|e| format!("    {e}"))
                    .collect();
                return Err(format!(
                    "GET {path} answered\n  {} {}\nbut folding its history up to then gives\n  {} {}\nfrom\n{}",
                    answered.0,
                    answered.1,
                    expected.0,
                    expected.1,
                    folded.join("\n")
                ));
            }
        }
    }
    Ok(())
}
