//! The event log's guarantees, on both stores (and on KurrentDB, see `on_every_log!`):
//! optimistic concurrency, idempotent appends, gap-free tailing under concurrent writers, and
//! cqrs-es running on top of it.
//!
//! Positions are contiguous on SQLite and PostgreSQL; on KurrentDB they are commit positions
//! (byte offsets), increasing but with gaps, so the assertions say "every event once, in
//! order" and leave contiguity to the SQL stores.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aggregates::operation_area::OPERATION_AREAS_STREAM_ID;
use aggregates::{OperationAreaCommand, OperationAreas};
use common::{Backend, TestApp};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use fleet_ledger::commands::CommandBus;
use fleet_ledger::store::cqrs_adapter::LogRepository;
use fleet_ledger::store::{self, AppendRequest, EventMetadata, NewEvent, SharedLog, StoreError};
use serde_json::json;
use uuid::Uuid;

on_every_log!(
    concurrent_appends_to_one_stream_retry_and_stay_contiguous,
    a_tailing_reader_sees_every_event_once_in_commit_order,
    a_stale_expected_version_writes_nothing,
    appending_a_stored_event_id_again_answers_the_original_result,
    two_command_buses_on_one_stream_never_lose_a_command,
    cqrs_es_framework_persists_through_the_log,
    a_stream_is_read_page_by_page_in_version_order,
);

fn event(n: usize) -> NewEvent {
    NewEvent::new("Counted", json!({ "n": n }), EventMetadata::default())
}

fn single(stream_id: &str, expected_version: i64, event: NewEvent) -> AppendRequest {
    AppendRequest {
        stream_type: "test".into(),
        stream_id: stream_id.into(),
        expected_version,
        events: vec![event],
        idempotency: None,
    }
}

async fn current_version(log: &SharedLog, stream_id: &str) -> i64 {
    let events = log.read_stream("test", stream_id, 0).await.unwrap();
    events.last().map_or(0, |e| e.version)
}

async fn concurrent_appends_to_one_stream_retry_and_stay_contiguous(app: TestApp) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 10;
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let log = app.state.log.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..PER_TASK {
                let new = event(task * PER_TASK + n);
                ids.push(new.event_id);
                loop {
                    let expected = current_version(&log, "hot").await;
                    match log.append(single("hot", expected, new.clone())).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
            }
            ids
        }));
    }
    let mut appended = HashSet::new();
    for task in tasks {
        appended.extend(task.await.unwrap());
    }
    let stored = app.state.log.read_stream("test", "hot", 0).await.unwrap();
    let versions: Vec<i64> = stored.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=(TASKS * PER_TASK) as i64).collect::<Vec<_>>()
    );
    let stored_ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(
        stored_ids.len(),
        TASKS * PER_TASK,
        "every append ends as exactly one event"
    );
    assert_eq!(stored_ids, appended);
    assert!(
        conflicts.load(Ordering::Relaxed) > 0,
        "16 writers on one stream must have conflicted"
    );
}

async fn a_tailing_reader_sees_every_event_once_in_commit_order(app: TestApp) {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 40;
    // A second log on the same store stands for a second process writing concurrently.
    let other_process = store::open(&app.location.log_url).await.unwrap();
    let logs = [app.state.log.clone(), other_process.clone()];
    let reader_log = app.state.log.clone();
    let base = reader_log.head().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut after = base;
        let mut head = reader_log.watch_head();
        while seen.len() < WRITERS * PER_WRITER {
            let page = reader_log.read_all(after, 37).await.unwrap();
            if page.is_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(20), head.changed()).await;
                continue;
            }
            after = page.last().unwrap().position;
            seen.extend(page);
        }
        seen
    });
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let log = logs[writer % 2].clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..PER_WRITER {
                let new = event(n);
                ids.push(new.event_id);
                log.append(single(&format!("w{writer}"), n as i64, new))
                    .await
                    .unwrap();
            }
            ids
        }));
    }
    let mut appended = HashSet::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    let positions: Vec<i64> = seen.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), WRITERS * PER_WRITER);
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "positions are seen in order with no repeat"
    );
    if app.backend != Backend::KurrentDb {
        assert_eq!(
            positions,
            (base + 1..=base + (WRITERS * PER_WRITER) as i64).collect::<Vec<_>>(),
            "positions are seen in order with no gap and no repeat"
        );
    }
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids, appended);
    for writer in 0..WRITERS {
        let versions: Vec<i64> = seen
            .iter()
            .filter(|e| e.stream_id == format!("w{writer}"))
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, (1..=PER_WRITER as i64).collect::<Vec<_>>());
    }
    other_process.shutdown().await;
}

async fn a_stale_expected_version_writes_nothing(app: TestApp) {
    let log = &app.state.log;
    let base = log.head().await.unwrap();
    log.append(single("s", 0, event(1))).await.unwrap();
    let stale = AppendRequest {
        stream_type: "test".into(),
        stream_id: "s".into(),
        expected_version: 0,
        events: vec![event(2), event(3)],
        idempotency: None,
    };
    match log.append(stale).await {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 1,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(log.read_stream("test", "s", 0).await.unwrap().len(), 1);
    let after_base = log.read_all(base, 100).await.unwrap();
    assert_eq!(after_base.len(), 1, "only the first append is in the log");
    assert_eq!(log.head().await.unwrap(), after_base[0].position);
}

async fn a_stream_is_read_page_by_page_in_version_order(app: TestApp) {
    let log = &app.state.log;
    // Two streams written in turns, so a page of one must skip the other's events.
    for n in 0..25 {
        log.append(single("paged", n, event(n as usize)))
            .await
            .unwrap();
        log.append(single("beside", n, event(100 + n as usize)))
            .await
            .unwrap();
    }
    let versions = |events: Vec<store::StoredEvent>| -> Vec<i64> {
        events.iter().map(|e| e.version).collect()
    };
    let page = |after_version, limit| log.read_stream_page("test", "paged", after_version, limit);
    assert_eq!(
        versions(page(0, 10).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(page(10, 10).await.unwrap()),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(page(20, 10).await.unwrap()),
        (21..=25).collect::<Vec<_>>()
    );
    assert_eq!(versions(page(25, 10).await.unwrap()), Vec::<i64>::new());
    let stored = page(7, 3).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| e.payload["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [7, 8, 9]
    );
    assert!(stored.iter().all(|e| e.stream_id == "paged"));

    // Folding in pages that end exactly at the stream's end (6–15, 16–25, then an empty one)
    // sees every event once, in order.
    let mut folded = Vec::new();
    let reached = store::fold_stream(log.as_ref(), "test", "paged", 5, 10, |e| {
        folded.push(e.version);
        Ok::<(), StoreError>(())
    })
    .await
    .unwrap();
    assert_eq!(reached, 25);
    assert_eq!(folded, (6..=25).collect::<Vec<_>>());
    let untouched = store::fold_stream(log.as_ref(), "test", "paged", 25, 10, |_| {
        Err(StoreError::Closed)
    })
    .await
    .unwrap();
    assert_eq!(untouched, 25);
}

async fn appending_a_stored_event_id_again_answers_the_original_result(app: TestApp) {
    let log = &app.state.log;
    let base = log.head().await.unwrap();
    let request = AppendRequest {
        stream_type: "test".into(),
        stream_id: "s".into(),
        expected_version: 0,
        events: vec![event(1), event(2)],
        idempotency: None,
    };
    let first = log.append(request.clone()).await.unwrap();
    log.append(single("other", 0, event(3))).await.unwrap();
    let again = log.append(request.clone()).await.unwrap();
    assert_eq!(again, first);
    let stored = log.read_all(base, 100).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(log.head().await.unwrap(), stored[2].position);

    // KurrentDB deduplicates ids only at the revision an append names (its module doc says
    // so): an id stored at another version is the SQL stores' check.
    if app.backend != Backend::KurrentDb {
        let mut reused = single("s", 2, event(4));
        reused.events.insert(0, request.events[0].clone());
        assert!(matches!(
            log.append(reused).await,
            Err(StoreError::EventIdReused(_))
        ));
        assert_eq!(log.head().await.unwrap(), base + 3);
    }
}

async fn two_command_buses_on_one_stream_never_lose_a_command(app: TestApp) {
    const COMMANDS: usize = 20;
    // Two buses with their own caches stand for two processes sharing the store.
    let buses = [
        Arc::new(CommandBus::<OperationAreas>::new(app.state.log.clone(), ())),
        Arc::new(CommandBus::<OperationAreas>::new(app.state.log.clone(), ())),
    ];
    let mut tasks = Vec::new();
    for n in 0..COMMANDS {
        let bus = buses[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            let command = OperationAreaCommand::Register {
                nombres: vec![format!("Área {n}")],
            };
            bus.execute(
                OPERATION_AREAS_STREAM_ID,
                command,
                &EventMetadata::default(),
            )
            .await
            .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = app
        .state
        .log
        .read_stream("operation-areas", OPERATION_AREAS_STREAM_ID, 0)
        .await
        .unwrap();
    let ids: Vec<i64> = stored
        .iter()
        .map(|e| e.payload["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=COMMANDS as i64).collect::<Vec<_>>());
}

async fn cqrs_es_framework_persists_through_the_log(app: TestApp) {
    let base = app.state.log.head().await.unwrap();
    let store = PersistedEventStore::new_event_store(LogRepository::new(app.state.log.clone()));
    let cqrs = CqrsFramework::<OperationAreas, _>::new(store, vec![], ());
    cqrs.execute(
        OPERATION_AREAS_STREAM_ID,
        OperationAreaCommand::Register {
            nombres: vec!["Logística".into()],
        },
    )
    .await
    .unwrap();
    cqrs.execute(
        OPERATION_AREAS_STREAM_ID,
        OperationAreaCommand::Register {
            nombres: vec!["Norte".into()],
        },
    )
    .await
    .unwrap();
    let stored = app.state.log.read_all(base, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].event_type, "OperationAreaRegistered");
    assert_eq!(stored[1].payload, json!({ "id": 2, "nombre": "Norte" }));
    assert_eq!(stored[1].version, 2);
    // Our own command bus picks up where cqrs-es left off.
    let bus = CommandBus::<OperationAreas>::new(app.state.log.clone(), ());
    let executed = bus
        .execute(
            OPERATION_AREAS_STREAM_ID,
            OperationAreaCommand::Register {
                nombres: vec!["Sur".into()],
            },
            &EventMetadata::default(),
        )
        .await
        .unwrap();
    assert_eq!(executed.appended.unwrap().version, 3);
}
