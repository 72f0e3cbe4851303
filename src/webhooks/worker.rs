//! The delivery worker: takes due deliveries from the database and POSTs them, a bounded number
//! at a time, in its own task, so command handling never waits for a receiver.
//!
//! All of a delivery's state is in its row (`webhook_deliveries`), so retries survive restarts.
//! A worker claims a delivery for one attempt by moving its next attempt past a lease
//! ([`queries::claim`]): however many instances run a worker on one database, one attempt is
//! made at a time, and a delivery whose worker died mid-attempt is taken again once the lease
//! has passed, with the same id (at least once). Every attempt is recorded with what the
//! receiver answered. A failure is retried with exponential backoff and jitter for at least the
//! retry window (24 h), then the delivery is given up (`FALHOU`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{Outbound, Outcome, Outgoing};
use super::target::WebhookUrl;
use crate::queries::webhooks::{self as queries, AttemptRecord, Claimed, Next};
use crate::queries::QueryError;
use crate::read_store::ReadStore;
use crate::settings::WebhookSettings;

/// What the worker needs of a webhook to deliver to it. Registered webhooks never change, so
/// it is read once per webhook and kept.
struct Endpoint {
    url: Result<WebhookUrl, String>,
    secret: Result<String, String>,
}

pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    wake: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl DeliveryWorker {
    /// Starts delivering what comes due in `read_models`.
    pub fn start(read_models: ReadStore, settings: WebhookSettings) -> Self {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            outbound: Outbound::new(settings.allow_private, settings.timeout),
            read_models,
            settings,
            endpoints: Mutex::new(HashMap::new()),
        };
        let task = tokio::spawn(Arc::new(worker).run(stopped, wake.clone()));
        Self {
            stop,
            wake,
            task: Mutex::new(Some(task)),
        }
    }

    /// Looks for due deliveries now instead of at the next poll (a retry asked for by hand).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops at once, attempts in flight included, leaving their claims to expire: what a killed
    /// process leaves behind. Exists so tests can show a restart loses no delivery.
    pub fn abandon(&self) {
        if let Some(task) = self.task.lock().expect("never poisoned").take() {
            task.abort();
        }
    }

    /// Stops claiming, and waits for the attempts in flight (each at most the timeout).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().expect("never poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct Worker {
    read_models: ReadStore,
    settings: WebhookSettings,
    outbound: Outbound,
    endpoints: Mutex<HashMap<i64, Arc<Endpoint>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Worker {
    /// How long a claim keeps other workers off a delivery: the attempt's timeout, and the time
    /// to record it, with room to spare.
    fn lease(&self) -> Duration {
        self.settings.timeout * 3
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, wake: Arc<Notify>) {
        let capacity = self.settings.concurrency.max(1);
        let mut in_flight = JoinSet::new();
        while !*stop.borrow() {
            let free = capacity.saturating_sub(in_flight.len());
            let mut exhausted = true;
            if free > 0 {
                let now = now_ms();
                let lease_until = now.saturating_add(millis(self.lease()));
                match queries::claim(&self.read_models, now, lease_until, free as i64).await {
                    Ok(claimed) => {
                        exhausted = claimed.len() < free;
                        for delivery in claimed {
                            in_flight.spawn(self.clone().attempt(delivery));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "webhook deliveries unreadable; will retry")
                    }
                }
            }
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = tokio::time::sleep(self.settings.poll), if exhausted => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// The webhook `id`'s URL and opened secret, read once.
    async fn endpoint(&self, id: i64) -> Result<Option<Arc<Endpoint>>, QueryError> {
        if let Some(known) = self.endpoints.lock().expect("never poisoned").get(&id) {
            return Ok(Some(known.clone()));
        }
        let Some(stored) = queries::endpoint(&self.read_models, id).await? else {
            return Ok(None);
        };
        let endpoint = Arc::new(Endpoint {
            url: WebhookUrl::parse(&stored.url).map_err(|e| e.to_string()),
            secret: self
                .settings
                .key
                .open(&stored.secret_sealed)
                .map_err(|e| e.to_string()),
        });
        self.endpoints
            .lock()
            .expect("never poisoned")
            .insert(id, endpoint.clone());
        Ok(Some(endpoint))
    }

    /// One attempt at `claimed`, recorded with what came of it.
    async fn attempt(self: Arc<Self>, claimed: Claimed) {
        let started = Instant::now();
        let em_ms = now_ms();
        let outcome = match self.endpoint(claimed.webhook_id).await {
            Ok(Some(endpoint)) => match (&endpoint.url, &endpoint.secret) {
                (Ok(url), Ok(secret)) => {
                    let outgoing = Outgoing {
                        url,
                        secret,
                        delivery_id: &claimed.id,
                        body: Bytes::from(claimed.corpo.clone()),
                    };
                    self.outbound.post(outgoing, em_ms / 1000).await
                }
                (Err(reason), _) | (_, Err(reason)) => Outcome::NoAnswer(reason.clone()),
            },
            // Claimed only while the read model shows the webhook; gone since (a rebuild).
            Ok(None) => Outcome::NoAnswer("webhook no encontrado".to_string()),
            Err(error) => {
                tracing::warn!(%error, delivery = %claimed.id, "webhook unreadable");
                Outcome::NoAnswer("webhook ilegible; se reintentará".to_string())
            }
        };
        let ended_ms = now_ms();
        let next = self.next(&claimed, &outcome, ended_ms);
        let record = AttemptRecord {
            em_ms,
            status: match outcome {
                Outcome::Answered(status) => Some(i64::from(status)),
                Outcome::NoAnswer(_) => None,
            },
            erro: match &outcome {
                Outcome::Answered(status) if !outcome.delivered() => {
                    Some(format!("el receptor respondió {status}"))
                }
                Outcome::Answered(_) => None,
                Outcome::NoAnswer(reason) => Some(reason.clone()),
            },
            duracao_ms: millis(started.elapsed()),
        };
        if let Err(error) =
            queries::record_attempt(&self.read_models, &claimed, &record, next).await
        {
            // The claim expires and the delivery is tried again: at least once.
            tracing::warn!(%error, delivery = %claimed.id, "webhook attempt not recorded");
        }
        tracing::debug!(delivery = %claimed.id, tentativa = claimed.tentativa, ?outcome, ?next, "webhook attempt");
    }

    /// What the delivery becomes after this attempt ended at `now_ms`.
    fn next(&self, claimed: &Claimed, outcome: &Outcome, now_ms: i64) -> Next {
        if outcome.delivered() {
            return Next::Delivered { at_ms: now_ms };
        }
        if now_ms.saturating_sub(claimed.criado_em_ms) >= millis(self.settings.retry_window) {
            return Next::GaveUp;
        }
        let delay = backoff(
            self.settings.retry_base,
            self.settings.retry_delay_max,
            claimed.tentativa,
            rand::thread_rng().gen_range(0.0..=1.0),
        );
        Next::RetryAt {
            at_ms: now_ms.saturating_add(millis(delay)),
        }
    }
}

/// The pause after the `attempt`-th failure: `base` doubled per earlier failure, at most `max`,
/// of which a random half (`jitter` in 0..=1) is taken off, so that receivers coming back after
/// an outage are not hit by every delivery at the same instant ("equal jitter").
pub fn backoff(base: Duration, max: Duration, attempt: i64, jitter: f64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(32);
    let full = base.saturating_mul(1u32 << doublings.min(31)).min(max);
    full.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling_and_jitter_takes_at_most_half() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        let at = |attempt, jitter| backoff(base, max, attempt, jitter).as_secs_f64();
        assert_eq!(at(1, 0.0), 10.0);
        assert_eq!(at(2, 0.0), 20.0);
        assert_eq!(at(3, 0.0), 40.0);
        assert_eq!(at(9, 0.0), 2560.0);
        assert_eq!(at(10, 0.0), 3600.0);
        assert_eq!(at(1_000, 0.0), 3600.0);
        assert_eq!(at(1, 1.0), 5.0);
        assert_eq!(at(10, 1.0), 1800.0);
        assert_eq!(at(0, 0.0), 10.0);
    }

    #[test]
    fn retries_span_at_least_the_window_at_the_default_settings() {
        // Even with the shortest pauses jitter allows, a delivery is tried over and over for a
        // day: the window, not the number of attempts, decides when it is given up.
        let settings = WebhookSettings::default();
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while elapsed < settings.retry_window {
            attempts += 1;
            elapsed += backoff(settings.retry_base, settings.retry_delay_max, attempts, 1.0);
        }
        assert!((40..80).contains(&attempts), "{attempts} attempts in a day");
    }
}
