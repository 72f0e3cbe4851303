//! The log's checkpointed consumers (src/reactor.rs) and the inspections' processor built on
//! them: a consumer that fails or dies between its appends and its checkpoint does its step
//! again, and still appends nothing twice.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{entry, inspection_fixture, TestApp};
use fleet_ledger::auth::Role;
use fleet_ledger::reactor::{derived_event_id, Consumers, Reactor, ReactorError};
use fleet_ledger::store::{AppendRequest, EventMetadata, NewEvent, StoredEvent};
use serde_json::{json, Value};

on_both_stores!(
    a_step_that_fails_after_appending_is_done_again_without_appending_twice,
    a_consumer_killed_mid_way_resumes_from_its_checkpoint_and_repeats_nothing,
    the_processor_restarted_mid_way_opens_every_inspection_exactly_once,
    consumers_report_their_position_and_lag,
);

const SOURCE: &str = "test-source";
const ECHO: &str = "test-echo";

/// Echoes every `test-source` event into a stream of its own, with an id derived from it. Fails
/// its first `failures` batches right after appending half of them, as a step that dies
/// between its appends and its checkpoint would.
struct Echo {
    log: fleet_ledger::store::SharedLog,
    failures: AtomicUsize,
    batches: AtomicUsize,
    name: &'static str,
}

#[async_trait::async_trait]
impl Reactor for Echo {
    fn name(&self) -> &'static str {
        self.name
    }

    fn stream_type(&self) -> &'static str {
        SOURCE
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "Said"
    }

    async fn react(
        &self,
        events: &[StoredEvent],
    ) -> Result<Vec<projections::Change>, ReactorError> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let failing = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let upto = if failing {
            events.len() / 2
        } else {
            events.len()
        };
        for event in &events[..upto] {
            let mut echo = NewEvent::new("Echoed", event.payload.clone(), EventMetadata::default());
            echo.event_id = derived_event_id(event.event_id, "echo");
            self.log
                .append(AppendRequest {
                    stream_type: ECHO.into(),
                    stream_id: event.event_id.to_string(),
                    expected_version: 0,
                    events: vec![echo],
                    idempotency: None,
                })
                .await?;
        }
        if failing {
            return Err(ReactorError::Failed("the receiver went away".into()));
        }
        Ok(Vec::new())
    }
}

async fn say(app: &TestApp, count: usize) {
    for n in 0..count {
        let said = NewEvent::new("Said", json!({ "n": n }), EventMetadata::default());
        app.state
            .log
            .append(AppendRequest {
                stream_type: SOURCE.into(),
                stream_id: format!("s{n}"),
                expected_version: 0,
                events: vec![said],
                idempotency: None,
            })
            .await
            .unwrap();
    }
}

/// Every echo in the log, by the stream (the source event) it answers.
async fn echoes(app: &TestApp) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for event in app.state.log.read_type(ECHO, 0, 100_000).await.unwrap() {
        *seen.entry(event.stream_id).or_insert(0) += 1;
    }
    seen
}

fn echo(app: &TestApp, name: &'static str, failures: usize) -> Arc<Echo> {
    Arc::new(Echo {
        log: app.state.log.clone(),
        failures: AtomicUsize::new(failures),
        batches: AtomicUsize::new(0),
        name,
    })
}

async fn a_step_that_fails_after_appending_is_done_again_without_appending_twice(app: TestApp) {
    say(&app, 40).await;
    let reactor = echo(&app, "echo-failing", 1);
    let consumers = Consumers::start(
        app.state.log.clone(),
        app.state.read_models.clone(),
        vec![reactor.clone()],
    );
    let head = app.state.log.head().await.unwrap();
    // The first attempt fails half-way; the retry (a second later) goes through.
    assert!(
        consumers
            .wait_for("echo-failing", head, Duration::from_secs(10))
            .await
    );
    let seen = echoes(&app).await;
    assert_eq!(seen.len(), 40, "every source event is echoed");
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    assert!(reactor.batches.load(Ordering::Relaxed) >= 2);
    let status = &consumers.statuses(head)[0];
    assert_eq!((status.status, status.lag), ("ready", 0));
    consumers.shutdown().await;
}

async fn a_consumer_killed_mid_way_resumes_from_its_checkpoint_and_repeats_nothing(app: TestApp) {
    say(&app, 30).await;
    // Dies holding its lease, after appending half of the batch and before its checkpoint.
    let first = Consumers::start(
        app.state.log.clone(),
        app.state.read_models.clone(),
        vec![echo(&app, "echo-killed", usize::MAX)],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while echoes(&app).await.len() < 15 {
        assert!(tokio::time::Instant::now() < deadline, "never appended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.abandon();
    let second = Consumers::start(
        app.state.log.clone(),
        app.state.read_models.clone(),
        vec![echo(&app, "echo-killed", 0)],
    );
    let head = app.state.log.head().await.unwrap();
    // It waits out the dead instance's lease (5 s), then resumes from the stored checkpoint.
    assert!(
        second
            .wait_for("echo-killed", head, Duration::from_secs(20))
            .await
    );
    let seen = echoes(&app).await;
    assert_eq!(seen.len(), 30);
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
    second.shutdown().await;
}

async fn the_processor_restarted_mid_way_opens_every_inspection_exactly_once(app: TestApp) {
    let token = inspection_fixture(&app).await;
    let mut hashes = Vec::new();
    for batch in 0..10 {
        let entries: Vec<Value> = (0..50)
            .map(|n| entry(&token, &format!("ABC{:04}", batch * 50 + n)))
            .collect();
        let body = Value::Array(entries).to_string();
        let (status, answer) = app
            .call(
                Method::POST,
                "/auto-inspecao/criar-em-lote",
                None,
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        hashes.extend(
            answer
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["hash"].as_str().unwrap().to_string()),
        );
        if batch == 4 {
            // Killed while the processor works through the queue.
            app.state.consumers.abandon();
        }
    }
    let app = app.restart().await;
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .consumers
            .wait_for("auto_inspecao", head, Duration::from_secs(30))
            .await,
        "the processor catches up after the restart"
    );
    let created = app
        .state
        .log
        .read_type("auto-inspecao", 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "InspectionCreated")
        .map(|e| e.payload["hash"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(created.len(), 500, "one InspectionCreated per inspection");
    let unique: std::collections::HashSet<&String> = created.iter().collect();
    assert_eq!(unique.len(), 500);
    for hash in [&hashes[0], &hashes[499]] {
        let (status, inspection) = app
            .call(Method::GET, &format!("/auto-inspecao/{hash}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(inspection["status"], "ABERTA");
        assert_eq!(inspection["link"], format!("/auto-inspecao/{hash}"));
    }
}

async fn consumers_report_their_position_and_lag(app: TestApp) {
    let token = inspection_fixture(&app).await;
    let body = Value::Array(vec![entry(&token, "ABC1234")]).to_string();
    app.call(
        Method::POST,
        "/auto-inspecao/criar-em-lote",
        None,
        Some(&body),
    )
    .await;
    // The processor's own InspectionCreated moves the head once more.
    for _ in 0..2 {
        let head = app.state.log.head().await.unwrap();
        for consumer in ["auto_inspecao", "alertas"] {
            assert!(
                app.state
                    .consumers
                    .wait_for(consumer, head, Duration::from_secs(10))
                    .await
            );
        }
    }
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let head = ready["head"].as_i64().unwrap();
    assert_eq!(
        ready["consumers"],
        json!([
            { "name": "auto_inspecao", "position": head, "lag": 0, "status": "ready", "leading": true },
            { "name": "alertas", "position": head, "lag": 0, "status": "ready", "leading": true },
        ])
    );
    let admin = app.token(Role::Admin);
    let (status, listed) = app
        .call(Method::GET, "/api/admin/proyecciones", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["consumers"][0]["name"], "auto_inspecao");
    assert_eq!(listed["consumers"][0]["lag"], 0);
}
