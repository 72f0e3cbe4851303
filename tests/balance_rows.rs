//! Station balances from rows (the `saldos` projection): for random histories, every balance,
//! statement and reconciliation answered from the rows is byte for byte what folding the
//! station's stream answers (`projections::ledger::station_balance` / `station_statement`, the
//! path the service takes while the rows lag); the rows survive a rebuild; and while the
//! projection is stalled the answers fold, exact all the same.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::SecondsFormat;
use common::{respond, Backend, TestApp};
use fleet_ledger::state::all_projections;
use projections::{Change, FoldError, Projection, Recorded};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

on_both_stores!(
    random_histories_answer_from_rows_what_folding_the_stream_answers,
    a_rebuilt_saldos_read_model_answers_the_same,
    balances_come_from_the_rows_while_they_are_current,
    while_the_rows_are_stalled_balances_fold_the_stream,
);

const STATIONS: i64 = 3;

/// One step of a random history, as a user would send it.
#[derive(Debug, Clone)]
enum Op {
    Anticipo {
        bomba: i64,
        cents: u32,
        day: u32,
        reported: Option<u32>,
    },
    Tanqueo {
        bomba: i64,
        cents: u32,
        day: u32,
        reported: Option<u32>,
    },
    /// A new amount (of either kind: the wrong one is refused), and maybe a new date and report.
    Correct {
        id: i64,
        anticipo: bool,
        cents: u32,
        day: Option<u32>,
        reported: Option<u32>,
    },
    Void {
        id: i64,
    },
    /// The station's overdraft policy: an event in its stream that moves no balance.
    Policy {
        bomba: i64,
        permitir: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let station = 1..=STATIONS;
    let reported = proptest::option::weighted(0.4, 0u32..20_000_000);
    prop_oneof![
        3 => (station.clone(), 1u32..50_000_000, 1u32..28, reported.clone()).prop_map(
            |(bomba, cents, day, reported)| Op::Anticipo { bomba, cents, day, reported }
        ),
        3 => (station.clone(), 1u32..50_000_000, 1u32..28, reported.clone()).prop_map(
            |(bomba, cents, day, reported)| Op::Tanqueo { bomba, cents, day, reported }
        ),
        2 => (1i64..12, any::<bool>(), 1u32..50_000_000, proptest::option::of(1u32..28), reported)
            .prop_map(|(id, anticipo, cents, day, reported)| Op::Correct {
                id, anticipo, cents, day, reported
            }),
        1 => (1i64..12).prop_map(|id| Op::Void { id }),
        1 => (station, any::<bool>()).prop_map(|(bomba, permitir)| Op::Policy { bomba, permitir }),
    ]
}

fn amount(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn reported_field(reported: Option<u32>) -> String {
    reported.map_or(String::new(), |cents| {
        format!(r#","saldo_disponible":{}"#, amount(cents))
    })
}

/// The request `op` sends: method, path and body.
fn request(op: &Op) -> (Method, String, String) {
    match op {
        Op::Anticipo {
            bomba,
            cents,
            day,
            reported,
        } => (
            Method::POST,
            "/api/tanqueos".to_string(),
            format!(
                r#"{{"fecha":"2024-03-{day:02}","bomba_id":{bomba},"area_operacion_id":1,"tipo_operacion":"ANTICIPO","valor_anticipo":{}{}}}"#,
                amount(*cents),
                reported_field(*reported)
            ),
        ),
        Op::Tanqueo {
            bomba,
            cents,
            day,
            reported,
        } => (
            Method::POST,
            "/api/tanqueos".to_string(),
            format!(
                r#"{{"fecha":"2024-03-{day:02}","conductor_id":1,"placa_id":1,"bomba_id":{bomba},"area_operacion_id":1,"valor_tanqueo":{},"cantidad_galones":10{}}}"#,
                amount(*cents),
                reported_field(*reported)
            ),
        ),
        Op::Correct {
            id,
            anticipo,
            cents,
            day,
            reported,
        } => {
            let field = if *anticipo {
                "valor_anticipo"
            } else {
                "valor_tanqueo"
            };
            let fecha = day.map_or(String::new(), |day| {
                format!(r#","fecha":"2024-03-{day:02}""#)
            });
            (
                Method::PUT,
                format!("/api/tanqueos/{id}"),
                format!(
                    r#"{{"{field}":{}{fecha}{}}}"#,
                    amount(*cents),
                    reported_field(*reported)
                ),
            )
        }
        Op::Void { id } => (
            Method::POST,
            format!("/api/tanqueos/{id}/anular"),
            r#"{"motivo":"x"}"#.to_string(),
        ),
        Op::Policy { bomba, permitir } => (
            Method::PATCH,
            format!("/api/bombas/{bomba}"),
            format!(r#"{{"permitir_saldo_negativo":{permitir}}}"#),
        ),
    }
}

/// Area 1, stations 1 to [`STATIONS`] (overdraft allowed), plate 1 and driver 1.
async fn setup(app: &TestApp) {
    let mut fleet = vec![(
        "/api/areas-operacion",
        r#"{"nombre":"Logística"}"#.to_string(),
    )];
    for n in 1..=STATIONS {
        fleet.push((
            "/api/bombas",
            format!(r#"{{"bomba":"Estación {n}","area_operacion_id":1}}"#),
        ));
    }
    fleet.push(("/api/placas", r#"{"placa":"ABC123"}"#.to_string()));
    fleet.push((
        "/api/conductores",
        r#"{"conductor":"Juan Pérez","area_principal":1}"#.to_string(),
    ));
    for (path, body) in fleet {
        let (status, answer) = app.post(path, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
}

/// Status, content type and exact body bytes of one GET.
async fn answer(app: &TestApp, path: &str, accept: Option<&str>) -> String {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {}", app.operador()));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let (status, headers, bytes) = respond(&app.router, request.body(Body::empty()).unwrap()).await;
    format!(
        "GET {path} ({accept:?}) → {status} {:?}\n{}",
        headers.get("content-type"),
        String::from_utf8_lossy(&bytes)
    )
}

const RANGES: [&str; 6] = [
    "",
    "desde=2024-03-10",
    "hasta=2024-03-20",
    "desde=2024-03-10&hasta=2024-03-20",
    "desde=2024-03-20&hasta=2024-03-10",
    "desde=2024-03-15&hasta=2024-03-15",
];

/// Every balance, statement and reconciliation a user can ask of the stations, as answered.
async fn every_answer(app: &TestApp) -> Vec<String> {
    let nanosecond = chrono::Duration::nanoseconds(1);
    let mut paths = vec!["/api/saldos-bombas".to_string()];
    for bomba in 1..=STATIONS {
        let base = format!("/api/bombas/{bomba}/saldo");
        paths.push(base.clone());
        paths.push(format!("{base}?as_of=2000-01-01"));
        paths.push(format!("{base}?as_of=2100-01-01"));
        let events = app
            .state
            .log
            .read_stream("fuel-station", &bomba.to_string(), 0)
            .await
            .unwrap();
        for event in &events {
            for at in [
                event.recorded_at - nanosecond,
                event.recorded_at,
                event.recorded_at + nanosecond,
            ] {
                let at = at.to_rfc3339_opts(SecondsFormat::Nanos, true);
                paths.push(format!("{base}?as_of={at}"));
            }
        }
        for day in 0..=30u64 {
            let corte =
                chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap() + chrono::Days::new(day);
            paths.push(format!("{base}?fecha_corte={corte}"));
        }
        if let Some(middle) = events.get(events.len() / 2) {
            let at = middle
                .recorded_at
                .to_rfc3339_opts(SecondsFormat::Nanos, true);
            paths.push(format!("{base}?as_of={at}&fecha_corte=2024-03-14"));
        }
        for range in RANGES {
            paths.push(format!("/api/bombas/{bomba}/movimientos?{range}"));
            paths.push(format!("/api/reconciliacion?bomba_id={bomba}&{range}"));
        }
    }
    let mut answers = Vec::with_capacity(paths.len() + RANGES.len());
    for path in &paths {
        answers.push(answer(app, path, None).await);
    }
    for range in RANGES {
        let path = format!("/api/reconciliacion?{range}");
        answers.push(answer(app, &path, None).await);
        answers.push(answer(app, &path, Some("text/csv")).await);
    }
    answers
}

/// Every projection but `saldos`: a service that answers balances by folding the streams.
fn without_saldos() -> Vec<Arc<dyn Projection>> {
    all_projections()
        .into_iter()
        .filter(|p| p.name() != projections::balances::NAME)
        .collect()
}

async fn caught_up(app: &TestApp) {
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, Duration::from_secs(20))
            .await,
        "the read models catch up"
    );
}

/// The first answer that differs, with its counterpart.
fn first_difference(rows: &[String], folded: &[String]) -> Option<String> {
    if rows.len() != folded.len() {
        return Some(format!(
            "{} answers from rows, {} folded",
            rows.len(),
            folded.len()
        ));
    }
    rows.iter()
        .zip(folded)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("from rows:\n{a}\nfolded:\n{b}"))
}

async fn random_histories_answer_from_rows_what_folding_the_stream_answers(app: TestApp) {
    let backend = app.backend;
    app.state.shutdown().await;
    let outcome = common::run_property(8, &proptest::collection::vec(op(), 1..30), async |ops| {
        check_history(backend, ops).await
    });
    outcome.unwrap();
}

async fn check_history(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let app = TestApp::start(backend).await.expect("a fresh store");
    setup(&app).await;
    for op in &ops {
        let (method, path, body) = request(op);
        // Refusals (an unknown id, the wrong kind of amount, an overdraft) are part of a
        // realistic history too.
        let token = app.operador();
        app.call(method, &path, Some(&token), Some(&body)).await;
    }
    caught_up(&app).await;
    let rows = every_answer(&app).await;
    let app = app.restart_with(without_saldos()).await;
    caught_up(&app).await;
    let folded = every_answer(&app).await;
    app.state.shutdown().await;
    match first_difference(&rows, &folded) {
        Some(difference) => Err(TestCaseError::fail(difference)),
        None => Ok(()),
    }
}

/// A fixed history over three stations: records on several dates, a correction that moves a
/// record to another date, a void, and reported balances.
async fn record_history(app: &TestApp) {
    setup(app).await;
    let ops = [
        Op::Anticipo {
            bomba: 1,
            cents: 50_000_000,
            day: 1,
            reported: None,
        },
        Op::Tanqueo {
            bomba: 1,
            cents: 1_234_567,
            day: 3,
            reported: Some(3_765_433),
        },
        Op::Tanqueo {
            bomba: 2,
            cents: 9_900,
            day: 2,
            reported: None,
        },
        Op::Anticipo {
            bomba: 1,
            cents: 1_000_000,
            day: 5,
            reported: Some(1),
        },
        Op::Correct {
            id: 2,
            anticipo: false,
            cents: 2_000_000,
            day: Some(7),
            reported: Some(4_000_000),
        },
        Op::Void { id: 4 },
        Op::Policy {
            bomba: 3,
            permitir: false,
        },
    ];
    for op in &ops {
        let (method, path, body) = request(op);
        let token = app.operador();
        let (status, answer) = app.call(method, &path, Some(&token), Some(&body)).await;
        assert!(status.is_success(), "{op:?}: {status} {answer}");
    }
    caught_up(app).await;
}

async fn a_rebuilt_saldos_read_model_answers_the_same(app: TestApp) {
    record_history(&app).await;
    let live = every_answer(&app).await;
    // Forget only the checkpoint, as an operator who rebuilds one read model does: its rows are
    // still there, and a rebuild that kept them would count every movement twice.
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = 'saldos'")
        .execute(app.state.read_models.pool())
        .await
        .unwrap();
    let app = app.restart().await;
    caught_up(&app).await;
    assert_eq!(
        app.state
            .read_models
            .checkpoint(projections::balances::NAME)
            .await
            .unwrap(),
        app.state.log.head().await.unwrap()
    );
    let rebuilt = every_answer(&app).await;
    assert_eq!(first_difference(&rebuilt, &live), None);

    // The tables thrown away with the checkpoint: the same again.
    let pool = app.state.read_models.pool();
    for table in projections::balances::StationBalancesProjection.tables() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = 'saldos'")
        .execute(pool)
        .await
        .unwrap();
    let app = app.restart().await;
    caught_up(&app).await;
    assert_eq!(first_difference(&every_answer(&app).await, &live), None);
}

async fn balances_come_from_the_rows_while_they_are_current(app: TestApp) {
    record_history(&app).await;
    let (status, before) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        before,
        json!({
            "bomba_id": 1,
            "saldo": 480000,
            "total_anticipos": 500000,
            "total_tanqueos": 20000,
            "movimientos": 2,
            "ultimo_movimiento": "2024-03-07",
        })
    );
    // Behind the service's back, so only the rows can say it: no fold answers this.
    sqlx::query("UPDATE rm_saldos_bombas SET saldo = '12.5' WHERE bomba_id = 1")
        .execute(app.state.read_models.pool())
        .await
        .unwrap();
    let (_, tampered) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(tampered["saldo"], json!(12.5));
}

/// `saldos`, except that it cannot fold any event past `position`: a release with a bug.
struct StuckAfter {
    inner: Arc<dyn Projection>,
    position: i64,
}

impl Projection for StuckAfter {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }

    fn apply(&self, event: &Recorded) -> Result<Vec<Change>, FoldError> {
        if event.position > self.position {
            return Err(FoldError {
                position: event.position,
                reason: "this release cannot fold it".to_string(),
            });
        }
        self.inner.apply(event)
    }
}

async fn while_the_rows_are_stalled_balances_fold_the_stream(app: TestApp) {
    record_history(&app).await;
    let head = app.state.log.head().await.unwrap();
    let stuck: Vec<Arc<dyn Projection>> = all_projections()
        .into_iter()
        .map(|p| -> Arc<dyn Projection> {
            if p.name() == projections::balances::NAME {
                Arc::new(StuckAfter {
                    inner: p,
                    position: head,
                })
            } else {
                p
            }
        })
        .collect();
    let app = app.restart_with(stuck).await;
    let (status, created) = app
        .post(
            "/api/tanqueos",
            &request(&Op::Anticipo {
                bomba: 1,
                cents: 700,
                day: 9,
                reported: None,
            })
            .2,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // The rows stop short of the write; the answer folds the stream and shows it.
    let (status, balance) = app.get("/api/bombas/1/saldo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(balance["saldo"], json!(480007));
    assert_eq!(balance["ultimo_movimiento"], "2024-03-09");
    assert!(!app
        .state
        .runner
        .has_folded(projections::balances::NAME, head + 1));
    let folded = every_answer(&app).await;

    // The fixed release folds it, and the rows answer what the fold did.
    let app = app.restart().await;
    caught_up(&app).await;
    assert_eq!(first_difference(&every_answer(&app).await, &folded), None);
}
