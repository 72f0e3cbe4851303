//! Batch self-inspections (seed 003, issue 12): the reference data, the all-or-nothing batch
//! with its six 422 categories, and the inspection's lifecycle, with every status and body a
//! caller sees.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use fleet_ledger::auth::Role;
use serde_json::{json, Value};

on_both_stores!(
    reference_data_is_registered_listed_and_deactivated_by_an_admin,
    a_company_token_is_shown_once_and_only_its_hash_is_stored,
    reference_bodies_are_strict,
    a_valid_batch_is_queued_and_echoed_with_a_hash_per_entry,
    a_mobile_number_is_normalised_in_the_stored_entry,
    a_repeated_plate_is_refused_only_when_the_company_blocks_it,
    a_plate_with_an_open_inspection_conflicts_until_it_is_closed,
    missing_empty_or_mistyped_data_and_unknown_tokens_or_users_are_dados_faltando,
    an_invalid_mobile_number_is_numero_invalido,
    an_unknown_inactive_or_disabled_questionnaire_is_questionario_invalido,
    an_unknown_or_inactive_operation_type_is_tipo_operacao_invalido,
    an_entry_may_be_in_several_categories,
    a_batch_whose_last_entry_fails_queues_nothing,
    a_batch_is_at_most_1000_entries,
    a_body_that_is_not_an_array_of_entry_objects_is_a_400,
    an_inspection_is_cancelled_while_pending_and_then_moves_no_more,
    an_unknown_or_malformed_hash_is_a_404,
    a_queued_inspection_is_opened_by_the_processor_then_concluded,
);

const BATCH: &str = "/auto-inspecao/criar-em-lote";

/// The reference data most tests start from, and the company's token.
struct Fixture {
    /// Company 1, which blocks repeated plates.
    token: String,
    /// Company 2, which does not.
    lenient_token: String,
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let token = app.token(Role::Admin);
    app.call(method, path, Some(&token), Some(&body.to_string()))
        .await
}

async fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, answer) = admin(app, Method::POST, path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    answer
}

/// Company 1 (blocks repeated plates) and 2 (does not); operation types 1 and 2 (and 3,
/// inactive); questionnaire 1 for type 1, 2 for type 2, 3 inactive; users 1 and 2 (2 inactive).
async fn fixture(app: &TestApp) -> Fixture {
    let strict = created(
        app,
        "/api/empresas",
        json!({ "nome": "Vistorias Maringá", "bloquear_placas_repetidas": true }),
    )
    .await;
    let lenient = created(
        app,
        "/api/empresas",
        json!({ "nome": "Frota Livre", "bloquear_placas_repetidas": false }),
    )
    .await;
    for (nome, ativo) in [("Venda", true), ("Sinistro", true), ("Antiga", false)] {
        created(
            app,
            "/api/tipos-operacao",
            json!({ "nome": nome, "ativo": ativo }),
        )
        .await;
    }
    for (nome, ativo, tipos) in [
        ("Carro de passeio", true, json!([1])),
        ("Caminhão", true, json!([2])),
        ("Descontinuado", false, json!([1, 2])),
    ] {
        created(
            app,
            "/api/questionarios",
            json!({ "nome": nome, "ativo": ativo, "tipos_operacao": tipos }),
        )
        .await;
    }
    created(app, "/api/usuarios", json!({ "nome": "David" })).await;
    created(app, "/api/usuarios", json!({ "nome": "Ex-funcionário" })).await;
    let (status, _) = admin(
        app,
        Method::PATCH,
        "/api/usuarios/2",
        json!({ "ativo": false }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    Fixture {
        token: strict["token"].as_str().unwrap().to_string(),
        lenient_token: lenient["token"].as_str().unwrap().to_string(),
    }
}

/// A valid entry of seed 003's example for `token` and `placa`.
fn entry(token: &str, placa: &str) -> Value {
    json!({
        "token": token,
        "veiculo_placa": placa,
        "id_tipo_operacao": 1,
        "veiculo_tipo": 1,
        "veiculo_nome": "Corsa",
        "cliente_nome": "David",
        "cliente_email": "david@example.com",
        "cliente_numero": "44999999999",
        "criado_por": 1,
        "selecionar_galeria": "sim",
        "enviar_para_usuario": "nao"
    })
}

fn with(mut entry: Value, field: &str, value: Value) -> Value {
    entry[field] = value;
    entry
}

fn without(mut entry: Value, field: &str) -> Value {
    entry.as_object_mut().unwrap().remove(field);
    entry
}

async fn send_batch(app: &TestApp, body: &str) -> (StatusCode, Value) {
    app.call(Method::POST, BATCH, None, Some(body)).await
}

async fn batch(app: &TestApp, entries: Vec<Value>) -> (StatusCode, Value) {
    send_batch(app, &Value::Array(entries).to_string()).await
}

/// The 422 body with every category, empty ones included.
fn refused(categories: &[(&str, &[usize])]) -> Value {
    let mut body = json!({
        "entradas_repetidas": [],
        "entradas_conflitantes": [],
        "entradas_dados_faltando": [],
        "entradas_numero_invalido": [],
        "entradas_questionario_invalido": [],
        "entradas_tipo_operacao_invalido": [],
    });
    for (category, indices) in categories {
        assert!(body.get(*category).is_some(), "no category {category}");
        body[*category] = json!(indices);
    }
    body
}

async fn assert_refused(app: &TestApp, entries: Vec<Value>, categories: &[(&str, &[usize])]) {
    let head = app.state.log.head().await.unwrap();
    let (status, answer) = batch(app, entries).await;
    assert_eq!(
        (status, answer.to_string()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            refused(categories).to_string()
        )
    );
    assert_eq!(requested_since(app, head).await, 0, "nothing queued");
}

/// Inspections queued after `position` (the processor appends meanwhile: the head moves).
async fn requested_since(app: &TestApp, position: i64) -> usize {
    let events = app.state.log.read_all(position, 100_000).await.unwrap();
    events
        .iter()
        .filter(|e| e.event_type == "InspectionRequested")
        .count()
}

async fn queued(app: &TestApp, entries: Vec<Value>) -> Vec<String> {
    let (status, answer) = batch(app, entries).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hash"].as_str().unwrap().to_string())
        .collect()
}

async fn inspection(app: &TestApp, hash: &str) -> (StatusCode, Value) {
    app.call(Method::GET, &format!("/auto-inspecao/{hash}"), None, None)
        .await
}

async fn reference_data_is_registered_listed_and_deactivated_by_an_admin(app: TestApp) {
    fixture(&app).await;
    let token = app.token(Role::Admin);
    let list = |path: &'static str| {
        let token = token.clone();
        let app = &app;
        async move { app.call(Method::GET, path, Some(&token), None).await }
    };
    assert_eq!(
        list("/api/tipos-operacao").await,
        (
            StatusCode::OK,
            json!([
                { "id": 1, "nome": "Venda", "ativo": true },
                { "id": 2, "nome": "Sinistro", "ativo": true },
                { "id": 3, "nome": "Antiga", "ativo": false },
            ])
        )
    );
    assert_eq!(
        list("/api/questionarios").await.1,
        json!([
            { "id": 1, "nome": "Carro de passeio", "ativo": true, "tipos_operacao": [1] },
            { "id": 2, "nome": "Caminhão", "ativo": true, "tipos_operacao": [2] },
            { "id": 3, "nome": "Descontinuado", "ativo": false, "tipos_operacao": [1, 2] },
        ])
    );
    assert_eq!(
        list("/api/usuarios").await.1,
        json!([
            { "id": 1, "nome": "David", "ativo": true },
            { "id": 2, "nome": "Ex-funcionário", "ativo": false },
        ])
    );
    let (status, company) = admin(
        &app,
        Method::PATCH,
        "/api/empresas/2",
        json!({ "ativo": false, "bloquear_placas_repetidas": true }),
    )
    .await;
    assert_eq!(
        (status, company),
        (
            StatusCode::OK,
            json!({ "id": 2, "nome": "Frota Livre", "bloquear_placas_repetidas": true, "ativo": false })
        )
    );
    for (path, id) in [
        ("/api/tipos-operacao", 2),
        ("/api/questionarios", 2),
        ("/api/usuarios", 1),
    ] {
        let (status, answer) = admin(
            &app,
            Method::PATCH,
            &format!("{path}/{id}"),
            json!({ "ativo": false }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        assert_eq!(answer["ativo"], false, "{path}: {answer}");
    }
    let (status, answer) = admin(
        &app,
        Method::PATCH,
        "/api/empresas/9",
        json!({ "ativo": false }),
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró la empresa con ID 9" })
        )
    );
    let (status, answer) = admin(
        &app,
        Method::POST,
        "/api/questionarios",
        json!({ "nome": "Moto", "tipos_operacao": [1, 7] }),
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "El campo tipos_operacao no es válido: no existe el tipo de operación con ID 7" })
        )
    );
}

async fn a_company_token_is_shown_once_and_only_its_hash_is_stored(app: TestApp) {
    let company = created(
        &app,
        "/api/empresas",
        json!({ "nome": "Vistorias", "bloquear_placas_repetidas": true }),
    )
    .await;
    let token = company["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64, "256 random bits in hex: {token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        company,
        json!({ "id": 1, "nome": "Vistorias", "bloquear_placas_repetidas": true, "ativo": true, "token": token })
    );
    let other = created(&app, "/api/empresas", json!({ "nome": "Outra" })).await;
    assert_ne!(other["token"], company["token"]);
    let (status, listed) = app
        .call(
            Method::GET,
            "/api/empresas",
            Some(&app.token(Role::Admin)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([
            { "id": 1, "nome": "Vistorias", "bloquear_placas_repetidas": true, "ativo": true },
            { "id": 2, "nome": "Outra", "bloquear_placas_repetidas": false, "ativo": true },
        ])
    );
    let stored = app.state.log.read_all(0, 1000).await.unwrap();
    let text = serde_json::to_string(&stored).unwrap();
    assert!(!text.contains(&token), "the token itself is never stored");
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(text.contains(&digest), "its sha256 is");
}

async fn reference_bodies_are_strict(app: TestApp) {
    let head = app.state.log.head().await.unwrap();
    for (path, body, message) in [
        (
            "/api/empresas",
            json!({ "nome": "X", "bloquear_placas": true }),
            "Unknown field: bloquear_placas",
        ),
        (
            "/api/empresas",
            json!({ "bloquear_placas_repetidas": true }),
            "Missing required field: nome",
        ),
        (
            "/api/tipos-operacao",
            json!({ "nome": "X", "ativo": "sim" }),
            "El campo ativo debe ser true o false",
        ),
        (
            "/api/questionarios",
            json!({ "nome": "X", "tipos_operacao": "1,2" }),
            "El campo tipos_operacao debe ser una lista de IDs positivos",
        ),
        (
            "/api/usuarios",
            json!({ "nome": "   " }),
            "El campo nome es obligatorio",
        ),
    ] {
        let (status, answer) = admin(&app, Method::POST, path, body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({ "error": message })),
            "{path}"
        );
    }
    assert_eq!(
        app.state.log.head().await.unwrap(),
        head,
        "nothing appended"
    );
}

async fn a_valid_batch_is_queued_and_echoed_with_a_hash_per_entry(app: TestApp) {
    // The processor would open them within milliseconds: stopped, they stay queued.
    app.state.consumers.shutdown().await;
    let fixture = fixture(&app).await;
    let truck = with(
        entry(&fixture.token, "BBB0000"),
        "id_tipo_operacao",
        json!(2),
    );
    let sent = vec![
        entry(&fixture.token, "ABC1234"),
        with(truck, "veiculo_tipo", json!(2)),
    ];
    let (status, answer) = batch(&app, sent.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answered = answer.as_array().unwrap();
    assert_eq!(answered.len(), 2);
    let mut hashes = Vec::new();
    for (echoed, sent) in answered.iter().zip(&sent) {
        let hash = echoed["hash"].as_str().unwrap().to_string();
        assert_eq!(hash.len(), 32, "128 random bits in hex: {hash}");
        assert!(hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        // The entry as sent, byte for byte, with its hash first.
        let mut expected = serde_json::Map::new();
        expected.insert("hash".into(), json!(hash));
        expected.extend(sent.as_object().unwrap().clone());
        assert_eq!(echoed.to_string(), Value::Object(expected).to_string());
        hashes.push(hash);
    }
    assert_ne!(hashes[0], hashes[1]);
    let (status, stored) = inspection(&app, &hashes[1]).await;
    assert_eq!(status, StatusCode::OK);
    let criado_em = stored["criado_em"].clone();
    assert_eq!(
        stored,
        json!({
            "hash": hashes[1], "status": "PENDENTE", "link": null, "empresa_id": 1,
            "id_tipo_operacao": 2, "veiculo_placa": "BBB0000", "veiculo_tipo": 2,
            "veiculo_nome": "Corsa", "cliente_nome": "David", "cliente_email": "david@example.com",
            "cliente_numero": "44999999999", "criado_por": 1, "selecionar_galeria": "sim",
            "enviar_para_usuario": "nao", "criado_em": criado_em, "atualizado_em": criado_em,
        })
    );
    let events = app.state.log.read_all(0, 1000).await.unwrap();
    let requested: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "InspectionRequested")
        .collect();
    assert_eq!(requested.len(), 2, "one event per entry");
    assert_eq!(
        requested[0].position + 1,
        requested[1].position,
        "one append"
    );
}

async fn a_mobile_number_is_normalised_in_the_stored_entry(app: TestApp) {
    let fixture = fixture(&app).await;
    let sent = with(
        entry(&fixture.token, "abc-1d23"),
        "cliente_numero",
        json!("(44) 99999-9999"),
    );
    let (status, answer) = batch(&app, vec![sent]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer[0]["cliente_numero"], "(44) 99999-9999",
        "echoed as sent"
    );
    assert_eq!(answer[0]["veiculo_placa"], "abc-1d23", "echoed as sent");
    let (_, stored) = inspection(&app, answer[0]["hash"].as_str().unwrap()).await;
    assert_eq!(stored["cliente_numero"], "44999999999");
    assert_eq!(stored["veiculo_placa"], "ABC1D23");
}

async fn a_repeated_plate_is_refused_only_when_the_company_blocks_it(app: TestApp) {
    let fixture = fixture(&app).await;
    assert_refused(
        &app,
        vec![
            entry(&fixture.token, "ABC1234"),
            entry(&fixture.token, "XYZ9876"),
            entry(&fixture.token, "abc-1234"),
            entry(&fixture.token, "ABC1234"),
            entry(&fixture.lenient_token, "XYZ9876"),
        ],
        &[("entradas_repetidas", &[2, 3])],
    )
    .await;
    let hashes = queued(
        &app,
        vec![
            entry(&fixture.lenient_token, "ABC1234"),
            entry(&fixture.lenient_token, "ABC1234"),
        ],
    )
    .await;
    assert_eq!(hashes.len(), 2);
}

async fn a_plate_with_an_open_inspection_conflicts_until_it_is_closed(app: TestApp) {
    let fixture = fixture(&app).await;
    let hashes = queued(&app, vec![entry(&fixture.token, "ABC1234")]).await;
    assert_refused(
        &app,
        vec![
            entry(&fixture.token, "XYZ9876"),
            entry(&fixture.token, "ABC1234"),
        ],
        &[("entradas_conflitantes", &[1])],
    )
    .await;
    // Another company's inspection of the same plate does not conflict.
    queued(&app, vec![entry(&fixture.lenient_token, "ABC1234")]).await;
    let (status, cancelled) = app
        .call(
            Method::POST,
            &format!("/auto-inspecao/{}/cancelar", hashes[0]),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    queued(&app, vec![entry(&fixture.token, "ABC1234")]).await;
}

async fn missing_empty_or_mistyped_data_and_unknown_tokens_or_users_are_dados_faltando(
    app: TestApp,
) {
    let fixture = fixture(&app).await;
    let valid = |placa: &str| entry(&fixture.token, placa);
    let mut entries = vec![valid("AAA0001")];
    for field in aggregates::inspection::ENTRY_FIELDS {
        entries.push(without(valid(&format!("AAA1{:03}", entries.len())), field));
    }
    let missing: Vec<usize> = (1..entries.len()).collect();
    let more = [
        with(valid("BBB0001"), "veiculo_nome", json!("  ")),
        with(valid("BBB0002"), "criado_por", json!("1")),
        with(valid("BBB0003"), "selecionar_galeria", json!("talvez")),
        with(valid("BBB0004"), "token", json!("não-é-um-token")),
        with(valid("BBB0005"), "criado_por", json!(2)),
        with(valid("BBB0006"), "criado_por", json!(99)),
        with(valid("BBB0007"), "cliente_email", json!("david")),
        with(valid("BBB0008"), "veiculo_placa", json!("AB12")),
        with(valid("BBB0009"), "cliente_nome", json!(null)),
    ];
    let first_more = entries.len();
    entries.extend(more);
    let mut expected = missing;
    expected.extend(first_more..entries.len());
    // A missing id_tipo_operacao leaves the questionnaire unchecked against it; a missing
    // veiculo_tipo leaves nothing to check: neither adds a category.
    assert_refused(&app, entries, &[("entradas_dados_faltando", &expected)]).await;
    // A deactivated company's token is unknown from then on.
    admin(
        &app,
        Method::PATCH,
        "/api/empresas/1",
        json!({ "ativo": false }),
    )
    .await;
    assert_refused(
        &app,
        vec![valid("CCC0001")],
        &[("entradas_dados_faltando", &[0])],
    )
    .await;
}

async fn an_invalid_mobile_number_is_numero_invalido(app: TestApp) {
    let fixture = fixture(&app).await;
    let numbered = |placa: &str, numero: &str| {
        with(
            entry(&fixture.token, placa),
            "cliente_numero",
            json!(numero),
        )
    };
    assert_refused(
        &app,
        vec![
            numbered("AAA0001", "(44) 99999-9999"),
            numbered("AAA0002", "4499999999"),
            numbered("AAA0003", "(20) 99999-9999"),
            numbered("AAA0004", "44 89999-9999"),
            numbered("AAA0005", "+55 44 99999-9999"),
            numbered("AAA0006", "11 98765 4321"),
        ],
        &[("entradas_numero_invalido", &[1, 2, 3, 4])],
    )
    .await;
}

async fn an_unknown_inactive_or_disabled_questionnaire_is_questionario_invalido(app: TestApp) {
    let fixture = fixture(&app).await;
    let typed = |placa: &str, questionario: i64| {
        with(
            entry(&fixture.token, placa),
            "veiculo_tipo",
            json!(questionario),
        )
    };
    assert_refused(
        &app,
        vec![
            typed("AAA0001", 1),
            typed("AAA0002", 99),
            typed("AAA0003", 3),
            typed("AAA0004", 2),
        ],
        &[("entradas_questionario_invalido", &[1, 2, 3])],
    )
    .await;
}

async fn an_unknown_or_inactive_operation_type_is_tipo_operacao_invalido(app: TestApp) {
    let fixture = fixture(&app).await;
    // Questionnaire 3 is inactive; a fresh one enabled for every type isolates this category.
    created(
        &app,
        "/api/questionarios",
        json!({ "nome": "Todos", "tipos_operacao": [1, 2, 3] }),
    )
    .await;
    let typed = |placa: &str, tipo: i64| {
        let entry = with(entry(&fixture.token, placa), "veiculo_tipo", json!(4));
        with(entry, "id_tipo_operacao", json!(tipo))
    };
    admin(
        &app,
        Method::PATCH,
        "/api/tipos-operacao/2",
        json!({ "ativo": false }),
    )
    .await;
    assert_refused(
        &app,
        vec![
            typed("AAA0001", 1),
            typed("AAA0002", 3),
            typed("AAA0003", 2),
        ],
        &[("entradas_tipo_operacao_invalido", &[1, 2])],
    )
    .await;
    let (status, _) = batch(&app, vec![typed("AAA0004", 1)]).await;
    assert_eq!(status, StatusCode::OK);
    // An unknown type is also one no questionnaire is enabled for.
    assert_refused(
        &app,
        vec![typed("AAA0005", 77)],
        &[
            ("entradas_questionario_invalido", &[0]),
            ("entradas_tipo_operacao_invalido", &[0]),
        ],
    )
    .await;
}

async fn an_entry_may_be_in_several_categories(app: TestApp) {
    let fixture = fixture(&app).await;
    queued(&app, vec![entry(&fixture.token, "ABC1234")]).await;
    let bad = with(
        with(
            with(
                entry(&fixture.token, "ABC1234"),
                "cliente_numero",
                json!("123"),
            ),
            "id_tipo_operacao",
            json!(3),
        ),
        "criado_por",
        json!(99),
    );
    assert_refused(
        &app,
        vec![entry(&fixture.token, "ABC1234"), bad],
        &[
            ("entradas_repetidas", &[1]),
            ("entradas_conflitantes", &[0, 1]),
            ("entradas_dados_faltando", &[1]),
            ("entradas_numero_invalido", &[1]),
            ("entradas_questionario_invalido", &[1]),
            ("entradas_tipo_operacao_invalido", &[1]),
        ],
    )
    .await;
}

async fn a_batch_whose_last_entry_fails_queues_nothing(app: TestApp) {
    let fixture = fixture(&app).await;
    let mut entries: Vec<Value> = (0..20)
        .map(|n| entry(&fixture.token, &format!("AAA{n:04}")))
        .collect();
    entries.push(with(
        entry(&fixture.token, "ZZZ9999"),
        "cliente_numero",
        json!("0"),
    ));
    assert_refused(
        &app,
        entries.clone(),
        &[("entradas_numero_invalido", &[20])],
    )
    .await;
    // Nothing of it was queued: the same plates go through once the last entry is fixed.
    entries.pop();
    assert_eq!(queued(&app, entries).await.len(), 20);
}

async fn a_batch_is_at_most_1000_entries(app: TestApp) {
    let fixture = fixture(&app).await;
    let entries = |count: usize| -> Vec<Value> {
        (0..count)
            .map(|n| entry(&fixture.token, &format!("ABC{n:04}")))
            .collect()
    };
    let head = app.state.log.head().await.unwrap();
    let (status, answer) = batch(&app, entries(1001)).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({ "erro": "Corpo inválido: no máximo 1000 entradas por requisição (recebidas 1001)" })
        )
    );
    assert_eq!(requested_since(&app, head).await, 0);
    let hashes = queued(&app, entries(1000)).await;
    assert_eq!(hashes.len(), 1000);
    let unique: std::collections::HashSet<&String> = hashes.iter().collect();
    assert_eq!(unique.len(), 1000, "every hash is unique");
}

async fn a_body_that_is_not_an_array_of_entry_objects_is_a_400(app: TestApp) {
    let fixture = fixture(&app).await;
    let not_array = "Corpo inválido: envie uma array JSON de auto inspeções";
    let unknown = {
        let mut e = entry(&fixture.token, "ABC1234");
        e["placa"] = json!("ABC1234");
        json!([entry(&fixture.token, "XYZ9876"), e]).to_string()
    };
    for (body, message) in [
        ("", not_array.to_string()),
        ("{\"token\":\"x\"}", not_array.to_string()),
        ("\"texto\"", not_array.to_string()),
        ("[]", "Corpo inválido: a array não tem entradas".to_string()),
        (
            "[1]",
            "Corpo inválido: a entrada 0 não é um objeto".to_string(),
        ),
        (
            &unknown,
            "Corpo inválido: campo desconhecido na entrada 1: placa".to_string(),
        ),
        (
            "[{\"token\": ",
            "JSON inválido: EOF while parsing a value at line 1 column 11".to_string(),
        ),
    ] {
        let (status, answer) = send_batch(&app, body).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({ "erro": message })),
            "{body}"
        );
    }
    let (status, answer) = app.call(Method::GET, BATCH, None, None).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "erro": "Método no permitido" })
        )
    );
}

async fn an_inspection_is_cancelled_while_pending_and_then_moves_no_more(app: TestApp) {
    // The processor would open it within milliseconds: stopped, it stays pending.
    app.state.consumers.shutdown().await;
    let fixture = fixture(&app).await;
    let hashes = queued(&app, vec![entry(&fixture.token, "ABC1234")]).await;
    let hash = &hashes[0];
    let call = |action: &'static str| {
        let path = format!("/auto-inspecao/{hash}/{action}");
        let app = &app;
        async move { app.call(Method::POST, &path, None, None).await }
    };
    assert_eq!(
        call("concluir").await,
        (
            StatusCode::CONFLICT,
            json!({ "erro": "A auto inspeção está PENDENTE; não pode passar a CONCLUIDA" })
        ),
        "only an open inspection concludes"
    );
    let (status, cancelled) = call("cancelar").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "CANCELADA");
    assert_eq!(cancelled["hash"], json!(hash));
    assert_eq!(inspection(&app, hash).await, (StatusCode::OK, cancelled));
    assert_eq!(
        call("cancelar").await,
        (
            StatusCode::CONFLICT,
            json!({ "erro": "A auto inspeção está CANCELADA; não pode passar a CANCELADA" })
        )
    );
}

async fn an_unknown_or_malformed_hash_is_a_404(app: TestApp) {
    let not_found = (
        StatusCode::NOT_FOUND,
        json!({ "erro": "Auto inspeção não encontrada" }),
    );
    for hash in ["0".repeat(32), "abc".to_string(), "A".repeat(32)] {
        assert_eq!(inspection(&app, &hash).await, not_found, "{hash}");
        let path = format!("/auto-inspecao/{hash}/cancelar");
        assert_eq!(
            app.call(Method::POST, &path, None, None).await,
            not_found,
            "{hash}"
        );
    }
}

/// Waits until the processor has opened `hash`, and answers it.
async fn opened(app: &TestApp, hash: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, inspection) = inspection(app, hash).await;
        assert_eq!(status, StatusCode::OK, "{inspection}");
        if inspection["status"] == "ABERTA" {
            return inspection;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never opened: {inspection}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_queued_inspection_is_opened_by_the_processor_then_concluded(app: TestApp) {
    let fixture = fixture(&app).await;
    let hashes = queued(&app, vec![entry(&fixture.token, "ABC1234")]).await;
    let hash = &hashes[0];
    let open = opened(&app, hash).await;
    assert_eq!(open["link"], format!("/auto-inspecao/{hash}"));
    let path = format!("/auto-inspecao/{hash}/concluir");
    let (status, concluded) = app.call(Method::POST, &path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{concluded}");
    assert_eq!(concluded["status"], "CONCLUIDA");
    assert_eq!(concluded["link"], open["link"]);
    assert_eq!(
        app.call(Method::POST, &path, None, None).await,
        (
            StatusCode::CONFLICT,
            json!({ "erro": "A auto inspeção está CONCLUIDA; não pode passar a CONCLUIDA" })
        )
    );
    // A concluded inspection no longer holds its plate.
    queued(&app, vec![entry(&fixture.token, "ABC1234")]).await;
    let created = app
        .state
        .log
        .read_all(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "InspectionCreated")
        .count();
    assert!(created >= 1);
}
