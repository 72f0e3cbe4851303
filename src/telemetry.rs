//! `GET /metrics`: what the service counts, in Prometheus' text format.
//!
//! Counters and histograms are recorded where things happen (a request answered, a batch
//! committed) through the `metrics` facade, whose macros cost an atomic add on a handle looked up
//! by name and labels. Gauges that describe state (projection positions, pool usage, memory) are
//! read when a scrape asks for them, so nothing on the write path keeps them current.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

pub const HTTP_REQUESTS: &str = "fleet_ledger_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "fleet_ledger_http_request_duration_seconds";
pub const EVENTS_APPENDED: &str = "fleet_ledger_events_appended_total";
pub const APPEND_BATCH_APPENDS: &str = "fleet_ledger_append_batch_appends";
pub const APPEND_COMMIT_SECONDS: &str = "fleet_ledger_append_commit_duration_seconds";
pub const LOG_HEAD: &str = "fleet_ledger_log_head_position";
pub const PROJECTION_POSITION: &str = "fleet_ledger_projection_position";
pub const PROJECTION_LAG: &str = "fleet_ledger_projection_lag_events";
pub const CONSUMER_POSITION: &str = "fleet_ledger_consumer_position";
pub const CONSUMER_LAG: &str = "fleet_ledger_consumer_lag_events";
pub const POOL_CONNECTIONS: &str = "fleet_ledger_store_pool_connections";
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// Seconds: from a fast read (~100 µs) to the request timeout's neighbourhood.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Appends in one group commit, up to the writer's batch limit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// How often histograms are folded into their buckets when nobody scrapes (the exporter keeps
/// samples until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's one recorder, installed on first use: the `metrics` facade has a single global
/// recorder, and every [`AppState`] in a process (tests open many) reports into it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                SECONDS_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(APPEND_BATCH_APPENDS.into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("non-empty bucket lists");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // Someone else's recorder (an embedding program's) gets the figures; /metrics then
            // shows only the gauges read at scrape time.
            tracing::warn!("a metrics recorder was already installed; /metrics shows gauges only");
        }
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        handle
    })
}

/// One answered request, under its route template (`/api/bombas/{id}`, not the raw path, so a
/// scan of ids cannot make a label per id).
pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// One committed group of appends: how many appends, how long the commit took, and the type of
/// each event it wrote for the first time.
pub fn record_batch<'a>(
    appends: usize,
    commit: Duration,
    new_event_types: impl Iterator<Item = &'a str>,
) {
    metrics::histogram!(APPEND_BATCH_APPENDS).record(appends as f64);
    metrics::histogram!(APPEND_COMMIT_SECONDS).record(commit.as_secs_f64());
    for event_type in new_event_types {
        metrics::counter!(EVENTS_APPENDED, "type" => event_type.to_string()).increment(1);
    }
}

/// The text a scrape gets: the recorded figures, with the state gauges read now.
pub async fn render(state: &AppState) -> String {
    let handle = handle();
    if let Ok(head) = state.log.head().await {
        metrics::gauge!(LOG_HEAD).set(head as f64);
        for projection in state.runner.statuses(head) {
            let name = projection.name;
            metrics::gauge!(PROJECTION_POSITION, "projection" => name)
                .set(projection.position as f64);
            metrics::gauge!(PROJECTION_LAG, "projection" => name)
                .set((head - projection.position).max(0) as f64);
        }
        for consumer in state.consumers.statuses(head) {
            let name = consumer.name;
            metrics::gauge!(CONSUMER_POSITION, "consumer" => name).set(consumer.position as f64);
            metrics::gauge!(CONSUMER_LAG, "consumer" => name).set(consumer.lag as f64);
        }
    }
    let pools = [
        ("log", state.log.pool_usage()),
        (
            "read_models",
            crate::store::PoolUsage::of(state.read_models.pool()),
        ),
    ];
    for (pool, usage) in pools {
        let in_use = usage.open.saturating_sub(usage.idle);
        metrics::gauge!(POOL_CONNECTIONS, "pool" => pool, "state" => "in_use").set(in_use);
        metrics::gauge!(POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(usage.idle);
        metrics::gauge!(POOL_CONNECTIONS, "pool" => pool, "state" => "max").set(usage.max);
    }
    if let Some(bytes) = crate::memory::current_bytes() {
        metrics::gauge!(RESIDENT_MEMORY).set(bytes as f64);
    }
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resident_set_is_read_from_proc() {
        let bytes = crate::memory::current_bytes().expect("Linux has /proc/self/status");
        assert!(bytes > 1024 * 1024, "a running test uses more than 1 MiB");
    }
}
