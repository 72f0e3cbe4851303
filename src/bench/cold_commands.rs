//! Commands on a long station whose aggregate is not in memory: what the first refuel after a
//! restart (or after another instance's write evicted it) costs, loading the station from its
//! newest snapshot against folding its whole history. Part of the `as-of` scenario, whose
//! station holds the whole seeded history.
//!
//! Each timed command runs on a command bus of its own, as a freshly started service's would:
//! the load, the decision and the durable append, without HTTP around it.

use std::time::{Duration, Instant};

use aggregates::fuel::{FuelCommand, FuelStation};
use aggregates::snapshot::Snapshotted;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;

use super::fleet::Station;
use super::history::advance_record;
use super::BenchError;
use crate::commands::CommandBus;
use crate::store::snapshots::SNAPSHOT_EVERY_EVENTS_DEFAULT;
use crate::store::{EventMetadata, SharedLog, SnapshotBound};

/// Cold commands timed per way of loading. Folding a million events takes seconds: few of them.
const FOLDS: usize = 2;
const FROM_SNAPSHOT: usize = 10;
/// Record ids far above any the seeded history or the API hands out.
const FIRST_BENCH_RECORD_ID: i64 = 1_000_000_000_000;

/// What the cold commands cost, as notes for the scenario's report.
pub(crate) async fn measure(log: &SharedLog, station: Station) -> Result<Vec<String>, BenchError> {
    let stream_id = station.id.to_string();
    let mut next_id = FIRST_BENCH_RECORD_ID;
    let mut next_record = || {
        next_id += 1;
        next_id
    };

    let mut folds = Vec::with_capacity(FOLDS);
    for _ in 0..FOLDS {
        let bus = CommandBus::<FuelStation>::new(log.clone(), ()).snapshot_every(0);
        folds.push(refuel(&bus, station, next_record()).await?);
    }

    // The first command with snapshots on folds the history too, then saves the station.
    let bus = CommandBus::<FuelStation>::new(log.clone(), ())
        .snapshot_every(SNAPSHOT_EVERY_EVENTS_DEFAULT);
    let first = refuel(&bus, station, next_record()).await?;
    let saving = Instant::now();
    let snapshot = loop {
        let newest = log
            .load_snapshot(
                FuelStation::TYPE,
                &stream_id,
                FuelStation::SNAPSHOT_VERSION,
                SnapshotBound::Latest,
            )
            .await?;
        if let Some(snapshot) = newest {
            break snapshot;
        }
        if saving.elapsed() > Duration::from_secs(600) {
            return Err(BenchError::Config(
                "the station's snapshot was never saved".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let saved_after = saving.elapsed();
    let warm = refuel(&bus, station, next_record()).await?;

    let mut cold = Vec::with_capacity(FROM_SNAPSHOT);
    let mut folded = 0;
    for _ in 0..FROM_SNAPSHOT {
        let bus = CommandBus::<FuelStation>::new(log.clone(), ())
            .snapshot_every(SNAPSHOT_EVERY_EVENTS_DEFAULT);
        cold.push(refuel(&bus, station, next_record()).await?);
        folded = folded.max(bus.events_folded());
    }

    let ms = |d: &Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let list = |ds: &[Duration]| ds.iter().map(ms).collect::<Vec<_>>().join(", ");
    let mut sorted = cold.clone();
    sorted.sort();
    Ok(vec![
        format!(
            "cold refuel on the station, folding its {} events: {}",
            snapshot.version,
            list(&folds)
        ),
        format!(
            "cold refuel with snapshots on and none saved yet: {} (the fold), then the station \
             saved in the background: {} bytes, stored {:.1} s later",
            ms(&first),
            snapshot.state.len(),
            saved_after.as_secs_f64()
        ),
        format!(
            "cold refuel from the snapshot, {FROM_SNAPSHOT} fresh buses: p50 {}, max {} (at most \
             {folded} events folded after it); each: {}",
            ms(&sorted[sorted.len() / 2]),
            ms(&sorted[sorted.len() - 1]),
            list(&cold)
        ),
        format!("warm refuel (the aggregate in memory): {}", ms(&warm)),
    ])
}

/// An advance of 1000 to the station, record `id`, through `bus`; answers how long it took.
async fn refuel(
    bus: &CommandBus<FuelStation>,
    station: Station,
    id: i64,
) -> Result<Duration, BenchError> {
    let fecha = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
    let record = advance_record(id, fecha, station.id, station.area_id, Decimal::from(1_000));
    let command = FuelCommand::Record {
        record,
        registered_policy: true,
        inherited: Default::default(),
    };
    let metadata = EventMetadata {
        actor: Some("bench@fleet-ledger".to_string()),
        ..EventMetadata::default()
    };
    let started = Instant::now();
    bus.execute(&station.id.to_string(), command, &metadata)
        .await
        .map_err(|e| BenchError::Config(format!("a cold refuel failed: {e}")))?;
    Ok(started.elapsed())
}
