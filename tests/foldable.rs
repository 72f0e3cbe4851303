//! Nothing is committed that the service cannot read back, and an event that a read model cannot
//! fold stalls that read model alone: it is reported, everything else keeps answering, writes do
//! not wait for it, and a fixed release resumes it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use fleet_ledger::auth::Role;
use fleet_ledger::store::{AppendRequest, EventMetadata, NewEvent};
use projections::{Change, FoldError, Projection, Recorded};
use serde_json::{json, Value};

on_both_stores!(
    a_tiny_quantity_is_refused_before_anything_is_appended,
    a_derived_cost_beyond_the_bounds_is_refused,
    text_no_read_model_can_store_is_refused,
    every_accepted_number_folds_and_reads_back_exactly,
    an_unfoldable_event_stalls_only_its_projections,
);

async fn call(app: &TestApp, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let token = app.operador();
    let body = (!body.is_empty()).then_some(body);
    app.call(method, path, Some(&token), body).await
}

/// Area 1, station 1 (overdraft allowed), plate 1, driver 1, vehicle 1.
async fn setup(app: &TestApp) {
    for (path, body) in [
        ("/api/areas-operacion", r#"{"nombre":"Logística"}"#),
        (
            "/api/bombas",
            r#"{"bomba":"Estación Central","area_operacion_id":1,"permitir_saldo_negativo":true}"#,
        ),
        ("/api/placas", r#"{"placa":"ABC123","estado":"ACTIVADA"}"#),
        (
            "/api/conductores",
            r#"{"conductor":"Juan Pérez","area_principal":1}"#,
        ),
        (
            "/vehiculo",
            r#"{"placa":"ABC123","idClaseVehiculo":1,"idEstadoVehiculo":1}"#,
        ),
    ] {
        let (status, answer) = call(app, Method::POST, path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
}

const ISSUE_BODY: &str = r#"{"fecha":"2024-03-16","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"tipo_combustible":"ACPM","valor_tanqueo":150000,"cantidad_galones":0.000000000000001}"#;

async fn assert_nothing_appended_and_ready(app: &TestApp, head: i64) {
    assert_eq!(
        app.state.log.head().await.unwrap(),
        head,
        "nothing appended"
    );
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
}

/// Every read model folds the whole log (none is stalled or behind) and `/readyz` says so.
async fn assert_caught_up_and_ready(app: &TestApp) {
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, Duration::from_secs(10))
            .await
    );
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
}

async fn a_tiny_quantity_is_refused_before_anything_is_appended(app: TestApp) {
    setup(&app).await;
    let head = app.state.log.head().await.unwrap();
    let (status, body) = call(&app, Method::POST, "/api/tanqueos", ISSUE_BODY).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Invalid value for cantidad_galones: at most 6 decimal places" })
        )
    );
    assert_nothing_appended_and_ready(&app, head).await;
    let (status, balances) = call(&app, Method::GET, "/api/saldos-bombas", "").await;
    assert_eq!(status, StatusCode::OK, "{balances}");
}

async fn a_derived_cost_beyond_the_bounds_is_refused(app: TestApp) {
    setup(&app).await;
    let head = app.state.log.head().await.unwrap();
    let body = ISSUE_BODY
        .replace("150000", "1000000000000000")
        .replace("0.000000000000001", "0.000001");
    let (status, body) = call(&app, Method::POST, "/api/tanqueos", &body).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Invalid value for cantidad_galones: out of range (costo_por_galon = valor_tanqueo / cantidad_galones must be at most 1000000000000000)" })
        )
    );
    assert_nothing_appended_and_ready(&app, head).await;
}

async fn text_no_read_model_can_store_is_refused(app: TestApp) {
    setup(&app).await;
    let head = app.state.log.head().await.unwrap();
    // PostgreSQL's TEXT cannot hold a NUL character: committed, it would stall the read model.
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/areas-operacion",
        r#"{"nombre":"Nor\u0000te"}"#,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "Invalid value for nombre: it cannot be stored and read back exactly" })
        )
    );
    assert_nothing_appended_and_ready(&app, head).await;
}

/// A JSON number literal: any sign, up to 31 digits, a decimal point anywhere, maybe an exponent.
fn number_literal() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    (
        any::<bool>(),
        proptest::collection::vec(0u8..10, 1..32),
        0usize..32,
        proptest::option::of(-40i32..40),
        any::<bool>(),
    )
        .prop_map(|(negative, digits, point, exponent, upper)| {
            let digits: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            let point = point.min(digits.len());
            let integer = digits[..point].trim_start_matches('0');
            let integer = if integer.is_empty() { "0" } else { integer };
            let fraction = &digits[point..];
            let mut literal = String::new();
            if negative {
                literal.push('-');
            }
            literal.push_str(integer);
            if !fraction.is_empty() {
                literal.push('.');
                literal.push_str(fraction);
            }
            if let Some(exponent) = exponent {
                literal.push(if upper { 'E' } else { 'e' });
                literal.push_str(&exponent.to_string());
            }
            literal
        })
}

/// Numbers worth trying every time: the bounds, both sides of them, and the forms JSON allows.
const EDGE_LITERALS: [&str; 18] = [
    "0",
    "-0",
    "0.0",
    "12.10",
    "1.5e3",
    "0.1E1",
    "1e-6",
    "1e-7",
    "0.000001",
    "0.0000001",
    "1e15",
    "1000000000000000",
    "1000000000000000.000001",
    "999999999999999.999999",
    "150000000000000000000",
    "79228162514264337593543950336",
    "1e-15",
    "-12.5",
];

const VALID_TANQUEO: &str = r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":150000,"cantidad_galones":12.5}"#;

/// Where a number can go, and how to read back what was stored.
#[derive(Debug, Clone, Copy)]
enum Target {
    Tanqueo(&'static str),
    Anticipo(&'static str),
    Correction(&'static str),
    ImportedGallons,
    MissionFuel,
    VehicleCapacity,
}

const TARGETS: [Target; 11] = [
    Target::Tanqueo("valor_tanqueo"),
    Target::Tanqueo("cantidad_galones"),
    Target::Tanqueo("horometro"),
    Target::Tanqueo("saldo_disponible"),
    Target::Anticipo("valor_anticipo"),
    Target::Anticipo("saldo_disponible"),
    Target::Correction("valor_tanqueo"),
    Target::Correction("cantidad_galones"),
    Target::ImportedGallons,
    Target::MissionFuel,
    Target::VehicleCapacity,
];

/// The value a number literal writes, as `(negative, significant digits, power of ten)` with no
/// leading or trailing zeros: worked out from the text alone, so it checks the service's decimal
/// arithmetic instead of repeating it.
fn exact_value(literal: &str) -> (bool, String, i64) {
    let (mantissa, exponent) = match literal.find(['e', 'E']) {
        Some(at) => (&literal[..at], literal[at + 1..].parse::<i64>().unwrap()),
        None => (literal, 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches('-');
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{integer}{fraction}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return (false, "0".to_string(), 0);
    }
    let power = exponent - fraction.len() as i64 + (digits.len() - significant.len()) as i64;
    (negative, significant.to_string(), power)
}

/// Sends `literal` to `target`. Answers the status, the stored value as the command answered
/// it, and the same value read back afterwards (`None` when refused).
async fn try_number(
    app: &TestApp,
    target: Target,
    literal: &str,
    case: usize,
) -> (StatusCode, Value, Option<(Value, Value)>) {
    let tanqueo = |field: &str| {
        let mut body = json!({"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,
            "area_operacion_id":1,"valor_tanqueo":150000,"cantidad_galones":12.5});
        body[field] = json!("__N__");
        body.to_string().replace("\"__N__\"", literal)
    };
    match target {
        Target::Tanqueo(field) | Target::Anticipo(field) => {
            let body = if matches!(target, Target::Tanqueo(_)) {
                tanqueo(field)
            } else {
                let mut body = json!({"fecha":"2024-03-15","bomba_id":1,"area_operacion_id":1,
                    "tipo_operacion":"ANTICIPO","valor_anticipo":100});
                body[field] = json!("__N__");
                body.to_string().replace("\"__N__\"", literal)
            };
            let (status, answer) = call(app, Method::POST, "/api/tanqueos", &body).await;
            if !status.is_success() {
                return (status, answer, None);
            }
            let id = answer["id"].as_i64().unwrap();
            let (_, stored) = call(app, Method::GET, &format!("/api/tanqueos/{id}"), "").await;
            (
                status,
                answer.clone(),
                Some((answer[field].clone(), stored[field].clone())),
            )
        }
        Target::Correction(field) => {
            let (status, created) = call(app, Method::POST, "/api/tanqueos", VALID_TANQUEO).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            let id = created["id"].as_i64().unwrap();
            let body = format!(r#"{{"{field}":{literal}}}"#);
            let path = format!("/api/tanqueos/{id}");
            let (status, answer) = call(app, Method::PUT, &path, &body).await;
            if !status.is_success() {
                return (status, answer, None);
            }
            let (_, stored) = call(app, Method::GET, &path, "").await;
            (
                status,
                answer.clone(),
                Some((answer[field].clone(), stored[field].clone())),
            )
        }
        Target::ImportedGallons => {
            // A different day for every case, so no row is a duplicate of an earlier one.
            let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                + chrono::Duration::days(case as i64);
            let body = format!(
                r#"{{"area_operacion_id":1,"bomba_id":1,"records":[{{"FECHA":"{}","NOMBRE CONDUCTOR":"Juan Pérez","PLACA":"ABC123","VALOR TANQUEO":1000,"CANTIDAD GALONES":{literal}}}]}}"#,
                day.format("%d/%m/%Y")
            );
            let (status, answer) = call(app, Method::POST, "/api/tanqueos/import", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            if answer["imported"] != 1 {
                return (StatusCode::BAD_REQUEST, answer, None);
            }
            let path = format!(
                "/api/tanqueos?desde={0}&hasta={0}&limit=1",
                day.format("%Y-%m-%d")
            );
            let (_, listed) = call(app, Method::GET, &path, "").await;
            let stored = listed["data"][0]["cantidad_galones"].clone();
            (status, answer, Some((stored.clone(), stored)))
        }
        Target::MissionFuel => {
            let schedule = r#"{"vehiculo_id":1,"conductor_id":1,"descripcion":"Ruta","fecha_programada":"2026-03-01"}"#;
            let (status, mission) = call(app, Method::POST, "/api/misiones", schedule).await;
            assert_eq!(status, StatusCode::CREATED, "{mission}");
            let path = format!("/api/misiones/{}", mission["id"]);
            let body =
                format!(r#"{{"kilometraje_inicial":100,"combustible_inicial_galones":{literal}}}"#);
            let (status, answer) = call(app, Method::POST, &format!("{path}/iniciar"), &body).await;
            if !status.is_success() {
                let cancel = r#"{"motivo":"número rechazado"}"#;
                call(app, Method::POST, &format!("{path}/cancelar"), cancel).await;
                return (status, answer, None);
            }
            let finish = r#"{"kilometraje_final":100,"combustible_final_galones":0}"#;
            let (status, finished) =
                call(app, Method::POST, &format!("{path}/finalizar"), finish).await;
            assert_eq!(status, StatusCode::OK, "{finished}");
            assert_eq!(
                exact_value(&finished["combustible_consumido_galones"].to_string()),
                exact_value(&answer["combustible_inicial_galones"].to_string()),
                "consumed = start − 0: {finished}"
            );
            let (_, stored) = call(app, Method::GET, &path, "").await;
            (
                StatusCode::OK,
                answer.clone(),
                Some((
                    answer["combustible_inicial_galones"].clone(),
                    stored["combustible_inicial_galones"].clone(),
                )),
            )
        }
        Target::VehicleCapacity => {
            let body = format!(r#"{{"capacidadCombustibleGalones":{literal}}}"#);
            let (status, answer) = call(app, Method::PUT, "/vehiculo/1", &body).await;
            if !status.is_success() {
                return (status, answer, None);
            }
            let (_, stored) = call(app, Method::GET, "/vehiculo/1", "").await;
            let field = "CapacidadCombustibleGalones";
            (
                status,
                answer.clone(),
                Some((answer["data"][field].clone(), stored["data"][field].clone())),
            )
        }
    }
}

async fn every_accepted_number_folds_and_reads_back_exactly(app: TestApp) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    setup(&app).await;
    let cases = AtomicUsize::new(0);
    let check = |target: Target, literal: &str| -> Result<(), TestCaseError> {
        let case = cases.fetch_add(1, Ordering::Relaxed);
        let handle = tokio::runtime::Handle::current();
        handle.block_on(async {
            app.consumers_settled().await;
            let head = app.state.log.head().await.unwrap();
            let (status, answer, stored) = try_number(&app, target, literal, case).await;
            match stored {
                None => {
                    proptest::prop_assert_eq!(
                        status,
                        StatusCode::BAD_REQUEST,
                        "{:?} {} {}",
                        target,
                        literal,
                        answer
                    );
                    let refused_cleanly = answer["error"].is_string()
                        || answer["message"].is_string()
                        || answer["errors"].is_array();
                    proptest::prop_assert!(refused_cleanly, "{:?} {}: {}", target, literal, answer);
                    if !matches!(target, Target::Correction(_) | Target::MissionFuel) {
                        // A refused number appends nothing (those two set up a record first).
                        let after = app.state.log.head().await.unwrap();
                        proptest::prop_assert_eq!(after, head, "{:?} {}", target, literal);
                    }
                }
                Some((answered, read_back)) => {
                    proptest::prop_assert_eq!(&answered, &read_back, "{:?} {}", target, literal);
                    let sent = exact_value(literal);
                    let got = exact_value(&answered.to_string());
                    proptest::prop_assert_eq!(
                        sent,
                        got,
                        "{:?} {} answered {}",
                        target,
                        literal,
                        answered
                    );
                }
            }
            Ok(())
        })
    };
    tokio::task::block_in_place(|| {
        for literal in EDGE_LITERALS {
            for target in TARGETS {
                check(target, literal).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let strategy = (0..TARGETS.len(), number_literal());
        let mut runner = TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |(target, literal)| {
                check(TARGETS[target], &literal)
            })
            .unwrap_or_else(|e| panic!("{e}"));
    });
    // Every accepted command folded in every read model: nothing is stalled or behind.
    assert_caught_up_and_ready(&app).await;
}

/// A release that knows how to read the one legacy event its predecessor could not: it folds it
/// as nothing, and every other event as before.
struct ToleratesLegacyEvent {
    inner: Arc<dyn Projection>,
    position: i64,
}

impl Projection for ToleratesLegacyEvent {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.position == self.position {
            return Ok(Vec::new());
        }
        self.inner.apply(event)
    }
}

async fn projections_report(app: &TestApp) -> Value {
    let admin = app.token(Role::Admin);
    let (status, body) = app
        .call(Method::GET, "/api/admin/proyecciones", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn projection<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

async fn an_unfoldable_event_stalls_only_its_projections(app: TestApp) {
    setup(&app).await;
    let refuel = ISSUE_BODY.replace("0.000000000000001", "12.5");
    let (status, first) = call(&app, Method::POST, "/api/tanqueos", &refuel).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    // Behind the service's back: a refuel no fold can read, on a stream of its own.
    let poison = NewEvent::new(
        "TanqueoRecorded",
        json!({ "record": { "id": "uno" } }),
        EventMetadata::default(),
    );
    let appended = app
        .state
        .log
        .append(AppendRequest {
            stream_type: "fuel-station".into(),
            stream_id: "999".into(),
            expected_version: 0,
            events: vec![poison],
            idempotency: None,
        })
        .await
        .unwrap();
    let poisoned_at = appended.last_position;

    // The two read models that fold refuels report where and why they stopped; the others fold
    // past the event.
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let report = projections_report(&app).await;
        let stalled = ["tanqueos", "contabilidad"]
            .iter()
            .all(|name| projection(&report, name)["status"] == "stalled");
        let others_ready = ["areas_operacion", "flota", "registros"]
            .iter()
            .all(|name| projection(&report, name)["status"] == "ready");
        if (stalled && others_ready) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in ["tanqueos", "contabilidad"] {
        let entry = projection(&report, name);
        assert_eq!(entry["status"], "stalled", "{report}");
        assert_eq!(entry["position"], poisoned_at - 1, "{report}");
        assert_eq!(entry["stalled"]["position"], poisoned_at, "{report}");
        let error = entry["stalled"]["error"].as_str().unwrap();
        assert!(error.contains("TanqueoRecorded"), "{error}");
    }
    for name in ["areas_operacion", "flota", "registros"] {
        assert_eq!(projection(&report, name)["status"], "ready", "{report}");
    }
    let (status, _) = call(&app, Method::GET, "/api/admin/proyecciones", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let reason = ready["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "projection tanqueos is stalled at position {poisoned_at}"
        )),
        "{reason}"
    );

    // Writes do not wait for the stalled read models: answered in milliseconds, from their own
    // events, and marked as not yet visible in reads.
    let token = app.operador();
    let started = Instant::now();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/tanqueos")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(refuel.clone()))
        .unwrap();
    let (status, headers, second) = app.send(request).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(headers["x-read-models-lag"], "true");
    let mut expected = first.clone();
    expected["id"] = json!(first["id"].as_i64().unwrap() + 1);
    assert_eq!(second, expected);

    // Everything else keeps answering, and unrelated writes are current.
    let started = Instant::now();
    let (status, area) = call(
        &app,
        Method::POST,
        "/api/areas-operacion",
        r#"{"nombre":"Sur"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{area}");
    assert!(started.elapsed() < Duration::from_secs(1));
    for path in [
        "/api/areas-operacion/2",
        "/api/placas",
        "/api/saldos-bombas",
        "/api/bombas/1/saldo",
        "/api/tanqueos",
        "/vehiculo/1",
    ] {
        let (status, body) = call(&app, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, saldo) = call(&app, Method::GET, "/api/bombas/1/saldo", "").await;
    assert_eq!(
        saldo["saldo"],
        json!(-300000),
        "both refuels count: {saldo}"
    );

    // A release that can fold the legacy event resumes both read models from their checkpoints.
    let fixed: Vec<Arc<dyn Projection>> = fleet_ledger::state::all_projections()
        .into_iter()
        .map(|inner| {
            Arc::new(ToleratesLegacyEvent {
                inner,
                position: poisoned_at,
            }) as Arc<dyn Projection>
        })
        .collect();
    let app = app.restart_with(fixed).await;
    assert_caught_up_and_ready(&app).await;
    let path = format!("/api/tanqueos/{}", second["id"]);
    let (status, stored) = call(&app, Method::GET, &path, "").await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let mut expected = second.clone();
    expected["anulado"] = json!(false);
    assert_eq!(stored, expected);
}
