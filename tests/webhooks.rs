//! The self-inspections' webhooks (issue 12, seed 003) against a real HTTP receiver on
//! 127.0.0.1: registration with a secret shown once, SSRF refusals, signed deliveries retried
//! until the receiver takes them, every attempt recorded, a retry by hand, a delivery given up
//! after its window, and a restart in the middle that loses no delivery.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use common::{entry, inspection_fixture, TestApp};
use fleet_ledger::auth::Role;
use fleet_ledger::settings::{LedgerSettings, WebhookSettings};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

on_both_stores_with!(super::fast();
    a_webhook_shows_its_secret_once_and_keeps_it_sealed,
    bad_registrations_are_400s_that_append_nothing,
    deliveries_are_signed_retried_until_taken_and_every_attempt_is_recorded,
    concluir_and_cancelar_fire_their_events,
    a_delivery_is_sent_again_by_hand,
    a_delivery_is_given_up_after_its_window,
    a_receiver_slower_than_the_timeout_is_a_failed_attempt,
    a_restart_mid_way_loses_no_delivery_and_a_retry_keeps_its_id,
    a_private_address_allowed_at_registration_is_refused_at_delivery,
    two_instances_on_one_store_make_each_delivery_once,
);

mod ssrf {
    // The default settings: private addresses refused.
    on_both_stores!(private_loopback_and_link_local_urls_are_refused_without_the_flag);
    use super::*;
}

/// Webhooks to 127.0.0.1 allowed (the receiver is local), retries tenths of a second apart.
fn fast() -> LedgerSettings {
    LedgerSettings {
        webhooks: WebhookSettings {
            allow_private: true,
            timeout: Duration::from_secs(2),
            retry_base: Duration::from_millis(100),
            retry_delay_max: Duration::from_millis(400),
            poll: Duration::from_millis(20),
            ..WebhookSettings::default()
        },
        ..LedgerSettings::default()
    }
}

const EVENTOS: [&str; 3] = [
    "auto_inspecao.criada",
    "auto_inspecao.concluida",
    "auto_inspecao.cancelada",
];

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    signature: String,
    body: String,
    /// Whether the signature verified with the secret the receiver knew by then.
    signed: bool,
}

#[derive(Default)]
struct ReceiverState {
    secret: Option<String>,
    seen: Vec<Received>,
    attempts: HashMap<String, usize>,
}

/// An axum server on a random port of 127.0.0.1 that checks each delivery's signature, answers
/// 500 to the first `failures` attempts at each delivery and 200 after, waiting `delay` first.
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

/// What a receiver does: the signature checked as README shows (HMAC-SHA256 of "t.body").
fn signed_by(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let now = chrono::Utc::now().timestamp();
    let fresh = t.parse::<i64>().is_ok_and(|t| (now - t).abs() <= 300);
    fresh && hex::decode(v1).is_ok_and(|v1| mac.verify_slice(&v1).is_ok())
}

impl Receiver {
    async fn start(failures: usize, delay: Duration) -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let shared = state.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let (delivery, signature) =
                    (header("x-fleet-delivery"), header("x-fleet-signature"));
                let answer = {
                    let mut state = shared.lock().unwrap();
                    let signed = state
                        .secret
                        .as_deref()
                        .is_some_and(|secret| signed_by(secret, &signature, &body));
                    state.seen.push(Received {
                        delivery: delivery.clone(),
                        signature,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        signed,
                    });
                    let attempt = state.attempts.entry(delivery).or_insert(0);
                    *attempt += 1;
                    if !signed {
                        StatusCode::UNAUTHORIZED
                    } else if *attempt <= failures {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                };
                tokio::time::sleep(delay).await;
                answer
            }
        };
        let router = axum::Router::new().route("/hooks", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    fn know(&self, secret: &str) {
        self.state.lock().unwrap().secret = Some(secret.to_string());
    }

    fn seen(&self) -> Vec<Received> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Waits until it has seen `count` requests.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.seen();
            if seen.len() >= count {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver saw {} of {count} requests: {seen:#?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let token = app.token(Role::Admin);
    let body = body.map(|b| b.to_string());
    app.call(method, path, Some(&token), body.as_deref()).await
}

/// Registers a webhook of company 1 for `eventos` at `url`; its id and secret.
async fn register(app: &TestApp, url: &str, eventos: &[&str]) -> (i64, String) {
    let (status, answer) = admin(
        app,
        Method::POST,
        "/api/webhooks",
        Some(json!({ "empresa_id": 1, "url": url, "eventos": eventos })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let secret = answer["secret"].as_str().unwrap().to_string();
    (answer["id"].as_i64().unwrap(), secret)
}

/// Queues one inspection per plate; their hashes.
async fn queue(app: &TestApp, token: &str, plates: &[String]) -> Vec<String> {
    let entries: Vec<Value> = plates.iter().map(|p| entry(token, p)).collect();
    let (status, answer) = app
        .call(
            Method::POST,
            "/auto-inspecao/criar-em-lote",
            None,
            Some(&Value::Array(entries).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hash"].as_str().unwrap().to_string())
        .collect()
}

fn plates(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("ABC{n:04}")).collect()
}

/// The deliveries of webhook `id` once every one is no longer pending.
async fn settled(app: &TestApp, id: i64, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, listed) = admin(
            app,
            Method::GET,
            &format!("/api/webhooks/{id}/entregas"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let listed = listed.as_array().unwrap().clone();
        if listed.len() == count && listed.iter().all(|d| d["estado"] != "PENDENTE") {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {listed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_webhook_shows_its_secret_once_and_keeps_it_sealed(app: TestApp) {
    inspection_fixture(&app).await;
    let (status, created) = admin(
        &app,
        Method::POST,
        "/api/webhooks",
        Some(json!({
            "empresa_id": 1,
            "url": "HTTPS://203.0.113.7:8443/fleet?x=1",
            "eventos": ["auto_inspecao.cancelada", "auto_inspecao.criada", "auto_inspecao.criada"],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        created,
        json!({
            "id": 1,
            "empresa_id": 1,
            "url": "https://203.0.113.7:8443/fleet?x=1",
            "eventos": ["auto_inspecao.criada", "auto_inspecao.cancelada"],
            "secret": secret,
        })
    );
    let (status, listed) = admin(&app, Method::GET, "/api/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([{
            "id": 1,
            "empresa_id": 1,
            "url": "https://203.0.113.7:8443/fleet?x=1",
            "eventos": ["auto_inspecao.criada", "auto_inspecao.cancelada"],
        }])
    );
    // Nowhere in the log, the read models or the keys' table in clear.
    let events = app.state.log.read_all(0, 10_000).await.unwrap();
    assert!(events
        .iter()
        .all(|e| !e.payload.to_string().contains(&secret)));
    let sealed: String = sqlx::query_scalar("SELECT secret_sealed FROM rm_webhooks WHERE id = 1")
        .fetch_one(app.state.read_models.pool())
        .await
        .unwrap();
    assert!(sealed.starts_with("v1.") && !sealed.contains(&secret));
    assert_eq!(
        app.state.settings.webhooks.key.open(&sealed).unwrap(),
        secret
    );

    // A retry with the same Idempotency-Key registers nothing more and shows the same secret;
    // the answer is not kept (it holds the secret), the retry is answered from the log.
    let token = app.token(Role::Admin);
    let body = json!({ "empresa_id": 1, "url": "https://203.0.113.7/h", "eventos": ["auto_inspecao.criada"] })
        .to_string();
    let keyed = || {
        axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/webhooks")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", "webhook-1")
            .body(axum::body::Body::from(body.clone()))
            .unwrap()
    };
    let (first_status, _, first) = app.send(keyed()).await;
    let (second_status, _, second) = app.send(keyed()).await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first, second);
    assert_eq!(first["id"], 2);
    let (_, listed) = admin(&app, Method::GET, "/api/webhooks", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let log = sqlx::AnyPool::connect(&app.location.log_url).await.unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE body IS NOT NULL")
            .fetch_one(&log)
            .await
            .unwrap();
    assert_eq!(kept, 0, "an answer showing a secret is not kept");
    log.close().await;
}

async fn bad_registrations_are_400s_that_append_nothing(app: TestApp) {
    inspection_fixture(&app).await;
    let head = app.state.log.head().await.unwrap();
    let refused = |detail: &str| json!({ "error": detail });
    for (body, answer) in [
        (
            json!({ "empresa_id": 9, "url": "https://203.0.113.7/h", "eventos": ["auto_inspecao.criada"] }),
            refused("El campo empresa_id no es válido: no existe la empresa con ID 9"),
        ),
        (
            json!({ "empresa_id": 1, "url": "ftp://203.0.113.7/h", "eventos": ["auto_inspecao.criada"] }),
            refused("El campo url no es válido: debe ser una URL absoluta http:// o https://"),
        ),
        (
            json!({ "empresa_id": 1, "url": "https://u:p@203.0.113.7/h", "eventos": ["auto_inspecao.criada"] }),
            refused("El campo url no es válido: no puede llevar usuario ni contraseña"),
        ),
        (
            json!({ "empresa_id": 1, "url": "https://no-such-host.invalid/h", "eventos": ["auto_inspecao.criada"] }),
            refused("El campo url no es válido: no se pudo resolver el host no-such-host.invalid"),
        ),
        (
            json!({ "empresa_id": 1, "url": "https://203.0.113.7/h", "eventos": ["auto_inspecao.aberta"] }),
            refused(
                "El campo eventos no es válido: evento desconocido auto_inspecao.aberta; use \
                 auto_inspecao.criada, auto_inspecao.concluida, auto_inspecao.cancelada, \
                 tanqueo.anomalia",
            ),
        ),
        (
            json!({ "empresa_id": 1, "url": "https://203.0.113.7/h", "eventos": [] }),
            refused(
                "El campo eventos debe ser una lista de: auto_inspecao.criada, \
                 auto_inspecao.concluida, auto_inspecao.cancelada, tanqueo.anomalia",
            ),
        ),
        (
            json!({ "empresa_id": 1, "url": "https://203.0.113.7/h" }),
            refused("Missing required field: eventos"),
        ),
        (
            json!({ "empresa_id": 1, "eventos": ["auto_inspecao.criada"] }),
            refused("Missing required field: url"),
        ),
        (
            json!({ "empresa_id": 1, "url": "https://203.0.113.7/h", "eventos": ["auto_inspecao.criada"], "secret": "mine" }),
            refused("Unknown field: secret"),
        ),
    ] {
        let (status, got) = admin(&app, Method::POST, "/api/webhooks", Some(body.clone())).await;
        assert_eq!((status, &got), (StatusCode::BAD_REQUEST, &answer), "{body}");
    }
    let (status, got) = app
        .call(
            Method::POST,
            "/api/webhooks",
            Some(&app.operador()),
            Some(&json!({ "empresa_id": 1, "url": "https://203.0.113.7/h", "eventos": ["auto_inspecao.criada"] }).to_string()),
        )
        .await;
    assert_eq!(
        (status, got),
        (StatusCode::FORBIDDEN, refused("Permiso denegado"))
    );
    assert_eq!(
        app.state.log.head().await.unwrap(),
        head,
        "nothing appended"
    );
}

async fn private_loopback_and_link_local_urls_are_refused_without_the_flag(app: TestApp) {
    inspection_fixture(&app).await;
    let head = app.state.log.head().await.unwrap();
    for (url, address) in [
        ("http://127.0.0.1:8080/hooks", "127.0.0.1"),
        ("http://localhost/hooks", ""),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://10.0.0.5/h", "10.0.0.5"),
        ("https://192.168.1.10/h", "192.168.1.10"),
        ("http://[::1]/h", "::1"),
        ("http://0x7f.1/h", "127.0.0.1"),
        ("http://[::ffff:10.1.1.1]/h", "::ffff:10.1.1.1"),
    ] {
        let (status, got) = admin(
            &app,
            Method::POST,
            "/api/webhooks",
            Some(json!({ "empresa_id": 1, "url": url, "eventos": ["auto_inspecao.criada"] })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {got}");
        let message = got["error"].as_str().unwrap();
        assert!(
            message.starts_with("El campo url no es válido: ")
                && message.contains(address)
                && message.ends_with(
                    "es una dirección de loopback, privada o de enlace local (solo se permite \
                     con --webhook-allow-private)"
                ),
            "{url}: {message}"
        );
    }
    assert_eq!(
        app.state.log.head().await.unwrap(),
        head,
        "nothing appended"
    );
}

async fn deliveries_are_signed_retried_until_taken_and_every_attempt_is_recorded(app: TestApp) {
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(2, Duration::ZERO).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    let hashes = queue(&app, &token, &plates(3)).await;
    let listed = settled(&app, id, 3).await;
    let seen = receiver.wait_for(9).await;
    assert_eq!(seen.len(), 9, "three attempts per delivery, no more");
    assert!(
        seen.iter().all(|r| r.signed),
        "every request signed: {seen:#?}"
    );

    for delivery in &listed {
        let delivery_id = delivery["id"].as_str().unwrap();
        let attempts: Vec<&Received> = seen.iter().filter(|r| r.delivery == delivery_id).collect();
        assert_eq!(attempts.len(), 3, "{delivery_id}");
        assert!(
            attempts.iter().all(|r| r.body == attempts[0].body),
            "the same body every time"
        );
        assert!(attempts.iter().all(|r| r.signature.starts_with("t=")));
        let body: Value = serde_json::from_str(&attempts[0].body).unwrap();
        let hash = body["dados"]["hash"].as_str().unwrap();
        assert!(hashes.iter().any(|h| h == hash));
        // The inspection as GET shows it once opened.
        let (_, inspection) = app
            .call(Method::GET, &format!("/auto-inspecao/{hash}"), None, None)
            .await;
        assert_eq!(
            body,
            json!({
                "id": delivery_id,
                "evento": "auto_inspecao.criada",
                "criado_em": inspection["atualizado_em"],
                "dados": inspection,
            })
        );
        assert!(attempts[0]
            .body
            .starts_with(&format!(r#"{{"id":"{delivery_id}","evento":"#)));
        assert_eq!(delivery["estado"], "ENTREGUE");
        assert_eq!(delivery["evento"], "auto_inspecao.criada");
        assert_eq!(delivery["ultimo_status"], 200);
        assert_eq!(delivery["ultimo_erro"], Value::Null);
        assert_eq!(delivery["proxima_tentativa_em"], Value::Null);
        assert!(delivery["entregue_em"].is_string());
        let tentativas = delivery["tentativas"].as_array().unwrap();
        let answered: Vec<(i64, i64)> = tentativas
            .iter()
            .map(|t| {
                (
                    t["tentativa"].as_i64().unwrap(),
                    t["status"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(answered, vec![(1, 500), (2, 500), (3, 200)]);
        assert_eq!(tentativas[0]["erro"], "el receptor respondió 500");
        assert_eq!(tentativas[2]["erro"], Value::Null);
    }
    // Unknown webhooks and bad limits in the family's format.
    let (status, got) = admin(&app, Method::GET, "/api/webhooks/9/entregas", None).await;
    assert_eq!(
        (status, got),
        (
            StatusCode::NOT_FOUND,
            json!({ "error": "No se encontró el webhook con ID 9" })
        )
    );
    let (status, got) = admin(
        &app,
        Method::GET,
        &format!("/api/webhooks/{id}/entregas?limite=0"),
        None,
    )
    .await;
    assert_eq!(
        (status, got),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "limite debe ser un entero entre 1 y 1000" })
        )
    );
    let (status, got) = admin(
        &app,
        Method::GET,
        &format!("/api/webhooks/{id}/entregas?limite=1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got.as_array().unwrap().len(), 1);
}

async fn concluir_and_cancelar_fire_their_events(app: TestApp) {
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let (id, secret) = register(&app, &receiver.url, &EVENTOS).await;
    receiver.know(&secret);
    let hashes = queue(&app, &token, &plates(3)).await;
    receiver.wait_for(3).await;
    for (hash, action) in [(&hashes[0], "concluir"), (&hashes[1], "cancelar")] {
        let (status, answer) = app
            .call(
                Method::POST,
                &format!("/auto-inspecao/{hash}/{action}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let seen = receiver.wait_for(5).await;
    settled(&app, id, 5).await;
    let mut told: Vec<(String, String, String)> = seen
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            (
                body["evento"].as_str().unwrap().to_string(),
                body["dados"]["hash"].as_str().unwrap().to_string(),
                body["dados"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    told.sort();
    let mut expected = vec![
        (
            "auto_inspecao.cancelada".to_string(),
            hashes[1].clone(),
            "CANCELADA".to_string(),
        ),
        (
            "auto_inspecao.concluida".to_string(),
            hashes[0].clone(),
            "CONCLUIDA".to_string(),
        ),
    ];
    expected.extend(hashes.iter().map(|h| {
        (
            "auto_inspecao.criada".to_string(),
            h.clone(),
            "ABERTA".to_string(),
        )
    }));
    expected.sort();
    assert_eq!(told, expected);
    // The concluded one's body is the inspection as GET shows it now.
    let concluded = seen
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .find(|b| b["evento"] == "auto_inspecao.concluida")
        .unwrap();
    let (_, now) = app
        .call(
            Method::GET,
            &format!("/auto-inspecao/{}", hashes[0]),
            None,
            None,
        )
        .await;
    assert_eq!(concluded["dados"], now);
}

async fn a_delivery_is_sent_again_by_hand(app: TestApp) {
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    queue(&app, &token, &plates(1)).await;
    let listed = settled(&app, id, 1).await;
    let delivery_id = listed[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/webhooks/{id}/entregas/{delivery_id}/reenviar");
    let (status, again) = admin(&app, Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], delivery_id);
    assert_eq!(again["estado"], "PENDENTE");
    let seen = receiver.wait_for(2).await;
    assert_eq!(seen[0].delivery, seen[1].delivery);
    assert_eq!(seen[0].body, seen[1].body);
    let listed = settled(&app, id, 1).await;
    assert_eq!(listed[0]["estado"], "ENTREGUE");
    assert_eq!(listed[0]["tentativas"].as_array().unwrap().len(), 2);

    for (path, message) in [
        (
            format!("/api/webhooks/9/entregas/{delivery_id}/reenviar"),
            "No se encontró el webhook con ID 9".to_string(),
        ),
        (
            format!("/api/webhooks/{id}/entregas/00000000-0000-0000-0000-000000000000/reenviar"),
            format!(
                "No se encontró la entrega 00000000-0000-0000-0000-000000000000 del webhook {id}"
            ),
        ),
        (
            format!("/api/webhooks/{id}/entregas/not-a-delivery/reenviar"),
            format!("No se encontró la entrega not-a-delivery del webhook {id}"),
        ),
    ] {
        let (status, got) = admin(&app, Method::POST, &path, None).await;
        assert_eq!(
            (status, got),
            (StatusCode::NOT_FOUND, json!({ "error": message })),
            "{path}"
        );
    }
    let (status, got) = app
        .call(
            Method::POST,
            &path_for(id, &delivery_id),
            Some(&app.operador()),
            None,
        )
        .await;
    assert_eq!(
        (status, got),
        (
            StatusCode::FORBIDDEN,
            json!({ "error": "Permiso denegado" })
        )
    );
}

fn path_for(id: i64, delivery_id: &str) -> String {
    format!("/api/webhooks/{id}/entregas/{delivery_id}/reenviar")
}

async fn a_delivery_is_given_up_after_its_window(app: TestApp) {
    let mut settings = app.state.settings.clone();
    settings.webhooks.retry_window = Duration::from_millis(600);
    let app = app
        .restart_with_settings(fleet_ledger::state::all_projections(), settings)
        .await;
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(usize::MAX, Duration::ZERO).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    queue(&app, &token, &plates(1)).await;
    let listed = settled(&app, id, 1).await;
    let delivery = &listed[0];
    assert_eq!(delivery["estado"], "FALHOU");
    assert_eq!(delivery["ultimo_status"], 500);
    assert_eq!(delivery["ultimo_erro"], "el receptor respondió 500");
    assert_eq!(delivery["entregue_em"], Value::Null);
    let tentativas = delivery["tentativas"].as_array().unwrap();
    assert!(
        tentativas.len() >= 2,
        "retried before giving up: {delivery:#}"
    );
    let first =
        chrono::DateTime::parse_from_rfc3339(tentativas[0]["em"].as_str().unwrap()).unwrap();
    let last =
        chrono::DateTime::parse_from_rfc3339(tentativas.last().unwrap()["em"].as_str().unwrap())
            .unwrap();
    assert!(
        last - first >= chrono::TimeDelta::milliseconds(300),
        "spread over the window"
    );
    // Given up: no further attempt.
    let count = receiver.seen().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), count);
}

async fn a_receiver_slower_than_the_timeout_is_a_failed_attempt(app: TestApp) {
    let mut settings = app.state.settings.clone();
    settings.webhooks.timeout = Duration::from_millis(300);
    settings.webhooks.retry_window = Duration::from_millis(1);
    let app = app
        .restart_with_settings(fleet_ledger::state::all_projections(), settings)
        .await;
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(0, Duration::from_secs(2)).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    queue(&app, &token, &plates(1)).await;
    let listed = settled(&app, id, 1).await;
    assert_eq!(listed[0]["estado"], "FALHOU");
    let attempt = &listed[0]["tentativas"][0];
    assert_eq!(attempt["status"], Value::Null);
    assert_eq!(attempt["erro"], "sin respuesta en 0.3 s");
    assert!(attempt["duracao_ms"].as_i64().unwrap() < 2000);
}

async fn a_restart_mid_way_loses_no_delivery_and_a_retry_keeps_its_id(app: TestApp) {
    // Short enough that a claim left by the dead worker expires within the test (3 × timeout).
    let mut settings = app.state.settings.clone();
    settings.webhooks.timeout = Duration::from_millis(500);
    let app = app
        .restart_with_settings(fleet_ledger::state::all_projections(), settings)
        .await;
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(1, Duration::from_millis(50)).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    let mut hashes = queue(&app, &token, &plates(20)).await;
    receiver.wait_for(5).await;
    // Killed while deliveries are in flight and more are queued.
    app.state.deliveries.abandon();
    app.state.consumers.abandon();
    hashes.extend(
        queue(
            &app,
            &token,
            &(20..30).map(|n| format!("ABC{n:04}")).collect::<Vec<_>>(),
        )
        .await,
    );
    let app = app.restart().await;
    let listed = settled(&app, id, 30).await;
    assert!(
        listed.iter().all(|d| d["estado"] == "ENTREGUE"),
        "{listed:#?}"
    );
    let seen = receiver.seen();
    assert!(seen.iter().all(|r| r.signed));
    let mut by_delivery: HashMap<&str, Vec<&Received>> = HashMap::new();
    for received in &seen {
        by_delivery
            .entry(received.delivery.as_str())
            .or_default()
            .push(received);
    }
    assert_eq!(by_delivery.len(), 30, "every delivery reached the receiver");
    let mut told: Vec<String> = Vec::new();
    for (delivery_id, received) in &by_delivery {
        assert!(
            received.len() >= 2,
            "{delivery_id}: failed once, then retried with the same id"
        );
        assert!(received.iter().all(|r| r.body == received[0].body));
        let body: Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(body["id"], *delivery_id);
        told.push(body["dados"]["hash"].as_str().unwrap().to_string());
    }
    told.sort();
    hashes.sort();
    assert_eq!(
        told, hashes,
        "one delivery per inspection, none lost, none scheduled twice"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
        .fetch_one(app.state.read_models.pool())
        .await
        .unwrap();
    assert_eq!(rows, 30);
}

async fn a_private_address_allowed_at_registration_is_refused_at_delivery(app: TestApp) {
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    // The operator turns the flag off: the address is checked again at every attempt.
    let mut settings = app.state.settings.clone();
    settings.webhooks.allow_private = false;
    settings.webhooks.retry_window = Duration::from_millis(1);
    let app = app
        .restart_with_settings(fleet_ledger::state::all_projections(), settings)
        .await;
    queue(&app, &token, &plates(1)).await;
    let listed = settled(&app, id, 1).await;
    assert_eq!(listed[0]["estado"], "FALHOU");
    assert_eq!(
        listed[0]["tentativas"][0]["erro"],
        "127.0.0.1 es una dirección de loopback, privada o de enlace local (solo se permite con \
         --webhook-allow-private)"
    );
    assert!(receiver.seen().is_empty(), "nothing was sent");
}

async fn two_instances_on_one_store_make_each_delivery_once(app: TestApp) {
    // A second instance on the same store, its own worker racing the first for every delivery.
    let second = fleet_ledger::AppState::open_with(
        &app.location,
        app.keys.clone(),
        app.state.settings.clone(),
    )
    .await
    .expect("a second instance opens on the same store");
    let token = inspection_fixture(&app).await;
    let receiver = Receiver::start(0, Duration::from_millis(20)).await;
    let (id, secret) = register(&app, &receiver.url, &["auto_inspecao.criada"]).await;
    receiver.know(&secret);
    let hashes = queue(&app, &token, &plates(60)).await;
    let listed = settled(&app, id, 60).await;
    assert!(listed.iter().all(|d| d["estado"] == "ENTREGUE"));
    let seen = receiver.seen();
    let mut by_delivery: HashMap<&str, usize> = HashMap::new();
    for received in &seen {
        *by_delivery.entry(received.delivery.as_str()).or_default() += 1;
    }
    assert_eq!(by_delivery.len(), hashes.len());
    assert!(
        by_delivery.values().all(|n| *n == 1),
        "a delivery was claimed by both workers: {by_delivery:?}"
    );
    assert!(listed
        .iter()
        .all(|d| d["tentativas"].as_array().unwrap().len() == 1));
    second.shutdown().await;
}
