//! `inspecciones` (issue 12, seed 003): batches of self-inspections validated and committed all
//! or nothing, then the companies' webhooks delivered to a receiver on 127.0.0.1.
//!
//! Two phases on one in-process service. First, `batches` batches of `entries` valid entries
//! each (1,000, the most one request takes), sent one after another and timed one by one: what a
//! batch costs to validate against the company's reference data and open inspections, and to
//! commit as one append (the issue's target: ≤ 200 ms). The processor opens them meanwhile; the
//! phase ends when it has. Second, a webhook is registered and `deliveries` more inspections
//! are queued: the phase measures how fast their `auto_inspecao.criada` deliveries reach a local
//! receiver (signed, checked by the receiver), from the first batch sent to the last delivery
//! taken. Every inspection answered must have been committed, and every one of the second phase
//! delivered, signed and marked delivered, or the run fails.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregates::inspection::BATCH_ENTRIES_MAX;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hyper::Method;
use serde_json::{json, Value};

use super::client::Api;
use super::load::Outcome;
use super::progress::Ticker;
use super::service::{fresh_keys, FreshStore, InProcessService};
use super::verify::Verification;
use super::{BenchConfig, BenchError, Scenario};
use crate::inspection_processor::PROCESSOR;
use crate::memory::PeakRss;
use crate::settings::{LedgerSettings, WebhookSettings};
use crate::webhooks::signature;

const BATCH_PATH: &str = "/auto-inspecao/criar-em-lote";
/// Longest the processor may take to open what was queued, and the worker to deliver it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// A signature older than this is refused by the receiver, as a real one would.
const SIGNATURE_TOLERANCE_S: i64 = 300;

/// The scenario's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectionSize {
    /// Entries of each batch (at most 1,000).
    pub entries: usize,
    /// Batches timed in the first phase.
    pub batches: usize,
    /// Inspections queued (and deliveries made) in the second phase.
    pub deliveries: usize,
}

impl Default for InspectionSize {
    fn default() -> Self {
        Self {
            entries: BATCH_ENTRIES_MAX,
            batches: 20,
            deliveries: 5_000,
        }
    }
}

/// The `n`-th plate of the run: `AAA0000`, `AAA0001`, … (old Brazilian format, all distinct).
fn plate(n: usize) -> String {
    let letters = n / 10_000;
    let letter = |place: usize| char::from(b'A' + ((letters / place) % 26) as u8);
    format!(
        "{}{}{}{:04}",
        letter(676),
        letter(26),
        letter(1),
        n % 10_000
    )
}

/// A batch of `count` valid entries for company `token` from plate `first`, written as text.
fn batch_body(token: &str, first: usize, count: usize) -> Bytes {
    let entries: Vec<String> = (first..first + count)
        .map(|n| {
            format!(
                r#"{{"token":"{token}","veiculo_placa":"{}","id_tipo_operacao":1,"veiculo_tipo":1,"veiculo_nome":"Corsa","cliente_nome":"Cliente {n}","cliente_email":"cliente{n}@example.com","cliente_numero":"(44) 99999-{:04}","criado_por":1,"selecionar_galeria":"sim","enviar_para_usuario":"nao"}}"#,
                plate(n),
                n % 10_000
            )
        })
        .collect();
    Bytes::from(format!("[{}]", entries.join(",")))
}

/// The reference data every entry names: company 1 (its token), operation type 1,
/// questionnaire 1 for it, user 1.
async fn reference_data(api: &Api) -> Result<String, BenchError> {
    let company = api
        .expect(
            Method::POST,
            "/api/empresas",
            Some(
                json!({ "nome": "Vistorias Bench", "bloquear_placas_repetidas": true }).to_string(),
            ),
            StatusCode::CREATED,
        )
        .await?;
    for (path, body) in [
        ("/api/tipos-operacao", json!({ "nome": "Venda" })),
        (
            "/api/questionarios",
            json!({ "nome": "Carro", "tipos_operacao": [1] }),
        ),
        ("/api/usuarios", json!({ "nome": "Bench" })),
    ] {
        api.expect(
            Method::POST,
            path,
            Some(body.to_string()),
            StatusCode::CREATED,
        )
        .await?;
    }
    company["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BenchError::Http {
            request: "POST /api/empresas".to_string(),
            reason: "no token in the answer".to_string(),
        })
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    secret: String,
    /// Requests per delivery id.
    by_delivery: HashMap<String, usize>,
    /// Inspections told of (`dados.hash`).
    hashes: HashSet<String>,
    badly_signed: usize,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

/// A webhook receiver on 127.0.0.1 that checks each signature and answers 200.
struct Receiver {
    url: String,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Result<Self, BenchError> {
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
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
                let hash = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|b| b["dados"]["hash"].as_str().map(str::to_string));
                let now = chrono::Utc::now().timestamp();
                let mut seen = shared.lock().expect("never poisoned");
                let signed = signature::verify(
                    &seen.secret,
                    &header(signature::HEADER),
                    &body,
                    now,
                    SIGNATURE_TOLERANCE_S,
                );
                if !signed {
                    seen.badly_signed += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                *seen
                    .by_delivery
                    .entry(header(signature::DELIVERY_HEADER))
                    .or_default() += 1;
                seen.hashes.extend(hash);
                let at = Instant::now();
                seen.first_at.get_or_insert(at);
                seen.last_at = Some(at);
                StatusCode::OK
            }
        };
        let router = axum::Router::new().route("/hooks", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BenchError::io("binding the webhook receiver", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| BenchError::io("reading the receiver's address", e))?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            url: format!("http://{address}/hooks"),
            received,
            server,
        })
    }

    fn delivered(&self) -> usize {
        self.received
            .lock()
            .expect("never poisoned")
            .by_delivery
            .len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Sends the batches of `plates` (in batches of `entries`) one after another: every answer
/// timed into `outcome`, the hashes of accepted ones into `hashes`.
async fn send_batches(
    api: &Api,
    token: &str,
    plates: std::ops::Range<usize>,
    entries: usize,
    outcome: &mut Outcome,
    hashes: &mut HashSet<String>,
    verification: &mut Verification,
) {
    let mut first = plates.start;
    while first < plates.end {
        let count = entries.min(plates.end - first);
        let body = batch_body(token, first, count);
        first += count;
        let sent = Instant::now();
        let answer = api.send(Method::POST, BATCH_PATH, Some(body)).await;
        outcome.latencies.push(sent.elapsed());
        match answer {
            Ok(answer) if answer.status == StatusCode::OK => {
                let answered: Vec<String> = answer
                    .json()
                    .and_then(|body| {
                        body.as_array().map(|entries| {
                            entries
                                .iter()
                                .filter_map(|e| e["hash"].as_str().map(str::to_string))
                                .collect()
                        })
                    })
                    .unwrap_or_default();
                if answered.len() != count {
                    verification.add(format!(
                        "a batch of {count} was answered with {} hashes",
                        answered.len()
                    ));
                }
                for hash in answered {
                    if !hashes.insert(hash.clone()) {
                        verification.add(format!("hash {hash} answered twice"));
                    }
                }
            }
            Ok(answer) => outcome.refused(&answer),
            Err(error) => outcome.transport_error(error.to_string()),
        }
    }
}

/// `inspecciones`, on a fresh in-process service.
pub(crate) async fn inspections(config: &BenchConfig) -> Result<super::ScenarioReport, BenchError> {
    let store = FreshStore::for_scenario(config, "inspecciones").await?;
    let measured = measure(config, &store).await;
    store.discard_after(measured).await
}

async fn measure(
    config: &BenchConfig,
    store: &FreshStore,
) -> Result<super::ScenarioReport, BenchError> {
    let size = config.inspections;
    let (keys, token) = fresh_keys();
    // The receiver listens on 127.0.0.1: the flag a development setup would pass.
    let settings = LedgerSettings {
        webhooks: WebhookSettings {
            allow_private: true,
            ..WebhookSettings::default()
        },
        ..LedgerSettings::default()
    };
    let concurrency = settings.webhooks.concurrency;
    let state = crate::AppState::open_with(&store.location, keys, settings).await?;
    let service = InProcessService::serve(state).await?;
    let api = service.api(&token, 1);
    let measured = phases(config, size, &service, &api).await;
    drop(api);
    service.stop().await;
    let (mut report, notes) = measured?;
    report.notes.extend(notes);
    report.notes.push(format!(
        "deliveries {concurrency} at a time, to a receiver in this process that checks every \
         signature; the service, the receiver and this client share the machine's cores"
    ));
    Ok(super::scenarios::finished(report))
}

/// Both phases; the report and its notes.
async fn phases(
    config: &BenchConfig,
    size: InspectionSize,
    service: &InProcessService,
    api: &Api,
) -> Result<(super::ScenarioReport, Vec<String>), BenchError> {
    let state = &service.state;
    let company = reference_data(api).await?;
    let mut verification = Verification::default();
    let mut notes = Vec::new();

    // Phase 1: batches, one after another.
    let mut outcome = Outcome::default();
    let mut hashes = HashSet::new();
    let ticker = {
        let state = state.clone();
        Ticker::start("inspecciones", config.progress, move |elapsed| {
            let statuses = state.consumers.statuses(*state.log.watch_head().borrow());
            let lag = statuses.first().map_or(0, |s| s.lag);
            format!(
                "{:6.1} s  processor {lag} positions behind the log",
                elapsed.as_secs_f64()
            )
        })
    };
    let peak = PeakRss::start();
    let started = Instant::now();
    let batch_plates = 0..size.batches * size.entries;
    send_batches(
        api,
        &company,
        batch_plates.clone(),
        size.entries,
        &mut outcome,
        &mut hashes,
        &mut verification,
    )
    .await;
    let batches_elapsed = started.elapsed();
    // The processor opens them meanwhile; the webhook registered next must come after.
    let head = state.log.head().await?;
    let opened = state
        .consumers
        .wait_for(PROCESSOR, head, DRAIN_TIMEOUT)
        .await;
    let processed_elapsed = started.elapsed();
    if !opened {
        verification.add(format!(
            "the processor did not open the queued inspections within {} s",
            DRAIN_TIMEOUT.as_secs()
        ));
    }
    let committed = hashes.len();
    verification.records_acknowledged = size.batches * size.entries;
    verification.records_read_back = committed;
    if committed != size.batches * size.entries {
        verification.add(format!(
            "{committed} of {} entries were answered with a hash",
            size.batches * size.entries
        ));
    }
    let requested = count_requested(state).await?;
    if requested != committed {
        verification.add(format!(
            "{committed} inspections answered, {requested} InspectionRequested in the log"
        ));
    }
    notes.push(format!(
        "{} batches of {} entries ({committed} inspections) validated and committed one after \
         another in {:.2} s ({:.0} entries/s); the processor had opened them all {:.2} s after \
         the first was sent",
        size.batches,
        size.entries,
        batches_elapsed.as_secs_f64(),
        committed as f64 / batches_elapsed.as_secs_f64().max(1e-9),
        processed_elapsed.as_secs_f64()
    ));

    // Phase 2: a webhook, then inspections whose deliveries are timed.
    let receiver = Receiver::start().await?;
    let webhook = api
        .expect(
            Method::POST,
            "/api/webhooks",
            Some(
                json!({ "empresa_id": 1, "url": receiver.url, "eventos": ["auto_inspecao.criada"] })
                    .to_string(),
            ),
            StatusCode::CREATED,
        )
        .await?;
    receiver.received.lock().expect("never poisoned").secret =
        webhook["secret"].as_str().unwrap_or_default().to_string();
    let mut delivered_hashes = HashSet::new();
    let mut delivery_outcome = Outcome::default();
    let webhook_started = Instant::now();
    let plates = batch_plates.end..batch_plates.end + size.deliveries;
    send_batches(
        api,
        &company,
        plates,
        size.entries,
        &mut delivery_outcome,
        &mut delivered_hashes,
        &mut verification,
    )
    .await;
    let deadline = webhook_started + DRAIN_TIMEOUT;
    while receiver.delivered() < delivered_hashes.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let webhook_elapsed = webhook_started.elapsed();
    let elapsed_total = started.elapsed();
    let peak_rss = peak.peak(ticker.finish().await);
    {
        let seen = receiver.received.lock().expect("never poisoned");
        let repeated = seen.by_delivery.values().filter(|n| **n > 1).count();
        if seen.badly_signed > 0 {
            verification.add(format!("{} deliveries badly signed", seen.badly_signed));
        }
        let missing = delivered_hashes.difference(&seen.hashes).count();
        if missing > 0 || seen.hashes.len() != delivered_hashes.len() {
            verification.add(format!(
                "{} of {} inspections delivered ({missing} missing, {} told of that were not queued)",
                seen.hashes.len(),
                delivered_hashes.len(),
                seen.hashes.difference(&delivered_hashes).count()
            ));
        }
        let span = match (seen.first_at, seen.last_at) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        notes.push(format!(
            "webhooks: {} deliveries taken by the receiver {:.2} s after the first of their \
             batches was sent ({:.0} deliveries/s end to end; {:.0}/s from the first delivery to \
             the last); {repeated} delivered more than once",
            seen.by_delivery.len(),
            webhook_elapsed.as_secs_f64(),
            seen.by_delivery.len() as f64 / webhook_elapsed.as_secs_f64().max(1e-9),
            seen.by_delivery.len() as f64 / span.as_secs_f64().max(1e-9),
        ));
    }
    // The worker records an attempt right after the receiver's answer: wait for the last ones.
    let expected = delivered_hashes.len() as i64;
    let mut recorded = count_delivered(state).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorded < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        recorded = count_delivered(state).await?;
    }
    if recorded != expected {
        verification.add(format!(
            "{recorded} deliveries marked ENTREGUE, {} expected",
            delivered_hashes.len()
        ));
    }
    // The target is a batch's own cost: only the first phase's batches are timed. The second
    // phase's batches count for errors, not latency (they race the deliveries on purpose).
    delivery_outcome.latencies.clear();
    outcome.merge(delivery_outcome);

    let mut report =
        super::scenarios::blank_report(Scenario::Inspecciones, service_store(state), 1);
    super::scenarios::with_outcome(&mut report, outcome, batches_elapsed);
    report.elapsed_s = elapsed_total.as_secs_f64();
    report.events = (committed + delivered_hashes.len()) as i64;
    report.events_per_s = committed as f64 / batches_elapsed.as_secs_f64().max(1e-9);
    report.peak_rss_bytes = peak_rss;
    report.verification = Some(verification);
    Ok((report, notes))
}

fn service_store(state: &crate::AppState) -> &'static str {
    state.log.backend()
}

/// `InspectionRequested` events in the log.
async fn count_requested(state: &crate::AppState) -> Result<usize, BenchError> {
    let mut count = 0;
    let mut after = 0;
    loop {
        let events = state.log.read_type("auto-inspecao", after, 10_000).await?;
        let Some(last) = events.last() else {
            return Ok(count);
        };
        after = last.position;
        count += events
            .iter()
            .filter(|e| e.event_type == "InspectionRequested")
            .count();
    }
}

async fn count_delivered(state: &crate::AppState) -> Result<i64, BenchError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE estado = $1")
            .bind(crate::queries::webhooks::DELIVERED)
            .fetch_one(state.read_models.pool())
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_distinct_brazilian_plates() {
        let plates: Vec<String> = [0, 1, 9_999, 10_000, 259_999, 260_000, 175_759_999]
            .into_iter()
            .map(plate)
            .collect();
        assert_eq!(
            plates,
            ["AAA0000", "AAA0001", "AAA9999", "AAB0000", "AAZ9999", "ABA0000", "ZZZ9999"]
        );
        for p in &plates {
            assert!(aggregates::inspection::brazilian_plate(p).is_some(), "{p}");
        }
    }

    #[test]
    fn a_batch_body_is_the_seed_s_array_of_entries() {
        let body: Value = serde_json::from_slice(&batch_body("tok", 5, 2)).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 2);
        assert_eq!(body[0]["veiculo_placa"], "AAA0005");
        assert_eq!(body[1]["cliente_numero"], "(44) 99999-0006");
        assert_eq!(body[1]["token"], "tok");
    }
}
