//! Vehicle check results (seed 001, issue 11): recording results per resource and the batch
//! lookup of up to 500 vehicles, with every status and body the issue pins.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::vehicle_check::{
    CheckTime, CheckedVehicle, VehicleCheck, VehicleCheckEvent, VehicleChecks, VehiclePlate, Vin,
};
use axum::http::{Method, StatusCode};
use common::TestApp;
use cqrs_es::Aggregate;
use fleet_ledger::auth::Role;
use projections::{MemoryModel, Recorded};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

on_both_stores!(
    one_result_is_recorded_and_answered_with_its_id,
    an_unknown_field_of_a_result_is_a_400_naming_it,
    an_array_of_results_is_answered_as_an_array,
    the_lookup_answers_the_latest_result_of_each_resource,
    the_lookup_answers_on_get_and_post_with_and_without_the_slash,
    vehicles_nobody_processed_are_left_out_and_repeats_answered_once,
    a_result_without_status_or_finish_is_kept_as_processed_with_errors,
    results_are_kept_exactly_as_the_resource_sent_them,
    lookup_refuses_a_missing_misspelled_or_empty_vehicle_list,
    lookup_refuses_more_than_500_vehicles,
    lookup_refuses_an_invalid_vin_or_plate_naming_its_index,
    recording_refuses_invalid_results,
    no_or_bad_token_is_unauthorize,
    recording_needs_operador_or_admin_and_lookup_any_role,
    every_result_stays_in_the_ledger,
    a_500_vehicle_lookup_is_answered,
    random_histories_answer_the_latest_and_rebuild_to_the_same,
    answers_are_byte_for_byte_the_seed_order_and_the_text_sent,
);

const LOOKUP: &str = "/api/batch/scraping/";
const RECORD: &str = "/api/scraping/resultados";

fn unauthorize() -> Value {
    json!({
        "errorType": "unauthorize",
        "errorDetail": "Unauthorize",
        "message": "The requester is not allowed to use this request."
    })
}

fn bad_request(message: &str) -> Value {
    json!({ "errorType": "badRequest", "errorDetail": "BadRequest", "message": message })
}

fn bad_parameters(message: &str) -> Value {
    json!({ "errorType": "badRequest", "errorDetail": "BadParameters", "message": message })
}

fn result(vin: &str, plate: &str, resource_id: i64, status: &str) -> Value {
    json!({
        "vin": vin,
        "plate": plate,
        "resourceId": resource_id,
        "status": status,
        "result": [{ "folio": format!("{resource_id}-{status}") }],
        "creationDateTime": "2024-03-01T10:00:00.000Z",
        "finishedDateTime": "2024-03-01T10:05:00.000Z",
    })
}

/// The stored entry seed 001 answers for `result(...)`.
fn entry(vin: &str, plate: &str, resource_id: i64, status: &str) -> Value {
    json!({
        "_id": format!("{resource_id}-{vin}-{plate}"),
        "plate": plate,
        "vin": vin,
        "resourceId": resource_id,
        "status": status,
        "result": [{ "folio": format!("{resource_id}-{status}") }],
        "creationDateTime": "2024-03-01T10:00:00.000Z",
        "finishedDateTime": "2024-03-01T10:05:00.000Z",
    })
}

async fn record(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    app.post(RECORD, &body.to_string()).await
}

async fn recorded(app: &TestApp, body: Value) -> Value {
    let (status, answer) = record(app, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

async fn lookup_raw(app: &TestApp, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let token = app.token(Role::Auditor);
    app.call(method, path, Some(&token), Some(body)).await
}

async fn lookup(app: &TestApp, vehicles: &[(&str, &str)]) -> Value {
    let vehicles: Vec<Value> = vehicles
        .iter()
        .map(|(vin, plate)| json!({ "vin": vin, "plate": plate }))
        .collect();
    let body = json!({ "vehicles": vehicles }).to_string();
    let (status, answer) = lookup_raw(app, Method::GET, LOOKUP, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn one_result_is_recorded_and_answered_with_its_id(app: TestApp) {
    let answer = recorded(
        &app,
        result("3VWFE21C04M000001", "JAL1234", 12, "Completed"),
    )
    .await;
    assert_eq!(
        answer,
        entry("3VWFE21C04M000001", "JAL1234", 12, "Completed")
    );
    assert_eq!(answer["_id"], "12-3VWFE21C04M000001-JAL1234");
}

async fn an_array_of_results_is_answered_as_an_array(app: TestApp) {
    let answer = recorded(
        &app,
        json!([
            result("VIN1", "PLACA1", 1, "Completed"),
            result("VIN2", "PLACA2", 1, "Completed"),
            result("VIN1", "PLACA1", 2, "Pending"),
        ]),
    )
    .await;
    assert_eq!(
        answer,
        json!([
            entry("VIN1", "PLACA1", 1, "Completed"),
            entry("VIN2", "PLACA2", 1, "Completed"),
            entry("VIN1", "PLACA1", 2, "Pending"),
        ])
    );
}

async fn the_lookup_answers_the_latest_result_of_each_resource(app: TestApp) {
    recorded(&app, result("VIN1", "PLACA1", 12, "Pending")).await;
    recorded(&app, result("VIN1", "PLACA1", 7, "Completed")).await;
    recorded(&app, result("VIN1", "PLACA1", 12, "Completed")).await;
    // The same VIN with another plate is another vehicle.
    recorded(&app, result("VIN1", "PLACA9", 12, "Failed")).await;
    let answer = lookup(&app, &[("VIN1", "PLACA1")]).await;
    assert_eq!(
        answer,
        json!({ "vehicleData": [{
            "vin": "VIN1",
            "plate": "PLACA1",
            "info": [
                entry("VIN1", "PLACA1", 7, "Completed"),
                entry("VIN1", "PLACA1", 12, "Completed"),
            ],
        }]})
    );
}

async fn the_lookup_answers_on_get_and_post_with_and_without_the_slash(app: TestApp) {
    recorded(&app, result("VIN1", "PLACA1", 3, "Completed")).await;
    let body = r#"{"vehicles":[{"vin":"VIN1","plate":"PLACA1"}]}"#;
    let expected = json!({ "vehicleData": [{
        "vin": "VIN1", "plate": "PLACA1", "info": [entry("VIN1", "PLACA1", 3, "Completed")],
    }]});
    for method in [Method::GET, Method::POST] {
        for path in ["/api/batch/scraping/", "/api/batch/scraping"] {
            let (status, answer) = lookup_raw(&app, method.clone(), path, body).await;
            assert_eq!(
                (status, &answer),
                (StatusCode::OK, &expected),
                "{method} {path}"
            );
        }
    }
}

async fn vehicles_nobody_processed_are_left_out_and_repeats_answered_once(app: TestApp) {
    recorded(
        &app,
        json!([
            result("VIN1", "PLACA1", 1, "Completed"),
            result("VIN2", "PLACA2", 1, "Completed"),
        ]),
    )
    .await;
    let answer = lookup(
        &app,
        &[
            ("VIN2", "PLACA2"),
            ("NEVER", "SEEN"),
            ("VIN1", "PLACA1"),
            ("VIN2", "PLACA2"),
            ("VIN1", "PLACA2"),
        ],
    )
    .await;
    assert_eq!(
        answer,
        json!({ "vehicleData": [
            { "vin": "VIN2", "plate": "PLACA2", "info": [entry("VIN2", "PLACA2", 1, "Completed")] },
            { "vin": "VIN1", "plate": "PLACA1", "info": [entry("VIN1", "PLACA1", 1, "Completed")] },
        ]})
    );
    let nothing = lookup(&app, &[("NEVER", "SEEN")]).await;
    assert_eq!(nothing, json!({ "vehicleData": [] }));
}

async fn a_result_without_status_or_finish_is_kept_as_processed_with_errors(app: TestApp) {
    let sent = json!({
        "vin": "VIN1", "plate": "PLACA1", "resourceId": 4, "result": [],
        "creationDateTime": "2024-03-01T10:00:00Z",
    });
    let expected = json!({
        "_id": "4-VIN1-PLACA1", "plate": "PLACA1", "vin": "VIN1", "resourceId": 4,
        "status": null, "result": [], "creationDateTime": "2024-03-01T10:00:00Z",
        "finishedDateTime": null,
    });
    assert_eq!(recorded(&app, sent).await, expected);
    let answer = lookup(&app, &[("VIN1", "PLACA1")]).await;
    assert_eq!(answer["vehicleData"][0]["info"], json!([expected]));
}

async fn results_are_kept_exactly_as_the_resource_sent_them(app: TestApp) {
    // Raw text: `json!` would turn 12.10 into an f64 and reorder nothing we could see.
    let raw = r#"{"vin":"VIN1","plate":"PLACA1","resourceId":5,"status":{"code":3,"text":"Done"},"result":[{"z":1,"multa":12.10,"a":{"y":null,"b":[1e+2,"x"]}},{"huge":123456789012345678901234567890}],"creationDateTime":"2024-03-01 10:00:00","finishedDateTime":"2024-03-01"}"#;
    let (status, answer) = app.post(RECORD, raw).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let found = lookup(&app, &[("VIN1", "PLACA1")]).await;
    let info = &found["vehicleData"][0]["info"][0];
    for shown in [&answer, info] {
        assert_eq!(
            shown["result"].to_string(),
            r#"[{"z":1,"multa":12.10,"a":{"y":null,"b":[1e+2,"x"]}},{"huge":123456789012345678901234567890}]"#
        );
        assert_eq!(shown["status"].to_string(), r#"{"code":3,"text":"Done"}"#);
        assert_eq!(shown["creationDateTime"], "2024-03-01 10:00:00");
        assert_eq!(shown["finishedDateTime"], "2024-03-01");
    }
}

async fn lookup_refuses_a_missing_misspelled_or_empty_vehicle_list(app: TestApp) {
    for body in [
        "",
        "{}",
        r#"{"vehicle":[{"vin":"VIN1","plate":"PLACA1"}]}"#,
        r#"{"Vehicles":[{"vin":"VIN1","plate":"PLACA1"}]}"#,
        r#"{"vehicles":[]}"#,
        r#"{"vehicles":null}"#,
        r#"{"vehicles":"VIN1"}"#,
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, answer) = lookup_raw(&app, method, LOOKUP, body).await;
            assert_eq!(
                (status, answer),
                (
                    StatusCode::BAD_REQUEST,
                    bad_request("You must specify at least one vehicle.")
                ),
                "{body}"
            );
        }
    }
    let (status, answer) = lookup_raw(&app, Method::GET, LOOKUP, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorDetail"], "BadRequest");
}

async fn lookup_refuses_more_than_500_vehicles(app: TestApp) {
    let vehicles: Vec<Value> = (0..501)
        .map(|n| json!({ "vin": format!("VIN{n}"), "plate": format!("P{n}") }))
        .collect();
    let body = json!({ "vehicles": vehicles }).to_string();
    let (status, answer) = lookup_raw(&app, Method::GET, LOOKUP, &body).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            bad_request(
                "The maximum number of vehicles that can be requested in one request is 500."
            )
        )
    );
}

async fn lookup_refuses_an_invalid_vin_or_plate_naming_its_index(app: TestApp) {
    let valid = json!({ "vin": "VIN1", "plate": "PLACA1" });
    for invalid in [
        json!({ "vin": "vin1", "plate": "PLACA1" }),
        json!({ "vin": "VIN1", "plate": "placa1" }),
        json!({ "vin": "VIN-1", "plate": "PLACA1" }),
        json!({ "vin": "VIN1", "plate": "PLACA 1" }),
        json!({ "vin": "VIN1", "plate": "PLACA#1" }),
        json!({ "vin": "A".repeat(18), "plate": "PLACA1" }),
        json!({ "vin": "VIN1", "plate": "P".repeat(16) }),
        json!({ "vin": "", "plate": "PLACA1" }),
        json!({ "plate": "PLACA1" }),
        json!({ "vin": "VIN1", "plate": 123 }),
        json!("VIN1"),
    ] {
        let body = json!({ "vehicles": [valid.clone(), valid.clone(), invalid.clone()] });
        let (status, answer) = lookup_raw(&app, Method::GET, LOOKUP, &body.to_string()).await;
        assert_eq!(
            (status, answer),
            (
                StatusCode::BAD_REQUEST,
                bad_parameters("VIN and/or plate is not valid. Vehicle at index 2 (vehicles[2]).")
            ),
            "{invalid}"
        );
    }
    // The longest of each is fine.
    lookup(&app, &[(&"A".repeat(17), &"1".repeat(15))]).await;
}

async fn recording_refuses_invalid_results(app: TestApp) {
    let valid = result("VIN1", "PLACA1", 1, "Completed");
    let with = |field: &str, value: Value| {
        let mut entry = valid.clone();
        entry[field] = value;
        entry
    };
    let without = |field: &str| {
        let mut entry = valid.clone();
        entry.as_object_mut().unwrap().remove(field);
        entry
    };
    let cases = [
        (
            with("plate", json!("jal1234")),
            bad_parameters("VIN and/or plate is not valid. Result at index 1."),
        ),
        (
            without("vin"),
            bad_parameters("VIN and/or plate is not valid. Result at index 1."),
        ),
        (
            without("resourceId"),
            bad_request("resourceId must be a positive integer. Result at index 1."),
        ),
        (
            with("resourceId", json!("12")),
            bad_request("resourceId must be a positive integer. Result at index 1."),
        ),
        (
            with("resourceId", json!(0)),
            bad_request("resourceId must be a positive integer. Result at index 1."),
        ),
        (
            without("result"),
            bad_request("result must be an array. Result at index 1."),
        ),
        (
            with("result", json!({ "folio": 1 })),
            bad_request("result must be an array. Result at index 1."),
        ),
        (
            without("creationDateTime"),
            bad_request("creationDateTime must be a date and time. Result at index 1."),
        ),
        (
            with("finishedDateTime", json!("ayer")),
            bad_request("finishedDateTime must be a date and time. Result at index 1."),
        ),
        (
            json!(5),
            bad_request("Each result must be an object. Result at index 1."),
        ),
    ];
    for (invalid, expected) in cases {
        let (status, answer) = record(&app, &json!([valid.clone(), invalid.clone()])).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, expected),
            "{invalid}"
        );
    }
    for (body, message) in [
        ("[]", "You must specify at least one result."),
        ("", "You must specify at least one result."),
        ("7", "The body must be a result or an array of results."),
    ] {
        let (status, answer) = app.post(RECORD, body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, bad_request(message))
        );
    }
    let too_many: Vec<Value> = (0..501).map(|_| valid.clone()).collect();
    let (status, answer) = record(&app, &json!(too_many)).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            bad_request(
                "The maximum number of results that can be recorded in one request is 500."
            )
        )
    );
    // Nothing of a refused request was recorded.
    assert_eq!(
        lookup(&app, &[("VIN1", "PLACA1")]).await,
        json!({ "vehicleData": [] })
    );
}

async fn no_or_bad_token_is_unauthorize(app: TestApp) {
    let body = r#"{"vehicles":[{"vin":"VIN1","plate":"PLACA1"}]}"#;
    for (method, path) in [
        (Method::GET, "/api/batch/scraping/"),
        (Method::GET, "/api/batch/scraping"),
        (Method::POST, "/api/batch/scraping/"),
        (Method::POST, "/api/batch/scraping"),
        (Method::POST, RECORD),
    ] {
        for token in [None, Some("not-a-token")] {
            let (status, answer) = app.call(method.clone(), path, token, Some(body)).await;
            assert_eq!(
                (status, answer),
                (StatusCode::UNAUTHORIZED, unauthorize()),
                "{method} {path}"
            );
        }
    }
}

async fn recording_needs_operador_or_admin_and_lookup_any_role(app: TestApp) {
    let auditor = app.token(Role::Auditor);
    let sent = result("VIN1", "PLACA1", 1, "Completed").to_string();
    let (status, answer) = app
        .call(Method::POST, RECORD, Some(&auditor), Some(&sent))
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::FORBIDDEN,
            json!({
                "errorType": "forbidden",
                "errorDetail": "Forbidden",
                "message": "The requester is not allowed to use this request."
            })
        )
    );
    let admin = app.token(Role::Admin);
    let (status, _) = app
        .call(Method::POST, RECORD, Some(&admin), Some(&sent))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let body = r#"{"vehicles":[{"vin":"VIN1","plate":"PLACA1"}]}"#;
    for role in [Role::Auditor, Role::Operador, Role::Admin] {
        for method in [Method::GET, Method::POST] {
            let (status, answer) = app
                .call(method, LOOKUP, Some(&app.token(role)), Some(body))
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["vehicleData"][0]["info"][0]["_id"], "1-VIN1-PLACA1");
        }
    }
}

async fn every_result_stays_in_the_ledger(app: TestApp) {
    recorded(&app, result("VIN1", "PLACA1", 12, "Pending")).await;
    recorded(&app, result("VIN1", "PLACA1", 12, "Completed")).await;
    let (status, feed) = app.get("/api/eventos?desde_posicion=1&limite=1000").await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<&Value> = feed
        .as_object()
        .and_then(|feed| feed.values().find_map(Value::as_array))
        .expect("the feed lists events")
        .iter()
        .filter(|event| event.to_string().contains("VehicleCheckRecorded"))
        .collect();
    assert_eq!(events.len(), 2, "{feed}");
    let text = feed.to_string();
    assert!(
        text.contains("vehicle-checks") && text.contains("VIN1-PLACA1"),
        "{text}"
    );
}

async fn a_500_vehicle_lookup_is_answered(app: TestApp) {
    let results: Vec<Value> = (0..500)
        .map(|n| result(&format!("VIN{n}"), &format!("P{n}"), 1 + n % 3, "Completed"))
        .collect();
    recorded(&app, Value::Array(results)).await;
    let asked: Vec<(String, String)> = (0..500)
        .rev()
        .map(|n| (format!("VIN{n}"), format!("P{n}")))
        .collect();
    let asked: Vec<(&str, &str)> = asked
        .iter()
        .map(|(v, p)| (v.as_str(), p.as_str()))
        .collect();
    let answer = lookup(&app, &asked).await;
    let data = answer["vehicleData"].as_array().unwrap();
    assert_eq!(data.len(), 500);
    assert_eq!(data[0]["vin"], "VIN499");
    assert_eq!(
        data[499]["info"],
        json!([entry("VIN0", "P0", 1, "Completed")])
    );
}

/// Random histories over a few vehicles and resources, recorded in random batches: every lookup
/// answers the latest result of each resource, and so do read models rebuilt from the log.
async fn random_histories_answer_the_latest_and_rebuild_to_the_same(app: TestApp) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let vehicles = [
        ("VIN1", "P1"),
        ("VIN1", "P2"),
        ("VIN2", "P1"),
        ("VIN3", "P3"),
    ];
    let mut latest: BTreeMap<(usize, i64), Value> = BTreeMap::new();
    for round in 0..12 {
        let batch: Vec<Value> = (0..rng.gen_range(1..6))
            .map(|n| {
                let vehicle = rng.gen_range(0..vehicles.len());
                let resource_id = rng.gen_range(1..4);
                let status = format!("S{round}-{n}");
                let (vin, plate) = vehicles[vehicle];
                latest.insert(
                    (vehicle, resource_id),
                    entry(vin, plate, resource_id, &status),
                );
                result(vin, plate, resource_id, &status)
            })
            .collect();
        recorded(&app, Value::Array(batch)).await;
    }
    let mut asked = vehicles.to_vec();
    asked.shuffle(&mut rng);
    let expected: Vec<Value> = asked
        .iter()
        .filter_map(|wanted| {
            let index = vehicles.iter().position(|v| v == wanted)?;
            let info: Vec<Value> = latest
                .iter()
                .filter(|((vehicle, _), _)| *vehicle == index)
                .map(|(_, entry)| entry.clone())
                .collect();
            (!info.is_empty()).then(|| json!({ "vin": wanted.0, "plate": wanted.1, "info": info }))
        })
        .collect();
    let expected = json!({ "vehicleData": expected });
    assert_eq!(lookup(&app, &asked).await, expected);

    let pool = app.state.read_models.pool();
    for table in ["rm_vehicle_checks", "projection_checkpoints"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(pool)
            .await
            .unwrap();
    }
    let app = Arc::new(app.restart().await);
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, Duration::from_secs(10))
            .await
    );
    assert_eq!(lookup(&app, &asked).await, expected);
}

fn arbitrary_check() -> impl Strategy<Value = VehicleCheck> {
    (
        0..3usize,
        0..3usize,
        1..4i64,
        prop::option::of(0..5u8),
        0..1000u32,
    )
        .prop_map(|(vin, plate, resource_id, status, folio)| VehicleCheck {
            resource_id,
            vehicle: CheckedVehicle {
                vin: Vin::parse(&format!("VIN{vin}")).unwrap(),
                plate: VehiclePlate::parse(&format!("P{plate}")).unwrap(),
            },
            status: status.map(|s| json!(format!("S{s}"))),
            result: json!([{ "folio": folio }]),
            creation_date_time: CheckTime::parse("2024-03-01T10:00:00Z").unwrap(),
            finished_date_time: None,
        })
}

proptest! {
    /// The read model's fold keeps, for each (vehicle, resource), exactly the last result, as
    /// the entry a lookup answers.
    #[test]
    fn the_fold_keeps_the_last_result_of_each_resource(history in prop::collection::vec(arbitrary_check(), 0..60)) {
        let events: Vec<Recorded> = history
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let (event_type, payload) = aggregates::codec::encode(
                    &VehicleCheckEvent::VehicleCheckRecorded { check: check.clone() },
                )
                .unwrap();
                Recorded {
                    position: index as i64 + 1,
                    stream_type: VehicleChecks::TYPE.to_string(),
                    stream_id: check.vehicle.key(),
                    version: 1,
                    event_type,
                    schema_version: 1,
                    payload,
                    actor: None,
                    recorded_at: chrono::Utc::now(),
                }
            })
            .collect();
        let model = MemoryModel::replay(
            &projections::vehicle_checks::VehicleChecksProjection,
            &events,
        )
        .unwrap();
        let mut expected: BTreeMap<(String, i64), String> = BTreeMap::new();
        for check in &history {
            expected.insert(
                (check.vehicle.key(), check.resource_id),
                projections::vehicle_checks::StoredEntry::of(check).to_json(),
            );
        }
        let rows = model.tables.get(projections::vehicle_checks::TABLE).cloned().unwrap_or_default();
        let folded: BTreeMap<(String, i64), String> = rows
            .values()
            .map(|row| {
                let text = |column: &str| match row.get(column) {
                    Some(projections::Cell::Text(Some(t))) => t.clone(),
                    other => panic!("{column}: {other:?}"),
                };
                let resource = match row.get("resource_id") {
                    Some(projections::Cell::Int(Some(id))) => *id,
                    other => panic!("resource_id: {other:?}"),
                };
                ((text("vehicle"), resource), text("entry"))
            })
            .collect();
        prop_assert_eq!(folded, expected);
    }
}

/// The whole body as bytes: `assert_eq!` on parsed values would pass with the fields in any
/// order, and clients of seed 001 read these answers as text.
async fn raw_call(app: &TestApp, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", app.operador()))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let (status, _, bytes) = common::respond(&app.router, request).await;
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Both answers in the seed's field order, compact, with `status` and `result` exactly the text
/// the resource sent (its numbers' digits, its key order, its escapes resolved once).
async fn answers_are_byte_for_byte_the_seed_order_and_the_text_sent(app: TestApp) {
    let sent = r#"[{"vin":"VIN1","plate":"PLACA1","resourceId":12,"status":"Completed","result":[{"z":1,"multa":12.10,"a":{"y":null,"b":[1e2,-0,"x"]}},{"huge":123456789012345678901234567890,"texto":"Señal \"A\"\u0001/\u00e9"}],"creationDateTime":"2024-03-01T10:00:00.000Z","finishedDateTime":"2024-03-01T10:05:00.000Z"},
        {"finishedDateTime":null,"creationDateTime":"2024-03-01","result":[],"resourceId":3,"plate":"PLACA1","vin":"VIN1"},
        {"vin":"VIN2","plate":"PLACA2","resourceId":7,"status":{"code":3,"ok":true},"result":[{}],"creationDateTime":"2024-03-01 10:00:00"}]"#;
    let entry_12 = r#"{"_id":"12-VIN1-PLACA1","plate":"PLACA1","vin":"VIN1","resourceId":12,"status":"Completed","result":[{"z":1,"multa":12.10,"a":{"y":null,"b":[1e+2,-0,"x"]}},{"huge":123456789012345678901234567890,"texto":"Señal \"A\"\u0001/é"}],"creationDateTime":"2024-03-01T10:00:00.000Z","finishedDateTime":"2024-03-01T10:05:00.000Z"}"#;
    let entry_3 = r#"{"_id":"3-VIN1-PLACA1","plate":"PLACA1","vin":"VIN1","resourceId":3,"status":null,"result":[],"creationDateTime":"2024-03-01","finishedDateTime":null}"#;
    let entry_7 = r#"{"_id":"7-VIN2-PLACA2","plate":"PLACA2","vin":"VIN2","resourceId":7,"status":{"code":3,"ok":true},"result":[{}],"creationDateTime":"2024-03-01 10:00:00","finishedDateTime":null}"#;

    let (status, answer) = raw_call(&app, Method::POST, RECORD, sent).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer, format!("[{entry_12},{entry_3},{entry_7}]"));
    // One result, not in an array, is answered as one entry; the same again supersedes it.
    let one = r#"{"vin":"VIN1","plate":"PLACA1","resourceId":12,"status":"Completed","result":[{"z":1,"multa":12.10,"a":{"y":null,"b":[1e2,-0,"x"]}},{"huge":123456789012345678901234567890,"texto":"Señal \"A\"\u0001/\u00e9"}],"creationDateTime":"2024-03-01T10:00:00.000Z","finishedDateTime":"2024-03-01T10:05:00.000Z"}"#;
    let (status, answer) = raw_call(&app, Method::POST, RECORD, one).await;
    assert_eq!((status, answer.as_str()), (StatusCode::CREATED, entry_12));

    let asked = r#"{"vehicles":[{"vin":"VIN2","plate":"PLACA2"},{"vin":"NEVER","plate":"SEEN"},{"vin":"VIN1","plate":"PLACA1"}]}"#;
    let expected = format!(
        r#"{{"vehicleData":[{{"vin":"VIN2","plate":"PLACA2","info":[{entry_7}]}},{{"vin":"VIN1","plate":"PLACA1","info":[{entry_3},{entry_12}]}}]}}"#
    );
    for method in [Method::GET, Method::POST] {
        let (status, answer) = raw_call(&app, method, LOOKUP, asked).await;
        assert_eq!(
            (status, answer.as_str()),
            (StatusCode::OK, expected.as_str())
        );
    }
    let (status, answer) = raw_call(
        &app,
        Method::GET,
        LOOKUP,
        r#"{"vehicles":[{"vin":"NEVER","plate":"SEEN"}]}"#,
    )
    .await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::OK, r#"{"vehicleData":[]}"#)
    );
}

/// Strict bodies: a misspelled field of a recorded result is refused, naming it, and nothing is
/// appended.
async fn an_unknown_field_of_a_result_is_a_400_naming_it(app: TestApp) {
    let head = app.state.log.head().await.unwrap();
    let (status, answer) = app
        .post(
            "/api/scraping/resultados",
            r#"{"vin":"VIN1","plate":"PLACA1","resourceId":5,"result":[],"creationDateTime":"2024-03-01T10:00:00Z","resourceID":6}"#,
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"errorType":"badRequest","errorDetail":"BadRequest","message":"Unknown field: resourceID. Result at index 0."})
        )
    );
    assert_eq!(app.state.log.head().await.unwrap(), head);
}

/// One vehicle of a lookup body as a client might write it: mostly valid, sometimes escaped,
/// lowercase, too long, of the wrong type, incomplete, with extra or repeated fields.
fn asked_vehicle() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        4 => (0..6u8).prop_map(|n| format!("\"VIN{n}\"")),
        1 => Just("\"V\\u0049N1\"".to_string()),
        1 => Just("\"vin1\"".to_string()),
        1 => Just(format!("\"{}\"", "A".repeat(18))),
        1 => Just("12".to_string()),
        1 => Just("null".to_string()),
    ];
    let plate = prop_oneof![
        4 => (0..3u8).prop_map(|n| format!("\"P{n}\"")),
        1 => Just("\"P-1\"".to_string()),
        1 => Just("[\"P1\"]".to_string()),
    ];
    prop_oneof![
        12 => (id.clone(), plate.clone()).prop_map(|(vin, plate)| format!(r#"{{"vin":{vin},"plate":{plate}}}"#)),
        1 => (id.clone(), plate.clone()).prop_map(|(vin, plate)| format!(r#"{{"plate":{plate},"extra":{{"a":[1]}},"vin":{vin}}}"#)),
        1 => id.clone().prop_map(|vin| format!(r#"{{"vin":{vin}}}"#)),
        1 => (id, plate).prop_map(|(vin, plate)| format!(r#"{{"vin":{vin},"plate":{plate},"vin":"VIN9"}}"#)),
        1 => Just("\"VIN1-P1\"".to_string()),
    ]
}

/// A lookup body: the usual shape most of the time, and every way of getting it wrong.
fn lookup_body() -> impl Strategy<Value = String> {
    let list = prop_oneof![
        8 => prop::collection::vec(asked_vehicle(), 0..8),
        1 => prop::collection::vec(asked_vehicle(), 499..503),
    ]
    .prop_map(|vehicles| format!("[{}]", vehicles.join(",")));
    prop_oneof![
        10 => list.clone().prop_map(|list| format!(r#"{{"vehicles":{list}}}"#)),
        1 => list.clone().prop_map(|list| format!(r#" {{"other":1,"vehicles":{list}}} "#)),
        1 => list.clone().prop_map(|list| format!(r#"{{"Vehicles":{list}}}"#)),
        1 => list.clone().prop_map(|list| format!(r#"{{"vehicles":{list},"vehicles":[]}}"#)),
        1 => list.clone().prop_map(|list| format!(r#"{{"vehicles":{list}"#)),
        1 => list,
        1 => Just(String::new()),
        1 => Just(r#"{"vehicles":null}"#.to_string()),
    ]
}

proptest! {
    /// The lookup's fast reading of the usual body and its general reading agree on every
    /// body: the same vehicles in the same order, or the same refusal.
    #[test]
    fn every_lookup_body_reads_the_same_both_ways(body in lookup_body()) {
        use fleet_ledger::http::scraping::{parse_lookup, parse_lookup_body, ScrapingBytes};
        let bytes = ScrapingBytes(body.clone().into());
        let fast = parse_lookup_body(&bytes).map_err(|e| format!("{e:?}"));
        let general = bytes
            .json()
            .and_then(|value| parse_lookup(value.as_ref()))
            .map_err(|e| format!("{e:?}"));
        prop_assert_eq!(fast, general, "{}", body);
    }
}
