//! The projection runner: exactly-once folding across crashes, backfill without a checkpoint,
//! and read models equal to a replay of the log.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{fresh_location, TestApp};
use fleet_ledger::read_store::ReadStore;
use fleet_ledger::runner::{ProjectionRunner, RunnerError};
use projections::operation_areas::OperationAreasProjection;
use projections::{Cell, MemoryModel, Projection};
use serde_json::json;
use sqlx::Row;

on_both_stores!(
    a_projection_stopped_mid_batch_and_restarted_matches_one_that_never_stopped,
    a_projection_without_checkpoint_backfills_from_the_start,
    read_models_equal_a_replay_of_the_log,
    a_get_right_after_a_201_sees_the_write,
);

async fn register_areas(app: &TestApp, count: usize) {
    let areas: Vec<_> = (0..count)
        .map(|n| json!({ "nombre": format!("Área {n}") }))
        .collect();
    let (status, _) = app
        .post("/api/areas-operacion", &json!(areas).to_string())
        .await;
    assert_eq!(status, 201);
}

/// The `rm_areas_operacion` table as the in-memory model represents it.
async fn dump_areas(store: &ReadStore) -> BTreeMap<i64, (String, Option<String>, String)> {
    sqlx::query("SELECT id, nombre, creado_por, creado_en FROM rm_areas_operacion")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.get::<i64, _>(0),
                (row.get(1), row.get::<Option<String>, _>(2), row.get(3)),
            )
        })
        .collect()
}

fn memory_areas(model: &MemoryModel) -> BTreeMap<i64, (String, Option<String>, String)> {
    let text = |cell: &Cell| match cell {
        Cell::Text(value) => value.clone(),
        other => panic!("expected text, got {other:?}"),
    };
    model
        .tables
        .get(projections::operation_areas::TABLE)
        .into_iter()
        .flatten()
        .map(|(_, row)| {
            let Cell::Int(Some(id)) = row["id"] else {
                panic!("id is an integer")
            };
            (
                id,
                (
                    text(&row["nombre"]).unwrap(),
                    text(&row["creado_por"]),
                    text(&row["creado_en"]).unwrap(),
                ),
            )
        })
        .collect()
}

async fn separate_read_store(app: &TestApp, dir: &std::path::Path) -> ReadStore {
    let location = fresh_location(app.backend, dir).await.unwrap();
    ReadStore::open(&location.read_models_url).await.unwrap()
}

async fn a_projection_stopped_mid_batch_and_restarted_matches_one_that_never_stopped(app: TestApp) {
    for _ in 0..5 {
        register_areas(&app, 10).await;
    }
    let head = app.state.log.head().await.unwrap();
    let projection: Arc<dyn Projection> = Arc::new(OperationAreasProjection);
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let crashed = separate_read_store(&app, dirs.0.path()).await;
    let abandoned =
        ProjectionRunner::step_then_crash(&app.state.log, &crashed, projection.as_ref(), 23).await;
    assert!(
        matches!(abandoned, Err(RunnerError::Abandoned(23))),
        "{abandoned:?}"
    );
    assert!(
        dump_areas(&crashed).await.is_empty(),
        "a crashed batch leaves nothing behind"
    );
    let restarted = ProjectionRunner::start(
        app.state.log.clone(),
        crashed.clone(),
        vec![projection.clone()],
    )
    .await
    .unwrap();
    assert!(restarted.wait_for(head, Duration::from_secs(10)).await);

    let steady = separate_read_store(&app, dirs.1.path()).await;
    let uninterrupted = ProjectionRunner::start(
        app.state.log.clone(),
        steady.clone(),
        vec![projection.clone()],
    )
    .await
    .unwrap();
    assert!(uninterrupted.wait_for(head, Duration::from_secs(10)).await);

    let after_crash = dump_areas(&crashed).await;
    assert_eq!(after_crash.len(), 50);
    assert_eq!(after_crash, dump_areas(&steady).await);
    assert_eq!(crashed.checkpoint("areas_operacion").await.unwrap(), head);
    restarted.shutdown().await;
    uninterrupted.shutdown().await;
}

async fn a_projection_without_checkpoint_backfills_from_the_start(app: TestApp) {
    register_areas(&app, 3).await;
    // Forget the read model entirely, as a projection new in a release would find it.
    sqlx::query("DELETE FROM rm_areas_operacion")
        .execute(app.state.read_models.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM projection_checkpoints")
        .execute(app.state.read_models.pool())
        .await
        .unwrap();
    let app = app.restart().await;
    let head = app.state.log.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, Duration::from_secs(10))
            .await
    );
    let (status, body) = app.get("/api/areas-operacion").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            { "id": 1, "nombre": "Área 0" },
            { "id": 2, "nombre": "Área 1" },
            { "id": 3, "nombre": "Área 2" },
        ])
    );
}

async fn read_models_equal_a_replay_of_the_log(app: TestApp) {
    register_areas(&app, 7).await;
    register_areas(&app, 1).await;
    let events: Vec<_> = app
        .state
        .log
        .read_all(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.to_recorded())
        .collect();
    let replayed = MemoryModel::replay(&OperationAreasProjection, &events).unwrap();
    let live = dump_areas(&app.state.read_models).await;
    assert_eq!(live.len(), 8);
    assert_eq!(memory_areas(&replayed), live);
}

async fn a_get_right_after_a_201_sees_the_write(app: TestApp) {
    for n in 1..=20 {
        let (status, created) = app
            .post(
                "/api/areas-operacion",
                &json!({ "nombre": format!("Zona {n}") }).to_string(),
            )
            .await;
        assert_eq!(status, 201);
        let (status, fetched) = app.get(&format!("/api/areas-operacion/{n}")).await;
        assert_eq!(status, 200);
        assert_eq!(fetched, created);
    }
}
