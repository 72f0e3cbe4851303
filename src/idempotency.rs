//! Idempotency-Key, with Stripe's semantics: a write sent again with the same key by the same
//! actor is answered what it was answered the first time, and does nothing more.
//!
//! Nothing acknowledged may be doubled, whatever dies when:
//! - Within a process, one request per (actor, key) runs at a time ([`InFlight`]); the others
//!   wait for it and then replay its answer.
//! - A request's event ids are derived from its key and a per-use `epoch`
//!   ([`IdempotencyScope::event_id`]), and its first append writes the key (a claim) in the same
//!   transaction as its events. So either the key and its events are durable, or neither is.
//! - The answer is stored right after. A process that dies before that leaves a claim without an
//!   answer: the retry resumes the claim's epoch, and each of its commands first looks in the log
//!   for the events it derives ([`crate::commands::CommandBus::execute_keyed`]), answering those
//!   instead of deciding again.
//! - Across processes, the writer refuses an append claiming a key that another use (another
//!   epoch) claimed first ([`crate::store::StoreError::KeyClaimed`]), answered 409.
//!
//! Keys expire after [`KEY_TTL`]: a background sweep deletes them, and a key found expired before
//! the sweep ran is forgotten and used anew.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::store::idempotency::{SavedResponse, StoredKey};
use crate::store::{IdempotencyClaim, SharedLog, StoreError};

/// How long a key is remembered (Stripe's 24 hours).
pub const KEY_TTL: TimeDelta = TimeDelta::hours(24);
/// How often expired keys are deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long a request waits for another one with its key to finish before answering 409.
pub const IN_FLIGHT_WAIT_MAX: Duration = Duration::from_secs(10);
/// Longest key accepted (Stripe's limit).
pub const KEY_LEN_MAX: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("Idempotency-Key reutilizada con otro cuerpo")]
    Reused,
    #[error("Solicitud en curso con la misma Idempotency-Key")]
    InFlight,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key a request runs under: every command it runs derives its event ids from it.
#[derive(Debug)]
pub struct IdempotencyScope {
    claim: IdempotencyClaim,
    /// An earlier run of this use of the key committed events, but left no answer.
    resuming: bool,
    appends: AtomicU32,
}

impl IdempotencyScope {
    pub fn new(claim: IdempotencyClaim, resuming: bool) -> Self {
        Self {
            claim,
            resuming,
            appends: AtomicU32::new(0),
        }
    }

    pub fn claim(&self) -> &IdempotencyClaim {
        &self.claim
    }

    /// Whether commands must look for their events in the log before deciding.
    pub fn is_resuming(&self) -> bool {
        self.resuming
    }

    /// Numbers the request's appends in the order it makes them; a retry of the same request
    /// makes them in the same order, so the numbers (and the event ids) match.
    pub fn next_append(&self) -> u32 {
        self.appends.fetch_add(1, Ordering::Relaxed)
    }

    /// The id of the `event`-th event of the request's `append`-th append.
    pub fn event_id(&self, append: u32, event: usize) -> Uuid {
        event_id(&self.claim, append, event)
    }
}

/// A UUID v8 from sha256 over actor, key, epoch and the event's place in the request. The
/// epoch keeps a key reused after it expired from deriving the ids of its earlier use.
pub fn event_id(claim: &IdempotencyClaim, append: u32, event: usize) -> Uuid {
    let mut hash = Sha256::new();
    for part in [claim.actor.as_bytes(), claim.key.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(claim.epoch.as_bytes());
    hash.update(append.to_be_bytes());
    hash.update((event as u64).to_be_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// sha256 (hex) of what makes two requests the same: method, path with query, body.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path_and_query.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What to do with a keyed request.
pub enum Begun {
    /// Answer this, given to the first request with the key.
    Replay(SavedResponse),
    /// Run the request under this scope, holding the guard until its answer is stored.
    Execute(Arc<IdempotencyScope>, InFlightGuard),
}

pub struct Idempotency {
    log: SharedLog,
    ttl: TimeDelta,
    in_flight: Arc<InFlight>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl Idempotency {
    /// Keys kept for `ttl`, and a sweep that deletes older ones every few minutes.
    pub fn start(log: SharedLog, ttl: TimeDelta) -> Self {
        let sweeper = tokio::spawn(sweep_forever(log.clone(), ttl));
        Self {
            log,
            ttl,
            in_flight: Arc::default(),
            sweeper: Mutex::new(Some(sweeper)),
        }
    }

    /// Decides a keyed request: replay, refuse, or run it (resuming an earlier run that left no
    /// answer). Waits for a request with the same key that is running in this process.
    pub async fn begin(
        &self,
        actor: &str,
        key: &str,
        fingerprint: String,
    ) -> Result<Begun, IdempotencyError> {
        let guard = self
            .in_flight
            .enter(actor, key, IN_FLIGHT_WAIT_MAX)
            .await
            .ok_or(IdempotencyError::InFlight)?;
        let now = Utc::now();
        let fresh = || IdempotencyClaim {
            actor: actor.to_string(),
            key: key.to_string(),
            fingerprint: fingerprint.clone(),
            epoch: Uuid::now_v7(),
            created_at: now,
        };
        let (claim, resuming) = match self.log.idempotency_key(actor, key).await? {
            None => (fresh(), false),
            Some(stored) if stored.claim.created_at + self.ttl <= now => {
                // Expired, and the sweep has not run yet: the key starts a new use.
                self.log.forget_idempotency_key(&stored.claim).await?;
                (fresh(), false)
            }
            Some(stored) if stored.claim.fingerprint != fingerprint => {
                return Err(IdempotencyError::Reused)
            }
            Some(StoredKey {
                response: Some(response),
                ..
            }) => return Ok(Begun::Replay(response)),
            Some(StoredKey { claim, .. }) => (claim, true),
        };
        if resuming {
            tracing::info!(%actor, %key, "resuming a keyed request that committed without an answer");
        }
        Ok(Begun::Execute(
            Arc::new(IdempotencyScope::new(claim, resuming)),
            guard,
        ))
    }

    /// Stores the answer of a request run under `scope`.
    pub async fn finish(
        &self,
        scope: &IdempotencyScope,
        response: &SavedResponse,
    ) -> Result<(), StoreError> {
        self.log
            .save_idempotency_response(scope.claim(), response)
            .await
    }

    /// Deletes the keys that are older than the TTL at `now`; answers how many.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.log.expire_idempotency_keys(now - self.ttl).await
    }

    pub fn stop(&self) {
        if let Some(sweeper) = self
            .sweeper
            .lock()
            .expect("the sweeper lock is never poisoned")
            .take()
        {
            sweeper.abort();
        }
    }
}

impl Drop for Idempotency {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn sweep_forever(log: SharedLog, ttl: TimeDelta) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        match log.expire_idempotency_keys(Utc::now() - ttl).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "idempotency keys expired"),
            Err(error) => {
                tracing::warn!(%error, "expiring idempotency keys failed; retrying later")
            }
        }
    }
}

/// (actor, key) → the turn a request with that key holds while it runs.
type Turns = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// The keyed requests running in this process, one per (actor, key).
#[derive(Default)]
pub struct InFlight {
    running: Mutex<Turns>,
}

/// Held while a keyed request runs; the next request with the key proceeds once it is dropped.
pub struct InFlightGuard {
    in_flight: Arc<InFlight>,
    key: (String, String),
    _turn: OwnedMutexGuard<()>,
}

impl InFlight {
    /// Waits (at most `wait`) until no other request with this key runs here.
    async fn enter(
        self: &Arc<Self>,
        actor: &str,
        key: &str,
        wait: Duration,
    ) -> Option<InFlightGuard> {
        let key = (actor.to_string(), key.to_string());
        let turn = self.running().entry(key.clone()).or_default().clone();
        // A statement of its own, so that the waiting future (and its reference to the entry)
        // is gone before the entry is released.
        let entered = tokio::time::timeout(wait, turn.lock_owned()).await;
        match entered {
            Ok(turn) => Some(InFlightGuard {
                in_flight: self.clone(),
                key,
                _turn: turn,
            }),
            Err(_) => {
                self.release(&key, 0);
                None
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.running
            .lock()
            .expect("the in-flight lock is never poisoned")
    }

    /// Forgets the key's entry when nobody but the map and `holders` (references the caller
    /// still has) refer to it: no request runs with the key, and none waits.
    fn release(&self, key: &(String, String), holders: usize) {
        let mut running = self.running();
        if running
            .get(key)
            .is_some_and(|turn| Arc::strong_count(turn) <= 1 + holders)
        {
            running.remove(key);
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        // The guard's own turn still refers to the entry here (fields drop after this).
        self.in_flight.release(&self.key, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str, epoch: Uuid) -> IdempotencyClaim {
        IdempotencyClaim {
            actor: "ana@flota.co".into(),
            key: key.into(),
            fingerprint: String::new(),
            epoch,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn event_ids_are_the_same_for_a_retry_and_differ_for_anything_else() {
        let epoch = Uuid::now_v7();
        let first = event_id(&claim("k", epoch), 0, 0);
        assert_eq!(first, event_id(&claim("k", epoch), 0, 0));
        assert_eq!(first.get_version_num(), 8);
        let others = [
            event_id(&claim("k", epoch), 0, 1),
            event_id(&claim("k", epoch), 1, 0),
            event_id(&claim("k2", epoch), 0, 0),
            event_id(&claim("k", Uuid::now_v7()), 0, 0),
        ];
        assert!(others.iter().all(|other| *other != first));
    }

    #[test]
    fn fingerprints_tell_method_path_and_body_apart() {
        let base = fingerprint("POST", "/api/tanqueos", b"{}");
        assert_eq!(base, fingerprint("POST", "/api/tanqueos", b"{}"));
        assert_eq!(base.len(), 64);
        assert_ne!(base, fingerprint("PUT", "/api/tanqueos", b"{}"));
        assert_ne!(base, fingerprint("POST", "/api/tanqueos/1", b"{}"));
        assert_ne!(base, fingerprint("POST", "/api/tanqueos", b"{ }"));
        // Lengths are hashed too, so moving bytes between parts changes the fingerprint.
        assert_ne!(
            fingerprint("POST", "/a", b"b"),
            fingerprint("POST", "/ab", b"")
        );
    }

    #[tokio::test]
    async fn one_request_per_key_runs_and_the_entry_is_forgotten_after() {
        let in_flight = Arc::new(InFlight::default());
        let first = in_flight
            .enter("a", "k", Duration::from_millis(10))
            .await
            .expect("nobody else runs");
        assert!(in_flight
            .enter("a", "k", Duration::from_millis(10))
            .await
            .is_none());
        assert!(in_flight
            .enter("b", "k", Duration::from_millis(10))
            .await
            .is_some());
        drop(first);
        assert!(in_flight.running().is_empty());
        assert!(in_flight
            .enter("a", "k", Duration::from_millis(10))
            .await
            .is_some());
    }
}
