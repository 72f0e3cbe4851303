//! Fuzz targets for the decoders that read what arrives from outside (issue 10): request bodies,
//! body fields, query parameters, spreadsheet cells, plates, amounts, bearer tokens, and events
//! read back from the log. They run on the stable toolchain as proptest harnesses under plain
//! `cargo test`.
//!
//! Each target must never panic, and must answer either a value within its documented bounds or
//! a refusal the HTTP layer sends as a 4xx. CI runs `FLEET_LEDGER_FUZZ_CASES` inputs per target
//! (2,000 by default, a second or so); to search longer:
//! `FLEET_LEDGER_FUZZ_CASES=1000000 cargo test --release --test fuzz_decoders`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use aggregates::amount::{parse_amount, AMOUNT_ABS_MAX, SCALE_MAX};
use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Method, Request};
use fleet_ledger::auth::{JwtKeys, Role};
use fleet_ledger::http::error::ApiError;
use fleet_ledger::http::extract::{nested_deeper_than, JsonBody, JSON_DEPTH_MAX};
use fleet_ledger::http::fields::{
    as_of_param, choice_list_param, date_param, id_list_param, parse_date, positive_param,
    query_id, text_list_param, Fields,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

fn config(cases_default: u32) -> Config {
    let cases = std::env::var("FLEET_LEDGER_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases_default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A refusal the HTTP layer answers with a 4xx (never a 5xx: bad input is never our fault).
fn is_client_refusal(error: &ApiError) -> bool {
    error.status().is_client_error()
}

/// Bytes that look like JSON often enough to get past the first character.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        "[\\[\\]{}\":,0-9a-z\\\\ .eE+-]{0,128}".prop_map(String::into_bytes),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (1usize..64).prop_map(|depth| {
            format!("{}{}", "[{\"a\":".repeat(depth), "1}]".repeat(depth)).into_bytes()
        }),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "0",
            "-0",
            "1e400",
            "-1e400",
            "0.0000001",
            "1.500000000",
            "12.10",
            "1e15",
            "1000000000000001",
            "99999999999999999999999999999999",
            "9223372036854775808",
            "-1",
            "1E-2",
            "0.1e-400",
        ])
        .prop_map(|text| serde_json::from_str(text).unwrap_or(Value::Null)),
        "\\PC{0,16}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            " ",
            "\u{0}",
            "2024-03-15",
            "2024-02-30",
            "15/03/2024",
            "45366",
            "$150.000",
            "12,5",
            "12.500",
            "1.234.567,89",
            "ACPM",
            "abc-123",
            "p 503067",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_]{1,8}", inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

proptest! {
    #![proptest_config(config(2000))]

    /// The body reader: any bytes, any content type. JSON within the depth limit is parsed
    /// exactly as serde_json parses it; anything else is a 4xx.
    #[test]
    fn request_bodies_decode_or_refuse_with_a_4xx(
        bytes in json_ish_bytes(),
        content_type in prop::option::of(prop_oneof![
            Just("application/json".to_string()),
            Just("text/plain".to_string()),
            "[ -~]{0,40}",
        ]),
    ) {
        let mut request = Request::builder().method(Method::POST).uri("/");
        if let Some(content_type) = &content_type {
            request = request.header("content-type", content_type);
        }
        let Ok(request) = request.body(Body::from(bytes.clone())) else {
            return Ok(()); // not a header value hyper would have let through
        };
        let decoded = runtime().block_on(JsonBody::<Value>::from_request(request, &()));
        match decoded {
            Ok(JsonBody(value)) => {
                prop_assert!(!nested_deeper_than(&bytes, JSON_DEPTH_MAX));
                prop_assert_eq!(Some(value), serde_json::from_slice::<Value>(&bytes).ok());
            }
            Err(error) => prop_assert!(is_client_refusal(&error), "{error:?}"),
        }
    }

    /// The depth check agrees with the nesting serde_json actually builds.
    #[test]
    fn the_depth_check_measures_what_the_parser_nests(value in json_value()) {
        fn depth(value: &Value) -> usize {
            match value {
                Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
                Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let text = value.to_string();
        for depth_max in 0..5 {
            prop_assert_eq!(
                nested_deeper_than(text.as_bytes(), depth_max),
                depth(&value) > depth_max
            );
        }
    }

    /// Every typed field reader on any value: a value or a 400, and the strict check names a
    /// field the endpoint does not take.
    #[test]
    fn body_fields_read_or_refuse_with_a_400(value in json_value(), known in "[a-zA-Z_]{1,8}") {
        let names: Vec<String> = value
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        let accepted: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Ok(fields) = Fields::of(&value, &accepted) {
            for name in &accepted {
                for outcome in [
                    fields.text(name, 100).map(|_| ()),
                    fields.int(name).map(|_| ()),
                    fields.count(name).map(|n| assert!(n.is_none_or(|n| n >= 0))),
                    fields.id(name).map(|n| assert!(n.is_none_or(|n| n >= 1))),
                    fields.date(name).map(|_| ()),
                    fields.boolean(name).map(|_| ()),
                ] {
                    if let Err(error) = outcome {
                        prop_assert!(is_client_refusal(&error), "{error:?}");
                    }
                }
                match fields.quantity(name) {
                    Ok(Some(q)) => prop_assert!(within_amount_bounds(q) && !q.is_sign_negative() || q.is_zero()),
                    Ok(None) => {}
                    Err(error) => prop_assert!(is_client_refusal(&error)),
                }
            }
        }
        if value.is_object() {
            let only_known = [known.as_str()];
            match Fields::of(&value, &only_known) {
                Ok(_) => prop_assert!(names.iter().all(|n| *n == known)),
                Err(error) => prop_assert!(error.to_string().starts_with("Unknown field: ")),
            }
        }
    }

    /// Every query-parameter parser on any text.
    #[test]
    fn query_parameters_parse_or_refuse_with_a_400(raw in prop_oneof![
        "\\PC{0,24}",
        "[0-9,. -]{0,24}",
        "[0-9T:+Z-]{0,30}",
    ]) {
        let params: HashMap<String, String> = HashMap::from([("p".to_string(), raw.clone())]);
        // A zone whose clocks changed: dates in its gaps and overlaps must parse or refuse too.
        let zone: fleet_ledger::settings::ServiceTimeZone =
            "America/Sao_Paulo".parse().expect("a known zone");
        let outcomes: Vec<Result<(), ApiError>> = vec![
            id_list_param(&params, "p").map(|list| {
                assert!(list.is_none_or(|l| !l.is_empty() && l.len() <= 100))
            }),
            text_list_param(&params, "p").map(|list| {
                assert!(list.is_none_or(|l| !l.is_empty() && l.len() <= 100))
            }),
            choice_list_param(&params, "p", &["A", "B"], |v| (v == "A" || v == "B").then_some(()))
                .map(|_| ()),
            date_param(&params, "p").map(|_| ()),
            positive_param(&params, "p", 1).map(|n| assert!(n >= 1)),
            as_of_param(&params, &zone).map(|_| ()),
            query_id(params.get("p"), "p").map(|id| assert!(id.is_none_or(|id| id >= 1))),
            fleet_ledger::http::parse_id(&raw, "x").map(|id| assert!(id >= 1)),
        ];
        for outcome in outcomes {
            if let Err(error) = outcome {
                prop_assert!(is_client_refusal(&error), "{error:?}");
            }
        }
        if let Some(date) = parse_date(&raw) {
            prop_assert_eq!(date.to_string(), raw);
        }
    }

    /// Amounts and spreadsheet cells: exact values within the ledger's bounds, or a refusal.
    #[test]
    fn amounts_and_cells_parse_within_bounds(cell in json_value(), text in "\\PC{0,40}") {
        if let Ok(amount) = parse_amount(&text) {
            prop_assert!(within_amount_bounds(amount));
        }
        for parsed in [aggregates::import::money(&cell), aggregates::import::quantity(&cell)]
            .into_iter()
            .flatten()
        {
            prop_assert!(within_amount_bounds(parsed));
        }
        let _ = aggregates::import::fecha(&cell);
        let _ = aggregates::import::name_key(&text);
        if let Ok(placa) = aggregates::placa::Placa::parse(&text) {
            let normalised = placa.as_str();
            prop_assert!(!normalised.is_empty() && normalised.chars().count() <= 20);
            prop_assert!(normalised.chars().all(|c| c.is_alphanumeric() && !c.is_lowercase()));
        }
    }

    /// Bearer tokens: anything that was not signed with the key is refused, without a panic.
    #[test]
    fn tokens_from_anywhere_are_refused(
        token in prop_oneof![
            "\\PC{0,80}",
            "[A-Za-z0-9_-]{0,30}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,40}",
        ],
        cut in any::<usize>(),
    ) {
        let keys = JwtKeys::new("fuzzing-secret");
        prop_assert!(keys.verify(&token).is_err());
        // A genuine token cut or extended anywhere is refused too.
        let genuine = keys.issue("ana", &[Role::Admin], std::time::Duration::from_secs(60));
        let at = cut % genuine.len();
        prop_assert!(keys.verify(&genuine[..at]).is_err());
        let extended = format!("{genuine}{token}");
        prop_assert!(keys.verify(&extended).is_err() || token.is_empty());
    }
}

fn within_amount_bounds(value: Decimal) -> bool {
    value.abs() <= Decimal::from(AMOUNT_ABS_MAX) && value.normalize().scale() <= SCALE_MAX
}

/// Real events of every stream type, as the log stores them: the corpus the event decoder's
/// target mutates.
fn corpus() -> &'static Vec<projections::Recorded> {
    static CORPUS: OnceLock<Vec<projections::Recorded>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        runtime().block_on(async {
            let app = common::TestApp::start(common::Backend::Sqlite)
                .await
                .expect("SQLite is always available");
            app.seed_fleet().await;
            for (path, body) in [
                ("/api/misiones/1/iniciar", r#"{"kilometraje_inicial":10,"combustible_inicial_galones":3}"#),
                ("/api/misiones/1/finalizar", r#"{"kilometraje_final":20,"combustible_final_galones":1.5}"#),
                ("/api/tanqueos", r#"{"fecha":"2024-03-15","conductor_id":1,"placa_id":1,"bomba_id":1,"area_operacion_id":1,"valor_tanqueo":150000,"cantidad_galones":12.5}"#),
                ("/api/tanqueos/2/anular", r#"{"motivo":"doble"}"#),
                ("/vehiculo", r#"{"placa":"XYZ987","idClaseVehiculo":1,"idEstadoVehiculo":1}"#),
            ] {
                let (status, answer) = app.post(path, body).await;
                assert!(status.is_success(), "{path}: {status} {answer}");
            }
            let token = app.operador();
            let (status, _) = app
                .call(Method::PUT, "/api/tanqueos/1", Some(&token), Some(r#"{"valor_anticipo":400000}"#))
                .await;
            assert!(status.is_success(), "the correction is recorded");
            let events = app.state.log.read_all(0, 10_000).await.expect("the log reads");
            app.state.shutdown().await;
            events.into_iter().map(|e| e.into_recorded()).collect()
        })
    })
}

/// Bends one value somewhere inside a payload.
fn bend(value: &mut Value, path: &[usize], replacement: Value) {
    let Some((&first, rest)) = path.split_first() else {
        *value = replacement;
        return;
    };
    let child = match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(first % map.len()).cloned();
            key.and_then(|key| map.get_mut(&key))
        }
        Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            items.get_mut(first % len)
        }
        _ => None,
    };
    match child {
        Some(child) if !rest.is_empty() => bend(child, rest, replacement),
        Some(child) => *child = replacement,
        None => *value = replacement,
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// The event decoder and every read model's fold on stored events bent anywhere: an event
    /// decodes or is refused, a fold answers changes or a `FoldError` (a stalled projection,
    /// never a crashed runner).
    #[test]
    fn events_decode_or_refuse_and_folds_never_panic(
        pick in any::<usize>(),
        path in prop::collection::vec(any::<usize>(), 0..4),
        replacement in json_value(),
        event_type in prop::option::of("[A-Za-z]{0,24}"),
    ) {
        let corpus = corpus();
        let mut event = corpus[pick % corpus.len()].clone();
        bend(&mut event.payload, &path, replacement);
        if let Some(event_type) = event_type {
            event.event_type = event_type;
        }
        let decoders: [fn(&projections::Recorded) -> bool; 7] = [
            |e| decodes::<aggregates::fleet::FleetEvent>(e),
            |e| decodes::<aggregates::fuel::FuelEvent>(e),
            |e| decodes::<aggregates::fuel::FuelRecordIdEvent>(e),
            |e| decodes::<aggregates::OperationAreaEvent>(e),
            |e| decodes::<aggregates::registry::DriverEvent>(e),
            |e| decodes::<aggregates::registry::StationEvent>(e),
            |e| decodes::<aggregates::registry::CatalogEvent>(e),
        ];
        for decode in decoders {
            decode(&event);
        }
        let projections: Vec<Arc<dyn projections::Projection>> =
            fleet_ledger::state::all_projections();
        for projection in projections {
            let _ = projection.apply(&event);
        }
    }
}

/// Decodes `event` as `E`; a decoded event encodes again (what the log would store).
fn decodes<E: serde::Serialize + serde::de::DeserializeOwned>(
    event: &projections::Recorded,
) -> bool {
    match aggregates::codec::decode::<E>(&event.event_type, &event.payload) {
        Ok(decoded) => {
            aggregates::codec::encode(&decoded).expect("a decoded event encodes");
            true
        }
        Err(_) => false,
    }
}
