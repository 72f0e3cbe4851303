//! `fleet-ledger bench append`: throughput and latency of durable appends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::store::{self, AppendRequest, EventMetadata, NewEvent, SharedLog, StoreError};

#[derive(Debug)]
pub struct AppendReport {
    pub backend: &'static str,
    pub writers: usize,
    pub events: usize,
    pub elapsed: Duration,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
}

impl AppendReport {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

impl std::fmt::Display for AppendReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(f, "backend:     {}", self.backend)?;
        writeln!(f, "writers:     {}", self.writers)?;
        writeln!(f, "events:      {}", self.events)?;
        writeln!(f, "elapsed:     {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput:  {:.0} events/s", self.events_per_s())?;
        writeln!(f, "latency p50: {:.2} ms", ms(self.latency_p50))?;
        writeln!(f, "latency p99: {:.2} ms", ms(self.latency_p99))?;
        write!(f, "latency max: {:.2} ms", ms(self.latency_max))
    }
}

/// Appends `events` single-event appends from `writers` tasks, each to its own stream with its
/// expected version, as commands on distinct aggregates would.
pub async fn append(
    log: SharedLog,
    writers: usize,
    events: usize,
) -> Result<AppendReport, StoreError> {
    let writers = writers.max(1);
    let run = format!("bench-{}", uuid::Uuid::now_v7());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for writer in 0..writers {
        let count = events / writers + usize::from(writer < events % writers);
        let log = Arc::clone(&log);
        let stream_id = format!("{run}-{writer}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for version in 0..count {
                let request = AppendRequest {
                    stream_type: "bench".to_string(),
                    stream_id: stream_id.clone(),
                    expected_version: version as i64,
                    events: vec![NewEvent::new(
                        "BenchEventAppended",
                        json!({ "writer": writer, "n": version, "valor": 12.10 }),
                        EventMetadata {
                            actor: Some("bench".into()),
                            ..Default::default()
                        },
                    )],
                    idempotency: None,
                };
                let sent = Instant::now();
                log.append(request).await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, StoreError>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(events);
    for task in tasks {
        latencies.extend(
            task.await
                .map_err(|e| StoreError::Unavailable(e.to_string()))??,
        );
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Ok(AppendReport {
        backend: log.backend(),
        writers,
        events: latencies.len(),
        elapsed,
        latency_p50: at(0.50),
        latency_p99: at(0.99),
        latency_max: latencies.last().copied().unwrap_or_default(),
    })
}

/// Opens the log the bench should use: `database_url`, or a fresh SQLite file in `scratch`.
pub async fn open_log(
    database_url: Option<&str>,
    scratch: &std::path::Path,
) -> Result<SharedLog, StoreError> {
    match database_url {
        Some(url) => store::open(url).await,
        None => store::open(&format!("sqlite://{}", scratch.join("bench.db").display())).await,
    }
}
